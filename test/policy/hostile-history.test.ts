/**
 * A change whose history never arrives, signed by someone who cannot write to the space, is
 * never kept, stored, served or forwarded: a stranger cannot fill every node's waiting set,
 * disk and catch-up answers and keep the space busy for good. What a known author has waiting
 * is bounded per signer. Catch-up paging ends when a page brings nothing new.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { EdgewardNode } from '../../node/node.ts'
import { actorFor, PolicyDocument } from '../../protocols/policy/document.ts'
import { createStream } from '../../protocols/policy/records.ts'
import { policyTopic } from '../../protocols/sync/messages.ts'
import { newPrincipal, newSpace, T0 } from '../protocols/fixtures.ts'
import { orphans } from '../support/hostile.ts'
import { HOUR } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { waitFor } from '../support/wait.ts'

describe('changes that wait for a history that never comes', () => {
  const { owner, genesis, space } = newSpace('facility')
  const { document: ownerDoc, envelope: g } = PolicyDocument.create(owner, actorFor(owner.did, 'a'), genesis, T0)
  ownerDoc.write(owner, [{ kind: 'stream', record: createStream(owner, space, 'temp', HOUR, T0) }], T0)

  it("a stranger's are dropped: not kept, not served", () => {
    const replica = new PolicyDocument(space)
    for (const e of ownerDoc.allEnvelopes()) replica.applyEnvelope(e)
    const before = replica.envelopesSince([]).length
    for (const signer of [newPrincipal(), newPrincipal()]) {
      for (const e of orphans(space, g, signer, 150)) assert.equal(replica.applyEnvelope(e).status, 'dropped')
    }
    assert.equal(replica.waiting, 0)
    assert.equal(replica.envelopesSince([]).length, before)
  })

  it("an author's wait, up to a bound per signer", () => {
    const replica = new PolicyDocument(space)
    for (const e of ownerDoc.allEnvelopes()) replica.applyEnvelope(e)
    const statuses = orphans(space, g, owner, 300).map(e => replica.applyEnvelope(e).status)
    assert.equal(statuses.filter(s => s === 'pending').length, 256)
    assert.equal(statuses.filter(s => s === 'dropped').length, 44)
    assert.equal(replica.waiting, 256)
  })

  it("before the genesis anyone's wait; the genesis lets go of what no author wrote", () => {
    const replica = new PolicyDocument(space)
    for (let i = 0; i < 10; i++)
      assert.equal(replica.applyEnvelope(orphans(space, g, newPrincipal())[0]).status, 'pending')
    assert.equal(replica.applyEnvelope(orphans(space, g, owner)[0]).status, 'pending')
    assert.equal(replica.waiting, 11)
    replica.applyEnvelope(g)
    assert.equal(replica.waiting, 1, "only the owner's is left")
  })
})

describe('a hostile peer floods a space with changes whose history never comes', { timeout: 120_000 }, () => {
  const s = suiteNodes('hostile-history', ['gw', 'reader', 'hostile'], {
    space: 'plant',
    // catch-up every 500 ms: what a stranger left behind would be paged through again and again
    startOf: { gw: { syncIntervalMs: 500 }, reader: { syncIntervalMs: 500 } },
  })

  before(async () => {
    await s.gw.data.createStream(s.space, 'temp')
    await s.hostile.libp2p.dial(s.reader.libp2p.getMultiaddrs()[0])
    await waitFor('the peers to hold the space', async () =>
      [s.reader, s.hostile].every(n => n.policy.document(s.space).state.streams.has('temp')) ? true : undefined,
    )
    await waitFor('the hostile peer to see both on the policy topic', async () =>
      s.hostile.libp2p.services.pubsub.getSubscribers(policyTopic(s.space)).length >= 2 ? true : undefined,
    )
  })

  /** CPU time of this process (both honest nodes run in it) over `ms` of wall time. */
  async function cpuOver(ms: number): Promise<number> {
    const start = process.cpuUsage()
    await new Promise(r => setTimeout(r, ms))
    const d = process.cpuUsage(start)
    return (d.user + d.system) / 1000
  }

  it('nothing of it is kept, stored or served, and the honest nodes go back to idle', async () => {
    const idle = await cpuOver(3000)
    const genesisEnvelope = s.gw.policy.document(s.space).allEnvelopes()[0]
    // 700 changes from one throwaway identity, as the attack was seen, and 300 from three more
    const flood = [
      ...orphans(s.space, genesisEnvelope, newPrincipal(), 700),
      ...[1, 2, 3].flatMap(() => orphans(s.space, genesisEnvelope, newPrincipal(), 100)),
    ]
    const sent = flood.length
    for (const m of flood) await s.hostile.libp2p.services.pubsub.publish(policyTopic(s.space), m)
    // every change reached both: dropped, or (what must not happen) kept waiting
    const handled = (n: EdgewardNode) =>
      n.metrics.total('edgeward_policy_changes_dropped_total') + n.policy.document(s.space).waiting
    await waitFor('both honest nodes to take every change', async () =>
      handled(s.gw) >= sent && handled(s.reader) >= sent ? true : undefined,
    )
    await s.hostile.stop()
    for (const n of [s.gw, s.reader]) {
      const doc = n.policy.document(s.space)
      assert.equal(doc.waiting, 0, 'nothing waits')
      assert.equal(doc.envelopesSince([]).length, doc.size, 'nothing extra is served')
      const stored = await n.store.policy.keys({ gt: `${s.space}!`, lt: `${s.space}!~` }).all()
      assert.equal(stored.length, doc.size, 'nothing extra is stored')
    }
    // the space keeps working
    await s.gw.data.publish(s.space, 'temp', [{ ts: Date.now(), value: 1 }])
    await new Promise(r => setTimeout(r, 1000))
    const afterwards = await cpuOver(3000)
    // idle is a few per cent of a core; a space paging through what a stranger left is most of one
    assert.ok(
      afterwards < idle * 2 + 300,
      `CPU ${afterwards.toFixed(0)} ms over 3 s after the attack, ${idle.toFixed(0)} ms before`,
    )
  })
})
