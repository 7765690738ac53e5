/**
 * `edgeward ui`: the desktop client. Attaches to the node running on the data directory, or
 * runs one in the foreground (as `start` does, until SIGINT/SIGTERM) when none runs; asks it
 * for a one-time login link (single use, 2 minutes) and opens it: in an app window of
 * Chromium or Chrome where one is installed (`--app=URL`), else in the default browser
 * (`$BROWSER`, `xdg-open`, `open`). The link is printed too, for machines without a browser;
 * with --no-open it is only printed. On a data directory without an identity (the first run),
 * it creates one first, as `init` does (encrypted with EDGEWARD_PASSPHRASE when it is set).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { NodeStateError } from '../errors.ts'
import type { LoginLink } from '../ui/contract.ts'
import { ApiClient, nodeInfoPath } from './client.ts'
import { init, runNode, type StartOptions } from './commands.ts'
import { type Output, print } from './output.ts'

export interface UiOptions extends StartOptions {
  /** open a browser on the link (false: print it only) */
  open: boolean
}

/** A login link from the node running on `dataDir`, or undefined when none answers there. */
async function linkFromRunningNode(dataDir: string): Promise<LoginLink | undefined> {
  if (!existsSync(nodeInfoPath(dataDir))) return undefined
  const api = await ApiClient.connect(dataDir)
  try {
    return await api.call<LoginLink>('POST', '/ui/links')
  } catch (err) {
    // node.json left behind by a node that is gone: start one
    if ((err as Error).name === NodeStateError.name) return undefined
    throw err
  }
}

export async function ui(dataDir: string, opts: UiOptions, o: Output): Promise<void> {
  const link = await linkFromRunningNode(dataDir)
  if (link !== undefined) return show(link, true, opts.open, o)
  // first run: the person gets an identity (encrypted with EDGEWARD_PASSPHRASE when set), then the client
  const { hasIdentity } = await import('../identity.ts')
  if (!hasIdentity(dataDir)) {
    o.err(`first run: creating your identity in ${dataDir}`)
    await init(dataDir, false, { ...o, out: line => o.err(line), json: false })
  }
  // no node: run one here, and hand out the link once its API listens (runNode prints then)
  let announced = false
  const announce: Output = {
    ...o,
    out: line => {
      o.out(line)
      if (announced) return
      announced = true
      ApiClient.connect(dataDir)
        .then(api => api.call<LoginLink>('POST', '/ui/links'))
        .then(
          l => show(l, false, opts.open, o),
          err => o.err(`warning: no login link: ${(err as Error).message}`),
        )
    },
  }
  await runNode(dataDir, opts, announce)
}

function show(link: LoginLink, attached: boolean, open: boolean, o: Output): void {
  const opened = open ? openBrowser(link.url, o) : undefined
  const human = [
    `edgeward client: ${link.url}`,
    `  (a one-time link: it opens one session, until ${new Date(link.expiresAt).toLocaleTimeString()})`,
    ...(opened === undefined ? [] : [`  opened in ${opened}`]),
    ...(attached ? [] : ['  the node runs until Ctrl-C']),
  ].join('\n')
  print(o, { url: link.url, expiresAt: link.expiresAt, attached, ...(opened === undefined ? {} : { opened }) }, human)
}

/** Browsers that open a page as an app window of its own. */
const APP_BROWSERS = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'microsoft-edge']
const MAC_APP_BROWSERS = [
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
]

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name)
    if (dir !== '' && existsSync(p)) return p
  }
  return undefined
}

/** Open `url`; the program used, or undefined (said on stderr) when there is nothing to open it with. */
function openBrowser(url: string, o: Output): string | undefined {
  const launch = (cmd: string, args: string[]): string => {
    const p = spawn(cmd, args, { detached: true, stdio: 'ignore' })
    p.on('error', err => o.err(`warning: could not open ${cmd}: ${err.message}; open the link yourself`))
    p.unref()
    return cmd
  }
  if (process.env.BROWSER) return launch(process.env.BROWSER, [url])
  if (process.platform === 'darwin') {
    const app = MAC_APP_BROWSERS.find(p => existsSync(p))
    return app !== undefined ? launch(app, [`--app=${url}`]) : launch('open', [url])
  }
  if (process.platform === 'win32') return launch('cmd', ['/c', 'start', '', url])
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    o.err('no display to open a browser on: open the link in a browser on this machine')
    return undefined
  }
  for (const name of APP_BROWSERS) {
    const path = onPath(name)
    if (path !== undefined) return launch(path, [`--app=${url}`])
  }
  const xdg = onPath('xdg-open')
  if (xdg !== undefined) return launch(xdg, [url])
  o.err('no browser found: open the link in a browser on this machine')
  return undefined
}
