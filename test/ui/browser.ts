/**
 * What the client's browser tests share: Debian's chromium through playwright-core, each run
 * with a fresh profile of its own (removed afterwards), a login link from a real node, and the
 * accessible names of a page's controls.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { runCli } from '../../node/cli/local-network.ts'
import type { LoginLink } from '../../node/ui/contract.ts'
import { waitFor } from '../support/wait.ts'

export const CHROMIUM = '/usr/bin/chromium'
/** The README's screenshots: rewritten only when asked (UPDATE_SCREENSHOTS=1), so that a test run leaves the tree as it was. */
const README_SCREENSHOTS = join(import.meta.dirname, '..', '..', 'docs', 'screenshots')

/** Where a test run puts its screenshots: the README's folder when asked, else `fallback` (a folder the test removes). */
export function screenshotDir(fallback: string): string {
  return process.env.UPDATE_SCREENSHOTS === '1' ? README_SCREENSHOTS : fallback
}

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** A chromium with a profile of its own; `close` ends it and removes the profile. */
export async function openBrowser(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (npm test's setup installs Debian's chromium)`)
  const profile = await mkdtemp(join(tmpdir(), 'edgeward-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    viewport: { width: 1180, height: 760 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
  })
  return {
    context,
    close: async () => {
      await context.close()
      await rm(profile, { recursive: true, force: true })
    },
  }
}

/** A one-time login link from the node running on `dataDir`, through the CLI as a person gets it. */
export async function loginLink(dataDir: string): Promise<LoginLink> {
  const r = await runCli(['ui', '--no-open', '--json', '--data', dataDir])
  assert.equal(r.code, 0, r.stderr)
  const link = JSON.parse(r.stdout) as LoginLink & { attached: boolean }
  assert.equal(link.attached, true, 'attached to the running node')
  return link
}

/** Every interactive element of the page, as the browser's accessibility tree names it. */
export async function interactiveNames(page: Page): Promise<{ role: string; name: string }[]> {
  const cdp = await page.context().newCDPSession(page)
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: { ignored: boolean; role?: { value: string }; name?: { value: string } }[]
    }
    const interactive = new Set([
      'button',
      'link',
      'textbox',
      'checkbox',
      'radio',
      'combobox',
      'listbox',
      'menuitem',
      'tab',
      'switch',
      'slider',
      'searchbox',
      'DisclosureTriangle',
    ])
    return nodes
      .filter(n => !n.ignored && interactive.has(n.role?.value ?? ''))
      .map(n => ({ role: n.role!.value, name: (n.name?.value ?? '').trim() }))
  } finally {
    await cdp.detach()
  }
}

/**
 * The interactive elements of the page, each of which must have an accessible name; at least
 * `atLeast` of them, so that a page that did not render does not pass. `where` (the screen) leads
 * the failure messages.
 */
export async function namedControls(
  page: Page,
  atLeast: number,
  where?: string,
): Promise<{ role: string; name: string }[]> {
  const prefix = where === undefined ? '' : `${where}: `
  const controls = await interactiveNames(page)
  assert.ok(controls.length >= atLeast, `${prefix}controls found: ${controls.length}`)
  assert.deepEqual(
    controls.filter(c => c.name === ''),
    [],
    `${prefix}controls without an accessible name`,
  )
  return controls
}

/**
 * The value of `expression` in the page once it is `expected`, or what it is after `timeoutMs`:
 * focus moves a frame or more after the click that moves it, later on a loaded machine. Polled
 * from here: `waitForFunction` would evaluate the string inside the page, which the client's
 * CSP refuses (and logs as a console error).
 */
export async function settled(page: Page, expression: string, expected: unknown, timeoutMs = 5000): Promise<unknown> {
  const value = () => page.evaluate(expression)
  await waitFor('the page to settle', async () => ((await value()) === expected ? true : undefined), timeoutMs).catch(
    () => undefined,
  )
  return value()
}
