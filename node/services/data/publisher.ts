/**
 * The key holder's publishing: readings in, encrypted records stored and gossiped out.
 *
 * Guarantees: readings are encrypted at the edge into every form the stream has (raw; hashed:
 * a salted commitment per reading, the salt only in raw; aggregate:<window>: per window of
 * reading time), each form under its own per-epoch keys; the records, and the stream's epoch
 * state, are stored in one synced batch before publish returns, then gossiped in the order
 * they were stored. An epoch ends at its length, or at the first reading after the end of a
 * grant its keys went out under. Aggregate windows whose time is up close even if no later
 * reading comes (`closeDueWindows`, every second). A producer faster than gossip waits for
 * it once more than MAX_OUTBOX_BYTES of a space are waiting.
 *
 * Assumes: this node is a key holder of the space, or a member granted `contribute` publishing
 * a file or message of its own (whose keys it deals to the space's custodians); the work on one
 * stream is serialised (StreamQueue) with rotation.
 *
 * Refuses: UsageError to publish where this node is not a key holder, to a stream that is
 * closed (an object after its manifest), or to create a stream that exists. A reading older
 * than an aggregate form's open window is left out of that form and counted.
 */
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
} from '../../../protocols/data/forms.ts'
import { type EncryptedReading, type Reading, readingCount, valueJson } from '../../../protocols/data/reading.ts'
import { createStream, type ObjectMedia } from '../../../protocols/policy/records.ts'
import { isMemberStreamName } from '../../../protocols/policy/state.ts'
import { UsageError } from '../../errors.ts'
import type { Identity } from '../../identity.ts'
import type { Metrics } from '../../metrics.ts'
import { DURABLE, type Store } from '../../store.ts'
import type { PolicyService } from '../policy.ts'
import type { EpochKeys, EpochState } from './epoch-keys.ts'
import type { Outbox } from './outbox.ts'
import type { RecordStore } from './record-store.ts'
import type { StreamQueue } from './stream-queue.ts'
import { openWriter, type Writer } from './writer.ts'

/** stored records waiting to be gossiped, per space, past which a publish waits for them to go */
const MAX_OUTBOX_BYTES = 4 * 1024 * 1024

/** What publishing uses: batches of the store, the principal (to define streams), the metrics and the clock. */
export interface PublisherComponents {
  store: Pick<Store, 'db'>
  identity: Pick<Identity, 'principal' | 'peerId'>
  metrics: Metrics
  now: () => number
}

/** The parts and services publishing works with, and who is told of each record stored. */
export interface PublisherParts {
  policy: Pick<PolicyService, 'spaces' | 'holds' | 'makesKeys' | 'document' | 'write'>
  epochKeys: EpochKeys
  records: RecordStore
  queue: StreamQueue
  outbox: Outbox
  /** told of every record stored, once durable */
  stored: (r: EncryptedReading) => void
}

/** Encrypts, stores and gossips a key holder's readings. */
export class Publisher {
  private readonly c: PublisherComponents
  private readonly p: PublisherParts
  private readonly epochMs: number

  /** `epochMs`: the epoch length of new streams (default 1 h) */
  constructor(components: PublisherComponents, parts: PublisherParts, opts: { epochMs?: number } = {}) {
    this.c = components
    this.p = parts
    this.epochMs = opts.epochMs ?? 60 * 60 * 1000
    components.metrics.describe('edgeward_readings_stored_total', 'encrypted readings stored, by source')
  }

  /** Define a stream: its epoch length and the forms the gateway produces (default raw and hashed). */
  async createStream(
    space: string,
    stream: string,
    opts: { epochMs?: number; forms?: string[]; media?: ObjectMedia } = {},
  ): Promise<void> {
    const { policy } = this.p
    const problem = this.publishProblem(space, stream)
    if (problem !== undefined) throw new UsageError(problem)
    if (policy.document(space).state.streams.has(stream)) throw new UsageError(`stream ${stream} exists already`)
    const forms = opts.forms === undefined ? undefined : [...new Set([RAW, ...opts.forms])]
    const rec = createStream(
      this.c.identity.principal,
      space,
      stream,
      opts.epochMs ?? this.epochMs,
      this.c.now(),
      forms,
      opts.media,
      // a member's object names the device that publishes it: the only peer whose gossip of it counts
      policy.holds(space) ? undefined : this.c.identity.peerId,
    )
    await policy.write(space, [{ kind: 'stream', record: rec }])
  }

  /**
   * Encrypt and store durably, then return the sequence numbers assigned (of the raw form);
   * the records are gossiped right after, in the order they were stored.
   * `last`: the stream takes nothing more after these (an object's manifest): it is marked
   * closed in the same durable batch, later publishes are refused, and revocations no longer
   * rotate its key (there is nothing left to protect from a revoked reader).
   */
  async publish(space: string, stream: string, readings: Reading[], opts: { last?: boolean } = {}): Promise<number[]> {
    const { policy } = this.p
    const problem = this.publishProblem(space, stream)
    if (problem !== undefined) throw new UsageError(problem)
    if (!policy.document(space).state.streams.has(stream)) await this.createStream(space, stream)
    return this.p.queue.run(space, stream, () => this.publishNow(space, stream, readings, opts.last === true))
  }

  /**
   * Why this node may not publish `stream` (undefined when it may): a key holder publishes any
   * stream of its space; a member granted `contribute`, files, messages and `m-…` streams of its own.
   */
  private publishProblem(space: string, stream: string): string | undefined {
    const { policy } = this.p
    if (policy.holds(space)) return undefined
    const state = policy.document(space).state
    const me = this.c.identity.principal.did
    if (!isMemberStreamName(stream) || !state.isContributor(me))
      return `this node is not a key holder of space ${space}`
    if (!state.contributesAt(me, this.c.now())) {
      return `your grant to share into space ${space} is not in force`
    }
    if (state.custodianSet === undefined) {
      return `space ${space} has no custodians: a member shares files and messages only into a space that has`
    }
    const existing = state.streams.get(stream)
    if (existing !== undefined && existing.body.peer !== this.c.identity.peerId) {
      return `stream ${stream} is not published from this device`
    }
    return undefined
  }

  private async publishNow(space: string, stream: string, readings: Reading[], last: boolean): Promise<number[]> {
    const record = this.p.policy.document(space).state.streams.get(stream)!.body
    const forms: readonly string[] = record.forms ?? DEFAULT_FORMS
    const st = await this.p.epochKeys.state(space, stream)
    if (st.closed === true) throw new UsageError(`stream ${stream} is closed: it takes no more readings`)
    if (last) st.closed = true
    const hashed = forms.includes(HASHED)
    const w = this.writer(space, stream, st, hashed ? { expected: readings.length } : undefined)
    const seqs: number[] = []
    const aggregates = forms.filter(isAggregate).map(form => ({ form, windowMs: aggregateWindowMs(form) }))
    const commitment = new Uint8Array(32)
    const end = this.p.epochKeys.grantEnd(space, stream)
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

  /** Close aggregate windows whose time is up although no later reading came (runs every second). */
  async closeDueWindows(): Promise<void> {
    const { policy, epochKeys } = this.p
    for (const space of policy.spaces()) {
      for (const [stream, rec] of policy.document(space).state.streams) {
        if (!policy.makesKeys(space, stream)) continue
        const forms = (rec.body.forms ?? []).filter(isAggregate)
        if (forms.length === 0) continue
        await this.p.queue.run(space, stream, async () => {
          const w = this.writer(space, stream, await epochKeys.state(space, stream))
          const end = epochKeys.grantEnd(space, stream)
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

  private writer(space: string, stream: string, st: EpochState, salted?: { expected: number }): Writer {
    const { epochKeys, records } = this.p
    return openWriter(
      {
        space,
        stream,
        keyOf: (form, epoch) => epochKeys.holderKey(space, stream, form, epoch),
        addRecord: (batch, r, bytes) => records.add(batch, r, bytes),
      },
      st,
      salted,
    )
  }

  /** Seal what is open, store the batch and the epoch state durably, then gossip what was stored. */
  private async commit(space: string, stream: string, w: Writer): Promise<void> {
    const batch = this.c.store.db.batch()
    const out = await w.seal(batch)
    const kept = this.p.epochKeys.putState(batch, space, stream, w.st)
    await batch.write(DURABLE)
    kept()
    this.c.metrics.inc('edgeward_readings_stored_total', { source: 'local' }, readingCount(out.map(o => o.r)))
    for (const { r } of out) this.p.stored(r)
    const sent = this.p.outbox.send(
      space,
      out.map(o => o.bytes),
    )
    // a producer faster than gossip waits for it, so that the outbox stays small
    if (this.p.outbox.bytes(space) > MAX_OUTBOX_BYTES) await sent
  }
}
