/**
 * The data plane of a node, both sides of it.
 *
 * Key holder (the gateway that owns a space): encrypts readings under per-epoch data keys,
 * stores them durably before acknowledging, gossips the ciphertext, and answers key
 * requests on `/edgeward/keys/1.0.0` after checking: the request's signature and device
 * certificate, that the connection comes from that device, freshness and replay, and the
 * policy as it stands at that moment. Keys go out sealed (HPKE) to the device's X25519 key
 * with a lease. A revocation in a space closes the current epoch of its streams at once, so
 * what is published afterwards is under a key nobody has been given; a rotation cut short by
 * a crash is done again at start (a durable count, per space, of the revocations a finished
 * rotation covers), and so is the audit entry of a revocation the log lacks. A grant that ends
 * (its expiry, its delegation's or parent's end, its release limit, its device certificate's
 * end) closes, at that time, the epoch whose keys were released under it: the earliest such
 * end of the current epoch is kept durably per stream, and the first reading after it starts
 * a new epoch.
 *
 * Abuse bounds on the key holder: replay protection is kept per requesting device (one
 * device's flood cannot crowd out another), and a request made before this process started is
 * refused (what an earlier process saw is not remembered). Refusals are all counted, but only
 * the first few per remote peer and minute are each written to the audit log; the rest are
 * counted in `edgeward_key_refusals_unlogged_total`.
 *
 * Reader: stores every ciphertext it receives; asks for keys when it reads; keeps keys in
 * memory only, until the lease ends or a revocation that ends the grant arrives.
 */

import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { generateAeadKey } from '../../crypto/aead.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { openSealed, sealTo } from '../../crypto/seal.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import {
  createKeyRequest,
  decodeEpochKeys,
  decodeKeyRequest,
  decodeKeyResponse,
  encodeEpochKeys,
  encodeKeyResponse,
  KEYS_PROTOCOL,
  type KeyResponse,
  MAX_EPOCHS_PER_REQUEST,
  MAX_KEY_REQUEST_BYTES,
  MAX_KEY_RESPONSE_BYTES,
  REQUEST_WINDOW_MS,
  releaseInfo,
} from '../../protocols/access/messages.ts'
import { RefusalBudget } from '../../protocols/access/refusal-budget.ts'
import { DeviceReplayGuard } from '../../protocols/access/replay-guard.ts'
import { requestHash } from '../../protocols/audit/entries.ts'
import {
  aggregateReading,
  aggregateValue,
  aggregateWindowMs,
  closeIfDue,
  commitInto,
  DEFAULT_FORMS,
  HASHED,
  isAggregate,
  RAW,
  type WindowState,
} from '../../protocols/data/forms.ts'
import {
  decodeEncryptedReading,
  decodeReadingsMessage,
  decryptReadings,
  type EncryptedReading,
  encodeEncryptedReading,
  encodeReadingsMessage,
  MAX_READINGS_MESSAGE_BYTES,
  MAX_READINGS_PER_MESSAGE,
  type Reading,
  RecordBuilder,
  readingBound,
  readingCount,
  readingsIn,
  SEED_BYTES,
  sealRecord,
  valueJson,
} from '../../protocols/data/reading.ts'
import type { AppliedRecord } from '../../protocols/policy/document.ts'
import { createStream, type Revocation } from '../../protocols/policy/records.ts'
import { leaseEnd, streamsCover } from '../../protocols/policy/state.ts'
import { readingsTopic } from '../../protocols/sync/messages.ts'
import { AccessRefusedError, NotFoundError, UsageError } from '../errors.ts'
import { DURABLE, pad, type Store, unwrapKey, wrapKey } from '../store.ts'
import type { AuditService } from './audit.ts'
import type { NodeComponents } from './components.ts'
import type { PolicyService } from './policy.ts'
import { handle, request } from './stream-io.ts'

const log = logger('edgeward:keys')
/** stored records waiting to be gossiped, per space, past which a publish waits for them to go */
const MAX_OUTBOX_BYTES = 4 * 1024 * 1024
/** data keys a key holder keeps unwrapped in memory (each 32 bytes) */
const MAX_CACHED_HOLDER_KEYS = 4096

export interface DataServiceOptions {
  /** longest lease a key holder grants (default 15 min) */
  leaseMaxMs?: number
  /** epoch length of new streams (default 1 h) */
  epochMs?: number
  /** key requests remembered per requesting device for replay protection (default 4096) */
  replayMaxPerDevice?: number
  /** key requests remembered in all, past which only devices under their fair share are served (default 1 000 000) */
  replayMaxEntries?: number
  /** refused key requests of one remote peer written to the audit log per minute (default 30); the rest are counted */
  refusalsLoggedPerMinute?: number
}

interface EpochState {
  epoch: number
  started: number
  /** next sequence number of each form */
  seq: Record<string, number>
  /** the open window of each aggregate form */
  windows: Record<string, WindowState>
  /** set by the last publish of a stream that takes no more (an object, after its manifest) */
  closed?: boolean
}

interface CachedKey {
  /** undefined: the epoch was asked for and is outside the grant's data window */
  key: Uint8Array | undefined
  lease: number
  grant: string
}

export interface DecryptedReading extends Reading {
  seq: number
  epoch: number
  form: string
}

type ReadingListener = (r: EncryptedReading) => void

/** The records of one publish call (or window closing) being made: see DataService.writer. */
interface Writer {
  st: EpochState
  /** readings added */
  emitted: number
  /** close the epoch's open records and start the next epoch */
  newEpoch(now: number): void
  /** add a reading of a form (its value's JSON: valueJson); returns its sequence number */
  add(form: string, ts: number, json: string, bytes?: Uint8Array): number
  /** the salt of the reading last added to the raw form */
  lastSalt(): Uint8Array
  /** add a reading of the hashed form; returns its sequence number */
  addCommitment(form: string, ts: number, commitment: Uint8Array): number
  /** encrypt every record gathered, in order, into one batch (an epoch's key is made on first use) */
  seal(): Promise<{ batch: ReturnType<Store['db']['batch']>; out: { r: EncryptedReading; bytes: Uint8Array }[] }>
}

export class DataService {
  private readonly c: NodeComponents
  private readonly policy: PolicyService
  private readonly leaseMaxMs: number
  private readonly epochMs: number
  private readonly audit: AuditService | undefined
  private readonly replay: DeviceReplayGuard
  /** refusals written to the audit log, per remote peer and minute */
  private readonly refusalBudget: RefusalBudget
  /**
   * Key holder, per stream (`<space>!<stream>`): the earliest end of a grant under which a key
   * of the epoch `epoch` was released; the first reading at or after `at` starts a new epoch.
   * Kept durably (`ends!<space>!<stream>` in the epochs sublevel) before the key leaves.
   */
  private readonly grantEnds = new Map<string, { epoch: number; at: number }>()
  private readonly grantEndWrites = new Map<string, Promise<void>>()
  /**
   * Key holder, per space: how many revocations a finished rotation covers (durably,
   * `rotated!<space>` in the epochs sublevel); fewer than the space has at start means a
   * rotation was cut short, and it is done again.
   */
  private readonly rotated = new Map<string, number>()
  private readonly rotatedWrites = new Map<string, Promise<void>>()
  /** revocations applied in this process before start; the rest were loaded from disk (see logMissedRevocations) */
  private seenRevocations: Set<string> | undefined = new Set()
  /** key holder: lease end of each (subject, grant, stream), to tell renewals from first releases */
  private readonly leases = new Map<string, number>()
  private sweep: NodeJS.Timeout | undefined
  private readonly decisionChains = new Map<string, Promise<void>>()
  /** reader side: released keys, in memory only */
  private readonly keyCache = new Map<string, CachedKey>()
  private readonly readingListeners = new Set<ReadingListener>()
  /** serialises publishing per stream so sequence numbers and epochs never race */
  private readonly publishChains = new Map<string, Promise<unknown>>()
  /**
   * Key holder: what this service last wrote durably (it is the only writer of these), so a
   * publish or a key release does not read it back from LevelDB every time: the epoch state
   * of each stream, data keys (unwrapped), and epoch start times.
   */
  private readonly epochStates = new Map<string, EpochState>()
  private readonly holderKeys = new Map<string, Uint8Array>()
  private readonly epochStarts = new Map<string, number | null>()
  /** records stored and not yet gossiped, per space, in the order they were stored */
  private readonly outbox = new Map<string, { records: Uint8Array[]; bytes: number }>()
  /** the sender of each space with records in its outbox (see gossip) */
  private readonly sending = new Map<string, Promise<void>>()
  /** counts epoch start writes, so a read that raced one does not cache "not started" */
  private epochStartWrites = 0

  constructor(
    components: NodeComponents,
    policy: PolicyService,
    audit: AuditService | undefined,
    opts: DataServiceOptions = {},
  ) {
    this.c = components
    this.policy = policy
    this.audit = audit
    this.leaseMaxMs = opts.leaseMaxMs ?? 15 * 60 * 1000
    this.epochMs = opts.epochMs ?? 60 * 60 * 1000
    // a request made before this process existed may have been answered by the one before it
    this.replay = new DeviceReplayGuard({
      windowMs: REQUEST_WINDOW_MS,
      notBefore: components.now(),
      maxPerDevice: opts.replayMaxPerDevice,
      maxEntries: opts.replayMaxEntries,
    })
    this.refusalBudget = new RefusalBudget({ perWindow: opts.refusalsLoggedPerMinute, windowMs: 60_000 })
    // revocations the policy applies before this service starts (catch-up as the node starts)
    // are told to this listener; start() tells them apart from those loaded from disk
    policy.onRecords((_space, records) => {
      for (const r of records) if (r.kind === 'revocation') this.seenRevocations?.add(r.record.id)
    })
    const m = components.metrics
    m.describe('edgeward_key_releases_total', 'key releases by this key holder')
    m.describe('edgeward_key_refusals_total', 'key requests refused by this key holder, by reason')
    m.describe(
      'edgeward_key_refusals_unlogged_total',
      'refused key requests not written to the audit log (over the per-peer budget), by reason',
    )
    m.describe('edgeward_epochs_rotated_total', 'epochs closed early by this key holder, by cause')
    m.describe('edgeward_keys_dropped_total', 'cached keys dropped by this reader, by cause')
    m.describe('edgeward_readings_stored_total', 'encrypted readings stored, by source')
    m.describe('edgeward_readings_refused_total', 'gossiped readings refused, by reason')
    m.describe(
      'edgeward_readings_gossip_failures_total',
      'stored records this key holder failed to gossip (readers fetch them)',
    )
  }

  async start(): Promise<void> {
    this.policy.onRecords((space, records) => {
      this.onPolicyRecords(space, records).catch(err => log.error('after a policy change: %s', (err as Error).message))
    })
    // keys leave memory when their lease ends, not only when next looked at
    this.sweep = setInterval(() => {
      this.dropExpired()
      const now = this.c.now()
      this.refusalBudget.sweep(now)
      this.replay.evictAll(now)
      this.closeDueWindows().catch(err => log.error('closing aggregate windows: %s', (err as Error).message))
    }, 1000)
    this.sweep.unref()
    for (const space of this.policy.spaces()) this.subscribe(space)
    await this.resumeRotations()
    await handle(
      this.c.libp2p,
      KEYS_PROTOCOL,
      MAX_KEY_REQUEST_BYTES,
      MAX_KEY_RESPONSE_BYTES,
      (body, conn) => this.answerKeyRequest(body, conn),
      err => this.countRefusal('failed', err.message),
    )
  }

  /** Stop the timers, and send what is stored and not yet gossiped. */
  async stop(): Promise<void> {
    clearInterval(this.sweep)
    while (this.sending.size > 0) await Promise.all(this.sending.values())
  }

  /** Start receiving a space's readings (after create or join). */
  subscribe(space: string): void {
    const topic = readingsTopic(space)
    const pubsub = this.c.libp2p.services.pubsub
    if (pubsub.topicValidators.has(topic)) return
    pubsub.topicValidators.set(topic, async (_peer, msg) => this.validateReading(space, msg))
    pubsub.subscribe(topic)
  }

  private async validateReading(
    space: string,
    msg: { type: string; from?: { toString(): string }; data: Uint8Array },
  ): Promise<TopicValidatorResult> {
    const doc = this.policy.document(space)
    if (!doc.hasGenesis) return TopicValidatorResult.Ignore
    let records: EncryptedReading[]
    let bytes: Uint8Array[]
    try {
      ;({ records, bytes } = decodeReadingsMessage(msg.data))
    } catch (err) {
      this.c.metrics.inc('edgeward_readings_refused_total', { reason: (err as Error).name })
      return TopicValidatorResult.Reject
    }
    const from = msg.type === 'signed' ? msg.from?.toString() : undefined
    if (records[0].space !== space || from === undefined || !doc.state.holders.includes(from)) {
      this.c.metrics.inc('edgeward_readings_refused_total', { reason: 'not-from-a-key-holder' }, records.length)
      return TopicValidatorResult.Reject
    }
    // a reader's copy of ciphertext need not be synced: lost, it is fetched again
    await this.storeRecords(
      records.map((r, i) => [r, bytes[i]]),
      false,
    )
    this.c.metrics.inc('edgeward_readings_stored_total', { source: 'gossip' }, readingCount(records))
    for (const r of records) for (const l of this.readingListeners) l(r)
    return TopicValidatorResult.Accept
  }

  /** Add a record, and when it arrived (for retention by age), to a batch. */
  private addRecord(batch: ReturnType<Store['db']['batch']>, r: EncryptedReading, bytes: Uint8Array): void {
    batch.put(recordKey(r), bytes, { sublevel: this.c.store.records } as never)
    batch.put(arrivalKey(r, this.c.now()), new Uint8Array(0), { sublevel: this.c.store.arrivals } as never)
  }

  /** Store records received from gossip or backfill (synced only when `durable`). */
  async storeRecords(records: [EncryptedReading, Uint8Array][], durable = true): Promise<void> {
    if (records.length === 0) return
    const batch = this.c.store.db.batch()
    for (const [r, bytes] of records) this.addRecord(batch, r, bytes)
    await batch.write(durable ? DURABLE : {})
  }

  /** Forget a stored record (one that does not decrypt: it was not what a key holder published). */
  async dropRecord(r: EncryptedReading): Promise<void> {
    await this.c.store.records.del(recordKey(r))
    this.c.metrics.inc('edgeward_readings_refused_total', { reason: 'does-not-decrypt' })
  }

  // ---- key holder ----

  /** Define a stream: its epoch length and the forms the gateway produces (default raw and hashed). */
  async createStream(space: string, stream: string, opts: { epochMs?: number; forms?: string[] } = {}): Promise<void> {
    if (!this.policy.holds(space)) throw new UsageError(`this node is not a key holder of space ${space}`)
    if (this.policy.document(space).state.streams.has(stream)) throw new UsageError(`stream ${stream} exists already`)
    const forms = opts.forms === undefined ? undefined : [...new Set([RAW, ...opts.forms])]
    const rec = createStream(
      this.c.identity.principal,
      space,
      stream,
      opts.epochMs ?? this.epochMs,
      this.c.now(),
      forms,
    )
    await this.policy.write(space, [{ kind: 'stream', record: rec }])
  }

  /**
   * Encrypt and store durably, then return the sequence numbers assigned (of the raw form);
   * the records are gossiped right after, in the order they were stored.
   * `last`: the stream takes nothing more after these (an object's manifest): it is marked
   * closed in the same durable batch, later publishes are refused, and revocations no longer
   * rotate its key (there is nothing left to protect from a revoked reader).
   */
  async publish(space: string, stream: string, readings: Reading[], opts: { last?: boolean } = {}): Promise<number[]> {
    if (!this.policy.holds(space)) throw new UsageError(`this node is not a key holder of space ${space}`)
    if (!this.policy.document(space).state.streams.has(stream)) await this.createStream(space, stream)
    return this.inChain(space, stream, () => this.publishNow(space, stream, readings, opts.last === true))
  }

  private async publishNow(space: string, stream: string, readings: Reading[], last: boolean): Promise<number[]> {
    const record = this.policy.document(space).state.streams.get(stream)!.body
    const forms: readonly string[] = record.forms ?? DEFAULT_FORMS
    const st = await this.epochState(space, stream)
    if (st.closed === true) throw new UsageError(`stream ${stream} is closed: it takes no more readings`)
    if (last) st.closed = true
    const hashed = forms.includes(HASHED)
    const w = this.writer(space, stream, st, hashed ? { expected: readings.length } : undefined)
    const seqs: number[] = []
    const aggregates = forms.filter(isAggregate).map(form => ({ form, windowMs: aggregateWindowMs(form) }))
    const commitment = new Uint8Array(32)
    const end = this.grantEnds.get(`${space}!${stream}`)
    for (let i = 0; i < readings.length; i++) {
      const reading = readings[i]
      const now = this.c.now()
      if (now - w.st.started >= record.epochMs) w.newEpoch(now)
      else if (end !== undefined && end.epoch === w.st.epoch && now >= end.at) {
        w.newEpoch(now)
        this.c.metrics.inc('edgeward_epochs_rotated_total', { cause: 'grant-end' })
      }
      // with a hashed form, raw gives the reading a salt; hashed carries only the commitment to (ts, value, salt)
      const json = valueJson(reading.value)
      seqs.push(w.add(RAW, reading.ts, json, reading.bytes))
      if (hashed) {
        commitInto(commitment, 0, reading.ts, json, w.lastSalt())
        w.addCommitment(HASHED, reading.ts, commitment)
      }
      if (typeof reading.value !== 'number') continue
      for (const { form, windowMs } of aggregates) {
        const res = aggregateReading(w.st.windows[form], windowMs, reading.ts, reading.value)
        w.st.windows[form] = res.open
        if (res.late) this.c.metrics.inc('edgeward_readings_late_total', { form })
        for (const a of res.closed) w.add(form, a.start, valueJson(aggregateValue(a)))
      }
    }
    await this.commit(space, stream, w)
    return seqs
  }

  /** Seal what is open, store the batch and the epoch state durably, then gossip what was stored. */
  private async commit(space: string, stream: string, w: Writer): Promise<void> {
    const { batch, out } = await w.seal()
    const st = w.st
    batch.put(`${space}!${stream}`, encodeCanonical(st), { sublevel: this.c.store.epochs } as never)
    await batch.write(DURABLE)
    this.epochStates.set(`${space}!${stream}`, st)
    this.c.metrics.inc('edgeward_readings_stored_total', { source: 'local' }, readingCount(out.map(o => o.r)))
    for (const { r } of out) for (const l of this.readingListeners) l(r)
    const sent = this.gossip(
      space,
      out.map(o => o.bytes),
    )
    // a producer faster than gossip waits for it, so that the outbox stays small
    if (this.outbox.get(space)!.bytes > MAX_OUTBOX_BYTES) await sent
  }

  /**
   * Gossip records once they are stored, in the order they were stored, without holding up
   * the publish that stored them: the caller's next publish encrypts and syncs while these
   * go out. What is waiting when the sender comes round shares messages (up to
   * MAX_READINGS_PER_MESSAGE records or ~1 MiB each). Gossip is best effort; a reader that
   * missed a record fetches it (backfill).
   */
  private gossip(space: string, records: Uint8Array[]): Promise<void> {
    let total = 0
    for (const r of records) total += r.byteLength
    const queued = this.outbox.get(space)
    if (queued !== undefined) {
      queued.records.push(...records)
      queued.bytes += total
      return this.sending.get(space)!
    }
    const box = { records, bytes: total }
    this.outbox.set(space, box)
    const run = (async () => {
      // after the I/O callbacks: the caller's next publish has started by then
      await new Promise(resolve => setImmediate(resolve))
      while (box.records.length > 0) {
        const waiting = box.records
        box.records = []
        box.bytes = 0
        let pending: Uint8Array[] = []
        let size = 0
        const send = async () => {
          if (pending.length === 0) return
          const message = encodeReadingsMessage(pending)
          const count = pending.length
          pending = []
          size = 0
          try {
            await this.c.libp2p.services.pubsub.publish(readingsTopic(space), message)
          } catch (err) {
            this.c.metrics.inc('edgeward_readings_gossip_failures_total', {}, count)
            log.error('gossiping %d records of space %s: %s', count, space, (err as Error).message)
          }
        }
        for (const bytes of waiting) {
          if (pending.length >= MAX_READINGS_PER_MESSAGE || size + bytes.byteLength > MAX_READINGS_MESSAGE_BYTES - 4096)
            await send()
          pending.push(bytes)
          size += bytes.byteLength + 4
        }
        await send()
      }
      this.outbox.delete(space)
      this.sending.delete(space)
    })()
    this.sending.set(space, run)
    return run
  }

  /** Close aggregate windows whose time is up although no later reading came (runs every second). */
  private async closeDueWindows(): Promise<void> {
    for (const space of this.policy.spaces()) {
      if (!this.policy.holds(space)) continue
      for (const [stream, rec] of this.policy.document(space).state.streams) {
        const forms = (rec.body.forms ?? []).filter(isAggregate)
        if (forms.length === 0) continue
        await this.inChain(space, stream, async () => {
          const w = this.writer(space, stream, await this.epochState(space, stream))
          const end = this.grantEnds.get(`${space}!${stream}`)
          const ended = end !== undefined && end.epoch === w.st.epoch && this.c.now() >= end.at
          for (const form of forms) {
            const windowMs = aggregateWindowMs(form)
            const res = closeIfDue(w.st.windows[form], windowMs, this.c.now(), Math.min(windowMs / 10, 5000))
            if (res.closed.length === 0) continue
            if (res.open === undefined) delete w.st.windows[form]
            // a grant under which this epoch's keys went out has ended: its readings go to a new epoch
            if (ended && w.st.epoch === end.epoch) w.newEpoch(this.c.now())
            for (const a of res.closed) w.add(form, a.start, valueJson(aggregateValue(a)))
          }
          if (w.emitted > 0) await this.commit(space, stream, w)
        })
      }
    }
  }

  /**
   * What publishing and closing windows share: the next reading of a form, numbered in
   * sequence, gathered with the form's readings before it into one record (up to
   * MAX_READINGS_PER_RECORD, and MAX_RECORD_PLAINTEXT bytes); a record is closed when it is
   * full or the epoch changes, and every record is encrypted under its epoch's key of its
   * form when the caller commits. Nothing here waits, so a reading costs no promise.
   * `salted`: the raw form's readings get salts (the stream has a hashed form), about
   * `expected` of them in all.
   */
  private writer(space: string, stream: string, initial: EpochState, salted?: { expected: number }): Writer {
    /** the record being filled, per form: of the current epoch */
    const open = new Map<string, RecordBuilder>()
    /** the raw form's next sequence number when the call began: readings added since are the difference */
    const firstRawSeq = initial.seq[RAW] ?? 0
    /** records closed, in the order they were closed (per form, in sequence order) */
    const closed: { form: string; epoch: number; b: RecordBuilder }[] = []
    const close = (form: string, b: RecordBuilder) => {
      open.delete(form)
      closed.push({ form, epoch: w.st.epoch, b })
    }
    /** the open record of `form` that takes one more reading of `bound` bytes */
    const recordFor = (form: string, bound: number): RecordBuilder => {
      let b = open.get(form)
      if (b !== undefined && !b.fits(bound)) {
        close(form, b)
        b = undefined
      }
      if (b === undefined) {
        // a salted record's seed gives its salts, as many at first as it will likely hold
        b =
          form === RAW && salted !== undefined
            ? new RecordBuilder(
                w.st.seq[form] ?? 0,
                randomBytes(SEED_BYTES),
                Math.max(1, salted.expected - (w.st.seq[RAW] ?? 0) + firstRawSeq),
              )
            : new RecordBuilder(w.st.seq[form] ?? 0)
        open.set(form, b)
      }
      w.st.seq[form] = b.seq + b.count + 1
      w.emitted++
      return b
    }
    const w: Writer = {
      st: initial,
      emitted: 0,
      newEpoch: (now: number) => {
        for (const [form, b] of open) close(form, b)
        w.st = { ...w.st, epoch: w.st.epoch + 1, started: now }
      },
      add: (form, ts, json, bytes) => {
        const b = recordFor(form, readingBound(json, bytes))
        const seq = b.seq + b.count
        b.add(ts, json, bytes)
        return seq
      },
      // the raw reading just added is the last of the raw form's open record
      lastSalt: () => {
        const b = open.get(RAW)!
        return b.salt(b.count - 1)
      },
      addCommitment: (form, ts, commitment) => {
        const b = recordFor(form, readingBound(''))
        const seq = b.seq + b.count
        b.addCommitment(ts, commitment)
        return seq
      },
      seal: async () => {
        for (const [form, b] of open) close(form, b)
        const batch = this.c.store.db.batch()
        const out: { r: EncryptedReading; bytes: Uint8Array }[] = []
        const keys = new Map<string, Uint8Array>()
        for (const { form, epoch, b } of closed) {
          const at = `${form}!${epoch}`
          let key = keys.get(at)
          if (key === undefined) {
            key = await this.holderKey(space, stream, form, epoch)
            keys.set(at, key)
          }
          const r = sealRecord(key, { space, stream, form, epoch }, b)
          const bytes = encodeEncryptedReading(r)
          this.addRecord(batch, r, bytes)
          out.push({ r, bytes })
        }
        return { batch, out }
      },
    }
    return w
  }

  /** Run `work` after everything already queued for this stream (sequence numbers and epochs never race). */
  private inChain<T>(space: string, stream: string, work: () => Promise<T>): Promise<T> {
    const chainKey = `${space}!${stream}`
    const run = (this.publishChains.get(chainKey) ?? Promise.resolve()).then(work)
    this.publishChains.set(
      chainKey,
      run.catch(() => undefined),
    )
    return run
  }

  /** A stream's epoch state, as a copy the caller may change (it is kept only once durable). */
  private async epochState(space: string, stream: string): Promise<EpochState> {
    const cached = this.epochStates.get(`${space}!${stream}`)
    if (cached !== undefined) return { ...cached, seq: { ...cached.seq }, windows: { ...cached.windows } }
    const raw = await this.c.store.epochs.get(`${space}!${stream}`)
    if (raw === undefined) return { epoch: 0, started: this.c.now(), seq: {}, windows: {} }
    return decodeCanonical(raw, 16 * 1024) as EpochState
  }

  /** The data key of an epoch, if it exists. */
  private async existingKey(
    space: string,
    stream: string,
    form: string,
    epoch: number,
  ): Promise<Uint8Array | undefined> {
    const loc = keyLocation(space, stream, form, epoch)
    const cached = this.holderKeys.get(loc)
    if (cached !== undefined) return cached
    const wrapped = await this.c.store.keys.get(loc)
    if (wrapped === undefined) return undefined
    const key = unwrapKey(this.c.identity.storageKey, loc, wrapped)
    this.rememberKey(loc, key)
    return key
  }

  private rememberKey(loc: string, key: Uint8Array): void {
    // bounded: the oldest goes first (a key holder uses recent epochs' keys most)
    if (this.holderKeys.size >= MAX_CACHED_HOLDER_KEYS) this.holderKeys.delete(this.holderKeys.keys().next().value!)
    this.holderKeys.set(loc, key)
  }

  /** When an epoch started (its first key was made), if it has. */
  private async epochStart(space: string, stream: string, epoch: number): Promise<number | undefined> {
    const k = epochStartKey(space, stream, epoch)
    const cached = this.epochStarts.get(k)
    if (cached !== undefined) return cached ?? undefined
    const writes = this.epochStartWrites
    const v = await this.c.store.epochs.get(k)
    const start = v === undefined ? undefined : (decodeCanonical(v, 16) as number)
    // "not started" is remembered only if no start was written meanwhile
    if (start !== undefined || writes === this.epochStartWrites) this.epochStarts.set(k, start ?? null)
    return start
  }

  /** The data key of an epoch, created (and stored wrapped, in one synced batch) on first use. */
  private async holderKey(space: string, stream: string, form: string, epoch: number): Promise<Uint8Array> {
    const batch = this.c.store.db.batch()
    const { key, made } = await this.prepareKey(space, stream, form, epoch, batch, this.c.now())
    if (made !== undefined) {
      await batch.write(DURABLE)
      made()
    }
    return key
  }

  /**
   * The data key of an epoch: the existing one, or a new one whose wrapped copy (and, for the
   * epoch's first key, the epoch's start, `now`) is added to `batch`; `made` remembers it once
   * the caller has written the batch durably.
   */
  private async prepareKey(
    space: string,
    stream: string,
    form: string,
    epoch: number,
    batch: ReturnType<Store['db']['batch']>,
    now: number,
  ): Promise<{ key: Uint8Array; made?: () => void }> {
    const existing = await this.existingKey(space, stream, form, epoch)
    if (existing !== undefined) return { key: existing }
    const loc = keyLocation(space, stream, form, epoch)
    const key = generateAeadKey()
    // an epoch starts when its first key is made; data windows are checked against these times
    const startKey = epochStartKey(space, stream, epoch)
    const started = (await this.epochStart(space, stream, epoch)) === undefined ? now : undefined
    if (started !== undefined) batch.put(startKey, encodeCanonical(started), { sublevel: this.c.store.epochs } as never)
    batch.put(loc, wrapKey(this.c.identity.storageKey, loc, key), { sublevel: this.c.store.keys } as never)
    const made = () => {
      if (started !== undefined) {
        this.epochStartWrites++
        this.epochStarts.set(startKey, started)
      }
      this.rememberKey(loc, key)
    }
    return { key, made }
  }

  /** Does an epoch's time range [its start, the next epoch's start) overlap [from, until)? */
  private async epochInWindow(
    space: string,
    stream: string,
    epoch: number,
    from = 0,
    until = Infinity,
  ): Promise<boolean> {
    const [begins = 0, ends = Infinity] = await Promise.all([
      this.epochStart(space, stream, epoch),
      this.epochStart(space, stream, epoch + 1),
    ])
    return begins < until && ends > from
  }

  private async releaseCount(grant: string): Promise<number> {
    const v = await this.c.store.keys.get(`releases!${grant}`)
    return v === undefined ? 0 : (decodeCanonical(v, 16) as number)
  }

  /**
   * A revocation closes the current epoch of every open stream of the space at once: the next
   * epoch's start, its raw key and the stream's state in one synced batch per stream, every
   * stream queued at once (none waits for another's rotation). Once all are done, the count of
   * revocations they cover is stored: a process stopped before that rotates again at start. A
   * closed stream (an object already shared whole) takes no more readings, so it keeps its key.
   */
  private async rotate(space: string, cause: 'revocation' | 'restart'): Promise<void> {
    const state = this.policy.document(space).state
    // every revocation applied by now is covered once each stream has rotated after this point
    const covers = state.revocations.size
    await Promise.all(
      [...state.streams.keys()].map(stream =>
        this.inChain(space, stream, () => this.rotateStream(space, stream, cause)),
      ),
    )
    await this.markRotated(space, covers)
  }

  private async rotateStream(space: string, stream: string, cause: 'revocation' | 'restart'): Promise<void> {
    const st = await this.epochState(space, stream)
    if (st.closed === true) return
    const now = this.c.now()
    const next: EpochState = { ...st, epoch: st.epoch + 1, started: now }
    const batch = this.c.store.db.batch()
    const { made } = await this.prepareKey(space, stream, RAW, next.epoch, batch, now)
    batch.put(`${space}!${stream}`, encodeCanonical(next), { sublevel: this.c.store.epochs } as never)
    await batch.write(DURABLE)
    made?.()
    this.epochStates.set(`${space}!${stream}`, next)
    this.c.metrics.inc('edgeward_epochs_rotated_total', { cause })
    log('rotated %s/%s to epoch %d (%s)', space, stream, next.epoch, cause)
  }

  /** Store that a finished rotation covers the first `covers` revocations of a space (never less than before). */
  private async markRotated(space: string, covers: number): Promise<void> {
    if (covers <= (this.rotated.get(space) ?? 0)) return
    this.rotated.set(space, covers)
    // one write at a time per space, each of the highest count known when it runs
    const write = (this.rotatedWrites.get(space) ?? Promise.resolve()).then(() =>
      this.c.store.epochs.put(rotatedKey(space), encodeCanonical(this.rotated.get(space)!), DURABLE),
    )
    this.rotatedWrites.set(
      space,
      write.catch(() => undefined),
    )
    await write
  }

  /**
   * At start, for every space this node holds: the grant ends kept on disk; a rotation if the
   * space has more revocations than a finished rotation covers (the process before stopped
   * between storing a revocation and rotating, or this one applied revocations before it
   * listened); and an audit entry for each revocation loaded from disk that the log lacks.
   */
  private async resumeRotations(): Promise<void> {
    for await (const [k, v] of this.c.store.epochs.iterator({ gt: GRANT_END_PREFIX, lt: `${GRANT_END_PREFIX}~` })) {
      const [epoch, at] = decodeCanonical(v, 64) as [number, number]
      this.grantEnds.set(k.slice(GRANT_END_PREFIX.length), { epoch, at })
    }
    // taken at once: revocations applied from here on are logged by the audit service as they come
    const seen = this.seenRevocations ?? new Set<string>()
    this.seenRevocations = undefined
    const held = this.policy.spaces().filter(space => this.policy.holds(space))
    const loaded = new Map(
      held.map(space => [
        space,
        [...this.policy.document(space).state.revocations.values()].filter(r => !seen.has(r.id)),
      ]),
    )
    for (const space of held) {
      const raw = await this.c.store.epochs.get(rotatedKey(space))
      const covered = raw === undefined ? 0 : (decodeCanonical(raw, 16) as number)
      this.rotated.set(space, Math.max(covered, this.rotated.get(space) ?? 0))
      const revocations = this.policy.document(space).state.revocations.size
      if (revocations > covered) {
        log('space %s: %d revocations, %d covered by a finished rotation: rotating', space, revocations, covered)
        await this.rotate(space, 'restart')
      }
      await this.logMissedRevocations(space, loaded.get(space)!)
    }
  }

  /**
   * Audit entries for revocations that were on disk when this process started but are not in
   * the log (the process before stopped between storing and logging them), dated now.
   */
  private async logMissedRevocations(space: string, loaded: OpenedRecord<Revocation>[]): Promise<void> {
    const audit = this.audit
    if (audit === undefined || loaded.length === 0) return
    const logged = new Set<string>()
    // no stream has this name: only the space's revocations come back
    for (const { entry } of await audit.streamEntries(space, NO_STREAM)) {
      if (entry.t === 'revocation') logged.add(entry.revocation)
    }
    const now = this.c.now()
    const missing = loaded.filter(r => !logged.has(r.id))
    if (missing.length > 0) log('space %s: logging %d revocations the audit log lacks', space, missing.length)
    await Promise.all(
      missing.map(r => audit.append({ t: 'revocation', ts: now, space, revocation: r.id, target: r.body.target })),
    )
  }

  /**
   * Remember, durably, that a key of the current epoch of a stream was released under a grant
   * that ends at `at`: the first reading at or after it starts a new epoch. Nothing is kept
   * for an epoch that is over, or that its length ends first.
   */
  private async noteGrantEnd(space: string, stream: string, epoch: number, at: number): Promise<void> {
    const [started, next] = await Promise.all([
      this.epochStart(space, stream, epoch),
      this.epochStart(space, stream, epoch + 1),
    ])
    if (next !== undefined) return
    const epochMs = this.policy.document(space).state.streams.get(stream)?.body.epochMs
    if (started !== undefined && epochMs !== undefined && started + epochMs <= at) return
    const k = `${space}!${stream}`
    const known = this.grantEnds.get(k)
    if (known !== undefined && (known.epoch > epoch || (known.epoch === epoch && known.at <= at))) return
    this.grantEnds.set(k, { epoch, at })
    // one write at a time per stream, each of the earliest end known when it runs
    const write = (this.grantEndWrites.get(k) ?? Promise.resolve()).then(() => {
      const v = this.grantEnds.get(k)!
      return this.c.store.epochs.put(`${GRANT_END_PREFIX}${k}`, encodeCanonical([v.epoch, v.at]), DURABLE)
    })
    this.grantEndWrites.set(
      k,
      write.catch(() => undefined),
    )
    await write
  }

  private countRefusal(code: string, reason: string): void {
    log('refused key request: %s (%s)', code, reason)
    this.c.metrics.inc('edgeward_key_refusals_total', { reason: code })
  }

  /**
   * Decisions for one subject run one at a time: a release limit (maxReleases) is checked and
   * counted without another request of the same subject in between.
   */
  private async answerKeyRequest(body: Uint8Array, conn: Connection): Promise<Uint8Array> {
    let req: ReturnType<typeof decodeKeyRequest>
    try {
      req = decodeKeyRequest(body)
    } catch (err) {
      this.countRefusal('malformed', (err as Error).message)
      return encodeKeyResponse({
        ok: false,
        code: 'malformed',
        reason: `invalid key request: ${(err as Error).message}`,
      })
    }
    const subject = req.request.issuer
    const previous = this.decisionChains.get(subject) ?? Promise.resolve()
    const run = previous.then(() => this.decideKeyRequest(req, conn))
    const settled: Promise<void> = run
      .catch(() => undefined)
      .then(() => {
        if (this.decisionChains.get(subject) === settled) this.decisionChains.delete(subject)
      })
    this.decisionChains.set(subject, settled)
    return run
  }

  private async decideKeyRequest(req: ReturnType<typeof decodeKeyRequest>, conn: Connection): Promise<Uint8Array> {
    const refuse = (code: string, reason: string): Uint8Array => {
      this.countRefusal(code, reason)
      return encodeKeyResponse({ ok: false, code, reason })
    }
    const { request: r, device } = req
    const space = r.body.space
    // only a request for a space this node holds is worth an audit entry; the rest are counted
    if (!this.policy.spaces().includes(space) || !this.policy.holds(space)) {
      return refuse('not-a-holder', 'this node is not a key holder of that space')
    }
    const now = this.c.now()
    const reqHash = requestHash(r.bytes)
    const remote = conn.remotePeer.toString()
    // a refusal is logged within the remote peer's budget, and counted in any case
    const refuseLogged = async (code: string, reason: string): Promise<Uint8Array> => {
      if (this.audit !== undefined && !this.refusalBudget.take(remote, now)) {
        this.c.metrics.inc('edgeward_key_refusals_unlogged_total', { reason: code })
        return refuse(code, reason)
      }
      await this.audit?.append({
        t: 'refusal',
        ts: now,
        space,
        subject: r.issuer,
        device: device.body.peer,
        stream: r.body.stream,
        form: r.body.form,
        code,
        reason,
        reqHash,
      })
      return refuse(code, reason)
    }
    if (device.body.peer !== remote) {
      return refuseLogged('wrong-device', 'the request does not come from the device it names')
    }
    const replay = this.replay.check(remote, r.issuer, r.body.nonce, r.body.ts, now)
    if (replay !== undefined) return refuseLogged('replay', replay)
    const state = this.policy.document(space).state
    // release counts of the subject's grants, for their maxReleases conditions
    const counts = new Map<string, number>()
    for (const g of state.grantsOf(r.issuer)) {
      if (g.body.maxReleases !== undefined) counts.set(g.id, await this.releaseCount(g.id))
    }
    const decision = state.evaluateAccess(
      {
        subject: r.issuer,
        device,
        stream: r.body.stream,
        form: r.body.form,
        grantId: r.body.grant,
        releaseCount: id => counts.get(id) ?? 0,
      },
      now,
    )
    if (!decision.allowed) return refuseLogged(decision.code, decision.reason)
    const g = decision.grant.body
    // the epochs asked for, looked up together (from memory, once this key holder has used them)
    const found = await Promise.all(
      r.body.epochs.map(async epoch => ({
        epoch,
        key: await this.existingKey(space, r.body.stream, r.body.form, epoch),
        // the data window: only epochs whose time range overlaps it
        inWindow: await this.epochInWindow(space, r.body.stream, epoch, g.dataFrom, g.dataUntil),
      })),
    )
    const unknown = found.find(f => f.key === undefined)
    if (unknown !== undefined)
      return refuseLogged('unknown-epoch', `stream ${r.body.stream} has no epoch ${unknown.epoch}`)
    const keys = found.filter(f => f.inWindow).map(f => ({ epoch: f.epoch, key: f.key! }))
    if (keys.length === 0)
      return refuseLogged('outside-data-window', "none of the data asked for is inside the grant's data window")
    const lease = leaseEnd({ exp: decision.until }, now, this.leaseMaxMs)
    const leaseKey = `${r.issuer}|${decision.grant.id}|${r.body.stream}`
    const renewal = (this.leases.get(leaseKey) ?? 0) > now
    // until when what this release gives can be renewed: the grant's end (its delegation's, its
    // parent's) or the device certificate's; for the last release a limit allows, its lease.
    // The epoch released is closed then, before the key leaves.
    const lastRelease = g.maxReleases !== undefined && (counts.get(decision.grant.id) ?? 0) + 1 >= g.maxReleases
    const ends = Math.min(lastRelease ? lease : decision.until, device.body.exp)
    const noted = this.noteGrantEnd(space, r.body.stream, Math.max(...keys.map(k => k.epoch)), ends)
    noted.catch(() => undefined)
    // the key leaves only once its release is durable in the audit log; the keys are sealed
    // while that entry is being synced (the seal does not depend on it, and goes nowhere until
    // it is done). A seal that fails (a device key that is a small-order point) leaves a
    // release entry for keys that never left: the log then says more than happened, never less.
    const logged = this.audit?.append({
      t: 'release',
      ts: now,
      space,
      subject: r.issuer,
      device: device.body.peer,
      grant: decision.grant.id,
      stream: r.body.stream,
      form: r.body.form,
      epochs: keys.map(k => k.epoch),
      leaseEnd: lease,
      renewal,
      request: r.bytes,
      reqHash,
      ...(g.purpose === undefined ? {} : { purpose: g.purpose }),
    })
    // a failed append must not go unhandled while the seal runs; it is thrown below
    logged?.catch(() => undefined)
    const sealed = await sealTo(device.body.xpk, encodeEpochKeys(keys), releaseInfo(r.bytes))
    await logged
    await noted
    // only a release that was logged (and so will be answered) counts as a lease
    this.leases.set(leaseKey, lease)
    if (g.maxReleases !== undefined) {
      const count = (counts.get(decision.grant.id) ?? 0) + 1
      await this.c.store.keys.put(`releases!${decision.grant.id}`, encodeCanonical(count), DURABLE)
    }
    this.c.metrics.inc('edgeward_key_releases_total', { stream: r.body.stream })
    log('released %d keys of %s to %s until %d', keys.length, r.body.stream, r.issuer, lease)
    return encodeKeyResponse({ ok: true, lease, grant: decision.grant.id, sealed })
  }

  // ---- reader ----

  private async onPolicyRecords(space: string, records: AppliedRecord[]): Promise<void> {
    const revocations = records.filter(r => r.kind === 'revocation')
    this.recheckCachedKeys(
      space,
      revocations.map(r => r.record),
    )
    if (revocations.length > 0 && this.policy.holds(space)) await this.rotate(space, 'revocation')
  }

  /**
   * Drop every cached key of the space whose grant no longer holds. A key whose grant this
   * reader has not received (the key holder knew it) is dropped on any revocation that could
   * end it: of that grant, of this subject, of this device, or of a delegation; the key holder
   * decides again on the next read.
   */
  private recheckCachedKeys(space: string, revocations: OpenedRecord<Revocation>[]): void {
    const state = this.policy.document(space).state
    const me = this.c.identity
    const now = this.c.now()
    // for a grant this reader never received, any revocation could end it (of an ancestor, a
    // subject up its chain, a delegation): drop, and let the key holder decide on the next read
    const mayEndUnknown = revocations.length > 0
    for (const [k, cached] of this.keyCache) {
      if (!k.startsWith(`${space}|`)) continue
      const grant = state.grants.get(cached.grant)
      const ended =
        grant === undefined
          ? mayEndUnknown
          : state.grantProblem(grant, now) !== undefined ||
            state.deviceProblem(me.device, me.principal.did, now) !== undefined
      if (ended) {
        this.keyCache.delete(k)
        this.c.metrics.inc('edgeward_keys_dropped_total', { cause: 'revocation' })
      }
    }
  }

  /** Number of data keys this node holds in memory as a reader (for status and tests). */
  cachedKeyCount(): number {
    this.dropExpired()
    return [...this.keyCache.values()].filter(k => k.key !== undefined).length
  }

  private dropExpired(): void {
    const now = this.c.now()
    for (const [k, v] of this.keyCache) {
      if (v.lease > now) continue
      this.keyCache.delete(k)
      this.c.metrics.inc('edgeward_keys_dropped_total', { cause: 'lease-end' })
    }
  }

  /** The lease and grant of the key this reader holds for one epoch of a stream, if it holds one. */
  cachedLease(
    space: string,
    stream: string,
    form: string,
    epoch: number,
  ): { lease: number; grant: string } | undefined {
    const k = this.keyCache.get(cacheKey(space, stream, form, epoch))
    return k === undefined || k.key === undefined || k.lease <= this.c.now()
      ? undefined
      : { lease: k.lease, grant: k.grant }
  }

  /** Stored ciphertext of a stream, one record at a time in sequence order, without loading it all. */
  async *storedRecords(space: string, stream: string, form = RAW): AsyncGenerator<EncryptedReading> {
    const prefix = `${space}!${stream}!${form}!`
    for await (const v of this.c.store.records.values({ gt: prefix, lt: `${prefix}~` })) yield decodeEncryptedReading(v)
  }

  /** Stored ciphertext of a stream, in sequence order. */
  async storedReadings(space: string, stream: string, form = RAW): Promise<EncryptedReading[]> {
    const out: EncryptedReading[] = []
    for await (const r of this.storedRecords(space, stream, form)) out.push(r)
    return out
  }

  /** Ensure keys for `epochs` are cached, asking a key holder for the missing ones. */
  private async ensureKeys(space: string, stream: string, form: string, epochs: number[]): Promise<void> {
    this.dropExpired()
    const missing = [...new Set(epochs)].filter(e => !this.keyCache.has(cacheKey(space, stream, form, e)))
    for (let i = 0; i < missing.length; i += MAX_EPOCHS_PER_REQUEST) {
      await this.requestKeys(space, stream, form, missing.slice(i, i + MAX_EPOCHS_PER_REQUEST))
    }
  }

  private async requestKeys(space: string, stream: string, form: string, epochs: number[]): Promise<void> {
    const state = this.policy.document(space).state
    const me = this.c.identity
    const active = state
      .grantsOf(me.principal.did)
      .find(
        g =>
          streamsCover(g.body.streams, stream) &&
          g.body.forms.includes(form) &&
          state.grantProblem(g, this.c.now()) === undefined,
      )
    const req = createKeyRequest(me.principal, {
      space,
      stream,
      form,
      epochs,
      grant: active?.id,
      device: me.device.bytes,
      nonce: randomBytes(16),
      ts: this.c.now(),
    })
    let lastError: Error | undefined
    for (const holder of state.holders) {
      let res: KeyResponse
      try {
        const raw = await request(
          this.c.libp2p,
          peerIdFromString(holder),
          KEYS_PROTOCOL,
          req.bytes,
          MAX_KEY_RESPONSE_BYTES,
        )
        res = decodeKeyResponse(raw)
      } catch (err) {
        lastError = err as Error
        log('key holder %s unreachable: %s', holder, lastError.message)
        continue
      }
      if (!res.ok) throw new AccessRefusedError(res.code, res.reason)
      const keys = decodeEpochKeys(await openSealed(me.sealing.secretKey, res.sealed, releaseInfo(req.bytes)))
      const released = new Map(keys.map(k => [k.epoch, k.key]))
      // epochs asked for but not released are outside the grant's data window: remembered as such for the lease
      for (const epoch of epochs) {
        this.keyCache.set(cacheKey(space, stream, form, epoch), {
          key: released.get(epoch),
          lease: res.lease,
          grant: res.grant,
        })
      }
      return
    }
    throw new Error(`no key holder of the space answered${lastError ? `: ${lastError.message}` : ''}`)
  }

  /** Decrypt the stored readings of a stream; throws AccessRefusedError when the key holder refuses. */
  async read(space: string, stream: string, since = 0, form = RAW): Promise<DecryptedReading[]> {
    const doc = this.policy.synced(space)
    const rec = doc.state.streams.get(stream)
    if (rec === undefined) throw new NotFoundError(`space ${space} has no stream ${stream}`)
    const forms: readonly string[] = rec.body.forms ?? DEFAULT_FORMS
    if (!forms.includes(form))
      throw new NotFoundError(`stream ${stream} has no form ${form} (it has ${forms.join(', ')})`)
    await this.backfill?.(space, stream, form)
    const stored = await this.storedReadings(space, stream, form)
    return this.decryptAll(space, stream, stored, since)
  }

  /** Fetches what this node missed of a stream before a read (set by the node: the fetch service). */
  backfill: ((space: string, stream: string, form: string) => Promise<void>) | undefined

  /** Decrypt readings of one stream and one form (each reading names its form). */
  async decryptAll(space: string, stream: string, stored: EncryptedReading[], since = 0): Promise<DecryptedReading[]> {
    if (stored.length === 0) return []
    const form = stored[0].form
    // the key holder reads its own data with the keys it made; everyone else asks for them
    const holder = this.policy.holds(space)
    if (!holder) {
      await this.ensureKeys(
        space,
        stream,
        form,
        stored.map(r => r.epoch),
      )
    }
    const out: DecryptedReading[] = []
    for (const r of stored) {
      let key: Uint8Array | undefined
      if (holder) {
        key = await this.existingKey(space, stream, r.form, r.epoch)
      } else {
        const cached = this.keyCache.get(cacheKey(space, stream, r.form, r.epoch))
        if (cached === undefined) throw new AccessRefusedError('no-key', 'the key was dropped while reading')
        key = cached.key
      }
      if (key === undefined) continue // outside the grant's data window
      let plain: Reading[]
      try {
        plain = decryptReadings(key, r)
      } catch (err) {
        if ((err as Error).name !== 'DecryptionError') throw err
        // not what the key holder published (a peer served something else): drop it, fetch again later
        await this.dropRecord(r)
        continue
      }
      for (const [i, p] of plain.entries()) {
        if (p.ts >= since) out.push({ ...p, seq: r.seq + i, epoch: r.epoch, form: r.form })
      }
    }
    return out
  }

  onReading(listener: ReadingListener): () => void {
    this.readingListeners.add(listener)
    return () => this.readingListeners.delete(listener)
  }
}

export function recordKey(r: { space: string; stream: string; form: string; seq: number }): string {
  return `${r.space}!${r.stream}!${r.form}!${pad(r.seq)}`
}

/** When a record arrived, for retention: `<space>!<stream>!<form>!<at>!<seq>`, then `!<n>` for a record of several readings. */
export function arrivalKey(
  r: { space: string; stream: string; form: string; seq: number; n?: number },
  at: number,
): string {
  const n = readingsIn(r)
  return `${r.space}!${r.stream}!${r.form}!${pad(at)}!${pad(r.seq)}${n === 1 ? '' : `!${n}`}`
}

function keyLocation(space: string, stream: string, form: string, epoch: number): string {
  return `${space}!${stream}!${form}!${pad(epoch)}`
}

function epochStartKey(space: string, stream: string, epoch: number): string {
  return `${space}!${stream}!start!${pad(epoch)}`
}

/** In the epochs sublevel: how many of a space's revocations a finished rotation covers. */
function rotatedKey(space: string): string {
  return `rotated!${space}`
}

/** In the epochs sublevel, then `<space>!<stream>`: the earliest end of a grant the current epoch's keys went out under. */
const GRANT_END_PREFIX = 'ends!'

/** A stream name no stream has (names never hold '~'): asking the audit index for it gives a space's revocations only. */
const NO_STREAM = '~'

function cacheKey(space: string, stream: string, form: string, epoch: number): string {
  return `${space}|${stream}|${form}|${epoch}`
}
