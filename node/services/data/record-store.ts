/**
 * The stored ciphertext of a node's streams, and what it keeps of it.
 *
 * Guarantees: the only module that reads or writes the `records`, `arrivals` and `settings`
 * sublevels, so their key layout is written down once (see node/store.ts):
 * - records: `<space>!<stream>!<form>!<seq>` -> encrypted record (one or more readings)
 * - arrivals: `<space>!<stream>!<form>!<at>!<seq>`, then `!<n>` for a record of n > 1 readings
 *   -> nothing: when the record was stored here, for retention by age
 * - settings: `retention!<space>!<stream>` -> this peer's retention of a stream;
 *   `floor!<space>!<stream>!<form>` -> the first sequence number retention kept (what it
 *   deleted is not fetched again)
 * A record and its arrival are written in one batch; retention deletes both and moves the
 * floor in one synced batch.
 *
 * Assumes: records are ciphertext that anyone may hold; whether one decrypts is the reader's
 * business (it drops those that do not). Stream names hold no '!' nor '~'.
 *
 * Refuses nothing: it stores what it is given (callers validate first).
 */
import { decodeCanonical, encodeCanonical } from '../../../crypto/encoding.ts'
import { decodeEncryptedReading, type EncryptedReading, readingsIn } from '../../../protocols/data/reading.ts'
import { DURABLE, pad, type Store } from '../../store.ts'

type Batch = ReturnType<Store['db']['batch']>

/** What the record store uses: its three sublevels, batches, and the clock (arrival times). */
export interface RecordStoreComponents {
  store: Pick<Store, 'db' | 'records' | 'arrivals' | 'settings'>
  now: () => number
}

/** What a peer keeps of a stream: records younger than `maxAgeMs`, at most `maxCount` readings. */
export interface Retention {
  maxAgeMs?: number
  maxCount?: number
}

/** A stored record as retention sees it: when it arrived, where it is, how many readings it holds. */
export interface Arrival {
  form: string
  at: number
  seq: number
  n: number
}

/** The stored records of every stream, keyed by place and sequence, with arrival times and retention. */
export class RecordStore {
  private readonly c: RecordStoreComponents

  constructor(components: RecordStoreComponents) {
    this.c = components
  }

  /** Add a record, and when it arrived (for retention by age), to a batch. */
  add(batch: Batch, r: EncryptedReading, bytes: Uint8Array): void {
    batch.put(recordKey(r), bytes, { sublevel: this.c.store.records } as never)
    batch.put(arrivalKey(r, this.c.now()), new Uint8Array(0), { sublevel: this.c.store.arrivals } as never)
  }

  /** Store records received from gossip or backfill (synced only when `durable`). */
  async store(records: [EncryptedReading, Uint8Array][], durable = true): Promise<void> {
    if (records.length === 0) return
    const batch = this.c.store.db.batch()
    for (const [r, bytes] of records) this.add(batch, r, bytes)
    await batch.write(durable ? DURABLE : {})
  }

  /** Forget a stored record (its arrival stays until retention passes it). */
  async drop(r: EncryptedReading): Promise<void> {
    await this.c.store.records.del(recordKey(r))
  }

  /** The stored bytes of a stream's records, in sequence order, undecoded. */
  async *encoded(space: string, stream: string, form: string): AsyncGenerator<Uint8Array> {
    const prefix = streamPrefix(space, stream, form)
    yield* this.c.store.records.values({ gt: prefix, lt: `${prefix}~` })
  }

  /** A stream's stored records, one at a time in sequence order, without loading them all. */
  async *records(space: string, stream: string, form: string): AsyncGenerator<EncryptedReading> {
    for await (const v of this.encoded(space, stream, form)) yield decodeEncryptedReading(v)
  }

  /** The sequence numbers of a stream's readings held here (a record holds one or more). */
  async heldSeqs(space: string, stream: string, form: string): Promise<Set<number>> {
    const have = new Set<number>()
    for await (const r of this.records(space, stream, form)) {
      for (let i = 0; i < readingsIn(r); i++) have.add(r.seq + i)
    }
    return have
  }

  /**
   * One page of a stream's stored records from reading `from` on: the record that begins
   * before `from` and holds it first, then up to `limit` records and `maxBytes` in all;
   * `next` is the sequence number of the first record left out.
   */
  async page(
    q: { space: string; stream: string; form: string; from: number; limit: number },
    maxBytes: number,
  ): Promise<{ records: Uint8Array[]; next?: number }> {
    const records: Uint8Array[] = []
    let bytes = 0
    const prefix = streamPrefix(q.space, q.stream, q.form)
    for await (const v of this.c.store.records.values({
      gt: prefix,
      lt: `${prefix}${pad(q.from)}`,
      reverse: true,
      limit: 1,
    })) {
      const r = decodeEncryptedReading(v)
      if (r.seq + readingsIn(r) > q.from) {
        records.push(v)
        bytes += v.byteLength
      }
    }
    for await (const [k, v] of this.c.store.records.iterator({ gte: `${prefix}${pad(q.from)}`, lt: `${prefix}~` })) {
      if (records.length >= q.limit || bytes + v.byteLength > maxBytes) {
        return { records, next: Number(k.slice(prefix.length)) }
      }
      records.push(v)
      bytes += v.byteLength
    }
    return { records }
  }

  /** The first sequence number of a stream's form that retention kept here (0 when it deleted none). */
  async floor(space: string, stream: string, form: string): Promise<number> {
    const v = await this.c.store.settings.get(floorKey(space, stream, form))
    return v === undefined ? 0 : (decodeCanonical(v, 16) as number)
  }

  /** Set what this peer keeps of a stream. */
  async setRetention(space: string, stream: string, r: Retention): Promise<void> {
    await this.c.store.settings.put(retentionKey(space, stream), encodeCanonical(r), DURABLE)
  }

  /** What this peer keeps of a stream, if set. */
  async retention(space: string, stream: string): Promise<Retention | undefined> {
    const v = await this.c.store.settings.get(retentionKey(space, stream))
    return v === undefined ? undefined : (decodeCanonical(v, 256) as Retention)
  }

  /** Every stream that has a retention setting, with it. */
  async *retentions(): AsyncGenerator<{ space: string; stream: string; retention: Retention }> {
    for await (const [k, v] of this.c.store.settings.iterator({ gt: RETENTION_PREFIX, lt: `${RETENTION_PREFIX}~` })) {
      const [space, stream] = k.slice(RETENTION_PREFIX.length).split('!')
      yield { space, stream, retention: decodeCanonical(v, 256) as Retention }
    }
  }

  /** When each stored record of a stream (every form) arrived, in key order. */
  async arrivals(space: string, stream: string): Promise<Arrival[]> {
    const out: Arrival[] = []
    const prefix = `${space}!${stream}!`
    for await (const a of this.c.store.arrivals.keys({ gt: prefix, lt: `${prefix}~` })) {
      const [form, at, seq, n = '1'] = a.slice(prefix.length).split('!')
      out.push({ at: Number(at), form, seq: Number(seq), n: Number(n) })
    }
    return out
  }

  /**
   * Delete records of one form of a stream, with their arrivals, and set its floor (what is
   * below it is not fetched again), in one synced batch.
   */
  async deleteArrived(space: string, stream: string, form: string, doomed: Arrival[], floor: number): Promise<void> {
    const batch = this.c.store.db.batch()
    batch.put(floorKey(space, stream, form), encodeCanonical(floor), { sublevel: this.c.store.settings } as never)
    for (const a of doomed) {
      batch.del(recordKey({ space, stream, form, seq: a.seq }), { sublevel: this.c.store.records } as never)
      batch.del(arrivalKey({ space, stream, form, seq: a.seq, n: a.n }, a.at), {
        sublevel: this.c.store.arrivals,
      } as never)
    }
    await batch.write(DURABLE)
  }
}

const RETENTION_PREFIX = 'retention!'

function streamPrefix(space: string, stream: string, form: string): string {
  return `${space}!${stream}!${form}!`
}

function recordKey(r: { space: string; stream: string; form: string; seq: number }): string {
  return `${streamPrefix(r.space, r.stream, r.form)}${pad(r.seq)}`
}

function arrivalKey(r: { space: string; stream: string; form: string; seq: number; n?: number }, at: number): string {
  const n = readingsIn(r)
  return `${streamPrefix(r.space, r.stream, r.form)}${pad(at)}!${pad(r.seq)}${n === 1 ? '' : `!${n}`}`
}

function retentionKey(space: string, stream: string): string {
  return `${RETENTION_PREFIX}${space}!${stream}`
}

function floorKey(space: string, stream: string, form: string): string {
  return `floor!${space}!${stream}!${form}`
}
