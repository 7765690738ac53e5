/**
 * The custody scenario at small N (three custodians, k = 2, two readers), for its invariants
 * rather than its timings: with the owner down, granted readers read every epoch through the
 * custodians whenever two are reachable, and never with one; the revoked reader gets no key
 * although a custodian ignores the policy and releases to it; every key decrypts its epoch;
 * every release used is in a custodian's audit log. And the checks are not vacuous: the same
 * reader read before the revocation, and with a second custodian ignoring the policy it reads.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checksOf } from '../../sim/report.ts'
import { CUSTODY_STREAM, custodyPublicPeers, ignorePolicy, runCustody } from '../../sim/scenarios/custody.ts'
import { assertChecksHold, simNetworks } from '../support/sim.ts'

const network = simNetworks()

describe('custody', () => {
  it('readers read through k custodians with the owner down; the revoked one never, even with a custodian ignoring the policy', async () => {
    const net = await network({
      peers: 6,
      link: { latencyMs: 5 },
      seed: 4,
      store: 'disk',
      public: custodyPublicPeers(3),
    })
    const r = await runCustody(net, { custodians: 3, threshold: 2, epochs: 2, readsPerRound: 1, deadlineMs: 30_000 })
    assertChecksHold(r)
    assert.deepEqual(
      r.rounds.map(x => x.name),
      [
        'owner down',
        'custodians down',
        'below threshold',
        'custodians back',
        'partition',
        'healed',
        'misbehaving',
        'revoked',
        'after',
      ],
    )
    assert.equal(r.epochs.length, 3, 'two epochs, and the one the revocation opened')
    // liveness, round by round: every expected read got every key
    for (const round of r.rounds) assert.equal(round.succeeded, round.expected, round.name)
    assert.ok(r.liveness.expected >= 12)
    // with one custodian up, nobody reads
    const below = r.rounds.find(x => x.name === 'below threshold')!
    assert.equal(below.expected, 0)
    assert.ok(below.reads.length > 0 && below.reads.every(x => x.keys === 0 && x.reachable === 1))
    // safety, and that it is not vacuous: the same reader read every epoch before the revocation,
    // and after it the misbehaving custodian released its share to it: only the threshold stopped it
    assert.ok(r.safety.reads >= 2)
    assert.equal(r.safety.violations, 0)
    assert.ok(r.safety.readsBefore >= 5, `${r.safety.readsBefore} reads before the revocation`)
    assert.ok(r.misbehavingReleases >= 1, 'the misbehaving custodian released to the revoked reader')
    const after = r.rounds.find(x => x.name === 'after')!.reads.filter(x => x.revoked)
    assert.ok(after.length > 0 && after.every(x => x.reachable === 3 && x.outcome === 'refused'))
    // every read with keys was found in k custodians' logs
    assert.equal(r.audit.missing, 0)
    assert.equal(r.audit.used, 2 * r.audit.reads)
    assert.ok(r.audit.reads >= r.liveness.succeeded)
    for (const read of r.rounds.flatMap(x => x.reads)) if (read.keys > 0) assert.ok(read.logged! >= 2)
    assert.equal(r.wrongKeys, 0)
    // every deal reached every custodian in the end, passed on by the others where the owner could not
    assert.deepEqual(r.deals.held, [r.deals.dealt, r.deals.dealt, r.deals.dealt])
    assert.ok(r.deals.passedOn > 0)
    assert.ok(r.latency.count > 0 && r.latency.p50 > 0)

    // the product's read path: with the owner still down, a granted reader reads everything
    const granted = r.readers.find(x => x !== r.revoked)!
    const read = await net.node(granted).data.read(r.space, CUSTODY_STREAM)
    assert.equal(read.length, 5)

    // a second custodian ignoring the policy makes k: the revoked reader then gets every key,
    // and a read like that, counted by the scenario, fails its safety check
    const second = r.custodians.find(c => c !== r.misbehaving)!
    ignorePolicy(net.node(second))
    const keys = await net.node(r.revoked).custody.reader.keys(r.space, CUSTODY_STREAM, 'raw', r.epochs)
    assert.equal([...keys.keys.values()].filter(k => k !== undefined).length, r.epochs.length)
    const leaked = { ...r, safety: { ...r.safety, violations: 1 } }
    assert.ok(checksOf(leaked).some(c => !c.ok && /revoked reader/.test(c.name)))
  })
})
