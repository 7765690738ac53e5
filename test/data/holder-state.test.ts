/**
 * The key holder keeps what it wrote (epoch state, data keys, epoch start times) in memory
 * instead of reading it back on every publish and key request: what it answers must stay
 * what the store says, when a new epoch starts after a request, and after a restart.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeCanonical } from '../../crypto/encoding.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { pad } from '../../node/store.ts'
import { createRevocation } from '../../protocols/policy/records.ts'
import { askKeys, keyRequest } from '../support/keys.ts'
import { grantTo, HOUR, spaceWith, suitePeers, waitForGrant } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const EPOCH_MS = 1000

describe('key holder state kept in memory', { timeout: 60_000 }, () => {
  const peers = suitePeers('holder-state')
  let gw: EdgewardNode
  let reader: EdgewardNode
  let space: string
  /** a time after the first epoch started */
  let t0: number
  const ask = (epochs: number[]) =>
    askKeys(reader.libp2p, gw.identity.peerId, keyRequest(reader, { space, stream: 'temp', epochs }).bytes)

  before(async () => {
    gw = await peers.node('gw', { epochMs: EPOCH_MS })
    reader = await peers.node('reader', { bootstrap: gw.addresses(), epochMs: EPOCH_MS })
    space = await spaceWith(gw, [reader], 'plant')
    await gw.data.publish(space, 'temp', [{ ts: Date.now(), value: 1 }])
    // the first epoch started during that call
    t0 = Date.now()
  })

  it('refuses an epoch once a later epoch has started before the data window, though it released it before', async () => {
    // the data window opens well after the first epoch's start, and after the second epoch will have started
    const dataFrom = t0 + 20 * EPOCH_MS
    const now = Date.now()
    const grant = await grantTo(
      gw,
      space,
      reader.identity.principal.did,
      { nbf: now - HOUR, exp: now + HOUR },
      { streams: ['temp'], dataFrom, iat: now },
    )
    await waitForGrant([reader], space, grant.id)
    // epoch 0 has not ended: it may still get readings inside the window
    const first = await ask([0])
    assert.equal(first.ok, true, JSON.stringify(first))
    // the next epoch starts; epoch 0 now ends before the window opens
    await waitFor('the first epoch to be over', async () => (Date.now() >= t0 + EPOCH_MS + 50 ? true : undefined))
    const [seq] = await gw.data.publish(space, 'temp', [{ ts: Date.now(), value: 2 }])
    assert.equal(seq, 1)
    const stored = await gw.data.storedReadings(space, 'temp')
    assert.deepEqual(
      stored.map(r => r.epoch),
      [0, 1],
    )
    assert.ok(Date.now() < dataFrom, 'the second epoch started before the data window opened')
    const second = await ask([0])
    assert.equal(second.ok, false)
    assert.equal((second as { code: string }).code, 'outside-data-window')
    // the open epoch is still released
    assert.equal((await ask([1])).ok, true)
  })

  it('continues sequence numbers and epochs after a restart, and still releases and reads earlier epochs', async () => {
    await peers.stop(gw)
    gw = await peers.start(peers.dir('gw'), { epochMs: HOUR })
    const [seq] = await gw.data.publish(space, 'temp', [{ ts: Date.now(), value: 3 }])
    assert.equal(seq, 2)
    const own = await gw.data.read(space, 'temp')
    assert.deepEqual(
      own.map(r => [r.seq, r.value]),
      [
        [0, 1],
        [1, 2],
        [2, 3],
      ],
    )
    // the key holder still knows when each epoch started after a restart
    await waitFor('the reader to reconnect', async () =>
      reader.libp2p.getConnections(peerIdFromString(gw.identity.peerId)).length > 0 ? true : undefined,
    )
    const refused = await ask([0])
    assert.equal((refused as { code?: string }).code, 'outside-data-window')
  })

  it("a revocation rotates open streams at once, leaves a closed stream's key alone; a closed stream takes nothing more", async () => {
    const epochOf = async (stream: string) =>
      (decodeCanonical((await gw.store.epochs.get(`${space}!${stream}`))!, 1024) as { epoch: number }).epoch
    await gw.data.publish(space, 'doc', [{ ts: 0, value: 1 }], { last: true })
    await gw.data.publish(space, 'later', [{ ts: Date.now(), value: 1 }])
    const before = { temp: await epochOf('temp'), doc: await epochOf('doc'), later: await epochOf('later') }
    const now = Date.now()
    const g = await grantTo(
      gw,
      space,
      reader.identity.principal.did,
      { nbf: now - 1000, exp: now + HOUR },
      { streams: ['*'], iat: now },
    )
    await gw.policy.write(space, [
      { kind: 'revocation', record: createRevocation(gw.identity.principal, space, { grant: g.id }, now) },
    ])
    // streams rotate in the order they were defined: temp, doc, later
    await waitFor('the open streams to rotate', async () =>
      (await epochOf('temp')) === before.temp + 1 && (await epochOf('later')) === before.later + 1 ? true : undefined,
    )
    assert.equal(await epochOf('doc'), before.doc, 'the closed stream kept its epoch')
    assert.equal(await gw.store.keys.get(`${space}!doc!raw!${pad(before.doc + 1)}`), undefined, 'and no key was made')
    await assert.rejects(gw.data.publish(space, 'doc', [{ ts: 1, value: 2 }]), /closed/)
    // the open stream's next reading is under the new epoch's key
    await gw.data.publish(space, 'later', [{ ts: Date.now(), value: 2 }])
    assert.deepEqual(
      (await gw.data.storedReadings(space, 'later')).map(r => r.epoch),
      [before.later, before.later + 1],
    )
  })
})
