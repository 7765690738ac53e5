/**
 * Small shape checks shared by every decoder in protocols/: each throws
 * InvalidMessageError naming the field, so one decoder per message stays short.
 */
import { decodeCanonical } from '../crypto/encoding.ts'
import { isDid } from '../crypto/identity.ts'
import { InvalidMessageError } from './errors.ts'

export type Fields = Record<string, unknown>

/** A decoded value as a map with no field outside `allowed`; InvalidMessageError otherwise. */
export function asMap(value: unknown, what: string, allowed: readonly string[]): Fields {
  if (value == null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new InvalidMessageError(`${what} must be a map`)
  }
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw new InvalidMessageError(`${what} has unknown field ${k}`)
  }
  return value as Fields
}

/** Field `key` as a non-empty string of at most `max` characters matching `pattern`; InvalidMessageError otherwise. */
export function str(m: Fields, key: string, max = 256, pattern?: RegExp): string {
  const v = m[key]
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new InvalidMessageError(`${key} must be a non-empty string of at most ${max} characters`)
  }
  if (pattern !== undefined && !pattern.test(v)) throw new InvalidMessageError(`${key} is malformed`)
  return v
}

/** Field `key` as str() checks it, or undefined when absent. */
export function optStr(m: Fields, key: string, max = 256, pattern?: RegExp): string | undefined {
  return m[key] === undefined ? undefined : str(m, key, max, pattern)
}

/** Field `key` as a safe integer in [min, max]; InvalidMessageError otherwise. */
export function int(m: Fields, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = m[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidMessageError(`${key} must be an integer in [${min}, ${max}]`)
  }
  return v
}

/** Field `key` as int() checks it, or undefined when absent. */
export function optInt(m: Fields, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return m[key] === undefined ? undefined : int(m, key, min, max)
}

/**
 * The latest time a record may carry: the end of year 9999 UTC. Every time up to it is a
 * JavaScript Date (whose range ends at 8.64e15 ms) and prints as a four-digit-year ISO 8601
 * date, so a record that passes can be shown and compared by every peer; a later one could
 * be signed and replicated but not displayed ("Invalid time value") anywhere.
 */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** A time in ms since the epoch, from 1970 to the end of year 9999 (MAX_TIME_MS). */
export function time(m: Fields, key: string): number {
  const v = m[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_TIME_MS) {
    throw new InvalidMessageError(`${key} must be a time in ms since the epoch, from 1970 to the end of year 9999`)
  }
  return v
}

/** Field `key` as a time (see time), or undefined when absent. */
export function optTime(m: Fields, key: string): number | undefined {
  return m[key] === undefined ? undefined : time(m, key)
}

/**
 * A window of two times `[from, until)` that ends after it starts; either end may be
 * optional (`required: false`), and then only the ends that are present are compared.
 */
export function timeWindow(
  m: Fields,
  from: string,
  until: string,
  what: string,
  required = true,
): { from: number | undefined; until: number | undefined } {
  const f = required ? time(m, from) : optTime(m, from)
  const u = required ? time(m, until) : optTime(m, until)
  if (f !== undefined && u !== undefined && u <= f) throw new InvalidMessageError(`${what} must end after it starts`)
  return { from: f, until: u }
}

/** Text shown to people (names, reasons, purposes): no control characters or line separators, which would break a listing's lines. */
export const TEXT_PATTERN = /^[^\p{Cc}\p{Zl}\p{Zp}]*$/u

/** Field `key` as a byte string of minLen..maxLen bytes; InvalidMessageError otherwise. */
export function bytes(m: Fields, key: string, minLen: number, maxLen: number): Uint8Array {
  const v = m[key]
  if (!(v instanceof Uint8Array) || v.byteLength < minLen || v.byteLength > maxLen) {
    throw new InvalidMessageError(`${key} must be ${minLen}..${maxLen} bytes`)
  }
  return v
}

/** Field `key` as a did:key; InvalidMessageError otherwise. */
export function did(m: Fields, key: string): string {
  const v = str(m, key, 128)
  if (!isDid(v)) throw new InvalidMessageError(`${key} is not a did:key`)
  return v
}

/** Field `key` as a list of at most `maxItems`, each checked by `item`; InvalidMessageError otherwise. */
export function list<T>(m: Fields, key: string, maxItems: number, item: (v: unknown, i: number) => T): T[] {
  const v = m[key]
  if (!Array.isArray(v) || v.length > maxItems) {
    throw new InvalidMessageError(`${key} must be a list of at most ${maxItems} items`)
  }
  return v.map(item)
}

/** Names of spaces' streams: short, printable, usable in storage keys. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** Hex ids: record ids, space ids (SHA-256). */
export const ID_PATTERN = /^[0-9a-f]{64}$/
/** libp2p peer ids as base58btc strings. */
export const PEER_ID_PATTERN = /^[1-9A-HJ-NP-Za-km-z]{40,64}$/

/** Decode a canonical CBOR map with a size limit and a closed set of fields. */
export function decodeCanonicalMap(
  data: Uint8Array,
  maxBytes: number,
  what: string,
  allowed: readonly string[],
): Fields {
  return asMap(decodeCanonical(data, maxBytes), what, allowed)
}
