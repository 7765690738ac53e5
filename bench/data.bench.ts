/**
 * The data plane's costs, each against a baseline measured side by side in the same run:
 * 1. gateway throughput: readings encrypted (raw and hashed forms), stored durably and gossiped
 *    to a subscriber that stores them, against gossiping the same readings unencrypted, a
 *    message per publish call in both;
 * 2. encryption: encryptReading (one reading a record) against the raw AEAD (AES-256-GCM) on the
 *    same plaintexts, and encryptReadings (records of MAX_READINGS_PER_RECORD, as a gateway seals a
 *    publish call's raw form) against the raw AEAD on the same bytes in the same grouping;
 * 3. key release with 1, 10 and 100 concurrent requests from reader peers: round trip p50/p99
 *    and releases per second, against a bare libp2p request/response echo of the same size.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { aeadEncrypt, generateAeadKey } from '../crypto/aead.ts'
import { encodeCanonical } from '../crypto/encoding.ts'
import { randomBytes } from '../crypto/hash.ts'
import { waitFor } from '../node/cli/local-network.ts'
import type { EdgewardNode } from '../node/node.ts'
import { handle, request } from '../node/services/stream-io.ts'
import {
  createKeyRequest,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  MAX_KEY_RESPONSE_BYTES,
} from '../protocols/access/messages.ts'
import {
  CborWriter,
  encodeReadingsMessage,
  encryptReading,
  encryptReadings,
  MAX_READINGS_PER_RECORD,
  type Reading,
  RecordBuilder,
  readingsIn,
  valueJson,
} from '../protocols/data/reading.ts'
import { withPeers } from '../test/support/peers.ts'
import { type Figure, figure, percentile, round, type SuiteOptions, versus } from './harness.ts'

const STREAM = 'temperature'
const HOUR = 3_600_000
const ECHO = '/edgeward-bench/echo/1.0.0'
const progress = (m: string) => process.stderr.write(`[bench:data] ${m}\n`)

/** A record's plaintext as the codec writes it (with a seed: a salted record, the raw form's). */
function recordPlaintext(readings: { ts: number; value: unknown }[], seed?: Uint8Array): Uint8Array {
  const b = new RecordBuilder(0, seed, readings.length)
  for (const r of readings) b.add(r.ts, valueJson(r.value))
  const w = new CborWriter()
  b.write(w)
  return w.done()
}

async function throughput(quick: boolean): Promise<Figure[]> {
  const n = quick ? 200 : 5000
  const batch = 500
  const rounds = quick ? 1 : 21
  return withPeers(async peers => {
    const gw = await peers.node('gateway', { audit: false })
    const sub = await peers.node('subscriber', { bootstrap: gw.addresses() })
    const space = await gw.createSpace('bench')
    await sub.joinSpace(space)
    await waitFor('the subscriber to sync', async () => (sub.policy.document(space).hasGenesis ? true : undefined))
    const topic = '/edgeward-bench/plain/1.0.0'
    // the subscriber's side of both: a count of what arrived, and a wait for a count to be reached
    let plainReceived = 0
    let storedReadings = 0
    let goal: { reached: () => boolean; resolve: () => void } | undefined
    const arrived = () => {
      if (goal?.reached()) goal.resolve()
    }
    const until = (what: string, reached: () => boolean): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 120_000)
        goal = {
          reached,
          resolve: () => {
            clearTimeout(timer)
            goal = undefined
            resolve()
          },
        }
        arrived()
      })
    sub.libp2p.services.pubsub.subscribe(topic)
    sub.libp2p.services.pubsub.addEventListener('message', evt => {
      if (evt.detail.topic !== topic) return
      plainReceived++
      arrived()
    })
    // called once a gossiped record is stored at the subscriber
    sub.data.onReading(r => {
      storedReadings += readingsIn(r)
      arrived()
    })
    await waitFor('gossip meshes to form', async () =>
      gw.libp2p.services.pubsub.getSubscribers(topic).length > 0 &&
      gw.libp2p.services.pubsub.getSubscribers(`/edgeward/readings/1.0.0/${space}`).length > 0
        ? true
        : undefined,
    )
    // a stream with the raw form only (no hashed form, so no commitments and no salts)
    const RAW_ONLY = `${STREAM}-raw`
    await gw.data.createStream(space, RAW_ONLY, { forms: [] })
    const encrypted: number[] = []
    const rawOnly: number[] = []
    const plain: number[] = []
    const formerPlain: number[] = []
    /** readings per second of the round's n readings gossiped unencrypted as `messages` */
    const gossipPlain = async (messages: Uint8Array[]): Promise<number> => {
      const got = plainReceived
      const t = performance.now()
      for (const m of messages) await gw.libp2p.services.pubsub.publish(topic, m)
      await until('the subscriber to receive every plain message', () => plainReceived - got >= messages.length)
      return n / ((performance.now() - t) / 1000)
    }
    /**
     * readings per second of the round's readings published into `stream`, `batch` a call,
     * until the subscriber has stored them in each of the stream's `forms` (raw, and hashed)
     */
    const publishAll = async (stream: string, forms: number, readings: Reading[]): Promise<number> => {
      const before = storedReadings
      const t = performance.now()
      for (let i = 0; i < n; i += batch) await gw.data.publish(space, stream, readings.slice(i, i + batch))
      await until(`the subscriber to store every reading of ${stream}`, () => storedReadings - before >= forms * n)
      return n / ((performance.now() - t) / 1000)
    }
    let ts = Date.now()
    for (let round = 0; round < rounds; round++) {
      const readings = Array.from({ length: n }, (_, i) => ({ ts: ts + i, value: 20 + (i % 50) / 10 }))
      ts += n
      // edgeward: encrypt, store durably at the gateway, gossip, stored at the subscriber;
      // every reading also produces its hashed form
      encrypted.push(await publishAll(STREAM, 2, readings))
      // the same readings into the raw-only stream
      rawOnly.push(await publishAll(RAW_ONLY, 1, readings))
      // baseline: the same readings unencrypted over gossipsub, received by the subscriber:
      // a call's readings in one message, as a list of edgeward's record plaintexts (columns of
      // up to 256 readings, without the salts) where edgeward sends a list of records
      const messages: Uint8Array[] = []
      for (let i = 0; i < n; i += batch) {
        const call = readings.slice(i, i + batch)
        const records: Uint8Array[] = []
        for (let j = 0; j < call.length; j += MAX_READINGS_PER_RECORD) {
          records.push(recordPlaintext(call.slice(j, j + MAX_READINGS_PER_RECORD)))
        }
        messages.push(encodeReadingsMessage(records))
      }
      plain.push(await gossipPlain(messages))
      // the baseline of earlier runs: a CBOR map per reading, 256 readings to a message
      const former: Uint8Array[] = []
      for (let i = 0; i < n; i += batch) {
        const call = readings.slice(i, i + batch).map(r => encodeCanonical({ ts: r.ts, value: valueJson(r.value) }))
        for (let j = 0; j < call.length; j += MAX_READINGS_PER_RECORD) {
          former.push(encodeReadingsMessage(call.slice(j, j + MAX_READINGS_PER_RECORD)))
        }
      }
      formerPlain.push(await gossipPlain(former))
    }
    const f = versus(
      'gateway throughput, encrypted readings over gossipsub',
      'readings/s',
      encrypted,
      'same bytes unencrypted over gossipsub',
      plain,
    )
    const raw = versus(
      'gateway throughput, encrypted readings over gossipsub, raw form only',
      'readings/s',
      rawOnly,
      'same bytes unencrypted over gossipsub',
      plain,
    )
    raw.note = `as the figure above, into a stream defined with the raw form only (no hashed form: no commitments, no salts), in the same rounds against the same baseline`
    f.note = `${n} readings a round, published ${batch} per call (each call awaited, as one stream's ingestion does); edgeward seals a call's readings into records of up to ${MAX_READINGS_PER_RECORD} per form, encrypts them, stores them durably at the gateway, produces the hashed form (a salted SHA-256 commitment per reading), gossips the call's records in one message, and the subscriber stores them; the baseline gossips each call's readings unencrypted in one message, as edgeward's record plaintexts without salts; both timed until the subscriber has everything; ${rounds} rounds; against the baseline of earlier runs (a CBOR map per reading, 256 readings to a message, two messages a call) in the same rounds: ${round(percentile(formerPlain, 50), 0)} readings/s, ratio ${round(percentile(encrypted, 50) / percentile(formerPlain, 50), 3)}x`
    return [f, raw]
  })
}

function encryption(quick: boolean): Figure[] {
  const n = quick ? 2000 : 50_000
  const rounds = quick ? 1 : 7
  const key = generateAeadKey()
  const readings = Array.from({ length: n }, (_, i) => ({ ts: 1_800_000_000_000 + i, value: { t: 20.5 + i, rh: 41 } }))
  const seed = randomBytes(32)
  const plaintexts = readings.map(r => recordPlaintext([r], seed))
  const aad = encodeCanonical(['edgeward/reading/v1', 'x'.repeat(64), STREAM, 0, 0, 'raw'])
  // what a gateway does with a publish call: the readings sealed into records of up to MAX_READINGS_PER_RECORD
  const per = MAX_READINGS_PER_RECORD
  const groups: { seq: number; readings: typeof readings; plaintext: Uint8Array }[] = []
  for (let i = 0; i < n; i += per) {
    const chunk = readings.slice(i, i + per)
    groups.push({ seq: i, readings: chunk, plaintext: recordPlaintext(chunk, seed) })
  }
  const ours: number[] = []
  const raw: number[] = []
  const records: number[] = []
  const rawBulk: number[] = []
  for (let round = 0; round < rounds; round++) {
    let t = performance.now()
    for (let i = 0; i < n; i++)
      encryptReading(key, { space: 'x'.repeat(64), stream: STREAM, form: 'raw', epoch: 0, seq: i }, readings[i], seed)
    ours.push(n / ((performance.now() - t) / 1000))
    t = performance.now()
    for (let i = 0; i < n; i++) aeadEncrypt(key, plaintexts[i], aad)
    raw.push(n / ((performance.now() - t) / 1000))
    t = performance.now()
    for (const g of groups)
      encryptReadings(
        key,
        { space: 'x'.repeat(64), stream: STREAM, form: 'raw', epoch: 0, seq: g.seq },
        g.readings,
        seed,
      )
    records.push(n / ((performance.now() - t) / 1000))
    t = performance.now()
    for (const g of groups) aeadEncrypt(key, g.plaintext, aad)
    rawBulk.push(n / ((performance.now() - t) / 1000))
  }
  const f = versus(
    'encryptReading, a salted record of one reading (encode + salt + AAD + AES-256-GCM)',
    'readings/s',
    ours,
    'raw AES-256-GCM on the same plaintexts',
    raw,
  )
  f.note = `${n} readings a round, each alone in a record of ~${plaintexts[0].byteLength} bytes (its salt derived from the record's seed), one AEAD call per reading, ${rounds} rounds`
  const g = versus(
    `encryptReadings, salted records of ${per} readings (encode + salts + AAD + AES-256-GCM)`,
    'readings/s',
    records,
    `raw AES-256-GCM on the same bytes, ${per} readings per call`,
    rawBulk,
  )
  g.note =
    `the raw form of a publish call as the gateway seals it (a record's salts derived from its seed by SHAKE256); the same ${n} readings and rounds as the figure above; ` +
    `against raw AES-256-GCM one call per reading: ${round(percentile(records, 50) / percentile(raw, 50), 2)}x`
  return [f, g]
}

async function keyRequests(quick: boolean): Promise<Figure[]> {
  const levels = quick ? [1, 10] : [1, 10, 100]
  const perLevel = quick ? 20 : 200
  const readerCount = quick ? 2 : 10
  return withPeers(async peers => {
    const out: Figure[] = []
    const gw = await peers.node('gateway')
    const space = await gw.createSpace('bench')
    await gw.data.publish(space, STREAM, [{ ts: Date.now(), value: 1 }])
    // the baseline: a bare request/response echo on the same connection
    await handle(
      gw.libp2p,
      ECHO,
      64 * 1024,
      64 * 1024,
      async body => body,
      () => undefined,
    )
    const readers: EdgewardNode[] = []
    for (let i = 0; i < readerCount; i++) {
      const r = await peers.node(`reader-${i}`, { bootstrap: gw.addresses() })
      await r.joinSpace(space)
      const now = gw.now()
      await gw.policy.grant(space, {
        sub: r.identity.principal.did,
        streams: [STREAM],
        forms: ['raw'],
        nbf: now - HOUR,
        exp: now + HOUR,
      })
      readers.push(r)
    }
    const gwId = peerIdFromString(gw.identity.peerId)
    // every reader knows where the gateway is, so a connection closed during setup is dialled again
    for (const r of readers) await r.libp2p.peerStore.merge(gwId, { multiaddrs: gw.addresses().map(a => multiaddr(a)) })
    let sampleSize = 0
    const release = async (r: EdgewardNode): Promise<number> => {
      const req = createKeyRequest(r.identity.principal, {
        space,
        stream: STREAM,
        form: 'raw',
        epochs: [0],
        device: r.identity.device.bytes,
        nonce: randomBytes(16),
        ts: Date.now(),
      })
      sampleSize = req.bytes.byteLength
      const t = performance.now()
      const res = decodeKeyResponse(await request(r.libp2p, gwId, KEYS_PROTOCOL, req.bytes, MAX_KEY_RESPONSE_BYTES))
      if (!res.ok) throw new Error(`refused: ${res.code}`)
      return performance.now() - t
    }
    const echo = async (r: EdgewardNode): Promise<number> => {
      const body = randomBytes(sampleSize || 1200)
      const t = performance.now()
      await request(r.libp2p, gwId, ECHO, body, 64 * 1024)
      return performance.now() - t
    }
    // warm up connections and code paths. A connection may be refused at first: libp2p refuses
    // inbound connections from one host past 5 a second (inboundConnectionThreshold), and every
    // reader here is 127.0.0.1
    for (const r of readers) {
      for (let attempt = 1; ; attempt++) {
        try {
          await release(r)
          break
        } catch (err) {
          if (attempt >= 5) throw err
          progress(`a reader's first request failed (${(err as Error).message}); again in 1 s`)
          await new Promise(resolve => setTimeout(resolve, 1000))
        }
      }
      await echo(r)
    }
    // what a durable audit entry costs at least: one small synced write to the gateway's LevelDB
    const syncs: number[] = []
    for (let i = 0; i < (quick ? 10 : 100); i++) {
      const t = performance.now()
      await gw.store.db.put('bench-sync', randomBytes(300), { sync: true } as never)
      syncs.push(performance.now() - t)
    }
    await gw.store.db.del('bench-sync')
    for (const c of levels) {
      const run = async (op: (r: EdgewardNode) => Promise<number>) => {
        const lat: number[] = []
        const t = performance.now()
        let next = 0
        await Promise.all(
          Array.from({ length: c }, async (_, w) => {
            const r = readers[w % readers.length]
            while (next < perLevel) {
              next++
              lat.push(await op(r))
            }
          }),
        )
        return { lat, perSecond: lat.length / ((performance.now() - t) / 1000) }
      }
      progress(`${c} concurrent ...`)
      const k = await run(release)
      const e = await run(echo)
      const f = versus(
        `key release round trip, ${c} concurrent`,
        'ms',
        k.lat,
        `libp2p request/response echo of ${sampleSize} bytes`,
        e.lat,
      )
      f.note = `p50 ${round(percentile(k.lat, 50))} ms, p99 ${round(percentile(k.lat, 99))} ms (echo p50 ${round(percentile(e.lat, 50))}, p99 ${round(percentile(e.lat, 99))}); ${round(k.perSecond, 0)} releases/s against ${round(e.perSecond, 0)} echoes/s; ${perLevel} requests from ${Math.min(c, readers.length)} reader peers; a release waits for its audit entry's synced write (one small synced LevelDB write alone: p50 ${round(percentile(syncs, 50))} ms)`
      out.push(f, figure(`key releases per second, ${c} concurrent`, 'releases/s', [k.perSecond]))
    }
    return out
  })
}

export default async function data(opts: SuiteOptions): Promise<Figure[]> {
  progress('encryption ...')
  const out = encryption(opts.quick)
  progress('gateway throughput ...')
  out.push(...(await throughput(opts.quick)))
  progress('key requests ...')
  out.push(...(await keyRequests(opts.quick)))
  return out
}
