/**
 * Access requests cost nothing to make (a fresh identity each), so a peer of the space bounds
 * what it keeps: a rate per connected peer that passes requests on, a number per requester and
 * per space. The owner's list stays usable: the newest pending request of each requester for
 * each subject, the older ones counted.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { didFromPublicKey, generateSigningKeyPair } from '../../crypto/identity.ts'
import { createAccessRequest, requestsTopic } from '../../protocols/policy/requests.ts'
import { suiteNodes } from '../support/suite.ts'
import { waitFor } from '../support/wait.ts'

function principal() {
  const kp = generateSigningKeyPair()
  return { ...kp, did: didFromPublicKey(kp.publicKey) }
}

describe('access requests are bounded', { timeout: 120_000 }, () => {
  const s = suiteNodes('requests-bounds', ['gw', 'flooder', 'reader'], { space: 'plant' })

  before(async () => {
    for (const n of [s.flooder, s.reader]) {
      await waitFor('a peer on the requests topic', async () =>
        n.libp2p.services.pubsub.getSubscribers(requestsTopic(s.space)).length > 0 ? true : undefined,
      )
    }
  })

  const refused = (reason: string) => s.gw.metrics.total('edgeward_access_requests_refused_total', `reason="${reason}"`)
  const stored = async () => (await s.gw.store.requests.keys({ gt: `${s.space}!`, lt: `${s.space}!~` }).all()).length

  it('a peer passing on requests from 1 500 fresh identities gets a few through; the rest are refused and counted', async () => {
    const sent = 1500
    for (let i = 0; i < sent; i++) {
      const who = principal()
      const req = createAccessRequest(
        who,
        { space: s.space, sub: who.did, streams: ['*'], forms: ['raw'], durationMs: 3_600_000, reason: `flood ${i}` },
        Date.now(),
      )
      await s.flooder.libp2p.services.pubsub.publish(requestsTopic(s.space), req.bytes)
    }
    await waitFor('the key holder to take or refuse every request', async () =>
      (await stored()) + refused('peer-rate') >= sent ? true : undefined,
    )
    const kept = await stored()
    assert.ok(kept <= 40, `${kept} requests kept from one peer`)
    assert.ok(refused('peer-rate') >= sent - 40)
    assert.ok((await s.gw.requests.list(s.space)).length <= 40)
    // another peer's requester is not locked out
    const id = await s.reader.requests.file(s.space, {
      streams: ['*'],
      forms: ['raw'],
      durationMs: 3_600_000,
      reason: 'calibration',
    })
    await waitFor('the honest request to arrive', async () =>
      (await s.gw.requests.list(s.space)).some(r => r.id === id) ? true : undefined,
    )
  })

  it("one requester's requests are kept up to a bound; the owner sees the newest, and how many older", async () => {
    const fields = { streams: ['temp'], forms: ['raw'], durationMs: 3_600_000, reason: 'again' }
    const ids: string[] = []
    for (let i = 0; i < 25; i++) {
      try {
        ids.push(await s.gw.requests.file(s.space, fields))
      } catch (err) {
        assert.equal((err as Error).name, 'UsageError')
        assert.match((err as Error).message, /too many requests of yours/)
      }
    }
    assert.equal(ids.length, 20)
    const mine = (await s.gw.requests.list(s.space)).filter(r => r.from === s.gw.identity.principal.did)
    assert.equal(mine.length, 1, 'one line for one requester and subject')
    assert.equal(mine[0].older, 19)
  })
})
