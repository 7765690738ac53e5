/**
 * The forms a gateway produces from a stream, at the edge, each under its own keys:
 * - `raw`: the readings, each with a random 16-byte salt;
 * - `hashed`: a salted commitment per reading, H(tag, ts, value, salt). Whoever holds the
 *   hashed form can check a claimed (ts, value, salt) against it, and learns nothing about
 *   values without the salt, which travels only inside the raw form;
 * - `aggregate:<window>`: count, min, max, mean and sum of the numeric readings per window
 *   (by reading time), e.g. `aggregate:15m`.
 * Pure: time and randomness come in as arguments.
 */
import { hash } from 'node:crypto'
import { CborWriter } from '../../crypto/cbor-writer.ts'
import { bytesEqual, encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { InvalidMessageError } from '../errors.ts'
import { valueJson } from './reading.ts'

export const RAW = 'raw'
export const HASHED = 'hashed'
export const DEFAULT_FORMS = [RAW, HASHED] as const

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** The window of an `aggregate:<n><unit>` form, in ms. */
export function aggregateWindowMs(form: string): number {
  const m = /^aggregate:([0-9]{1,6})([smhd])$/.exec(form)
  if (m === null) throw new InvalidMessageError(`not an aggregate form: ${form}`)
  const ms = Number(m[1]) * UNIT_MS[m[2]]
  if (ms < 1000) throw new InvalidMessageError('an aggregate window is at least 1s')
  return ms
}

/** Whether a form is an `aggregate:<window>` form. */
export function isAggregate(form: string): boolean {
  return form.startsWith('aggregate:')
}

const COMMITMENT_TAG = 'edgeward/hashed-reading/v1'
/** what taggedHash puts before the bytes: the tag and a zero byte */
const COMMITMENT_PREFIX = new Uint8Array([...new TextEncoder().encode(COMMITMENT_TAG), 0])
const commitmentWriter = new CborWriter()

/**
 * The commitment the hashed form carries for one reading, written into `out` at `at` (32
 * bytes): taggedHash(tag, canonical CBOR of [ts, JSON of the value, salt]). The CBOR is
 * written directly when it can be (the gateway makes one per reading), else by
 * encodeCanonical; the tests compare both. The digest comes back as a one-byte-per-char
 * string: a Buffer per digest cost more than the hash.
 */
export function commitInto(out: Uint8Array, at: number, ts: number, json: string, salt: Uint8Array): void {
  const w = commitmentWriter.reset()
  w.raw(COMMITMENT_PREFIX)
  if (!(w.head(4, 3) && w.uint(ts) && w.text(json) && w.bytes(salt))) {
    w.reset().raw(COMMITMENT_PREFIX)
    w.raw(encodeCanonical([ts, json, salt]))
  }
  const digest = hash('sha256', w.view(), 'binary')
  for (let i = 0; i < 32; i++) out[at + i] = digest.charCodeAt(i)
}

/** The commitment of a reading (see commitInto), in hex. */
export function commitReading(ts: number, value: unknown, salt: Uint8Array): string {
  const out = new Uint8Array(32)
  commitInto(out, 0, ts, valueJson(value), salt)
  return toHex(out)
}

/** Check a claimed reading (with the salt from the raw form) against a commitment. */
export function verifyCommitment(commitment: string, ts: number, value: unknown, salt: Uint8Array): boolean {
  const expected = new TextEncoder().encode(commitReading(ts, value, salt))
  return bytesEqual(expected, new TextEncoder().encode(commitment))
}

export interface WindowState {
  /** start of the open window, ms */
  start: number
  count: number
  min: number
  max: number
  sum: number
}

export interface Aggregate {
  /** start of the window (the aggregate's `ts`) */
  start: number
  windowMs: number
  count: number
  min: number
  max: number
  mean: number
  sum: number
}

function close(w: WindowState, windowMs: number): Aggregate {
  return { start: w.start, windowMs, count: w.count, min: w.min, max: w.max, sum: w.sum, mean: w.sum / w.count }
}

/**
 * Add a numeric reading to a window aggregation. Returns the new open window and the
 * windows this reading closed (a reading in a later window closes the open one). A reading
 * older than the open window is late and left out (`late: true`).
 */
export function aggregateReading(
  open: WindowState | undefined,
  windowMs: number,
  ts: number,
  value: number,
): { open: WindowState; closed: Aggregate[]; late: boolean } {
  const start = Math.floor(ts / windowMs) * windowMs
  if (open !== undefined && start < open.start) return { open, closed: [], late: true }
  if (open !== undefined && start === open.start) {
    return {
      open: {
        start,
        count: open.count + 1,
        min: Math.min(open.min, value),
        max: Math.max(open.max, value),
        sum: open.sum + value,
      },
      closed: [],
      late: false,
    }
  }
  return {
    open: { start, count: 1, min: value, max: value, sum: value },
    closed: open === undefined ? [] : [close(open, windowMs)],
    late: false,
  }
}

/** Close the open window if `now` is past its end plus `graceMs` (no later reading came). */
export function closeIfDue(
  open: WindowState | undefined,
  windowMs: number,
  now: number,
  graceMs: number,
): { open: WindowState | undefined; closed: Aggregate[] } {
  if (open === undefined || now < open.start + windowMs + graceMs) return { open, closed: [] }
  return { open: undefined, closed: [close(open, windowMs)] }
}

/** The value an aggregate reading carries. */
export function aggregateValue(a: Aggregate): Record<string, number> {
  return { count: a.count, min: a.min, max: a.max, mean: a.mean, sum: a.sum, windowMs: a.windowMs }
}
