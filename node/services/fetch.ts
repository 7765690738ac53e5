/**
 * Backfill and retention.
 * - Serves stored ciphertext by range on `/edgeward/fetch/1.0.0` to any peer.
 * - Before a read, fetches the records of the stream this node lacks, from the key holders,
 *   the connected peers of the space, and peers found through provider records in the DHT
 *   (every node provides the spaces it holds data of), so a reader that joins late or was
 *   offline reads what was published meanwhile.
 * - Retention per stream, set locally on every peer: records older than a maximum age (by
 *   when they were stored here) or beyond a maximum count are deleted, oldest first.
 * Stored records are read, added and deleted only through the record store it is given
 * (node/services/data/record-store.ts, which owns their layout); the data service is given
 * `backfill` by the node at construction.
 * Refuses: a fetched record that is not of the stream and range asked for (InvalidMessageError,
 * counted), or that overwrites one held here.
 */
import type { PeerId } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  decodeEncryptedReading,
  type EncryptedReading,
  readingCount,
  readingsIn,
} from '../../protocols/data/reading.ts'
import { InvalidMessageError } from '../../protocols/errors.ts'
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
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import type { Arrival, RecordStore, Retention } from './data/record-store.ts'
import type { PolicyService } from './policy.ts'
import { handle, request } from './stream-io.ts'

const log = logger('edgeward:fetch')
/** peers that answered a backfill to the end after which no more are asked (a key holder's answer is enough alone) */
const ANSWERS_ENOUGH = 3
/** peers asked in one backfill at the most, answering or not */
const MAX_PEERS_ASKED = 12

export type { Retention } from './data/record-store.ts'

/** What the fetch service uses: the network (protocol, DHT, gossipsub subscribers), this peer's id, the metrics and the clock. */
export interface FetchComponents {
  libp2p: EdgewardLibp2p
  identity: { peerId: string }
  metrics: Metrics
  now: () => number
}

/** The services and parts the fetch service works with. */
export interface FetchParts {
  policy: Pick<PolicyService, 'spaces' | 'document' | 'holds' | 'makesKeys'>
  /** the stored ciphertext it serves, adds to and deletes from (the data service's record store) */
  records: RecordStore
}

export interface FetchServiceOptions {
  /** least time between two backfills of one stream (default 2 s) */
  backfillIntervalMs?: number
  /** how often retention runs (default 30 s) */
  retentionIntervalMs?: number
}

/** Told of a backfill that ended, with the readings it stored (0 when there was nothing to do). */
export type BackfillListener = (space: string, stream: string, form: string, fetched: number) => void

/** The DHT key under which the peers holding a space's data are found. */
export async function spaceCid(space: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(`edgeward/space/${space}`)))
}

/** The fetch service's counters, with their help text. */
const METRICS = {
  edgeward_backfill_records_total: 'records fetched from peers, by result',
  edgeward_retention_deleted_total: 'records deleted by retention',
  edgeward_backfill_provider_lookups_total:
    'DHT provider lookups for backfill (made when no key holder or peer of the space is connected)',
  edgeward_fetch_requests_served_total: 'fetch requests answered',
}

/** Serves stored records by range, backfills what this node lacks before a read, and applies retention. */
export class FetchService {
  private readonly c: FetchComponents
  private readonly policy: FetchParts['policy']
  private readonly records: RecordStore
  private readonly backfillIntervalMs: number
  private readonly retentionIntervalMs: number
  private readonly lastBackfill = new Map<string, number>()
  private readonly backfillListeners = new Set<BackfillListener>()
  private timer: NodeJS.Timeout | undefined

  constructor(components: FetchComponents, parts: FetchParts, opts: FetchServiceOptions = {}) {
    this.c = components
    this.policy = parts.policy
    this.records = parts.records
    this.backfillIntervalMs = opts.backfillIntervalMs ?? 2000
    this.retentionIntervalMs = opts.retentionIntervalMs ?? 30_000
    for (const [name, help] of Object.entries(METRICS)) components.metrics.describe(name, help)
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
    for (const space of this.policy.spaces()) this.provide(space)
    this.timer = setInterval(() => {
      this.applyRetention().catch(err => log.error('retention: %s', (err as Error).message))
    }, this.retentionIntervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Announce in the DHT that this node holds data of a space (in the background). */
  provide(space: string): void {
    void spaceCid(space)
      .then(cid => this.c.libp2p.contentRouting.provide(cid, { signal: AbortSignal.timeout(30_000) }))
      .catch(err => log('provide %s: %s', space, (err as Error).message))
  }

  private async answer(body: Uint8Array): Promise<Uint8Array> {
    const req = decodeFetchRequest(body)
    this.c.metrics.inc('edgeward_fetch_requests_served_total')
    return encodeFetchResponse(await this.records.page(req, MAX_FETCH_PAGE_BYTES))
  }

  /** The key holders and the peers known to subscribe to the space's readings, connected ones first. */
  private knownHolders(space: string): { peers: string[]; anyConnected: boolean } {
    const ids = new Set<string>()
    const doc = this.policy.document(space)
    if (doc.hasGenesis) for (const h of doc.state.holders) ids.add(h)
    for (const p of this.c.libp2p.services.pubsub.getSubscribers(readingsTopic(space))) ids.add(p.toString())
    ids.delete(this.c.identity.peerId)
    const all = [...ids]
    const connected = all.filter(id => this.c.libp2p.getConnections(peerIdFromString(id)).length > 0)
    return { peers: [...connected, ...all.filter(id => !connected.includes(id))], anyConnected: connected.length > 0 }
  }

  /** Peers that announced in the DHT that they hold data of the space (a lookup of up to 3 s). */
  private async providers(space: string): Promise<string[]> {
    this.c.metrics.inc('edgeward_backfill_provider_lookups_total')
    const found: string[] = []
    try {
      for await (const p of this.c.libp2p.contentRouting.findProviders(await spaceCid(space), {
        signal: AbortSignal.timeout(3000),
      })) {
        if (p.id.toString() !== this.c.identity.peerId) found.push(p.id.toString())
        if (found.length >= 8) break
      }
    } catch (err) {
      log('no providers of %s: %s', space, (err as Error).message)
    }
    return found
  }

  /**
   * Fetch the records of a stream this node lacks (throttled per stream). Peers asked: the key
   * holders and connected peers of the space, in that order; a DHT provider lookup (which costs
   * up to seconds) only when none of them is connected, or none of them answered to the end.
   * Once a key holder has answered to the end, no one else is asked: it keeps everything it
   * published (but what its retention deleted). Returns the readings stored; then tells the
   * listeners (onBackfill), whether it fetched or had nothing to do.
   */
  async backfill(space: string, stream: string, form: string): Promise<number> {
    const fetched = await this.backfillNow(space, stream, form)
    for (const l of this.backfillListeners) l(space, stream, form, fetched)
    return fetched
  }

  /** Be told of each backfill that ends (a simulator times it); returns the function that stops it. */
  onBackfill(listener: BackfillListener): () => void {
    this.backfillListeners.add(listener)
    return () => this.backfillListeners.delete(listener)
  }

  private async backfillNow(space: string, stream: string, form: string): Promise<number> {
    const key = `${space}!${stream}!${form}`
    const now = this.c.now()
    if (now - (this.lastBackfill.get(key) ?? 0) < this.backfillIntervalMs) return 0
    this.lastBackfill.set(key, now)
    // the node that published the stream has all of it
    if (this.policy.makesKeys(space, stream)) return 0
    const doc = this.policy.document(space)
    // the sequence numbers held here (a record holds one or more)
    const have = await this.records.heldSeqs(space, stream, form)
    // what retention deleted here is not fetched again
    const floor = await this.records.floor(space, stream, form)
    const holders = doc.hasGenesis ? doc.state.holders : []
    const range = { space, stream, form, floor, have }

    let fetched = 0
    // peers that answered to the end, and peers asked: enough answers, or a key holder's, end it
    let answered = 0
    const tried = new Set<string>()
    const ask = async (peers: string[]): Promise<void> => {
      for (const peer of peers) {
        if (tried.has(peer) || tried.size >= MAX_PEERS_ASKED || answered >= ANSWERS_ENOUGH) return
        tried.add(peer)
        const r = await this.fetchFrom(peerIdFromString(peer), range)
        fetched += r.stored
        if (!r.complete) continue
        answered++
        if (holders.includes(peer)) answered = ANSWERS_ENOUGH
      }
    }
    const known = this.knownHolders(space)
    if (known.anyConnected) await ask(known.peers)
    if (answered === 0) await ask([...(await this.providers(space)), ...known.peers])
    if (fetched > 0) log('backfilled %d readings of %s/%s/%s', fetched, space, stream, form)
    return fetched
  }

  /** Page through one peer's records of a stream from the first this node lacks; store the new ones. */
  private async fetchFrom(
    peer: PeerId,
    q: { space: string; stream: string; form: string; floor: number; have: Set<number> },
  ): Promise<{ stored: number; complete: boolean }> {
    const { space, stream, form, have } = q
    let from = q.floor
    while (have.has(from)) from++
    let stored = 0
    for (let page = 0; page < 10_000; page++) {
      let res: ReturnType<typeof decodeFetchResponse>
      try {
        const body = encodeFetchRequest({ space, stream, form, from, limit: MAX_FETCH_PAGE })
        res = decodeFetchResponse(await request(this.c.libp2p, peer, FETCH_PROTOCOL, body, MAX_FETCH_RESPONSE_BYTES))
      } catch (err) {
        log('fetch from %s failed: %s', peer, (err as Error).message)
        return { stored, complete: false }
      }
      const fresh: [EncryptedReading, Uint8Array][] = []
      for (const bytes of res.records) {
        try {
          const r = decodeEncryptedReading(bytes)
          const n = readingsIn(r)
          if (r.space !== space || r.stream !== stream || r.form !== form || r.seq + n <= from) {
            throw new InvalidMessageError('not what was asked for')
          }
          // kept only if it brings a reading this node lacks and overwrites no record it holds
          let lacking = false
          for (let i = 0; i < n; i++) if (!have.has(r.seq + i)) lacking = true
          if (!lacking || have.has(r.seq)) continue
          for (let i = 0; i < n; i++) have.add(r.seq + i)
          fresh.push([r, bytes])
        } catch (err) {
          this.c.metrics.inc('edgeward_backfill_records_total', { result: 'refused' })
          log('refused a fetched record from %s: %s', peer, (err as Error).message)
        }
      }
      await this.records.store(fresh, false)
      stored += readingCount(fresh.map(([r]) => r))
      this.c.metrics.inc('edgeward_backfill_records_total', { result: 'stored' }, fresh.length)
      if (res.next === undefined) return { stored, complete: true }
      if (res.next <= from) return { stored, complete: false }
      from = res.next
    }
    return { stored, complete: false }
  }

  /** Set what this peer keeps of a stream, and apply it at once. */
  async setRetention(space: string, stream: string, r: Retention): Promise<void> {
    await this.records.setRetention(space, stream, r)
    await this.applyRetention()
  }

  /** What this peer keeps of a stream, if set. */
  async retention(space: string, stream: string): Promise<Retention | undefined> {
    return this.records.retention(space, stream)
  }

  /** Delete what retention no longer keeps, oldest first, for every stream that has a setting. */
  async applyRetention(): Promise<number> {
    let deleted = 0
    for await (const { space, stream, retention: r } of this.records.retentions()) {
      const arrivals = await this.records.arrivals(space, stream)
      const now = this.c.now()
      const byForm = new Map<string, Arrival[]>()
      for (const a of arrivals) byForm.set(a.form, [...(byForm.get(a.form) ?? []), a])
      for (const list of byForm.values()) {
        // oldest first
        list.sort((x, y) => x.at - y.at || x.seq - y.seq)
        // maxCount counts readings: whole records go, oldest first, until no more than that remain
        let excess = r.maxCount === undefined ? 0 : readingCount(list) - r.maxCount
        const doomed = list.filter(a => {
          const goes = excess > 0 || (r.maxAgeMs !== undefined && now - a.at > r.maxAgeMs)
          excess -= a.n
          return goes
        })
        if (doomed.length === 0) continue
        const floor = Math.max(...doomed.map(a => a.seq + a.n))
        await this.records.deleteArrived(space, stream, doomed[0].form, doomed, floor)
        deleted += doomed.length
      }
    }
    if (deleted > 0) this.c.metrics.inc('edgeward_retention_deleted_total', {}, deleted)
    return deleted
  }
}
