/**
 * An access request travels only by gossip: a node with no peer of the space connected says
 * so, and files nothing, where it would otherwise report success for a request no one got.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { suitePeers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

describe('access requests with no peer of the space connected', { timeout: 60_000 }, () => {
  const peers = suitePeers()
  const fields = { streams: ['*'], forms: ['raw'], durationMs: 3_600_000, reason: 'maintenance' }

  it('refuses to file a request that would reach no one, and files it once a peer of the space is connected', async () => {
    const gw = await peers.node('gw')
    const space = await gw.createSpace('plant')
    const lone = await peers.node('lone')
    await lone.joinSpace(space)
    await assert.rejects(lone.requests.file(space, fields), (err: Error) => {
      assert.equal(err.name, 'UnreachableError')
      assert.match(err.message, /no peer of space .* is connected/)
      return true
    })
    // nor can it list the space's requests before it has the space's policy
    await assert.rejects(lone.requests.list(space), { name: 'NotFoundError', message: /has not synchronised yet/ })
    // the key holder itself keeps what it files, with or without peers
    const own = await gw.requests.file(space, fields)
    assert.deepEqual(
      (await gw.requests.list(space)).map(r => r.id),
      [own],
    )
    // connected, the request reaches the key holder
    await lone.libp2p.dial(gw.libp2p.getMultiaddrs()[0])
    const id = await waitFor('the lone node to see a peer on the requests topic', async () =>
      lone.requests
        .file(space, fields)
        .catch(err => (err.name === 'UnreachableError' ? undefined : Promise.reject(err))),
    )
    await waitFor('the key holder to receive the request', async () =>
      (await gw.requests.list(space)).some(r => r.id === id) ? true : undefined,
    )
    // the one refused earlier was never made: the key holder has its own and this one
    assert.deepEqual((await gw.requests.list(space)).map(r => r.id).sort(), [own, id].sort())
  })
})
