/**
 * A suite of real peer processes: a data directory `edgeward init` made (and a peer started on
 * it), the JSON lines a
 * command printed, and the end of the suite, where every node stops, with exit code 0, and its
 * files go.
 */
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'

/** `edgeward init --json` on `dataDir`, which must succeed; the did of the principal it made. */
export async function initData(dataDir: string): Promise<string> {
  const r = await runCli(['init', '--data', dataDir, '--json'])
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout).did
}

/** `edgeward init` on `dataDir`, then `edgeward start` on it: the running peer and the did of its principal. */
export async function initAndStart(
  name: string,
  dataDir: string,
  opts?: Parameters<typeof startPeer>[2],
): Promise<{ peer: LocalPeer; did: string }> {
  const did = await initData(dataDir)
  return { peer: await startPeer(name, dataDir, opts), did }
}

/** The JSON values of a command's output, one a line (`read`, `grants --json`, …); blank lines are skipped. */
export function jsonLines(stdout: string): any[] {
  return stdout
    .trim()
    .split('\n')
    .filter(l => l !== '')
    .map(l => JSON.parse(l))
}

/**
 * Stop every peer, then what `beforeRemove` stops (a broker the peers used), remove `root`, and
 * fail unless every peer exited with 0.
 */
export async function stopPeers(
  peers: LocalPeer[],
  root: string,
  beforeRemove: () => Promise<unknown> = async () => {},
): Promise<void> {
  const codes = await Promise.all(peers.map(p => p.stop()))
  await beforeRemove()
  await rm(root, { recursive: true, force: true })
  assert.deepEqual(
    codes,
    codes.map(() => 0),
    'every node shuts down cleanly',
  )
}
