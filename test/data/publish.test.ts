/**
 * A key holder's publish: every reading of a call is numbered in order and sealed under the
 * key of the epoch it was taken in, also when the call runs across an epoch's end; every raw
 * reading's salt opens its hashed commitment; what a publish stored is gossiped even when
 * the node stops right after it; records gossip could not send are counted and stay stored;
 * a producer that runs more than the outbox's limit ahead of gossip waits for it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { verifyCommitment } from '../../protocols/data/forms.ts'
import { MAX_READINGS_PER_RECORD, readingCount } from '../../protocols/data/reading.ts'
import { spaceWith, suitePeers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const EPOCH_MS = 1000

describe('publishing', { timeout: 60_000 }, () => {
  const peers = suitePeers('publish')

  it('numbers a call that runs across epoch ends in order, each reading under its own epoch, with salts that open the commitments', async () => {
    // the key holder's clock moves 10 ms each time it is read while `stepping`
    let clock = Date.now()
    let stepping = false
    const gw = await peers.node('gw', {
      epochMs: EPOCH_MS,
      now: () => {
        if (stepping) clock += 10
        return stepping ? clock : Math.max(clock, Date.now())
      },
    })
    const space = await gw.createSpace('plant')
    await gw.data.publish(space, 'temp', [{ ts: 1, value: 0 }])
    const n = 3 * MAX_READINGS_PER_RECORD + 17
    const readings = Array.from({ length: n }, (_, i) => ({
      ts: 1_700_000_000_000 + i,
      value: i % 7 === 0 ? { t: i } : i,
    }))
    stepping = true
    const seqs = await gw.data.publish(space, 'temp', readings)
    stepping = false
    assert.deepEqual(
      seqs,
      readings.map((_, i) => i + 1),
    )
    const raw = await gw.data.read(space, 'temp')
    assert.deepEqual(
      raw.map(r => [r.seq, r.ts, r.value]),
      [[0, 1, 0], ...readings.map((r, i) => [i + 1, r.ts, r.value])],
    )
    const epochs = raw.map(r => r.epoch)
    assert.ok(
      epochs.every((e, i) => i === 0 || e >= epochs[i - 1]),
      'epochs never go back',
    )
    assert.ok(new Set(epochs).size >= 3, `the call ran across epoch ends (epochs ${[...new Set(epochs)].join(', ')})`)
    const hashed = await gw.data.read(space, 'temp', 0, 'hashed')
    assert.deepEqual(
      hashed.map(h => [h.seq, h.epoch]),
      raw.map(r => [r.seq, r.epoch]),
    )
    for (const [i, h] of hashed.entries()) {
      const { commitment } = h.value as { commitment: string }
      assert.equal(verifyCommitment(commitment, raw[i].ts, raw[i].value, raw[i].salt!), true, `reading ${i}`)
    }
    // salts differ from reading to reading
    assert.equal(new Set(raw.map(r => Buffer.from(r.salt!).toString('hex'))).size, raw.length)
  })

  it('salts raw readings only where the stream has a hashed form to open', async () => {
    const gw = await peers.node('gw-forms')
    const space = await gw.createSpace('forms')
    await gw.data.createStream(space, 'raw-only', { forms: [] })
    await gw.data.publish(space, 'raw-only', [
      { ts: 1, value: 1 },
      { ts: 2, value: 2 },
    ])
    await gw.data.publish(space, 'both', [{ ts: 1, value: 1 }])
    const rawOnly = await gw.data.read(space, 'raw-only')
    assert.deepEqual(
      rawOnly.map(r => r.salt),
      [undefined, undefined],
    )
    const [both] = await gw.data.read(space, 'both')
    assert.equal(both.salt?.byteLength, 16)
  })

  it('gossips what a publish stored even when the node stops right after it', async () => {
    const gw = await peers.node('gw-stopping')
    const sub = await peers.node('subscriber', { bootstrap: gw.addresses() })
    const space = await spaceWith(gw, [sub], 'yard')
    await gw.data.publish(space, 'temp', [{ ts: 1, value: 1 }])
    await waitFor('the subscriber to receive the first reading', async () =>
      readingCount(await sub.data.storedReadings(space, 'temp')) === 1 ? true : undefined,
    )
    const readings = Array.from({ length: 1000 }, (_, i) => ({ ts: 10 + i, value: i }))
    await gw.data.publish(space, 'temp', readings)
    await peers.stop(gw)
    await waitFor('the subscriber to store what was published before the stop', async () =>
      readingCount(await sub.data.storedReadings(space, 'temp')) === 1001 ? true : undefined,
    )
    assert.equal(readingCount(await sub.data.storedReadings(space, 'temp', 'hashed')), 1001)
  })

  it('counts the records gossip refused, keeps them stored, and holds a call that fills the outbox until gossip has tried it', async () => {
    const gw = await peers.node('gw-alone')
    const space = await gw.createSpace('alone')
    // nobody takes the space's readings, and from now on gossipsub refuses to publish to no one
    const pubsub = gw.libp2p.services.pubsub as unknown as { opts: { allowPublishToZeroTopicPeers: boolean } }
    pubsub.opts.allowPublishToZeroTopicPeers = false
    const failures = () => gw.metrics.total('edgeward_readings_gossip_failures_total')
    const storedRecords = async () =>
      (await gw.data.storedReadings(space, 'temp')).length +
      (await gw.data.storedReadings(space, 'temp', 'hashed')).length
    await gw.data.publish(space, 'temp', [{ ts: 1, value: 1 }])
    // a small call returns once stored, before its records are gossiped
    assert.equal(failures(), 0)
    assert.equal(
      gw.metrics.total('edgeward_policy_gossip_failures_total'),
      1,
      "the stream's definition was refused too",
    )
    await waitFor('the refused gossip to be counted', async () => (failures() === 2 ? true : undefined))
    assert.equal(readingCount(await gw.data.storedReadings(space, 'temp')), 1, 'a refused record stays stored')
    // a call of more than the outbox's 4 MiB returns only once gossip has tried all of it
    const payload = new Uint8Array(32 * 1024).fill(7)
    const big = Array.from({ length: 160 }, (_, i) => ({ ts: 10 + i, value: i, bytes: payload }))
    await gw.data.publish(space, 'temp', big)
    const triedBeforeReturn = failures()
    const records = await storedRecords()
    assert.ok(records > 160, `${records} records stored`)
    assert.equal(triedBeforeReturn, records, 'every stored record was tried, and refused, before the call returned')
    assert.equal(readingCount(await gw.data.storedReadings(space, 'temp')), 161)
  })
})
