/**
 * Small shape checks shared by every decoder in protocols/: each throws
 * InvalidMessageError naming the field, so one decoder per message stays short.
 */
import { decodeCanonical } from '../crypto/encoding.ts'
import { isDid } from '../crypto/identity.ts'
import { InvalidMessageError } from './errors.ts'

export type Fields = Record<string, unknown>

export function asMap(value: unknown, what: string, allowed: readonly string[]): Fields {
  if (value == null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new InvalidMessageError(`${what} must be a map`)
  }
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw new InvalidMessageError(`${what} has unknown field ${k}`)
  }
  return value as Fields
}

export function str(m: Fields, key: string, max = 256, pattern?: RegExp): string {
  const v = m[key]
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new InvalidMessageError(`${key} must be a non-empty string of at most ${max} characters`)
  }
  if (pattern !== undefined && !pattern.test(v)) throw new InvalidMessageError(`${key} is malformed`)
  return v
}

export function optStr(m: Fields, key: string, max = 256, pattern?: RegExp): string | undefined {
  return m[key] === undefined ? undefined : str(m, key, max, pattern)
}

export function int(m: Fields, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = m[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidMessageError(`${key} must be an integer in [${min}, ${max}]`)
  }
  return v
}

export function optInt(m: Fields, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return m[key] === undefined ? undefined : int(m, key, min, max)
}

export function bytes(m: Fields, key: string, minLen: number, maxLen: number): Uint8Array {
  const v = m[key]
  if (!(v instanceof Uint8Array) || v.byteLength < minLen || v.byteLength > maxLen) {
    throw new InvalidMessageError(`${key} must be ${minLen}..${maxLen} bytes`)
  }
  return v
}

export function did(m: Fields, key: string): string {
  const v = str(m, key, 128)
  if (!isDid(v)) throw new InvalidMessageError(`${key} is not a did:key`)
  return v
}

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
