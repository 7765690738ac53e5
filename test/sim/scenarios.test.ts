/**
 * The simulator's scenarios at small N, for their invariants rather than their timings:
 * after a revocation no key reaches the revoked subject and its reads are refused, and after
 * a partition heals every peer holds the same policy and answers every access question alike.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runPartitionHeal } from '../../sim/scenarios/partition-heal.ts'
import { runRevoke } from '../../sim/scenarios/revoke.ts'
import { STREAM } from '../../sim/scenarios/space.ts'
import { assertChecksHold, simNetworks } from '../support/sim.ts'

const DEADLINE_MS = 20_000
const network = simNetworks()

describe('scenarios', () => {
  it('revoke: every peer applies it, the subject drops its keys, and no key reaches it afterwards', async () => {
    const net = await network({ peers: 8, link: { latencyMs: 30, jitterMs: 10 }, seed: 21 })
    const result = await runRevoke(net, { rounds: 1, deadlineMs: DEADLINE_MS })
    const [round] = result.rounds
    assertChecksHold(result)
    assert.equal(round.revocation.missing, 0)
    assert.ok(round.keysDroppedMs !== undefined && round.keysDroppedMs >= round.applied[round.subject]!)
    assert.equal(round.releasesAfterRevocation, 0, 'no release to the subject after the revocation')
    for (const attempt of round.reads.filter(a => a.afterSeen)) assert.equal(attempt.outcome, 'refused')
    assert.ok(round.baselineSummary.count === 7, 'the baseline reached every other peer')
    assert.ok(round.messageBytes > 0)
    // and later too: the subject is refused by the key holder
    const subject = net.node(round.subject)
    await assert.rejects(subject.data.read(result.space, STREAM), { name: 'AccessRefusedError' })
    assert.equal(subject.data.cachedKeyCount(), 0)
  })

  it('partition-heal: nothing crosses the cut, then every peer converges and gives the same answers', async () => {
    const net = await network({ peers: 10, link: { latencyMs: 5 }, seed: 22, node: { syncIntervalMs: 1000 } })
    const result = await runPartitionHeal(net, { changes: 6, deadlineMs: DEADLINE_MS })
    assertChecksHold(result)
    assert.equal(result.crossedBeforeHeal, 0)
    assert.ok(result.admin !== undefined && result.sides[result.admin] === 1, 'an admin wrote on the other side')
    assert.deepEqual(result.written, [3, 3])
    assert.ok(result.convergedMs !== undefined)
    assert.equal(result.disagreeingPeers, 0)
    assert.ok(result.gridQuestions >= 16)
    const heads = new Set(net.running().map(p => [...p.node!.policy.document(result.space).heads()].sort().join()))
    assert.equal(heads.size, 1)
  })
})
