/**
 * The churn scenario at small N, for its invariants rather than its timings: readers that
 * come and go decrypt what the gateway publishes while they are online, and every reader
 * that joins, newcomer or returning, gets to a decrypted reading.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MIN_DELIVERY_RATIO } from '../../sim/report.ts'
import { runChurn } from '../../sim/scenarios/churn.ts'
import { assertChecksHold, simNetworks } from '../support/sim.ts'

const network = simNetworks()

describe('churn', () => {
  it('delivers to the readers online, and every reader that joins decrypts a reading', async () => {
    const net = await network({ peers: 8, link: { latencyMs: 5, jitterMs: 2 }, seed: 3 })
    const r = await runChurn(net, { durationMs: 12_000, churnRate: 1, publishEveryMs: 400, deadlineMs: 30_000 })
    assertChecksHold(r)
    assert.equal(r.readers.length, 7)
    assert.ok(r.published >= 20, `${r.published} readings published`)
    // the seed's schedule has readers leave, come back, and join for the first time
    assert.ok(r.events.leaves > 0 && r.events.joins > 0)
    const newcomers = r.joins.filter(j => j.kind === 'newcomer')
    const returning = r.joins.filter(j => j.kind === 'returning')
    assert.ok(newcomers.length > 0, 'a newcomer joined')
    assert.ok(returning.length > 0, 'a reader came back')
    for (const j of r.joins) {
      assert.equal(j.error, undefined)
      assert.ok(j.firstReadingMs !== undefined && j.firstReadCount > 0, `p${j.reader} decrypted a reading`)
      assert.ok(j.startedMs! <= j.policyMs! && j.policyMs! <= j.firstReadingMs!, 'the phases come in order')
    }
    // a newcomer got its grant from the owner when it joined, and it is in the owner's policy
    const ownerState = net.node(r.owner).policy.document(r.space).state
    for (const j of newcomers) assert.ok(ownerState.grantsOf(net.peers[j.reader].principal).length === 1)
    // every online session that saw readings published decrypted them
    assert.ok(r.delivery.eligible > 0)
    assert.ok(r.delivery.ratio >= MIN_DELIVERY_RATIO, `delivery ${r.delivery.ratio}`)
    for (const s of r.sessions) if (s.eligible > 0) assert.ok(s.delivered > 0, `p${s.reader}'s session got nothing`)
    assert.equal(
      r.delivery.delivered,
      r.sessions.reduce((a, s) => a + s.delivered, 0),
    )
    assert.ok(r.delivery.live > 0, 'readings arrived live by gossip')
    assert.equal(r.decryptFailures, 0)
    assert.equal(r.firstReading.all.count, r.joins.length)
    assert.ok(r.timeline.some(b => b.ratio !== undefined))
  })
})
