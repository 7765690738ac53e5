/**
 * A data directory is private to its user whatever the umask, with real `edgeward init` and
 * `start` processes run under umask 000 (children inherit this test process's umask): every
 * directory in it 0700 and every file 0600, LevelDB's included, while the node runs and after
 * it stops; `init` into an existing 0755 directory makes it private; `start` on a directory
 * whose modes were loosened (a 0666 `api-token` among them) makes them private, says so in one
 * line on stderr and keeps using the same token; a file owned by another user is refused with
 * one line and exit 1, and the node does not start.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BIN, LOOPBACK_FLAGS, runCli } from '../../node/cli/local-network.ts'
import { runToExit } from '../support/run-script.ts'

/** Every path under `dir` (itself included) whose mode is not 0700 (directory) or 0600 (file). */
async function notPrivate(dir: string): Promise<string[]> {
  const out: string[] = []
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path)
    const mode = st.mode & 0o7777
    const want = st.isDirectory() ? 0o700 : 0o600
    if (!st.isSymbolicLink() && mode !== want) out.push(`${relative(dir, path) || '.'} ${mode.toString(8)}`)
    if (st.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name))
  }
  await visit(dir)
  return out
}

/** Every path under `dir`, itself included. */
async function everyPath(dir: string): Promise<string[]> {
  const out = [dir]
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) out.push(join(e.parentPath, e.name))
  return out
}

interface Running {
  proc: ChildProcess
  api: string
  stderr: () => string
  stop: () => Promise<number | null>
}

/** `edgeward start` on `dir`, with all of its stderr kept (from the first byte), once it listens. */
async function start(dir: string): Promise<Running> {
  const proc = spawn(process.execPath, [BIN, 'start', ...LOOPBACK_FLAGS, '--data', dir, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr!.on('data', d => (stderr += d))
  const exited = new Promise<number | null>(resolve => proc.once('exit', code => resolve(code)))
  const stop = async () => {
    if (proc.exitCode === null) proc.kill('SIGTERM')
    return exited
  }
  const api = await new Promise<string>((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => reject(new Error(`no start within 20 s: ${stderr}`)), 20_000)
    proc.stdout!.on('data', d => {
      stdout += d
      const nl = stdout.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      resolve((JSON.parse(stdout.slice(0, nl)) as { api: string }).api)
    })
    exited.then(code => {
      clearTimeout(timer)
      reject(new Error(`start exited ${code}: ${stderr}`))
    })
  }).catch(async err => {
    await stop()
    throw err
  })
  // an answer from the API: the node has gone past its start line (and set its signal handlers)
  const token = (await readFile(join(dir, 'api-token'), 'utf8')).trim()
  const status = await fetch(`${api}/v1/status`, { headers: { authorization: `Bearer ${token}` } })
  assert.equal(status.status, 200)
  return { proc, api, stderr: () => stderr, stop }
}

const lines = (text: string, pattern: RegExp): string[] => text.split('\n').filter(l => pattern.test(l))

describe('data directory modes, whatever the umask (real processes)', { timeout: 120_000 }, () => {
  let root: string
  let umask: number
  let n = 0
  const fresh = () => join(root, `d${n++}`)
  const running: Running[] = []

  const init = async (dir: string) => {
    const r = await runCli(['init', '--data', dir])
    assert.equal(r.code, 0, r.stderr)
    return r
  }

  before(async () => {
    umask = process.umask(0o000)
    root = await mkdtemp(join(tmpdir(), 'edgeward-data-dir-'))
    // the children inherit it: a file this process makes with 0666 stays 0666
    await writeFile(join(root, 'probe'), '', { mode: 0o666 })
    assert.equal((await lstat(join(root, 'probe'))).mode & 0o777, 0o666, 'umask 000 in effect')
  })

  after(async () => {
    const codes = await Promise.all(running.map(r => r.stop()))
    process.umask(umask)
    await rm(root, { recursive: true, force: true })
    assert.ok(
      codes.every(c => c === 0),
      `every node stops cleanly: ${codes.join(', ')}`,
    )
  })

  it('keeps what init and start create private: directories 0700, files 0600 (LevelDB included)', async () => {
    const dir = fresh()
    await init(dir)
    assert.deepEqual(await notPrivate(dir), [], 'after init')
    const node = await start(dir)
    running.push(node)
    // a write, so LevelDB has more than its opening files
    const token = (await readFile(join(dir, 'api-token'), 'utf8')).trim()
    const res = await fetch(`${node.api}/v1/spaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'modes' }),
    })
    assert.equal(res.status, 200, await res.text())
    assert.deepEqual(await notPrivate(dir), [], 'while the node runs')
    assert.equal(await node.stop(), 0)
    running.splice(running.indexOf(node), 1)
    assert.deepEqual(await notPrivate(dir), [], 'after it stops')
    assert.deepEqual(lines(node.stderr(), /made private/), [], 'nothing to fix in what the node made itself')
  })

  it('init makes an existing 0755 directory private, and says so', async () => {
    const dir = fresh()
    await mkdir(dir, { mode: 0o755 })
    assert.equal((await lstat(dir)).mode & 0o777, 0o755)
    const r = await init(dir)
    assert.deepEqual(await notPrivate(dir), [])
    assert.equal(lines(r.stderr, /made private/).length, 1, r.stderr)
  })

  it('start makes loosened modes private, says so in one line, and keeps the token', async () => {
    const dir = fresh()
    await init(dir)
    const first = await start(dir)
    assert.equal(await first.stop(), 0)
    const token = 'ab'.repeat(32)
    await writeFile(join(dir, 'api-token'), `${token}\n`, { mode: 0o666 })
    for (const path of await everyPath(dir)) {
      await chmod(path, (await lstat(path)).isDirectory() ? 0o777 : 0o666)
    }
    assert.notDeepEqual(await notPrivate(dir), [])
    const node = await start(dir)
    running.push(node)
    assert.deepEqual(await notPrivate(dir), [], 'fixed at start')
    const said = lines(node.stderr(), /made private/)
    assert.equal(said.length, 1, node.stderr())
    assert.match(said[0], /api-token/)
    assert.equal((await readFile(join(dir, 'api-token'), 'utf8')).trim(), token, 'the same token')
    const status = await runCli(['status', '--data', dir, '--json'])
    assert.equal(status.code, 0, `the CLI still gets in with it: ${status.stderr}`)
    assert.equal(await node.stop(), 0)
    running.splice(running.indexOf(node), 1)
  })

  it('start refuses, in one line, a data directory that holds a file of another user', {
    skip: process.getuid?.() === 0 ? false : 'only root can give a file to another user',
  }, async () => {
    const dir = fresh()
    await init(dir)
    await chown(join(dir, 'identity.cbor'), 65534, 65534)
    const r = await runToExit(['start', ...LOOPBACK_FLAGS, '--data', dir])
    assert.equal(r.code, 1, r.stderr)
    const out = r.stderr.trim().split('\n')
    assert.equal(out.length, 1, r.stderr)
    assert.match(out[0], /^edgeward: error: .*identity\.cbor.*another user/)
    await chown(dir, 65534, 65534)
    await chown(join(dir, 'identity.cbor'), 0, 0)
    const r2 = await runToExit(['start', ...LOOPBACK_FLAGS, '--data', dir])
    assert.equal(r2.code, 1, r2.stderr)
    assert.match(r2.stderr, /^edgeward: error: .*another user[^\n]*\n$/)
  })
})
