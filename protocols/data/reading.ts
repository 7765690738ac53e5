/**
 * Encrypted readings of a stream, as they cross the network and sit in every peer's store.
 *
 * A reading's plaintext `{ ts, value }` is encrypted with the data key of its
 * (stream, epoch, form) under AES-256-GCM; the associated data binds space, stream, epoch,
 * sequence number and form, so a ciphertext moved to another place, epoch or position
 * fails to decrypt. Only the coordinates are in the clear, never the time or the value.
 */
import { aeadDecrypt, aeadEncrypt } from '../../crypto/aead.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { InvalidMessageError } from '../errors.ts'
import { FORM_PATTERN } from '../policy/records.ts'
import { asMap, bytes, ID_PATTERN, int, NAME_PATTERN, str } from '../validate.ts'

export const MAX_READING_BYTES = 64 * 1024
/** the bytes one reading may carry (a chunk of a file or a message) */
export const MAX_READING_PAYLOAD = 48 * 1024
/** a reading's value, as JSON text, at most this long */
export const MAX_VALUE_JSON = 16 * 1024

export interface Reading {
  /** time of the measurement, ms since epoch */
  ts: number
  value: unknown
  /** the raw form's salt of the reading's commitment in the hashed form */
  salt?: Uint8Array
  /** opaque bytes: a chunk of a shared file or message (objects are streams of chunks) */
  bytes?: Uint8Array
}

export interface EncryptedReading {
  space: string
  stream: string
  form: string
  epoch: number
  seq: number
  ct: Uint8Array
}

function aad(r: Omit<EncryptedReading, 'ct'>): Uint8Array {
  return encodeCanonical(['edgeward/reading/v1', r.space, r.stream, r.epoch, r.seq, r.form])
}

export function encryptReading(
  key: Uint8Array,
  coords: Omit<EncryptedReading, 'ct'>,
  reading: Reading,
): EncryptedReading {
  const plaintext = encodeCanonical({
    ts: reading.ts,
    value: JSON.stringify(reading.value),
    ...(reading.salt === undefined ? {} : { salt: reading.salt }),
    ...(reading.bytes === undefined ? {} : { bytes: reading.bytes }),
  })
  return { ...coords, ct: aeadEncrypt(key, plaintext, aad(coords)) }
}

/** Throws DecryptionError when the key is wrong or anything was changed. */
export function decryptReading(key: Uint8Array, r: EncryptedReading): Reading {
  const plaintext = aeadDecrypt(key, r.ct, aad(r))
  const m = asMap(decodeCanonical(plaintext, MAX_READING_BYTES), 'reading', ['ts', 'value', 'salt', 'bytes'])
  const out: Reading = { ts: int(m, 'ts'), value: JSON.parse(str(m, 'value', MAX_VALUE_JSON)) }
  if (m.salt !== undefined) out.salt = bytes(m, 'salt', 16, 16)
  if (m.bytes !== undefined) out.bytes = bytes(m, 'bytes', 0, MAX_READING_PAYLOAD)
  return out
}

export function encodeEncryptedReading(r: EncryptedReading): Uint8Array {
  return encodeCanonical({ space: r.space, stream: r.stream, form: r.form, epoch: r.epoch, seq: r.seq, ct: r.ct })
}

export function decodeEncryptedReading(data: Uint8Array): EncryptedReading {
  const m = asMap(decodeCanonical(data, MAX_READING_BYTES), 'encrypted reading', [
    'space',
    'stream',
    'form',
    'epoch',
    'seq',
    'ct',
  ])
  return {
    space: str(m, 'space', 64, ID_PATTERN),
    stream: str(m, 'stream', 64, NAME_PATTERN),
    form: str(m, 'form', 32, FORM_PATTERN),
    epoch: int(m, 'epoch'),
    seq: int(m, 'seq'),
    ct: bytes(m, 'ct', 28, MAX_READING_BYTES),
  }
}

/** Check a reading's user-supplied value before encrypting it. */
export function validateReadingInput(input: unknown): Reading {
  if (input == null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidMessageError('a reading is a JSON object {"ts": <ms>, "value": <number or object>}')
  }
  const m = input as Record<string, unknown>
  for (const k of Object.keys(m)) if (k !== 'ts' && k !== 'value') throw new InvalidMessageError(`unknown field ${k}`)
  const ts = m.ts
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
    throw new InvalidMessageError('ts must be a non-negative integer (ms since epoch)')
  }
  const value = m.value
  const isNumber = typeof value === 'number' && Number.isFinite(value)
  const isObject = value != null && typeof value === 'object' && !Array.isArray(value)
  if (!isNumber && !isObject) throw new InvalidMessageError('value must be a number or an object')
  if (JSON.stringify(value).length > MAX_VALUE_JSON) throw new InvalidMessageError('value is too large')
  return { ts, value }
}

/** A gossip message carries the readings of one publish call, of one space, up to this many. */
export const MAX_READINGS_PER_MESSAGE = 256
export const MAX_READINGS_MESSAGE_BYTES = 1024 * 1024 - 1024

/** Encode readings as one gossip message (the caller keeps it under MAX_READINGS_MESSAGE_BYTES). */
export function encodeReadingsMessage(records: Uint8Array[]): Uint8Array {
  return encodeCanonical({ readings: records })
}

/** Decode a gossip message of readings: each one decoded and checked, all of one space. */
export function decodeReadingsMessage(data: Uint8Array): { records: EncryptedReading[]; bytes: Uint8Array[] } {
  const m = asMap(decodeCanonical(data, MAX_READINGS_MESSAGE_BYTES), 'readings message', ['readings'])
  const raw = m.readings
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_READINGS_PER_MESSAGE) {
    throw new InvalidMessageError(`a readings message carries 1..${MAX_READINGS_PER_MESSAGE} readings`)
  }
  const bytesList = raw.map(b => {
    if (!(b instanceof Uint8Array)) throw new InvalidMessageError('a reading is bytes')
    return b
  })
  const records = bytesList.map(decodeEncryptedReading)
  if (records.some(r => r.space !== records[0].space))
    throw new InvalidMessageError('readings of several spaces in one message')
  return { records, bytes: bytesList }
}
