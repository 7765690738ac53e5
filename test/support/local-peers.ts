/** The end of a suite of real peer processes: every node stops, with exit code 0, and its files go. */
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import type { LocalPeer } from '../../node/cli/local-network.ts'

export async function stopPeers(peers: LocalPeer[], root: string): Promise<void> {
  const codes = await Promise.all(peers.map(p => p.stop()))
  await rm(root, { recursive: true, force: true })
  assert.deepEqual(
    codes,
    codes.map(() => 0),
    'every node shuts down cleanly',
  )
}
