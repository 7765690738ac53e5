/**
 * Backfill and retention.
 * - Serves stored ciphertext by range on `/edgeward/fetch/1.0.0` to any peer.
 * - Before a read, fetches the records of the stream this node lacks, from the key holders,
 *   the connected peers of the space, and peers found through provider records in the DHT
 *   (every node provides the spaces it holds data of), so a reader that joins late or was
 *   offline reads what was published meanwhile.
 * - Retention per stream, set locally on every peer: records older than a maximum age (by
 *   when they were stored here) or beyond a maximum count are deleted, oldest first.
 */
import type { PeerId } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { decodeEncryptedReading, type EncryptedReading } from '../../protocols/data/reading.ts'
import {
  decodeFetchRequest,
  decodeFetchResponse,
  encodeFetchRequest,
  encodeFetchResponse,
  FETCH_PROTOCOL,
  MAX_FETCH_PAGE,
  MAX_FETCH_PAGE_BYTES,
  MAX_FETCH_REQUEST_BYTES,
  MAX_FETCH_RESPONSE_BYTES,
} from '../../protocols/sync/fetch.ts'
import { readingsTopic } from '../../protocols/sync/messages.ts'
import { DURABLE, pad } from '../store.ts'
import type { NodeComponents } from './components.ts'
import { arrivalKey, type DataService, recordKey } from './data.ts'
import type { PolicyService } from './policy.ts'
import { handle, request } from './stream-io.ts'

const log = logger('edgeward:fetch')
const RAW = 0x55

export interface Retention {
  maxAgeMs?: number
  maxCount?: number
}

export interface FetchServiceOptions {
  /** least time between two backfills of one stream (default 2 s) */
  backfillIntervalMs?: number
  /** how often retention runs (default 30 s) */
  retentionIntervalMs?: number
}

/** The DHT key under which the peers holding a space's data are found. */
export async function spaceCid(space: string): Promise<CID> {
  return CID.createV1(RAW, await sha256.digest(new TextEncoder().encode(`edgeward/space/${space}`)))
}

export class FetchService {
  private readonly c: NodeComponents
  private readonly policy: PolicyService
  private readonly data: DataService
  private readonly backfillIntervalMs: number
  private readonly retentionIntervalMs: number
  private readonly lastBackfill = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(components: NodeComponents, policy: PolicyService, data: DataService, opts: FetchServiceOptions = {}) {
    this.c = components
    this.policy = policy
    this.data = data
    this.backfillIntervalMs = opts.backfillIntervalMs ?? 2000
    this.retentionIntervalMs = opts.retentionIntervalMs ?? 30_000
    components.metrics.describe('edgeward_backfill_records_total', 'records fetched from peers, by result')
    components.metrics.describe('edgeward_retention_deleted_total', 'records deleted by retention')
  }

  async start(): Promise<void> {
    await handle(
      this.c.libp2p,
      FETCH_PROTOCOL,
      MAX_FETCH_REQUEST_BYTES,
      MAX_FETCH_RESPONSE_BYTES,
      async body => this.answer(body),
      err => log('fetch request failed: %s', err.message),
    )
    this.data.backfill = async (space, stream, form) => {
      await this.backfill(space, stream, form)
    }
    for (const space of this.policy.spaces()) this.provide(space)
    this.timer = setInterval(() => {
      this.applyRetention().catch(err => log.error('retention: %s', (err as Error).message))
    }, this.retentionIntervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.data.backfill = undefined
  }

  /** Announce in the DHT that this node holds data of a space (in the background). */
  provide(space: string): void {
    void spaceCid(space)
      .then(cid => this.c.libp2p.contentRouting.provide(cid, { signal: AbortSignal.timeout(30_000) }))
      .catch(err => log('provide %s: %s', space, (err as Error).message))
  }

  private async answer(body: Uint8Array): Promise<Uint8Array> {
    const req = decodeFetchRequest(body)
    const records: Uint8Array[] = []
    let bytes = 0
    let next: number | undefined
    const prefix = `${req.space}!${req.stream}!${req.form}!`
    for await (const [k, v] of this.c.store.records.iterator({ gte: `${prefix}${pad(req.from)}`, lt: `${prefix}~` })) {
      if (records.length >= req.limit || bytes + v.byteLength > MAX_FETCH_PAGE_BYTES) {
        next = Number(k.slice(prefix.length))
        break
      }
      records.push(v)
      bytes += v.byteLength
    }
    return encodeFetchResponse(next === undefined ? { records } : { records, next })
  }

  /** Peers to ask: key holders first, then connected peers of the space, then DHT providers. */
  private async candidates(space: string): Promise<PeerId[]> {
    const me = this.c.identity.peerId
    const ids = new Set<string>()
    const doc = this.policy.document(space)
    if (doc.hasGenesis) for (const h of doc.state.holders) ids.add(h)
    for (const p of this.c.libp2p.services.pubsub.getSubscribers(readingsTopic(space))) ids.add(p.toString())
    if (ids.size <= 1) {
      try {
        for await (const p of this.c.libp2p.contentRouting.findProviders(await spaceCid(space), {
          signal: AbortSignal.timeout(3000),
        })) {
          ids.add(p.id.toString())
          if (ids.size >= 8) break
        }
      } catch (err) {
        log('no providers of %s: %s', space, (err as Error).message)
      }
    }
    ids.delete(me)
    return [...ids].map(id => peerIdFromString(id))
  }

  /** Fetch the records of a stream this node lacks (throttled per stream). */
  async backfill(space: string, stream: string, form: string): Promise<number> {
    const key = `${space}!${stream}!${form}`
    const now = this.c.now()
    if (now - (this.lastBackfill.get(key) ?? 0) < this.backfillIntervalMs) return 0
    this.lastBackfill.set(key, now)
    const doc = this.policy.document(space)
    if (doc.hasGenesis && doc.state.holders.includes(this.c.identity.peerId)) return 0
    const have = new Set<number>()
    const prefix = `${space}!${stream}!${form}!`
    for await (const k of this.c.store.records.keys({ gt: prefix, lt: `${prefix}~` }))
      have.add(Number(k.slice(prefix.length)))
    let fetched = 0
    // what retention deleted here is not fetched again
    const floorBytes = await this.c.store.settings.get(`floor!${key}`)
    const floor = floorBytes === undefined ? 0 : (decodeCanonical(floorBytes, 16) as number)
    for (const peer of (await this.candidates(space)).slice(0, 3)) {
      let from = floor
      while (have.has(from)) from++
      for (let page = 0; page < 10_000; page++) {
        let res: ReturnType<typeof decodeFetchResponse>
        try {
          const body = encodeFetchRequest({ space, stream, form, from, limit: MAX_FETCH_PAGE })
          res = decodeFetchResponse(await request(this.c.libp2p, peer, FETCH_PROTOCOL, body, MAX_FETCH_RESPONSE_BYTES))
        } catch (err) {
          log('fetch from %s failed: %s', peer, (err as Error).message)
          break
        }
        const fresh: [EncryptedReading, Uint8Array][] = []
        for (const bytes of res.records) {
          try {
            const r = decodeEncryptedReading(bytes)
            if (r.space !== space || r.stream !== stream || r.form !== form || r.seq < from) {
              throw new Error('not what was asked for')
            }
            if (have.has(r.seq)) continue
            have.add(r.seq)
            fresh.push([r, bytes])
          } catch (err) {
            this.c.metrics.inc('edgeward_backfill_records_total', { result: 'refused' })
            log('refused a fetched record from %s: %s', peer, (err as Error).message)
          }
        }
        await this.data.storeRecords(fresh, false)
        fetched += fresh.length
        this.c.metrics.inc('edgeward_backfill_records_total', { result: 'stored' }, fresh.length)
        if (res.next === undefined || res.next <= from) break
        from = res.next
      }
    }
    if (fetched > 0) log('backfilled %d records of %s/%s/%s', fetched, space, stream, form)
    return fetched
  }

  async setRetention(space: string, stream: string, r: Retention): Promise<void> {
    await this.c.store.settings.put(`retention!${space}!${stream}`, encodeCanonical(r), DURABLE)
    await this.applyRetention()
  }

  async retention(space: string, stream: string): Promise<Retention | undefined> {
    const v = await this.c.store.settings.get(`retention!${space}!${stream}`)
    return v === undefined ? undefined : (decodeCanonical(v, 256) as Retention)
  }

  /** Delete what retention no longer keeps, oldest first, for every stream that has a setting. */
  async applyRetention(): Promise<number> {
    let deleted = 0
    for await (const [k, v] of this.c.store.settings.iterator({ gt: 'retention!', lt: 'retention!~' })) {
      const [, space, stream] = k.split('!')
      const r = decodeCanonical(v, 256) as Retention
      const arrivals: { key: string; at: number; form: string; seq: number }[] = []
      const prefix = `${space}!${stream}!`
      for await (const a of this.c.store.arrivals.keys({ gt: prefix, lt: `${prefix}~` })) {
        const [form, at, seq] = a.slice(prefix.length).split('!')
        arrivals.push({ key: a, at: Number(at), form, seq: Number(seq) })
      }
      const now = this.c.now()
      const byForm = new Map<string, typeof arrivals>()
      for (const a of arrivals) byForm.set(a.form, [...(byForm.get(a.form) ?? []), a])
      for (const list of byForm.values()) {
        // oldest first
        list.sort((x, y) => x.at - y.at || x.seq - y.seq)
        const excess = r.maxCount === undefined ? 0 : Math.max(0, list.length - r.maxCount)
        const doomed = list.filter((a, i) => i < excess || (r.maxAgeMs !== undefined && now - a.at > r.maxAgeMs))
        if (doomed.length === 0) continue
        const batch = this.c.store.db.batch()
        const floor = Math.max(...doomed.map(a => a.seq)) + 1
        batch.put(`floor!${space}!${stream}!${doomed[0].form}`, encodeCanonical(floor), {
          sublevel: this.c.store.settings,
        } as never)
        for (const a of doomed) {
          batch.del(recordKey({ space, stream, form: a.form, seq: a.seq }), { sublevel: this.c.store.records } as never)
          batch.del(arrivalKey({ space, stream, form: a.form, seq: a.seq }, a.at), {
            sublevel: this.c.store.arrivals,
          } as never)
        }
        await batch.write(DURABLE)
        deleted += doomed.length
      }
    }
    if (deleted > 0) this.c.metrics.inc('edgeward_retention_deleted_total', {}, deleted)
    return deleted
  }
}
