/**
 * Backfill: a reader that joins late, or was offline, fetches the ciphertext it missed from
 * any peer that holds it — the key holder, a connected peer of the space, or a peer found
 * through provider records in the DHT — and reads it. Retention deletes what a peer no
 * longer keeps, and backfill does not bring it back.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import type { EdgewardNode } from '../../node/node.ts'
import { request } from '../../node/services/stream-io.ts'
import { decodeEncryptedReading, readingCount } from '../../protocols/data/reading.ts'
import {
  decodeFetchResponse,
  encodeFetchRequest,
  FETCH_PROTOCOL,
  MAX_FETCH_RESPONSE_BYTES,
} from '../../protocols/sync/fetch.ts'
import { DHT_PROTOCOL, readingsTopic } from '../../protocols/sync/messages.ts'
import { grantTo, joinSpace, spaceWith, suitePeers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

describe('backfill and retention', { timeout: 90_000 }, () => {
  const peers = suitePeers('backfill')
  let space: string
  let gw: EdgewardNode
  let early: EdgewardNode

  const make = (name: string, bootstrap?: string[]) =>
    peers.node(name, { bootstrap, backfillIntervalMs: 0, retentionIntervalMs: 3_600_000 })

  before(async () => {
    gw = await make('gw')
    early = await make('early', gw.addresses())
    space = await spaceWith(gw, [early], 'plant')
    // 300 readings in calls of 10: records of ten readings each
    for (let i = 0; i < 300; i += 10) {
      await gw.data.publish(
        space,
        'temp',
        Array.from({ length: 10 }, (_, k) => ({ ts: 1_000 + i + k, value: i + k })),
      )
    }
    await waitFor('the early reader to store all 300', async () =>
      readingCount(await early.data.storedReadings(space, 'temp')) === 300 ? true : undefined,
    )
  })

  it('a reader that joins late reads what was published before it joined', async () => {
    const late = await make('late', gw.addresses())
    await joinSpace([late], space)
    assert.equal((await late.data.storedReadings(space, 'temp')).length, 0, 'gossip brought nothing old')
    const now = Date.now()
    await grantTo(
      gw,
      space,
      late.identity.principal.did,
      { nbf: now - 1000, exp: now + 3600_000 },
      { streams: ['temp'] },
    )
    await waitFor('the grant', async () =>
      late.policy.document(space).state.grantsOf(late.identity.principal.did).length ? true : undefined,
    )
    const read = await late.data.read(space, 'temp', 1_250)
    assert.deepEqual(
      read.map(r => r.value),
      Array.from({ length: 50 }, (_, i) => 250 + i),
    )
    assert.equal(late.metrics.total('edgeward_backfill_records_total', 'stored'), 30, 'thirty records of ten')
  })

  it('a fetch from inside a record answers with that record first', async () => {
    const body = encodeFetchRequest({ space, stream: 'temp', form: 'raw', from: 25, limit: 2 })
    const res = decodeFetchResponse(
      await request(early.libp2p, gw.libp2p.peerId, FETCH_PROTOCOL, body, MAX_FETCH_RESPONSE_BYTES),
    )
    assert.deepEqual(
      res.records.map(decodeEncryptedReading).map(r => [r.seq, r.n]),
      [
        [20, 10],
        [30, 10],
      ],
    )
    assert.equal(res.next, 40)
  })

  it('a reader connected to the key holder backfills from it alone: no DHT lookup, no other peer asked', async () => {
    const joiner = await make('joiner', gw.addresses())
    await joiner.joinSpace(space)
    await joiner.libp2p.dial(multiaddr(early.addresses()[0]))
    await waitFor('the joiner to sync and to know the early reader as a peer of the space', async () => {
      if (!joiner.policy.document(space).hasGenesis) return undefined
      const subscribers = joiner.libp2p.services.pubsub.getSubscribers(readingsTopic(space)).map(String)
      return subscribers.includes(early.identity.peerId) && subscribers.includes(gw.identity.peerId) ? true : undefined
    })
    const servedByEarly = early.metrics.total('edgeward_fetch_requests_served_total')
    const servedByGateway = gw.metrics.total('edgeward_fetch_requests_served_total')
    assert.equal(await joiner.fetch.backfill(space, 'temp', 'raw'), 300)
    assert.ok(gw.metrics.total('edgeward_fetch_requests_served_total') > servedByGateway, 'the key holder was asked')
    assert.equal(
      early.metrics.total('edgeward_fetch_requests_served_total'),
      servedByEarly,
      'the key holder gave everything: the early reader was not asked',
    )
    assert.equal(joiner.metrics.total('edgeward_backfill_provider_lookups_total'), 0, 'no DHT lookup')
  })

  it('finds holders of the ciphertext through DHT provider records when no connected peer has it', async () => {
    // a plain peer of the DHT that holds nothing of the space, connected to the early reader
    const relay = await make('relay', early.addresses())
    await waitFor('the early reader to provide the space through the relay', async () => {
      const { spaceCid } = await import('../../node/services/fetch.ts')
      early.fetch.provide(space)
      try {
        for await (const p of relay.libp2p.contentRouting.findProviders(await spaceCid(space), {
          signal: AbortSignal.timeout(2000),
        })) {
          if (p.id.toString() === early.identity.peerId) return true
        }
      } catch (err) {
        // a lookup that ran out of time (a loaded machine) is tried again: the DHT reports it
        // as a timeout or, aborted by the signal's timeout, as an abort
        if (!['TimeoutError', 'AbortError'].includes((err as Error).name)) throw err
      }
      return undefined
    })
    // the newcomer knows only the relay; the gateway is offline
    const newcomer = await make('newcomer', relay.addresses())
    await peers.stop(gw)
    await newcomer.joinSpace(space)
    // the policy comes from the relay? no: the relay is not in the space; ask the early reader directly for the policy
    await newcomer.libp2p.dial(multiaddr(early.addresses()[0]))
    await waitFor('the newcomer to sync the policy', async () =>
      newcomer.policy.document(space).hasGenesis ? true : undefined,
    )
    await newcomer.libp2p.hangUp(multiaddr(early.addresses()[0]))
    // the lookup starts from the newcomer's DHT routing table: the relay is in it once identify ran
    await waitFor('the newcomer to know the relay as a DHT peer', async () => {
      const relayInfo = await newcomer.libp2p.peerStore.get(relay.libp2p.peerId).catch(() => undefined)
      return relayInfo?.protocols.includes(DHT_PROTOCOL) ? true : undefined
    })
    const fetched = await newcomer.fetch.backfill(space, 'temp', 'raw')
    assert.equal(fetched, 300)
    assert.equal(newcomer.metrics.total('edgeward_backfill_provider_lookups_total'), 1, 'found through the DHT')
    assert.equal(readingCount(await newcomer.data.storedReadings(space, 'temp')), 300)
  })

  it('retention deletes the oldest records beyond its count, and backfill does not fetch them again', async () => {
    await early.fetch.setRetention(space, 'temp', { maxCount: 100 })
    const kept = await early.data.storedReadings(space, 'temp')
    assert.equal(readingCount(kept), 100)
    assert.deepEqual(
      kept.map(r => r.seq),
      Array.from({ length: 10 }, (_, i) => 200 + 10 * i),
    )
    assert.equal(await early.fetch.backfill(space, 'temp', 'raw'), 0)
    assert.equal(readingCount(await early.data.storedReadings(space, 'temp')), 100)
    // a count that falls inside a record: whole records go until no more than the count remain
    await early.fetch.setRetention(space, 'temp', { maxCount: 95 })
    assert.equal(readingCount(await early.data.storedReadings(space, 'temp')), 90)
  })
})
