/**
 * `edgeward ui` as real processes: with no node on the data directory it runs one in the
 * foreground and prints a one-time link that opens a session; a second `ui` attaches to that
 * node instead of starting another; the browser it opens is `$BROWSER` when set (given the
 * link); with no display and no browser it says so and still prints the link; a node.json
 * left by a node that is gone does not stop it from starting one; SIGTERM stops the node it
 * started, cleanly, and removes node.json. On a first run it creates the person's identity.
 */
import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BIN, LOOPBACK_FLAGS, runCli } from '../../node/cli/local-network.ts'
import type { LoginLink } from '../../node/ui/contract.ts'
import { waitFor } from '../support/wait.ts'

/** The environment without a display or a browser, so that nothing is opened by accident. */
function headlessEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra }
  delete env.DISPLAY
  delete env.WAYLAND_DISPLAY
  if (extra.BROWSER === undefined) delete env.BROWSER
  return env
}

/** `edgeward ui` that runs a node: the process and the link it printed. */
async function uiRunningNode(dir: string): Promise<{ proc: ChildProcessWithoutNullStreams; url: string }> {
  const proc = spawn(process.execPath, [BIN, 'ui', '--no-open', ...LOOPBACK_FLAGS, '--data', dir], {
    env: headlessEnv(),
  })
  let out = ''
  let err = ''
  proc.stderr.on('data', d => (err += d))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no link within 20 s: ${out} ${err}`)), 20_000)
    proc.stdout.on('data', d => {
      out += d
      const m = /^edgeward client: (http:\/\/\S+)$/m.exec(out)
      if (m === null) return
      clearTimeout(timer)
      resolve(m[1])
    })
    proc.once('exit', code => reject(new Error(`ui exited with ${code}: ${err}`)))
  })
  return { proc, url }
}

async function stop(proc: ChildProcessWithoutNullStreams): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode
  const exited = new Promise<number | null>(resolve => proc.once('exit', resolve))
  proc.kill('SIGTERM')
  return exited
}

async function redeem(url: string): Promise<number> {
  const u = new URL(url)
  const res = await fetch(`${u.origin}/ui/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ link: u.hash.replace('#login=', '') }),
  })
  await res.body?.cancel()
  return res.status
}

describe('edgeward ui', { timeout: 90_000 }, () => {
  let root = ''
  let dir = ''
  const running: ChildProcessWithoutNullStreams[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-ui-cli-'))
    dir = join(root, 'me')
    assert.equal((await runCli(['init', '--data', dir])).code, 0)
  })

  after(async () => {
    const codes = await Promise.all(running.map(stop))
    await rm(root, { recursive: true, force: true })
    assert.ok(
      codes.every(c => c === 0),
      `every node it started stopped cleanly: ${codes}`,
    )
  })

  it('runs a node when none runs, and prints a link that opens a session', async () => {
    const { proc, url } = await uiRunningNode(dir)
    running.push(proc)
    assert.ok(existsSync(join(dir, 'node.json')))
    const info = JSON.parse(await readFile(join(dir, 'node.json'), 'utf8')) as { api: string }
    assert.equal(new URL(url).origin, info.api)
    assert.equal(await redeem(url), 200)
    assert.equal(await redeem(url), 401, 'once only')
  })

  it('attaches to the running node for the next link, and opens $BROWSER on it', async () => {
    const attached = await runCli(['ui', '--no-open', '--json', '--data', dir], { env: headlessEnv() })
    assert.equal(attached.code, 0, attached.stderr)
    const link = JSON.parse(attached.stdout) as LoginLink & { attached: boolean; opened?: string }
    assert.equal(link.attached, true)
    assert.equal(link.opened, undefined, '--no-open opens nothing')

    const record = join(root, 'opened.txt')
    const browser = join(root, 'browser.sh')
    await writeFile(browser, `#!/bin/sh\necho "$@" > ${record}\n`)
    await chmod(browser, 0o755)
    const opened = await runCli(['ui', '--json', '--data', dir], { env: headlessEnv({ BROWSER: browser }) })
    assert.equal(opened.code, 0, opened.stderr)
    const l = JSON.parse(opened.stdout) as LoginLink & { opened?: string }
    assert.equal(l.opened, browser)
    const given = await waitFor('the browser to be given the link', async () =>
      existsSync(record) ? (await readFile(record, 'utf8')).trim() || undefined : undefined,
    )
    assert.equal(given, l.url)
    assert.equal(await redeem(l.url), 200)
  })

  it('with no display and no browser, says so and prints the link', async () => {
    const r = await runCli(['ui', ...LOOPBACK_FLAGS, '--data', dir], { env: headlessEnv() })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /no display to open a browser on/)
    assert.match(r.stdout, /^edgeward client: http:\/\/127\.0\.0\.1:\d+\/#login=/)
  })

  it('stops the node it runs on SIGTERM, cleanly, and starts one again over a stale node.json', async () => {
    const first = running.pop()!
    assert.equal(await stop(first), 0)
    assert.ok(!existsSync(join(dir, 'node.json')), 'node.json removed')

    // node.json of a node that is gone, naming a port nobody listens on
    const gone = createServer()
    await new Promise<void>(resolve => gone.listen(0, '127.0.0.1', resolve))
    const port = (gone.address() as { port: number }).port
    await new Promise(resolve => gone.close(resolve))
    const stale = { peerId: 'x', did: 'x', addresses: [], api: `http://127.0.0.1:${port}`, pid: 1 }
    await writeFile(join(dir, 'node.json'), JSON.stringify(stale), { mode: 0o600 })
    const again = await uiRunningNode(dir)
    running.push(again.proc)
    assert.notEqual(new URL(again.url).port, String(port))
    assert.equal(await redeem(again.url), 200)
  })

  it('on a first run (no identity yet) creates one, then runs the node and prints a link', async () => {
    const fresh = join(root, 'first-run')
    const { proc, url } = await uiRunningNode(fresh)
    running.push(proc)
    assert.ok(existsSync(join(fresh, 'identity.cbor')), 'an identity was created')
    const info = JSON.parse(await readFile(join(fresh, 'node.json'), 'utf8')) as { did: string; api: string }
    assert.match(info.did, /^did:key:z/)
    assert.equal(new URL(url).origin, info.api)
    assert.equal(await redeem(url), 200)
    // the next run keeps that identity
    assert.equal(await stop(running.pop()!), 0)
    const again = await uiRunningNode(fresh)
    running.push(again.proc)
    assert.equal(JSON.parse(await readFile(join(fresh, 'node.json'), 'utf8')).did, info.did)
  })

  it('takes no positional argument', async () => {
    const r = await runCli(['ui', 'extra', '--data', dir])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /usage: edgeward ui/)
  })
})
