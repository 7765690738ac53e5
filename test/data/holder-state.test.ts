/**
 * The key holder keeps what it wrote (epoch state, data keys, epoch start times) in memory
 * instead of reading it back on every publish and key request: what it answers must stay
 * what the store says, when a new epoch starts after a request, and after a restart.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeCanonical } from '../../crypto/encoding.ts'
import { pad } from '../../node/store.ts'
import { createRevocation } from '../../protocols/policy/records.ts'
import { askKeys, keyRequest } from '../support/keys.ts'
import { grantTo, HOUR, waitForGrant } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { waitFor } from '../support/wait.ts'

const EPOCH_MS = 1000

describe('key holder state kept in memory', { timeout: 60_000 }, () => {
  const s = suiteNodes('holder-state', ['gw', 'reader'], { space: 'plant', start: { epochMs: EPOCH_MS } })
  /** a time after the first epoch started */
  let t0: number
  const ask = (epochs: number[]) =>
    askKeys(
      s.reader.libp2p,
      s.gw.identity.peerId,
      keyRequest(s.reader, { space: s.space, stream: 'temp', epochs }).bytes,
    )

  before(async () => {
    await s.gw.data.publish(s.space, 'temp', [{ ts: Date.now(), value: 1 }])
    // the first epoch started during that call
    t0 = Date.now()
  })

  it('refuses an epoch once a later epoch has started before the data window, though it released it before', async () => {
    // the data window opens well after the first epoch's start, and after the second epoch will have started
    const dataFrom = t0 + 20 * EPOCH_MS
    const now = Date.now()
    const grant = await grantTo(
      s.gw,
      s.space,
      s.reader.identity.principal.did,
      { nbf: now - HOUR, exp: now + HOUR },
      { streams: ['temp'], dataFrom, iat: now },
    )
    await waitForGrant([s.reader], s.space, grant.id)
    // epoch 0 has not ended: it may still get readings inside the window
    const first = await ask([0])
    assert.equal(first.ok, true, JSON.stringify(first))
    // the next epoch starts; epoch 0 now ends before the window opens
    await waitFor('the first epoch to be over', async () => (Date.now() >= t0 + EPOCH_MS + 50 ? true : undefined))
    const [seq] = await s.gw.data.publish(s.space, 'temp', [{ ts: Date.now(), value: 2 }])
    assert.equal(seq, 1)
    const stored = await s.gw.data.storedReadings(s.space, 'temp')
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
    await s.peers.stop(s.gw)
    s.gw = await s.peers.start(s.peers.dir('gw'), { epochMs: HOUR })
    const [seq] = await s.gw.data.publish(s.space, 'temp', [{ ts: Date.now(), value: 3 }])
    assert.equal(seq, 2)
    const own = await s.gw.data.read(s.space, 'temp')
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
      s.reader.libp2p.getConnections(peerIdFromString(s.gw.identity.peerId)).length > 0 ? true : undefined,
    )
    const refused = await ask([0])
    assert.equal((refused as { code?: string }).code, 'outside-data-window')
  })

  it("a revocation rotates open streams at once, leaves a closed stream's key alone; a closed stream takes nothing more", async () => {
    const epochOf = async (stream: string) =>
      (decodeCanonical((await s.gw.store.epochs.get(`${s.space}!${stream}`))!, 1024) as { epoch: number }).epoch
    await s.gw.data.publish(s.space, 'doc', [{ ts: 0, value: 1 }], { last: true })
    await s.gw.data.publish(s.space, 'later', [{ ts: Date.now(), value: 1 }])
    const before = { temp: await epochOf('temp'), doc: await epochOf('doc'), later: await epochOf('later') }
    const now = Date.now()
    const g = await grantTo(
      s.gw,
      s.space,
      s.reader.identity.principal.did,
      { nbf: now - 1000, exp: now + HOUR },
      { streams: ['*'], iat: now },
    )
    await s.gw.policy.write(s.space, [
      { kind: 'revocation', record: createRevocation(s.gw.identity.principal, s.space, { grant: g.id }, now) },
    ])
    // streams rotate in the order they were defined: temp, doc, later
    await waitFor('the open streams to rotate', async () =>
      (await epochOf('temp')) === before.temp + 1 && (await epochOf('later')) === before.later + 1 ? true : undefined,
    )
    assert.equal(await epochOf('doc'), before.doc, 'the closed stream kept its epoch')
    assert.equal(
      await s.gw.store.keys.get(`${s.space}!doc!raw!${pad(before.doc + 1)}`),
      undefined,
      'and no key was made',
    )
    await assert.rejects(s.gw.data.publish(s.space, 'doc', [{ ts: 1, value: 2 }]), /closed/)
    // the open stream's next reading is under the new epoch's key
    await s.gw.data.publish(s.space, 'later', [{ ts: Date.now(), value: 2 }])
    assert.deepEqual(
      (await s.gw.data.storedReadings(s.space, 'later')).map(r => r.epoch),
      [before.later, before.later + 1],
    )
  })
})
