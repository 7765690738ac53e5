/**
 * `read --follow` across a revocation, with real processes: a gateway and a reader, each
 * `edgeward start` in its own process, and the reader's `edgeward read --follow` as a third.
 * The follow prints what was published before it started and what is published while it
 * runs; then the gateway revokes the reader's grant and publishes more. The follow must end
 * by itself with a refusal (exit 3, one line on stderr that names the revocation), having
 * printed nothing published after the revocation.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { describe, it } from 'node:test'
import { BIN } from '../../node/cli/local-network.ts'
import { suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

const STREAM = 'temperature'
const DEADLINE_MS = 20_000

/** A `read --follow` process: the lines it printed so far, and its end. */
interface Follow {
  process: ChildProcess
  lines: { value: number; epoch: number; seq: number }[]
  stderr: () => string
  exited: Promise<number | null>
}

function follow(dataDir: string, space: string): Follow {
  const p = spawn(process.execPath, [BIN, 'read', space, STREAM, '--follow', '--data', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const f: Follow = { process: p, lines: [], stderr: () => stderr, exited: undefined as never }
  let stderr = ''
  let buf = ''
  p.stderr.on('data', d => (stderr += d))
  p.stdout.on('data', d => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      f.lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
  })
  f.exited = new Promise(resolve => p.once('exit', code => resolve(code)))
  return f
}

describe('read --follow when the grant is revoked mid-stream', { timeout: 120_000 }, () => {
  const local = suiteLocalPeers('follow-revoke', ['gw', 'reader'], { space: 'plant' })
  const { peers, dids } = local

  const publish = async (values: number[]) => {
    const t = Date.now()
    const input = values.map((value, i) => JSON.stringify({ ts: t + i, value })).join('\n')
    const r = await peers.gw.cli(['publish', local.space, STREAM], { input })
    assert.equal(r.code, 0, r.stderr)
  }

  it('ends with a refusal that names the revocation, and prints nothing published after it', async t => {
    const { space } = local
    await publish([1, 2, 3])
    const g = await peers.gw.cli(['grant', space, '--to', dids.reader, '--stream', STREAM, '--for', '1h', '--json'])
    assert.equal(g.code, 0, g.stderr)
    const grant = JSON.parse(g.stdout).grant as string

    const follower = follow(peers.reader.dataDir, space)
    // ended before the peers stop, however the test ends
    t.after(async () => {
      if (follower.process.exitCode === null && follower.process.signalCode === null) {
        follower.process.kill('SIGKILL')
        await follower.exited
      }
    })
    const printed = (n: number) => async () => {
      if (follower.process.exitCode !== null) throw new Error(`the follow ended early: ${follower.stderr()}`)
      return follower.lines.length >= n ? true : undefined
    }
    await waitFor('the follow to print what was stored before it started', printed(3), DEADLINE_MS)
    // published while it follows: it arrives by gossip and is printed as it comes
    await publish([4, 5])
    await waitFor('the follow to print what was published while it runs', printed(5), DEADLINE_MS)
    const before = follower.lines.map(l => l.epoch)

    const r = await peers.gw.cli(['revoke', space, '--grant', grant])
    assert.equal(r.code, 0, r.stderr)
    await publish([100, 101, 102])
    // the reader's node receives these, asks for their epoch's key, and is refused: the follow ends
    const code = await Promise.race([
      follower.exited,
      new Promise<'running'>(resolve => setTimeout(() => resolve('running'), DEADLINE_MS).unref()),
    ])
    assert.equal(code, 3, `the follow ends with exit 3 (refused); stderr: ${follower.stderr()}`)
    const stderr = follower.stderr().trim()
    assert.equal(stderr.split('\n').length, 1, `one line on stderr: ${stderr}`)
    assert.match(stderr, /^edgeward: refused: .*revoked/)
    assert.deepEqual(
      follower.lines.map(l => l.value),
      [1, 2, 3, 4, 5],
      'everything before the revocation, nothing after it',
    )
    // the gateway's own view: the readings after the revocation are in an epoch the reader never had a key for
    const own = (await peers.gw.cli(['read', space, STREAM])).stdout
      .trim()
      .split('\n')
      .map(l => JSON.parse(l))
    const after = own.filter(l => l.value >= 100)
    assert.equal(after.length, 3)
    assert.ok(
      after.every(l => l.epoch > Math.max(...before)),
      'what was published after the revocation is under a new epoch key',
    )
  })
})
