/**
 * Policy writes through the local API's handlers, on nodes in one process: they use the node's
 * clock, not the machine's; approving a request forwarded through a grant gives no more than
 * that grant, and an approver may grant less than was asked, never more; approving a request
 * for a subject the owner revoked re-admits it only when told.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { decide, delegate, fileRequest, grant, listGrants, revoke } from '../../node/api-policy.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { HOUR, suitePeers, waitForGrant } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

describe('policy writes through the API handlers', { timeout: 60_000 }, () => {
  const peers = suitePeers()
  /** the owner's node runs three hours ahead of this machine's clock */
  const SKEW = 3 * HOUR
  const ownerNow = () => Date.now() + SKEW
  let gw: EdgewardNode
  let vendor: EdgewardNode
  let sub: EdgewardNode
  let space: string

  before(async () => {
    gw = await peers.node('gw', { now: ownerNow })
    vendor = await peers.node('vendor', { now: ownerNow })
    sub = await peers.node('sub', { now: ownerNow })
    space = await gw.createSpace('plant')
    await gw.data.createStream(space, 'temp')
    await gw.data.createStream(space, 'hum')
    for (const n of [vendor, sub]) {
      await n.libp2p.dial(gw.libp2p.getMultiaddrs()[0])
      await n.joinSpace(space)
      await waitFor('the space to arrive', async () =>
        n.policy.document(space).hasGenesis && n.policy.document(space).state.streams.size === 2 ? true : undefined,
      )
    }
  })

  it("a grant is dated and checked by the node's clock, not the machine's", async () => {
    // an end that is in the future for the machine, but in the past for the node, is refused
    await assert.rejects(
      grant(gw, space, { to: sub.identity.principal.did, streams: ['hum'], until: Date.now() + HOUR }),
      { name: 'UsageError', message: /must end in the future/ },
    )
    const out = await grant(gw, space, { to: sub.identity.principal.did, streams: ['hum'], until: ownerNow() + HOUR })
    const rec = gw.policy.document(space).state.grants.get(out.grant as string)!
    assert.ok(Math.abs(rec.body.nbf - ownerNow()) < 60_000, 'starts at the node’s now')
    assert.ok(Math.abs(rec.body.iat - ownerNow()) < 60_000, 'issued at the node’s now')
  })

  it('a grant or delegation is named by its whole id or a unique prefix of 8 hex digits or more', async () => {
    const out = await grant(gw, space, { to: sub.identity.principal.did, streams: ['hum'], until: ownerNow() + HOUR })
    const id = out.grant as string
    await assert.rejects(revoke(gw, space, { grant: id.slice(0, 6) }), { name: 'UsageError', message: /at least 8/ })
    await assert.rejects(revoke(gw, space, { grant: 'f'.repeat(12) }), { name: 'NotFoundError' })
    const r = await revoke(gw, space, { grant: id.slice(0, 12) })
    assert.deepEqual(r.target, { grant: id })
    const state = gw.policy.document(space).state
    assert.equal(state.grantStatus(state.grants.get(id)!, ownerNow()).status, 'revoked')
  })

  it('the listing gives each delegation its state: a revoked admin is shown revoked', async () => {
    const admin = vendor.identity.principal.did
    const d = await delegate(gw, space, { to: admin, streams: ['hum'], until: ownerNow() + HOUR })
    const listed = () =>
      (listGrants(gw, space).delegations as { id: string; status: string }[]).find(x => x.id === d.delegation)
    assert.equal(listed()?.status, 'active')
    await revoke(gw, space, { delegation: (d.delegation as string).slice(0, 10) })
    assert.equal(listed()?.status, 'revoked')
  })

  async function viaGrant(): Promise<string> {
    const out = await grant(gw, space, {
      to: vendor.identity.principal.did,
      streams: ['temp'],
      forms: ['raw'],
      forward: 'ask-owner',
      download: false,
      until: ownerNow() + HOUR,
    })
    const id = out.grant as string
    await waitForGrant([vendor], space, id)
    return id
  }

  async function filed(node: EdgewardNode, body: Record<string, unknown>): Promise<string> {
    const id = (
      await waitFor('a peer of the space to take the request', async () =>
        fileRequest(node, space, body).catch(err =>
          err.name === 'UnreachableError' ? undefined : Promise.reject(err),
        ),
      )
    ).request as string
    await waitFor('the owner to receive the request', async () =>
      (await gw.requests.list(space)).some(r => r.id === id) ? true : undefined,
    )
    return id
  }

  it('a forwarded request asks, by default, for what the grant it goes through covers; approving it gives no more', async () => {
    const via = await viaGrant()
    const subject = sub.identity.principal.did
    // no --stream: the grant's streams, not '*'
    const id = await filed(vendor, { onBehalfOf: subject, via, durationMs: 10 * HOUR, reason: 'subcontract' })
    const asked = (await gw.requests.list(space)).find(r => r.id === id)!
    assert.deepEqual(asked.streams, ['temp'])
    const approved = await decide(gw, space, id, true, {})
    const g = gw.policy.document(space).state.grants.get(approved.grant as string)!
    assert.equal(g.body.sub, subject)
    assert.deepEqual(g.body.streams, ['temp'])
    assert.ok(
      g.body.exp <= gw.policy.document(space).state.grants.get(via)!.body.exp,
      'ends with the grant it came through',
    )
    assert.equal(g.body.download, false, 'keeps its view-only limit')
  })

  it('the approver may narrow a request to some of its streams, never widen it', async () => {
    const id = await filed(sub, { streams: ['temp', 'hum'], durationMs: HOUR, reason: 'commissioning' })
    await assert.rejects(decide(gw, space, id, true, { streams: ['temp', 'flow'] }), {
      name: 'UsageError',
      message: /only what the request asks for/,
    })
    await assert.rejects(decide(gw, space, id, true, { streams: ['*'] }), { name: 'UsageError' })
    await assert.rejects(decide(gw, space, id, true, { streams: [] }), { name: 'UsageError' })
    const approved = await decide(gw, space, id, true, { streams: ['hum'] })
    assert.deepEqual(gw.policy.document(space).state.grants.get(approved.grant as string)!.body.streams, ['hum'])
  })

  it('a forwarded request wider than the grant it goes through is not approved', async () => {
    const via = await viaGrant()
    const id = await filed(vendor, {
      onBehalfOf: sub.identity.principal.did,
      via,
      streams: ['*'],
      durationMs: HOUR,
      reason: 'everything',
    })
    await assert.rejects(decide(gw, space, id, true, {}), {
      name: 'UsageError',
      message: /asks for more than the grant it was forwarded through covers/,
    })
    assert.equal((await gw.requests.list(space)).find(r => r.id === id)!.status, 'pending')
  })

  it('approving a request of a subject the owner revoked re-admits it only with readmit', async () => {
    await revoke(gw, space, { subject: sub.identity.principal.did })
    const id = await filed(sub, { streams: ['hum'], durationMs: HOUR, reason: 'back again' })
    await assert.rejects(decide(gw, space, id, true, {}), { name: 'UsageError', message: /re-admits it/ })
    const out = await decide(gw, space, id, true, { readmit: true })
    const state = gw.policy.document(space).state
    assert.equal(state.grantStatus(state.grants.get(out.grant as string)!, ownerNow()).status, 'active')
  })
})
