/**
 * The README's first command, as a user runs it: `npm run demo` from the project's root.
 * It must run to completion with exit 0, print each step of the story with the commands and
 * their exit codes (the refusals among them), and stop everything it started: once it has
 * exited, no process runs on the data directories it made, and they are gone. The demo makes
 * them under the system's temp directory, so the test gives it one of its own (TMPDIR) and
 * looks there and at every process's command line.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'

const ROOT = join(import.meta.dirname, '..', '..')
const DEMO_DEADLINE_MS = 90_000

/** Processes whose command line mentions `text` (Linux: /proc), with their pid. */
function processesMentioning(text: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ')
    } catch {
      continue // it ended while we looked
    }
    if (cmdline.includes(text)) out.push({ pid: Number(name), cmdline })
  }
  return out
}

describe('npm run demo', { timeout: 150_000 }, () => {
  let tmp: string
  const result = { code: null as number | null, signal: null as string | null, stdout: '', stderr: '' }
  /** processes seen on the demo's directories while it ran */
  const seen = new Map<number, string>()
  /** those still running when the demo was ended for not exiting (the test's kill then ended them) */
  const aliveAtDeadline: string[] = []

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'edgeward-demo-test-'))
    // in a process group of its own, so that a demo that does not end can be ended whole
    const demo = spawn('npm', ['run', 'demo'], {
      cwd: ROOT,
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    demo.stdout.on('data', d => {
      result.stdout += d
      // the peers are up once their addresses are printed: note who runs on the demo's directories
      for (const p of processesMentioning(tmp)) seen.set(p.pid, p.cmdline)
    })
    demo.stderr.on('data', d => (result.stderr += d))
    // it takes ~15 s; a peer it failed to stop keeps it from exiting (its output pipes stay open)
    const timer = setTimeout(() => {
      result.stderr += `\n(the demo did not exit within ${DEMO_DEADLINE_MS} ms: ended by the test)`
      aliveAtDeadline.push(...processesMentioning(tmp).map(p => p.cmdline))
      process.kill(-demo.pid!, 'SIGKILL')
    }, DEMO_DEADLINE_MS)
    await new Promise<void>(resolve =>
      demo.once('close', (code, signal) => {
        result.code = code
        result.signal = signal
        resolve()
      }),
    )
    clearTimeout(timer)
  })

  after(async () => {
    for (const p of processesMentioning(tmp)) process.kill(p.pid, 'SIGKILL')
    await rm(tmp, { recursive: true, force: true })
  })

  it('runs to completion with exit 0 and tells every step of the story', () => {
    assert.equal(result.code, 0, `exit ${result.code} (${result.signal}): ${result.stderr}\n${result.stdout}`)
    const out = result.stdout
    for (let step = 1; step <= 9; step++) assert.match(out, new RegExp(`^== ${step}\\. `, 'm'), `step ${step}`)
    assert.match(out, /^== done: /m)
    // the story's turns, as the commands' exit codes show them
    assert.match(out, /\[reader-a\] \$ edgeward read \S+ temperature\n(?: {4}\{.*\n)+ {4}\(exit 0\)/, 'A reads')
    assert.match(
      out,
      /\[reader-b\] \$ edgeward read \S+ temperature\n {4}edgeward: refused: .*\n {4}\(exit 3\)/,
      'B is refused',
    )
    assert.match(
      out,
      /\[reader-a\] \$ edgeward read \S+ temperature\n {4}edgeward: refused: .*revoked.*\n {4}\(exit 3\)/,
      'A is refused after the revocation',
    )
    assert.match(
      out,
      /\[gateway\] \$ edgeward audit verify .*\n(?: {4}.*\n)* {4}\(exit 0\)/,
      'the audit report verifies',
    )
  })

  it('stops everything it started and removes its data directories', async () => {
    const nodes = [...seen.values()].filter(c => /\bstart --data /.test(c))
    assert.equal(nodes.length, 3, `the demo's three peers were seen running: ${nodes.join('; ')}`)
    assert.deepEqual(aliveAtDeadline, [], 'nothing it started kept it from exiting')
    assert.deepEqual(processesMentioning(tmp), [], 'no process runs on its directories any more')
    const dirs = new Set(nodes.map(c => c.match(/--data (\S+)\/[^/\s]+/)?.[1]))
    assert.equal(dirs.size, 1, `its peers' data directories are in one directory of its own: ${[...dirs].join(', ')}`)
    assert.ok([...dirs][0]?.startsWith(join(tmp, 'edgeward-demo-')), 'made by the demo in its temp directory')
    // (node may keep its compile cache there too: that is not the demo's)
    assert.deepEqual(
      (await readdir(tmp)).filter(name => name.startsWith('edgeward-')),
      [],
      'its data directories are gone',
    )
  })
})
