/**
 * `edgeward start` ends cleanly on SIGTERM or SIGINT whenever the signal comes once it runs,
 * even the moment it announces itself (node.json appears). A clean end is exit 0,
 * "node stopped", and node.json removed: a signal that found no handler killed the process and
 * left a node.json that names a node no longer running.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, watch } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BIN, LOOPBACK_FLAGS, runCli } from '../../node/cli/local-network.ts'

/** Start a node and send `signal` the moment its node.json appears; resolves with how the process ended. */
function startAndSignal(
  dir: string,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'start', ...LOOPBACK_FLAGS, '--data', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    proc.stderr.on('data', d => (stderr += d))
    const kill = () => proc.kill(signal)
    const watcher = watch(dir, (_event, name) => {
      if (name === 'node.json' && existsSync(join(dir, 'node.json'))) {
        watcher.close()
        kill()
      }
    })
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000)
    proc.on('error', reject)
    proc.on('close', (code, sig) => {
      clearTimeout(timer)
      watcher.close()
      resolve({ code, signal: sig, stderr })
    })
  })
}

describe('edgeward start and the signals that end it (real processes)', { timeout: 240_000 }, () => {
  let root: string
  let dir: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-signals-'))
    dir = join(root, 'node')
    const r = await runCli(['init', '--data', dir])
    assert.equal(r.code, 0, r.stderr)
  })
  after(() => rm(root, { recursive: true, force: true }))

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} the moment node.json appears: exit 0, node stopped, node.json gone (5 times)`, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await startAndSignal(dir, signal)
        assert.equal(r.signal, null, `round ${i}: killed by ${r.signal}, not stopped: ${r.stderr}`)
        assert.equal(r.code, 0, `round ${i}: ${r.stderr}`)
        assert.match(r.stderr, /node stopped/)
        assert.equal(existsSync(join(dir, 'node.json')), false, `round ${i}: node.json left behind`)
      }
    })
  }
})
