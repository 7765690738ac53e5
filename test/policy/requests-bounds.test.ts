/**
 * Access requests cost nothing to make (a fresh identity each), so a peer of the space bounds
 * what it keeps: a rate per connected peer that passes requests on, a number per requester and
 * per space. The owner's list stays usable: the newest pending request of each requester for
 * each subject, the older ones counted.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { didFromPublicKey, generateSigningKeyPair } from '../../crypto/identity.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { createAccessRequest, requestsTopic } from '../../protocols/policy/requests.ts'
import { suitePeers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

function principal() {
  const kp = generateSigningKeyPair()
  return { ...kp, did: didFromPublicKey(kp.publicKey) }
}

describe('access requests are bounded', { timeout: 120_000 }, () => {
  const peers = suitePeers()
  let gw: EdgewardNode
  let flooder: EdgewardNode
  let reader: EdgewardNode
  let space: string

  before(async () => {
    gw = await peers.node('gw')
    flooder = await peers.node('flooder')
    reader = await peers.node('reader')
    space = await gw.createSpace('plant')
    for (const n of [flooder, reader]) {
      await n.libp2p.dial(gw.libp2p.getMultiaddrs()[0])
      await n.joinSpace(space)
      await waitFor('a peer on the requests topic', async () =>
        n.libp2p.services.pubsub.getSubscribers(requestsTopic(space)).length > 0 ? true : undefined,
      )
    }
  })

  const refused = (reason: string) => gw.metrics.total('edgeward_access_requests_refused_total', `reason="${reason}"`)
  const stored = async () => (await gw.store.requests.keys({ gt: `${space}!`, lt: `${space}!~` }).all()).length

  it('a peer passing on requests from 1 500 fresh identities gets a few through; the rest are refused and counted', async () => {
    const sent = 1500
    for (let i = 0; i < sent; i++) {
      const who = principal()
      const req = createAccessRequest(
        who,
        { space, sub: who.did, streams: ['*'], forms: ['raw'], durationMs: 3_600_000, reason: `flood ${i}` },
        Date.now(),
      )
      await flooder.libp2p.services.pubsub.publish(requestsTopic(space), req.bytes)
    }
    await waitFor('the key holder to take or refuse every request', async () =>
      (await stored()) + refused('peer-rate') >= sent ? true : undefined,
    )
    const kept = await stored()
    assert.ok(kept <= 40, `${kept} requests kept from one peer`)
    assert.ok(refused('peer-rate') >= sent - 40)
    assert.ok((await gw.requests.list(space)).length <= 40)
    // another peer's requester is not locked out
    const id = await reader.requests.file(space, {
      streams: ['*'],
      forms: ['raw'],
      durationMs: 3_600_000,
      reason: 'calibration',
    })
    await waitFor('the honest request to arrive', async () =>
      (await gw.requests.list(space)).some(r => r.id === id) ? true : undefined,
    )
  })

  it("one requester's requests are kept up to a bound; the owner sees the newest, and how many older", async () => {
    const fields = { streams: ['temp'], forms: ['raw'], durationMs: 3_600_000, reason: 'again' }
    const ids: string[] = []
    for (let i = 0; i < 25; i++) {
      try {
        ids.push(await gw.requests.file(space, fields))
      } catch (err) {
        assert.equal((err as Error).name, 'UsageError')
        assert.match((err as Error).message, /too many requests of yours/)
      }
    }
    assert.equal(ids.length, 20)
    const mine = (await gw.requests.list(space)).filter(r => r.from === gw.identity.principal.did)
    assert.equal(mine.length, 1, 'one line for one requester and subject')
    assert.equal(mine[0].older, 19)
  })
})
