/**
 * The simulator across processes: twenty peers in two worker processes over TCP loopback,
 * each with its LevelDB store on disk, run the revoke scenario driven from this process (more
 * than ten peers share 127.0.0.1 at the owner, which every peer dials: gossipsub's IP
 * colocation penalty must not leave it without a mesh, nor libp2p's inbound rate limit without
 * connections); its
 * invariants hold across the processes (every peer applied the revocation, the subject's keys
 * were dropped, no key was released to it after the revocation, its reads after it saw the
 * revocation were refused), and stopping leaves no worker and no temp directory behind.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, describe, it } from 'node:test'
import { ProcNetwork, runRevokeProcs } from '../../sim/procs.ts'
import { checksOf } from '../../sim/report.ts'

const DEADLINE_MS = 60_000
const PEERS = 20

describe('simulated network across processes', () => {
  let net: ProcNetwork | undefined
  after(async () => {
    await net?.stop()
  })

  it('runs the revoke scenario across two processes with its invariants holding', async () => {
    net = await ProcNetwork.create({
      peers: PEERS,
      procs: 2,
      topology: { kind: 'random', degree: 3 },
      store: 'disk',
      seed: 5,
      node: { syncIntervalMs: 1000 },
    })
    assert.equal(net.failedDials, 0, 'every topology link connected')
    assert.deepEqual(
      net.peers.map(p => p.worker),
      Array.from({ length: PEERS }, (_, i) => i % 2),
      'peers are split across the two processes',
    )
    assert.equal(new Set(net.peers.map(p => p.peerId)).size, PEERS, 'distinct peers')
    assert.ok(
      net.peers.every(p => p.address.startsWith('/ip4/127.0.0.1/tcp/')),
      'peers listen on TCP loopback',
    )
    const degrees = await net.degrees()
    assert.ok(
      degrees.every(d => d > 0),
      `every peer is connected: ${degrees}`,
    )

    const result = await runRevokeProcs(net, { rounds: 2, deadlineMs: DEADLINE_MS })
    assert.equal(result.rounds.length, 2)
    const subjects = result.rounds.map(r => r.subject)
    assert.ok(
      subjects.some(s => net!.workerOf(s) !== net!.workerOf(result.owner)),
      'at least one subject runs in another process than the key holder',
    )
    for (const check of checksOf(result)) assert.ok(check.ok, `${check.name}: ${check.detail}`)
    for (const round of result.rounds) {
      assert.equal(round.revocation.count, PEERS - 1, 'every peer other than the owner applied the revocation')
      assert.ok(round.revocation.p50 >= 0, 'times are taken from the revoke call on, across processes')
      assert.equal(round.baselineSummary.count, PEERS - 1, 'the plain gossip baseline reached every other peer')
      assert.ok(round.messageBytes > 0)
      assert.ok(round.reads.some(a => a.afterSeen && a.outcome === 'refused'))
    }
    assert.ok(net.memoryPerPeer().rssBytes > 0, 'memory per peer is measured in the workers')

    const root = net.root
    await net.stop()
    net = undefined
    assert.equal(existsSync(root), false, 'the network removed its temp directory')
  })
})
