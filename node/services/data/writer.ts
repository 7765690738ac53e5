/**
 * The records of one publish call (or one closing of aggregate windows) being made.
 *
 * Guarantees: the next reading of a form is numbered in sequence and gathered with the
 * form's readings before it into one record (up to MAX_READINGS_PER_RECORD, and
 * MAX_RECORD_PLAINTEXT bytes); a record is closed when it is full or the epoch changes, and
 * every record is encrypted under its epoch's key of its form when the caller seals. Nothing
 * here waits until then, so a reading costs no promise. With `salted`, the raw form's
 * readings get salts (the stream has a hashed form), about `expected` of them in all.
 *
 * Assumes: the caller runs one writer per stream at a time (StreamQueue) and keeps the
 * epoch state `st` only once the sealed batch is durable.
 */
import { randomBytes } from '../../../crypto/hash.ts'
import { RAW } from '../../../protocols/data/forms.ts'
import {
  type EncryptedReading,
  encodeEncryptedReading,
  RecordBuilder,
  readingBound,
  SEED_BYTES,
  sealRecord,
} from '../../../protocols/data/reading.ts'
import type { Store } from '../../store.ts'
import type { EpochState } from './epoch-keys.ts'

type Batch = ReturnType<Store['db']['batch']>

/** Gathers readings into records of a stream, then encrypts them into a batch. */
export interface Writer {
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
  /** encrypt every record gathered, in order, into `batch` (an epoch's key is made on first use) */
  seal(batch: Batch): Promise<{ r: EncryptedReading; bytes: Uint8Array }[]>
}

/** Where a writer's records go: the data key of each (form, epoch), and the batch of stored records. */
export interface WriterTarget {
  space: string
  stream: string
  /** the data key of an epoch of a form, made on first use */
  keyOf(form: string, epoch: number): Promise<Uint8Array>
  /** add an encrypted record to a batch */
  addRecord(batch: Batch, r: EncryptedReading, bytes: Uint8Array): void
}

/** A writer for one stream from its epoch state `initial`. */
export function openWriter(target: WriterTarget, initial: EpochState, salted?: { expected: number }): Writer {
  const { space, stream } = target
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
    seal: async batch => {
      for (const [form, b] of open) close(form, b)
      const out: { r: EncryptedReading; bytes: Uint8Array }[] = []
      const keys = new Map<string, Uint8Array>()
      for (const { form, epoch, b } of closed) {
        const at = `${form}!${epoch}`
        let key = keys.get(at)
        if (key === undefined) {
          key = await target.keyOf(form, epoch)
          keys.set(at, key)
        }
        const r = sealRecord(key, { space, stream, form, epoch }, b)
        const bytes = encodeEncryptedReading(r)
        target.addRecord(batch, r, bytes)
        out.push({ r, bytes })
      }
      return out
    },
  }
  return w
}
