/**
 * Canonical bytes for everything that is signed or hashed: deterministic CBOR
 * (RFC 8949 §4.2.1 core deterministic encoding, via cborg).
 *
 * Guarantees: `encodeCanonical` gives one byte string per value; `decodeCanonical`
 * refuses input over its size limit before parsing, and refuses any input that is not
 * itself canonical (duplicate keys, indefinite lengths, undefined, non-minimal forms),
 * so a signature over decoded-then-re-encoded bytes always covers what was received.
 */
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { InvalidEncodingError } from './errors.ts'

function refuse(what: string): never {
  throw new InvalidEncodingError(`cannot encode ${what} canonically`)
}

/** What decodeCanonical refuses, encodeCanonical refuses too: nothing we sign is unreadable. */
const ENCODE_OPTIONS = {
  ...rfc8949EncodeOptions,
  typeEncoders: {
    undefined: () => refuse('undefined'),
    number: (n: number) => (Number.isFinite(n) ? null : refuse(String(n))),
    Map: () => refuse('a Map (use a plain object)'),
    bigint: () => refuse('a bigint'),
  },
}

/** The deterministic CBOR of `value`; InvalidEncodingError for what has no canonical form (undefined, NaN, Map, bigint). */
export function encodeCanonical(value: unknown): Uint8Array {
  const out = encode(value, ENCODE_OPTIONS)
  // cborg may hand back a Buffer, whose slice() shares memory; give callers a plain view
  return out.constructor === Uint8Array ? out : new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Decode CBOR of at most `maxBytes` that is itself canonical; InvalidEncodingError for anything else. */
export function decodeCanonical(bytes: Uint8Array, maxBytes: number): unknown {
  if (!(bytes instanceof Uint8Array)) throw new InvalidEncodingError('expected bytes')
  if (bytes.byteLength > maxBytes) {
    throw new InvalidEncodingError(`message of ${bytes.byteLength} bytes exceeds limit of ${maxBytes}`)
  }
  let value: unknown
  try {
    value = decode(bytes, {
      strict: true,
      rejectDuplicateMapKeys: true,
      allowUndefined: false,
      allowIndefinite: false,
      allowInfinity: false,
      allowNaN: false,
      allowBigInt: false,
      useMaps: false,
    })
  } catch (err) {
    throw new InvalidEncodingError(`not valid CBOR: ${(err as Error).message}`)
  }
  let again: Uint8Array
  try {
    again = encodeCanonical(value)
  } catch (err) {
    // nesting that cborg decodes but cannot encode again within the stack (RangeError)
    throw new InvalidEncodingError(`CBOR cannot be checked for canonical form: ${(err as Error).message}`)
  }
  if (!bytesEqual(again, bytes)) {
    throw new InvalidEncodingError('CBOR is not in canonical form')
  }
  return value
}

/** Byte equality for non-secret data (use `constantTimeEqual` for secrets and MACs). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** The bytes of lowercase hex; InvalidEncodingError for anything else. */
export function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new InvalidEncodingError('not lowercase hex')
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** Unpadded base64url of `bytes`. */
export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/** The bytes of unpadded, canonical base64url; InvalidEncodingError for anything else. */
export function fromBase64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new InvalidEncodingError('not base64url')
  const out = new Uint8Array(Buffer.from(text, 'base64url'))
  // one string per byte string: refuse encodings with non-zero unused bits
  if (toBase64url(out) !== text) throw new InvalidEncodingError('not canonical base64url')
  return out
}
