/**
 * A space's custodian set written by the node (PolicyService.setCustodians), on two nodes in one
 * process: the owner's set reaches a member and is in force there too; a member that is not the
 * owner, or a set that is not valid, is refused before anything is written.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { EdgewardNode } from '../../node/node.ts'
import type { Custodian } from '../../protocols/custody/records.ts'
import { HOUR, joinSpace, suitePeers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

describe('custodian sets written by the node', { timeout: 60_000 }, () => {
  const peers = suitePeers('custodians')
  /** the nodes run three hours ahead of this machine's clock: the set must carry the node's time */
  const nodeNow = () => Date.now() + 3 * HOUR
  let owner: EdgewardNode
  let member: EdgewardNode
  let space: string
  const custodianOf = (n: EdgewardNode): Custodian => ({
    peer: n.identity.peerId,
    xpk: n.identity.sealing.publicKey,
    did: n.identity.principal.did,
  })

  before(async () => {
    owner = await peers.node('owner', { now: nodeNow })
    member = await peers.node('member', { now: nodeNow })
    space = await owner.createSpace('vault')
    await member.libp2p.dial(owner.libp2p.getMultiaddrs()[0])
    await joinSpace([member], space)
  })

  it("the owner's set is written on its clock and reaches the member, where it is the set in force", async () => {
    const custodians = [custodianOf(owner), custodianOf(member)]
    const written = await owner.policy.setCustodians(space, custodians, 2)
    assert.equal(written.record.issuer, owner.identity.principal.did)
    assert.equal(written.record.body.k, 2)
    assert.ok(Math.abs(written.record.body.iat - nodeNow()) < 60_000, 'issued at the node’s now')
    assert.equal(owner.policy.document(space).state.custodianSet?.id, written.record.id)
    assert.ok(await owner.policy.storedChange(space, written.change), 'the change is stored')
    const arrived = await waitFor('the set to reach the member', async () => {
      const s = member.policy.document(space).state.custodianSet
      return s?.id === written.record.id ? s : undefined
    })
    assert.deepEqual(arrived.body, written.record.body)
    assert.deepEqual(
      [...member.policy.document(space).state.custodianSets.keys()],
      [...owner.policy.document(space).state.custodianSets.keys()],
    )
  })

  it('a member that is not the owner is refused, not-authorized, and nothing is written', async () => {
    const before = member.policy.document(space).size
    await assert.rejects(
      member.policy.setCustodians(space, [custodianOf(owner), custodianOf(member)], 2),
      (err: Error & { code?: string }) =>
        err.name === 'AccessRefusedError' && err.code === 'not-authorized' && /only the owner/.test(err.message),
    )
    assert.equal(member.policy.document(space).size, before)
  })

  it('a set that is not valid is a usage error, and nothing is written', async () => {
    const before = owner.policy.document(space).size
    const inForce = owner.policy.document(space).state.custodianSet?.id
    for (const k of [1, 3]) {
      await assert.rejects(owner.policy.setCustodians(space, [custodianOf(owner), custodianOf(member)], k), {
        name: 'UsageError',
        message: /k must be an integer in \[2, 2\]/,
      })
    }
    await assert.rejects(owner.policy.setCustodians(space, [custodianOf(owner)], 1), { name: 'UsageError' })
    assert.equal(owner.policy.document(space).size, before)
    assert.equal(owner.policy.document(space).state.custodianSet?.id, inForce)
  })
})
