/**
 * `EDGEWARD_PASSPHRASE` through the CLI, with real processes: `init` with a passphrase keeps
 * the keys encrypted (no development-mode warning); `start` with the same passphrase runs the
 * node, out of development mode; with a wrong one, or none, `start` ends with exit 1 and one
 * line that says what is wrong (no stack trace) and no node runs; a passphrase given for a
 * development-mode keystore is refused the same way (the keystore may have been swapped).
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { LOOPBACK_FLAGS, type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import { stopPeers } from '../support/local-peers.ts'
import { runToExit } from '../support/run-script.ts'

const PASSPHRASE = 'correct horse battery staple'

/** The environment without EDGEWARD_PASSPHRASE, plus `extra`. */
function envWith(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra }
  if (extra.EDGEWARD_PASSPHRASE === undefined) delete env.EDGEWARD_PASSPHRASE
  return env
}

/** `edgeward start` that should fail: its exit code and stderr, or -1 if it still ran after 20 s. */
const startExpectingFailure = (dir: string, env: NodeJS.ProcessEnv) =>
  runToExit(['start', ...LOOPBACK_FLAGS, '--data', dir], env)

function assertOneLine(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr}`)
  const out = r.stderr.split('\n').filter(l => l !== '')
  assert.equal(out.length, 1, `one line, no stack trace: ${r.stderr}`)
  assert.match(out[0], pattern)
}

describe('EDGEWARD_PASSPHRASE through the CLI (real processes)', { timeout: 120_000 }, () => {
  let root: string
  let dir: string
  const peers: LocalPeer[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-passphrase-'))
    dir = join(root, 'encrypted')
    const r = await runCli(['init', '--data', dir], { env: envWith({ EDGEWARD_PASSPHRASE: PASSPHRASE }) })
    assert.equal(r.code, 0, r.stderr)
    assert.doesNotMatch(r.stderr, /development mode/, 'the keys are encrypted')
  })

  after(async () => {
    await stopPeers(peers, root)
  })

  it('starts with the right passphrase, out of development mode', async () => {
    const peer = await startPeer('encrypted', dir, { env: envWith({ EDGEWARD_PASSPHRASE: PASSPHRASE }) })
    peers.push(peer)
    const status = await (await peer.api()).call<{ developmentMode: boolean }>('GET', '/v1/status')
    assert.equal(status.developmentMode, false)
    assert.equal(await peer.stop(), 0)
    assert.doesNotMatch(peer.stderr, /development mode/)
  })

  it('refuses a wrong passphrase in one line, exit 1, and runs no node', async () => {
    const r = await startExpectingFailure(dir, envWith({ EDGEWARD_PASSPHRASE: 'wrong horse' }))
    assertOneLine(r, /^edgeward: error: wrong passphrase/)
    assert.equal(existsSync(join(dir, 'node.json')), false)
  })

  it('refuses to start without a passphrase when the keystore is encrypted, in one line', async () => {
    for (const env of [envWith(), envWith({ EDGEWARD_PASSPHRASE: '' })]) {
      const r = await startExpectingFailure(dir, env)
      assertOneLine(r, /^edgeward: error: .*encrypted.*EDGEWARD_PASSPHRASE/)
    }
    assert.equal(existsSync(join(dir, 'node.json')), false)
  })

  it('refuses a passphrase for a development-mode keystore, in one line', async () => {
    const plain = join(root, 'plain')
    const r = await runCli(['init', '--data', plain], { env: { EDGEWARD_PASSPHRASE: '' } })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /development mode/)
    assertOneLine(
      await startExpectingFailure(plain, envWith({ EDGEWARD_PASSPHRASE: PASSPHRASE })),
      /^edgeward: error: .*not encrypted.*passphrase/,
    )
  })
})
