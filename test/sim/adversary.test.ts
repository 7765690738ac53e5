/**
 * The adversary scenario at small N: every attack is refused for the reason the rules give,
 * counted by the honest peers' own counters, and breaks no invariant (no forged or deleted
 * record in an honest replica, no key released that should not be, forks kept as evidence).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runAdversary } from '../../sim/scenarios/adversary.ts'
import { assertChecksHold, simNetworks } from '../support/sim.ts'

const network = simNetworks()

describe('adversary', () => {
  it('every attack is refused and counted, with no invariant violated', async () => {
    const net = await network({ peers: 10, topology: { kind: 'random', degree: 4 }, link: { latencyMs: 5 }, seed: 5 })
    const r = await runAdversary(net, { spam: 10, deadlineMs: 30_000 })
    assertChecksHold(r)
    const byName = new Map(r.attacks.map(a => [a.name, a]))
    assert.deepEqual(
      [...byName.keys()],
      [
        'forged-grant-non-owner',
        'forged-grant-wrong-signature',
        'delete-revocation',
        'overwrite-grant',
        'replayed-key-request',
        'gossip-spam',
        'log-fork-same-size',
        'log-fork-rewritten',
        'forged-changes-over-catch-up',
        'expired-admin-backdates',
        'future-dated-grant',
        'fired-admin-backdates',
      ],
    )
    for (const a of r.attacks) {
      assert.ok(a.attempted > 0)
      assert.equal(a.refused, a.attempted, a.name)
      assert.deepEqual(a.violations, [], a.name)
      assert.ok(a.recipients > 0, `${a.name} reached an honest peer`)
    }
    const reasons = (name: string) => byName.get(name)!.reasons.join('\n')
    const counted = (name: string) => byName.get(name)!.counted
    // each refused for what it is
    assert.match(reasons('forged-grant-non-owner'), /UnauthorizedChangeError/)
    assert.match(reasons('forged-grant-wrong-signature'), /InvalidSignatureError/)
    assert.match(reasons('delete-revocation'), /UnauthorizedChangeError: .*(only add|delet)/)
    assert.match(reasons('overwrite-grant'), /overwrite/)
    assert.match(reasons('delete-revocation'), /key holder: revoked/)
    assert.match(reasons('replayed-key-request'), /key holder: wrong-device/)
    assert.match(reasons('replayed-key-request'), /key holder: replay/)
    assert.match(reasons('log-fork-same-size'), /two heads of size \d+ with different roots/)
    // no consistency proof from the accepted head, or, if the genuine larger head got there first, two of one size
    assert.match(reasons('log-fork-rewritten'), /evidence: (no valid consistency proof from size|two heads of size)/)
    // and counted where an operator would look
    for (const name of [
      'forged-grant-non-owner',
      'forged-grant-wrong-signature',
      'delete-revocation',
      'overwrite-grant',
    ]) {
      assert.ok(counted(name).edgeward_policy_changes_refused_total >= 1, name)
      assert.ok(counted(name).edgeward_key_refusals_total >= 1, name)
    }
    assert.equal(counted('replayed-key-request').edgeward_key_refusals_total, 2)
    // served in answer to catch-up requests, they are refused and counted as when gossiped
    const overSync = byName.get('forged-changes-over-catch-up')!
    assert.equal(overSync.attempted, 3)
    assert.ok(counted(overSync.name).edgeward_policy_changes_refused_total >= 3 * overSync.recipients)
    assert.match(reasons(overSync.name), /may only add records/)
    const spam = counted('gossip-spam')
    for (const c of [
      'edgeward_policy_changes_refused_total',
      'edgeward_readings_refused_total',
      'edgeward_audit_heads_refused_total',
      'edgeward_access_requests_refused_total',
    ])
      assert.ok(spam[c] >= 10, `${c}: ${spam[c]}`)
    for (const name of ['log-fork-same-size', 'log-fork-rewritten'])
      assert.ok(counted(name).edgeward_audit_equivocations_total >= r.witnesses.length, name)
    // the witnesses still hold the evidence, and the head they accepted is a genuine one
    const rogue = net.peers[r.roles.rogue].peerId
    for (const w of r.witnesses)
      assert.ok(
        net
          .node(w)
          .audit!.equivocations()
          .filter(e => e.log === rogue).length >= 2,
      )
    // time: a backdated grant of an expired admin, a future-dated grant, a fired admin's backdated revocations
    assert.match(reasons('expired-admin-backdates'), /key holder: issuer-not-authorized/)
    assert.match(reasons('future-dated-grant'), /FutureDatedError/)
    assert.ok(counted('future-dated-grant').edgeward_policy_changes_refused_total >= 1)
    assert.match(reasons('fired-admin-backdates'), /H under its grant: keys released/)
    assert.equal(r.releaseViolations.length, 0)
    assert.ok(r.releasesChecked >= 2, 'the honest readers were released keys')
    assert.deepEqual(r.afterSpam, { reached: r.afterSpam.expected, expected: r.afterSpam.expected })
    assert.ok(r.afterSpam.expected > 0)
  })
})
