/**
 * Encrypted readings of a stream, as they cross the network and sit in every peer's store.
 *
 * A record holds `n` consecutive readings of one (stream, epoch, form), sequence numbers
 * `seq` to `seq + n - 1` (n is 1 unless written, at most MAX_READINGS_PER_RECORD): their
 * times, values, commitments (hashed form), bytes (objects) and the seed of their salts (raw
 * form), as columns (see RecordBuilder), are encrypted together with the data key of the
 * (stream, epoch, form) under AES-256-GCM. Columns keep a record small: a time costs its
 * difference from the one before, a commitment its bytes, a salt nothing (it comes from the
 * record's seed), with no field names per reading.
 * Records written before columns (a map per reading) still decrypt. The associated data binds space,
 * stream, epoch, first sequence number, count and form, so a ciphertext moved to another
 * place, epoch or position, or cut short, fails to decrypt. Only the coordinates are in the
 * clear, never the times or the values. A gateway seals the readings of one publish call
 * into as few records as fit, so the per-record costs (an AEAD call, a store write, the
 * coordinates on the wire) are paid once for many readings.
 */
import { hash } from 'node:crypto'
import { aeadDecrypt, aeadEncrypt } from '../../crypto/aead.ts'
import { CborReader } from '../../crypto/cbor-reader.ts'
import { CborWriter } from '../../crypto/cbor-writer.ts'
import { decodeCanonical, encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { InvalidEncodingError } from '../../crypto/errors.ts'
import { InvalidMessageError } from '../errors.ts'
import { FORM_PATTERN } from '../policy/records.ts'
import { asMap, bytes, ID_PATTERN, int, NAME_PATTERN, str } from '../validate.ts'

/** RecordBuilder.write takes a CborWriter: re-exported for callers that write a record's plaintext themselves. */
export { CborWriter }

export const MAX_READING_BYTES = 64 * 1024
/** the bytes one reading may carry (a chunk of a file or a message) */
export const MAX_READING_PAYLOAD = 48 * 1024
/** a reading's value, as JSON text, at most this long */
export const MAX_VALUE_JSON = 16 * 1024

export interface Reading {
  /** time of the measurement, ms since epoch */
  ts: number
  value: unknown
  /** decrypted, in the raw form: the salt of the reading's commitment in the hashed form (from the record's seed) */
  salt?: Uint8Array
  /** opaque bytes: a chunk of a shared file or message (objects are streams of chunks) */
  bytes?: Uint8Array
  /**
   * the hashed form, when encrypting: the reading's 32-byte commitment (its value is then
   * ignored; decrypted, the value is `{ commitment: <hex> }`)
   */
  commitment?: Uint8Array
}

/** the most readings one record holds */
export const MAX_READINGS_PER_RECORD = 256

export interface EncryptedReading {
  space: string
  stream: string
  form: string
  epoch: number
  /** the sequence number of the record's first reading */
  seq: number
  /** how many readings the record holds (absent: 1) */
  n?: number
  ct: Uint8Array
}

/** How many readings a record holds. */
export function readingsIn(r: { n?: number }): number {
  return r.n ?? 1
}

/** The sum of readingsIn over records. */
export function readingCount(records: readonly { n?: number }[]): number {
  let total = 0
  for (const r of records) total += readingsIn(r)
  return total
}

function aad(r: Omit<EncryptedReading, 'ct'>): Uint8Array {
  const w = aadWriter.reset()
  const n = readingsIn(r)
  // a single reading keeps the layout it always had; a record of several binds the count too
  if (
    n === 1
      ? w.head(4, 6) &&
        w.text('edgeward/reading/v1') &&
        w.text(r.space) &&
        w.text(r.stream) &&
        w.uint(r.epoch) &&
        w.uint(r.seq) &&
        w.text(r.form)
      : w.head(4, 7) &&
        w.text('edgeward/readings/v1') &&
        w.text(r.space) &&
        w.text(r.stream) &&
        w.uint(r.epoch) &&
        w.uint(r.seq) &&
        w.uint(n) &&
        w.text(r.form)
  )
    return w.view()
  return encodeCanonical(
    n === 1
      ? ['edgeward/reading/v1', r.space, r.stream, r.epoch, r.seq, r.form]
      : ['edgeward/readings/v1', r.space, r.stream, r.epoch, r.seq, n, r.form],
  )
}

const utf8 = new TextEncoder()
const writer = new CborWriter()
function cbor(): CborWriter {
  return writer.reset()
}
/** writers whose bytes are used at once (by the AEAD) and never kept: they are not copied out */
const aadWriter = new CborWriter()
const plaintextWriter = new CborWriter()

const SALT_BYTES = 16
/** a salted record's seed, from which its readings' salts come */
export const SEED_BYTES = 32
const COMMITMENT_BYTES = 32
const SALTS_TAG = utf8.encode('edgeward/reading-salts/v1\0')

/** A reading's value as the JSON text a record carries; InvalidEncodingError for what JSON cannot hold (undefined). */
export function valueJson(value: unknown): string {
  const json = JSON.stringify(value)
  if (typeof json !== 'string')
    throw new InvalidEncodingError(`cannot encode a reading's value of type ${typeof value}`)
  return json
}

/** An upper bound of the bytes a reading adds to a record's plaintext (time, value or commitment, bytes). */
export function readingBound(json: string, bytes?: Uint8Array): number {
  return 9 + 5 + 3 * json.length + COMMITMENT_BYTES + (bytes === undefined ? 1 : 5 + bytes.byteLength)
}

/** A record's plaintext may come this close to MAX_READING_BYTES (the coordinates, tag and nonce take the rest). */
export const MAX_RECORD_PLAINTEXT = MAX_READING_BYTES - 1024

/**
 * The salts of a record's first `n` readings, 16 bytes each: the output of SHAKE256 (FIPS
 * 202) over a tag and the record's random 32-byte seed. A record carries its seed, not n
 * salts; a salt shown to someone (to check one reading against its commitment) says nothing
 * of the seed or of the other salts. The output for a larger n starts with that for a smaller.
 */
export function deriveSalts(seed: Uint8Array, n: number): Uint8Array {
  if (seed.byteLength !== SEED_BYTES) throw new RangeError(`a salt seed is ${SEED_BYTES} bytes`)
  const input = new Uint8Array(SALTS_TAG.byteLength + SEED_BYTES)
  input.set(SALTS_TAG)
  input.set(seed, SALTS_TAG.byteLength)
  const out = hash('shake256', input, { outputEncoding: 'buffer', outputLength: SALT_BYTES * n })
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * The readings of one record being gathered, column by column: what a gateway fills a
 * reading at a time and seals once (sealRecord). A record holds either values (`add`) or,
 * in the hashed form, commitments (`addCommitment`); a record made with a seed gives each
 * of its readings a salt (deriveSalts). A reading that breaks the record's shape is a
 * caller's error (RangeError). The plaintext, canonical CBOR with its keys in canonical
 * order, is `{ b?: [bytes | null, ...], c?: commitments, s?: seed, t: [time deltas], v?: [JSON, ...] }`:
 * times as the first reading's time, then each one's difference from the one before
 * (negative when readings come out of order); commitments concatenated, 32 bytes each; a
 * reading's value in the hashed form is `{ commitment: <hex> }`.
 */
export class RecordBuilder {
  /** the sequence number of the record's first reading */
  readonly seq: number
  private readonly ts: number[] = []
  private readonly values: string[] = []
  private readonly seed: Uint8Array | undefined
  private salts: Uint8Array | undefined
  private commitments: Uint8Array | undefined
  private chunks: (Uint8Array | null)[] | undefined
  private bound = 8 + SEED_BYTES

  /**
   * `seed`: the salted record's 32 random bytes; `expected`: how many readings it will
   * likely hold, the salts derived at first (more are derived when needed).
   */
  constructor(seq: number, seed?: Uint8Array, expected = MAX_READINGS_PER_RECORD) {
    this.seq = seq
    if (seed !== undefined) {
      this.seed = seed
      this.salts = deriveSalts(seed, Math.max(1, Math.min(expected, MAX_READINGS_PER_RECORD)))
    }
  }

  get count(): number {
    return this.ts.length
  }

  /** Whether one more reading of `bound` bytes at most (readingBound) keeps the record within its limits. */
  fits(bound: number): boolean {
    return this.ts.length < MAX_READINGS_PER_RECORD && this.bound + bound <= MAX_RECORD_PLAINTEXT
  }

  /** Add a reading: its time, its value's JSON (valueJson), and its bytes if it has them. Returns its index in the record. */
  add(ts: number, json: string, bytes?: Uint8Array): number {
    const i = this.time(ts, false)
    if (bytes !== undefined) {
      if (bytes.byteLength > MAX_READING_PAYLOAD)
        throw new RangeError(`a reading carries at most ${MAX_READING_PAYLOAD} bytes`)
      if (this.chunks === undefined) this.chunks = new Array<Uint8Array | null>(i).fill(null)
      this.chunks.push(bytes)
    } else this.chunks?.push(null)
    this.values.push(json)
    this.bound += readingBound(json, bytes)
    return i
  }

  /** The salt of the reading at index `i` of a salted record (a view, valid while the builder lives). */
  salt(i: number): Uint8Array {
    if (this.seed === undefined || i >= this.ts.length) throw new RangeError('no such salted reading')
    if (SALT_BYTES * (i + 1) > this.salts!.byteLength) {
      this.salts = deriveSalts(
        this.seed,
        Math.min(MAX_READINGS_PER_RECORD, Math.max(i + 1, 2 * (this.salts!.byteLength / SALT_BYTES))),
      )
    }
    return this.salts!.subarray(SALT_BYTES * i, SALT_BYTES * (i + 1))
  }

  /** Add a reading of the hashed form: its time and its 32-byte commitment (copied). */
  addCommitment(ts: number, commitment: Uint8Array): void {
    if (commitment.byteLength !== COMMITMENT_BYTES) throw new RangeError(`a commitment is ${COMMITMENT_BYTES} bytes`)
    if (this.seed !== undefined) throw new RangeError('a commitment has no salt: its record takes no seed')
    const i = this.time(ts, true)
    if (i === 0) this.commitments = new Uint8Array(COMMITMENT_BYTES * MAX_READINGS_PER_RECORD)
    this.commitments!.set(commitment, COMMITMENT_BYTES * i)
    this.bound += 9 + COMMITMENT_BYTES
  }

  private time(ts: number, commitment: boolean): number {
    const i = this.ts.length
    if (i >= MAX_READINGS_PER_RECORD) throw new RangeError(`a record holds at most ${MAX_READINGS_PER_RECORD} readings`)
    if (!Number.isSafeInteger(ts) || ts < 0) {
      throw new InvalidMessageError("a reading's time must be a non-negative integer (ms since epoch)")
    }
    if (i > 0 && commitment !== (this.commitments !== undefined)) {
      throw new RangeError('readings with values and commitments in one record')
    }
    this.ts.push(ts)
    return i
  }

  /** Write the plaintext. */
  write(w: CborWriter): void {
    const n = this.ts.length
    const c = this.commitments
    const s = this.seed
    w.head(5, (this.chunks ? 1 : 0) + (c ? 1 : 0) + (s ? 1 : 0) + 1 + (c ? 0 : 1))
    if (this.chunks !== undefined) {
      w.text('b')
      w.head(4, n)
      for (const b of this.chunks) {
        if (b === null) w.null()
        else w.bytes(b)
      }
    }
    if (c !== undefined) {
      w.text('c')
      w.bytes(c.subarray(0, COMMITMENT_BYTES * n))
    }
    if (s !== undefined) {
      w.text('s')
      w.bytes(s)
    }
    w.text('t')
    w.head(4, n)
    let previous = 0
    for (const ts of this.ts) {
      w.int(ts - previous)
      previous = ts
    }
    if (c !== undefined) return
    w.text('v')
    w.head(4, n)
    // JSON.stringify's output is well-formed (lone surrogates are escaped), so text() writes it
    for (const v of this.values) w.text(v)
  }
}

const EMPTY = new Uint8Array(0)

/** Encrypt the readings gathered in `b` into one record, numbered from b.seq (at least one reading). */
export function sealRecord(
  key: Uint8Array,
  coords: Omit<EncryptedReading, 'ct' | 'n' | 'seq'>,
  b: RecordBuilder,
): EncryptedReading {
  const n = b.count
  if (n === 0) throw new RangeError(`a record holds 1..${MAX_READINGS_PER_RECORD} readings`)
  const { space, stream, form, epoch } = coords
  const full: EncryptedReading =
    n === 1
      ? { space, stream, form, epoch, seq: b.seq, ct: EMPTY }
      : { space, stream, form, epoch, seq: b.seq, n, ct: EMPTY }
  const w = plaintextWriter.reset()
  b.write(w)
  full.ct = aeadEncrypt(key, w.view(), aad(full))
  return full
}

/** Encrypt one reading into a record of its own. */
export function encryptReading(
  key: Uint8Array,
  coords: Omit<EncryptedReading, 'ct' | 'n'>,
  reading: Reading,
  seed?: Uint8Array,
): EncryptedReading {
  return encryptReadings(key, coords, [reading], seed)
}

/**
 * Encrypt consecutive readings, numbered from `coords.seq`, into one record; with `seed`,
 * each gets a salt (deriveSalts). The caller keeps them within MAX_READINGS_PER_RECORD and
 * the record within MAX_RECORD_PLAINTEXT (see readingBound). A reading with a `commitment`
 * is one of the hashed form. Salts are not taken from the readings: they come from the seed.
 */
export function encryptReadings(
  key: Uint8Array,
  coords: Omit<EncryptedReading, 'ct' | 'n'>,
  readings: readonly Reading[],
  seed?: Uint8Array,
): EncryptedReading {
  if (readings.length === 0 || readings.length > MAX_READINGS_PER_RECORD) {
    throw new RangeError(`a record holds 1..${MAX_READINGS_PER_RECORD} readings`)
  }
  const b = new RecordBuilder(coords.seq, seed, readings.length)
  for (const r of readings) {
    if (r.salt !== undefined) throw new RangeError("a record's salts come from its seed, not from its readings")
    if (r.commitment !== undefined) b.addCommitment(r.ts, r.commitment)
    else b.add(r.ts, valueJson(r.value), r.bytes)
  }
  return sealRecord(key, coords, b)
}

/** A reading's value from its JSON text: text that is not JSON makes the record invalid. */
function parseValue(json: string): unknown {
  try {
    return JSON.parse(json)
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err
    throw new InvalidMessageError(`a reading's value is not JSON: ${err.message}`)
  }
}

/** A reading of a record written before records held columns: `{ ts, value, salt?, bytes? }`. */
function openReading(m: Record<string, unknown>): Reading {
  const out: Reading = { ts: int(m, 'ts'), value: parseValue(str(m, 'value', MAX_VALUE_JSON)) }
  if (m.salt !== undefined) out.salt = bytes(m, 'salt', 16, 16)
  if (m.bytes !== undefined) out.bytes = bytes(m, 'bytes', 0, MAX_READING_PAYLOAD)
  return out
}

const READING_KEYS = ['ts', 'value', 'salt', 'bytes']
const COLUMN_KEYS = ['b', 'c', 's', 't', 'v']

/** The readings of a record's columns (see RecordBuilder), checked against the record's count. */
function openColumns(m: Record<string, unknown>, n: number): Reading[] {
  const t = m.t
  if (!Array.isArray(t) || t.length !== n) throw new InvalidMessageError(`a record of ${n} readings holds ${n} times`)
  const values = m.v
  const commitments = m.c === undefined ? undefined : bytes(m, 'c', COMMITMENT_BYTES * n, COMMITMENT_BYTES * n)
  if ((values === undefined) === (commitments === undefined)) {
    throw new InvalidMessageError('a record holds either values or commitments')
  }
  if (values !== undefined && (!Array.isArray(values) || values.length !== n)) {
    throw new InvalidMessageError(`a record of ${n} readings holds ${n} values`)
  }
  const seed = m.s === undefined ? undefined : bytes(m, 's', SEED_BYTES, SEED_BYTES)
  if (seed !== undefined && commitments !== undefined) throw new InvalidMessageError('a commitment has no salt')
  const salts = seed === undefined ? undefined : deriveSalts(seed, n)
  const chunks = m.b
  if (chunks !== undefined && (!Array.isArray(chunks) || chunks.length !== n)) {
    throw new InvalidMessageError(`a record of ${n} readings holds ${n} byte strings or nulls`)
  }
  const out: Reading[] = []
  let ts = 0
  for (let i = 0; i < n; i++) {
    const d = t[i]
    ts += typeof d === 'number' && Number.isSafeInteger(d) ? d : Number.NaN
    if (!Number.isSafeInteger(ts) || ts < 0) throw new InvalidMessageError("a reading's time is out of range")
    let value: unknown
    if (values === undefined)
      value = { commitment: toHex(commitments!.subarray(COMMITMENT_BYTES * i, COMMITMENT_BYTES * (i + 1))) }
    else {
      const json = values[i]
      if (typeof json !== 'string' || json.length > MAX_VALUE_JSON) {
        throw new InvalidMessageError(`a value is JSON text of at most ${MAX_VALUE_JSON} characters`)
      }
      value = parseValue(json)
    }
    const r: Reading = { ts, value }
    if (salts !== undefined) r.salt = salts.slice(SALT_BYTES * i, SALT_BYTES * (i + 1))
    const b = chunks?.[i]
    if (b !== undefined && b !== null) {
      if (!(b instanceof Uint8Array) || b.byteLength > MAX_READING_PAYLOAD) {
        throw new InvalidMessageError(`a reading carries at most ${MAX_READING_PAYLOAD} bytes`)
      }
      r.bytes = b
    }
    out.push(r)
  }
  return out
}

/** Throws DecryptionError when the key is wrong or anything was changed. For a record of one reading. */
export function decryptReading(key: Uint8Array, r: EncryptedReading): Reading {
  const readings = decryptReadings(key, r)
  if (readings.length !== 1) throw new InvalidMessageError(`the record holds ${readings.length} readings, not one`)
  return readings[0]
}

/** The readings of a record, in sequence order. Throws DecryptionError when the key is wrong or anything was changed. */
export function decryptReadings(key: Uint8Array, r: EncryptedReading): Reading[] {
  const plaintext = aeadDecrypt(key, r.ct, aad(r))
  const n = readingsIn(r)
  const decoded = decodeCanonical(plaintext, MAX_READING_BYTES)
  if (decoded !== null && typeof decoded === 'object' && !Array.isArray(decoded) && 't' in decoded) {
    return openColumns(asMap(decoded, 'record', COLUMN_KEYS), n)
  }
  // records written before records held columns: one reading's map, or a list of them
  if (n === 1) return [openReading(asMap(decoded, 'reading', READING_KEYS))]
  if (!Array.isArray(decoded) || decoded.length !== n) {
    throw new InvalidMessageError(`a record of ${n} readings must hold a list of ${n}`)
  }
  return decoded.map(m => openReading(asMap(m, 'reading', READING_KEYS)))
}

/** The canonical CBOR of an encrypted record, as it crosses the network and is stored. */
export function encodeEncryptedReading(r: EncryptedReading): Uint8Array {
  const w = cbor()
  const n = readingsIn(r)
  // keys in canonical order: n (only when more than one), ct, seq, form, epoch, space, stream
  if (
    w.head(5, n === 1 ? 6 : 7) &&
    (n === 1 || (w.text('n') && w.uint(n))) &&
    w.text('ct') &&
    w.bytes(r.ct) &&
    w.text('seq') &&
    w.uint(r.seq) &&
    w.text('form') &&
    w.text(r.form) &&
    w.text('epoch') &&
    w.uint(r.epoch) &&
    w.text('space') &&
    w.text(r.space) &&
    w.text('stream') &&
    w.text(r.stream)
  )
    return w.done()
  return encodeCanonical({
    space: r.space,
    stream: r.stream,
    form: r.form,
    epoch: r.epoch,
    seq: r.seq,
    ...(n === 1 ? {} : { n }),
    ct: r.ct,
  })
}

/**
 * Read the canonical layout of an encrypted reading directly (what encodeEncryptedReading
 * writes), or undefined for anything else, which then goes through the general decoder and
 * its errors. Accepts only what the general decoder accepts: minimal heads, the six keys in
 * canonical order, ASCII names that pass the same checks, nothing after the map.
 */
function readEncryptedReading(data: Uint8Array): EncryptedReading | undefined {
  const c = new CborReader(data)
  const size = c.head(5)
  if (size !== 6 && size !== 7) return undefined
  let n = 1
  if (size === 7) {
    if (!c.key('n')) return undefined
    const count = c.head(0)
    if (count === undefined || count < 2 || count > MAX_READINGS_PER_RECORD) return undefined
    n = count
  }
  if (!c.key('ct')) return undefined
  const ct = c.bytes()
  if (ct === undefined || ct.byteLength < 28 || ct.byteLength > MAX_READING_BYTES || !c.key('seq')) return undefined
  const seq = c.head(0)
  if (seq === undefined || !c.key('form')) return undefined
  const form = c.ascii()
  if (form === undefined || form.length > 32 || !FORM_PATTERN.test(form) || !c.key('epoch')) return undefined
  const epoch = c.head(0)
  if (epoch === undefined || !c.key('space')) return undefined
  const space = c.ascii()
  if (space === undefined || !ID_PATTERN.test(space) || !c.key('stream')) return undefined
  const stream = c.ascii()
  if (stream === undefined || !NAME_PATTERN.test(stream) || c.pos !== data.byteLength) return undefined
  if (seq > Number.MAX_SAFE_INTEGER - (n - 1)) return undefined
  return n === 1 ? { space, stream, form, epoch, seq, ct } : { space, stream, form, epoch, seq, n, ct }
}

/** Decode and check an encrypted record (at most MAX_READING_BYTES); a typed error otherwise. */
export function decodeEncryptedReading(data: Uint8Array): EncryptedReading {
  if (data instanceof Uint8Array && data.byteLength <= MAX_READING_BYTES) {
    const fast = readEncryptedReading(data)
    if (fast !== undefined) return fast
  }
  const m = asMap(decodeCanonical(data, MAX_READING_BYTES), 'encrypted reading', [
    'space',
    'stream',
    'form',
    'epoch',
    'seq',
    'n',
    'ct',
  ])
  const r: EncryptedReading = {
    space: str(m, 'space', 64, ID_PATTERN),
    stream: str(m, 'stream', 64, NAME_PATTERN),
    form: str(m, 'form', 32, FORM_PATTERN),
    epoch: int(m, 'epoch'),
    seq: int(m, 'seq'),
    ct: bytes(m, 'ct', 28, MAX_READING_BYTES),
  }
  // a single reading is written without n, so that one record has one encoding
  if (m.n !== undefined) r.n = int(m, 'n', 2, MAX_READINGS_PER_RECORD)
  if (r.seq > Number.MAX_SAFE_INTEGER - (readingsIn(r) - 1)) {
    throw new InvalidMessageError("the record's last sequence number is out of range")
  }
  return r
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
  const w = cbor()
  w.head(5, 1)
  w.text('readings')
  w.head(4, records.length)
  for (const r of records) w.bytes(r)
  return w.done()
}

/** Decode a gossip message of readings: each one decoded and checked, all of one space. */
export function decodeReadingsMessage(data: Uint8Array): { records: EncryptedReading[]; bytes: Uint8Array[] } {
  const fast =
    data instanceof Uint8Array && data.byteLength <= MAX_READINGS_MESSAGE_BYTES ? readBytesList(data) : undefined
  if (fast !== undefined) {
    const records = fast.map(decodeEncryptedReading)
    if (records.some(r => r.space !== records[0].space))
      throw new InvalidMessageError('readings of several spaces in one message')
    return { records, bytes: fast }
  }
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

/** The canonical layout of a readings message, { readings: [bytes, ...] }, read directly; undefined for anything else. */
function readBytesList(data: Uint8Array): Uint8Array[] | undefined {
  const c = new CborReader(data)
  if (c.head(5) !== 1 || !c.key('readings')) return undefined
  const n = c.head(4)
  if (n === undefined || n === 0 || n > MAX_READINGS_PER_MESSAGE) return undefined
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    const b = c.bytes()
    if (b === undefined) return undefined
    out.push(b)
  }
  return c.pos === data.byteLength ? out : undefined
}
