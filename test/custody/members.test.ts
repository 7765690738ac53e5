/**
 * Members share into a space, on real nodes in one process: the owner grants a member the
 * right to contribute; the member's node encrypts a message of its own, deals its key to the
 * space's custodians and grants the reader; with the owner's node and the member's both
 * stopped, the reader opens it from the custodians. A member without that right cannot share;
 * once the owner revokes the right, what the member shared is closed to the reader too.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { EdgewardNode } from '../../node/node.ts'
import type { OpenedObject } from '../../node/services/objects.ts'
import { custodySuite } from '../support/custody.ts'
import { cut, grantTo, HOUR, revoke } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

async function* bytesOf(text: string): AsyncIterable<Uint8Array> {
  yield new TextEncoder().encode(text)
}

async function textOf(o: OpenedObject): Promise<string> {
  const parts: Uint8Array[] = []
  for await (const p of o) parts.push(p)
  return Buffer.concat(parts).toString('utf8')
}

/**
 * A member of the suite's space whom the owner granted the right to contribute, once it knows
 * that right and the custodian set and has reached every custodian (its way to them is the
 * owner, who may go later).
 */
async function contributor(s: ReturnType<typeof custodySuite>): Promise<EdgewardNode> {
  const member = await s.peers.node('member', { bootstrap: s.owner.addresses() })
  await member.joinSpace(s.space)
  const now = Date.now()
  await grantTo(
    s.owner,
    s.space,
    member.identity.principal.did,
    { nbf: now - 1000, exp: now + HOUR },
    {
      streams: ['obj-*'],
      contribute: true,
    },
  )
  await waitFor('the member to know its right and the set, and reach the custodians', async () => {
    const state = member.policy.document(s.space).state
    return state.isContributor(member.identity.principal.did) &&
      state.custodianSet !== undefined &&
      s.custodians.every(c => member.connectedPeers().includes(c.identity.peerId))
      ? true
      : undefined
  })
  return member
}

describe('members share into a space, the owner offline', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-members')
  let member: EdgewardNode
  let right: string
  let object: string

  /** every node but the owner knows the records */
  const everyoneKnows = (what: string, has: (n: EdgewardNode) => boolean) =>
    waitFor(what, async () => ([s.reader, member, ...s.custodians].every(has) ? true : undefined))

  it('a member without the right to contribute cannot share a message', async () => {
    await s.setUp()
    member = await s.peers.node('member', { bootstrap: s.owner.addresses() })
    await member.joinSpace(s.space)
    await everyoneKnows('the member to know the set', n => n.policy.document(s.space).state.custodianSet !== undefined)
    await assert.rejects(
      member.objects.share(s.space, bytesOf('hello'), {
        to: s.reader.identity.principal.did,
        durationMs: HOUR,
        mediaType: 'message',
      }),
      (err: Error) => {
        assert.equal(err.name, 'AccessRefusedError')
        assert.equal((err as Error & { code: string }).code, 'not-authorized')
        return true
      },
    )
  })

  it('granted the right, the member shares a message to the reader; its key goes to the custodians', async () => {
    const now = Date.now()
    const g = await grantTo(
      s.owner,
      s.space,
      member.identity.principal.did,
      { nbf: now - 1000, exp: now + HOUR },
      { streams: ['obj-*'], contribute: true },
    )
    right = g.id
    await everyoneKnows('everyone to know the right', n => n.policy.document(s.space).state.grants.has(g.id))
    const shared = await member.objects.share(s.space, bytesOf('valve 3 replaced, by the member'), {
      to: s.reader.identity.principal.did,
      durationMs: HOUR,
      mediaType: 'message',
    })
    object = shared.object
    const state = s.reader.policy.document(s.space).state
    await everyoneKnows('everyone to know the member’s grant', n =>
      n.policy.document(s.space).state.grants.has(shared.grant),
    )
    assert.equal(state.streams.get(object)?.issuer, member.identity.principal.did)
    assert.equal(state.streams.get(object)?.body.peer, member.identity.peerId)
    assert.equal(
      state.grantProblem(state.grants.get(shared.grant)!, Date.now()),
      undefined,
      'the member’s grant is active',
    )
    await waitFor('the custodians to hold the message’s key and the member to have dealt it all', async () => {
      const held = await Promise.all(s.custodians.map(async c => (await c.custody.status()).held))
      return held.every(h => h >= 1) && (await member.custody.status()).unacknowledged === 0 ? true : undefined
    })
    await waitFor('the reader to store the message', async () =>
      (await s.reader.data.storedReadings(s.space, object)).length > 0 ? true : undefined,
    )
  })

  it('with the owner’s node and the member’s stopped, the reader opens it from the custodians', async () => {
    await s.peers.stop(member)
    const opened = await s.reader.objects.open(s.space, object)
    assert.equal(await textOf(opened), 'valve 3 replaced, by the member')
    assert.equal(opened.download, true)
  })

  it('once the owner revokes the member’s right, the member’s message is closed to the reader', async () => {
    const rv = await revoke(s.owner, s.space, { grant: right })
    await waitFor('the custodians to know the revocation', async () =>
      s.custodians.every(c => c.policy.document(s.space).state.revocations.has(rv.id)) ? true : undefined,
    )
    await waitFor('the reader to drop the key', async () => (s.reader.data.cachedKeyCount() === 0 ? true : undefined))
    await s.peers.stop(s.owner)
    await assert.rejects(s.reader.objects.open(s.space, object), (err: Error) => {
      assert.equal(err.name, 'AccessRefusedError')
      assert.match(err.message, /right to share into the space has ended|not authorized|issuer/)
      return true
    })
  })
})

describe('a member cannot take an owner’s object by dealing for its name first', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-name-race')

  it('the owner’s record of the name wins, and its deal replaces the member’s at the custodians', async () => {
    await s.setUp()
    const member = await contributor(s)
    const now = Date.now()
    const name = 'obj-00000000000000aa'
    // the owner is cut off while the member writes an object of that name and deals its key
    const apart = await cut([s.owner], [member, s.reader, ...s.custodians])
    await member.data.createStream(s.space, name, { forms: ['raw'] })
    await member.data.publish(s.space, name, [{ ts: Date.now(), value: 'the member’s' }])
    await waitFor('the custodians to hold the member’s deal', async () =>
      (await Promise.all(s.custodians.map(async c => (await c.custody.status()).held))).every(h => h === 1)
        ? true
        : undefined,
    )
    // meanwhile the owner, which knows nothing of it, writes its own object of the same name
    await s.owner.data.createStream(s.space, name, { forms: ['raw'] })
    apart.heal()
    await waitFor('everyone to take the owner’s record', async () =>
      [s.reader, member, ...s.custodians].every(
        n => n.policy.document(s.space).state.streams.get(name)?.issuer === s.owner.identity.principal.did,
      )
        ? true
        : undefined,
    )
    await s.owner.data.publish(s.space, name, [{ ts: Date.now(), value: 'the owner’s' }])
    await s.dealt(1)
    const g = await grantTo(
      s.owner,
      s.space,
      s.reader.identity.principal.did,
      { nbf: now - 1000, exp: now + HOUR },
      {
        streams: [name],
      },
    )
    await waitFor('everyone to know the reader’s grant', async () =>
      s.custodians.every(c => c.policy.document(s.space).state.grants.has(g.id)) ? true : undefined,
    )
    await waitFor('the reader to store the owner’s reading', async () =>
      (await s.reader.data.storedReadings(s.space, name)).length > 0 ? true : undefined,
    )
    await s.peers.stop(s.owner)
    const read = await s.reader.data.read(s.space, name)
    assert.deepEqual(
      read.map(r => r.value),
      ['the owner’s'],
    )
  })
})

describe('a member’s own readings, the owner offline', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-member-readings')
  let member: EdgewardNode

  it('a member with the right publishes readings to a stream named m-…, never to a name the owner may want', async () => {
    await s.setUp()
    member = await contributor(s)
    const now = Date.now()
    await assert.rejects(member.data.publish(s.space, 'boiler', [{ ts: now, value: 1 }]), /not a key holder/)
    await member.data.publish(s.space, 'm-boiler', [
      { ts: now, value: 71 },
      { ts: now + 1, value: 72 },
    ])
    assert.equal(
      member.policy.document(s.space).state.streams.get('m-boiler')?.body.peer,
      member.identity.peerId,
      'the record names the member’s device',
    )
  })

  it('grants the reader, who reads them from the custodians with the owner’s node stopped', async () => {
    const now = Date.now()
    const { record: g } = await member.policy.grant(s.space, {
      sub: s.reader.identity.principal.did,
      streams: ['m-boiler'],
      forms: ['raw'],
      nbf: now - 1000,
      exp: now + HOUR,
    })
    await waitFor('the reader and the custodians to know the grant, and the custodians the deals', async () => {
      const known = [s.reader, ...s.custodians].every(n => n.policy.document(s.space).state.grants.has(g.id))
      const held = await Promise.all(s.custodians.map(async c => (await c.custody.status()).held))
      const stored = (await s.reader.data.storedReadings(s.space, 'm-boiler')).length > 0
      return known && stored && held.every(h => h >= 1) && (await member.custody.status()).belowThreshold === 0
        ? true
        : undefined
    })
    await s.peers.stop(s.owner)
    const read = await s.reader.data.read(s.space, 'm-boiler')
    assert.deepEqual(
      read.map(r => r.value),
      [71, 72],
    )
    // the member revokes it: its node closes the stream's epoch, and what it publishes next is under a key dealt after
    const before = member.metrics.total('edgeward_epochs_rotated_total')
    const { record: rv } = await member.policy.revoke(s.space, { grant: g.id })
    await waitFor('the member’s node to rotate its stream', async () =>
      member.metrics.total('edgeward_epochs_rotated_total') > before ? true : undefined,
    )
    await member.data.publish(s.space, 'm-boiler', [{ ts: Date.now(), value: 73 }])
    await waitFor('the custodians to know the revocation', async () =>
      s.custodians.every(c => c.policy.document(s.space).state.revocations.has(rv.id)) ? true : undefined,
    )
    await waitFor('the reader to store the new reading and drop its key', async () =>
      (await s.reader.data.storedReadings(s.space, 'm-boiler')).length >= 2 && s.reader.data.cachedKeyCount() === 0
        ? true
        : undefined,
    )
    await assert.rejects(s.reader.data.read(s.space, 'm-boiler'), (err: Error) => {
      assert.equal(err.name, 'AccessRefusedError')
      return true
    })
  })
})
