/**
 * The encrypted reading's bytes are written and read directly (not through cborg) on the hot
 * path: they must be exactly the canonical CBOR that encodeCanonical gives, and the reader
 * must accept nothing that is not canonical.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { shake256 } from '@noble/hashes/sha3.js'
import { concatBytes as concat, utf8ToBytes as utf8 } from '@noble/hashes/utils.js'
import fc from 'fast-check'
import { aeadDecrypt, aeadEncrypt, generateAeadKey } from '../../crypto/aead.ts'
import { encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { taggedHash } from '../../crypto/hash.ts'
import { commitReading, verifyCommitment } from '../../protocols/data/forms.ts'
import {
  decodeEncryptedReading,
  decodeReadingsMessage,
  decryptReading,
  decryptReadings,
  deriveSalts,
  type EncryptedReading,
  encodeEncryptedReading,
  encodeReadingsMessage,
  encryptReading,
  encryptReadings,
  MAX_READINGS_PER_RECORD,
  RecordBuilder,
} from '../../protocols/data/reading.ts'

// boundaries of CBOR's head sizes, and the largest safe integer
const edges = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]
const count = fc.oneof(fc.constantFrom(...edges), fc.nat(), fc.maxSafeNat())
const hexChar = fc.constantFrom(...'0123456789abcdef'.split(''))
const space = fc.array(hexChar, { minLength: 64, maxLength: 64 }).map(a => a.join(''))
const stream = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)
const form = fc.oneof(fc.constantFrom('raw', 'hashed'), fc.stringMatching(/^aggregate:[1-9][0-9]{0,5}[smhd]$/))
const coords = fc.record({ space, stream, form, epoch: count, seq: count })
/** a record of one reading (no n), or of several */
const encrypted: fc.Arbitrary<EncryptedReading> = fc
  .record(
    {
      space,
      stream,
      form,
      epoch: count,
      seq: count,
      n: fc.oneof(fc.constantFrom(2, 23, 24, 255, MAX_READINGS_PER_RECORD), fc.integer({ min: 2, max: 256 })),
      ct: fc.oneof(
        { arbitrary: fc.uint8Array({ minLength: 28, maxLength: 400 }), weight: 20 },
        { arbitrary: fc.uint8Array({ minLength: 65_000, maxLength: 65_300 }), weight: 1 },
      ),
    },
    { requiredKeys: ['space', 'stream', 'form', 'epoch', 'seq', 'ct'] },
  )
  .filter(r => r.seq <= Number.MAX_SAFE_INTEGER - ((r.n ?? 1) - 1))

const canonical = (r: EncryptedReading) =>
  encodeCanonical({
    space: r.space,
    stream: r.stream,
    form: r.form,
    epoch: r.epoch,
    seq: r.seq,
    ...(r.n === undefined ? {} : { n: r.n }),
    ct: r.ct,
  })

describe('encrypted reading codec', () => {
  it('writes the same bytes as encodeCanonical, and reads them back', () => {
    fc.assert(
      fc.property(encrypted, r => {
        const bytes = encodeEncryptedReading(r)
        assert.deepEqual(bytes, canonical(r))
        assert.deepEqual(decodeEncryptedReading(bytes), { ...r })
      }),
      { numRuns: 100 },
    )
  })

  it('accepts a changed encoding only when it is still the canonical encoding of a valid reading', () => {
    fc.assert(
      fc.property(
        encrypted,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: -3, max: 3 }),
        (r, edits, cut) => {
          const b = new Uint8Array(encodeEncryptedReading(r))
          for (const [i, v] of edits) b[i % b.byteLength] = v
          const changed = cut < 0 ? b.subarray(0, b.byteLength + cut) : cut > 0 ? Uint8Array.of(...b, cut) : b
          let decoded: EncryptedReading
          try {
            decoded = decodeEncryptedReading(changed)
          } catch (err) {
            assert.ok(['InvalidEncodingError', 'InvalidMessageError'].includes((err as Error).name), String(err))
            return
          }
          assert.deepEqual(canonical(decoded), changed)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('refuses non-minimal heads and keys out of order that the general decoder also refuses', () => {
    const r: EncryptedReading = {
      space: 'a'.repeat(64),
      stream: 's',
      form: 'raw',
      epoch: 1,
      seq: 2,
      ct: new Uint8Array(28),
    }
    const good = encodeEncryptedReading(r)
    // seq 2 written in two bytes (0x18 0x02) instead of one
    const at = good.indexOf(0x02, 3 + 2 + 28 + 4)
    assert.equal(good[at - 1], 0x71 /* 'q' */)
    const long = Uint8Array.of(...good.subarray(0, at), 0x18, ...good.subarray(at))
    assert.throws(() => decodeEncryptedReading(long), { name: 'InvalidEncodingError' })
    // the same fields in insertion order, not canonical order
    const unordered = new Uint8Array(
      Buffer.from(JSON.stringify({ space: r.space, stream: r.stream, form: r.form, epoch: 1, seq: 2 })),
    )
    assert.throws(() => decodeEncryptedReading(unordered))
  })

  /** the columns a record's plaintext holds (RecordBuilder), as encodeCanonical writes them */
  const columns = (readings: { ts: number; value: unknown; bytes?: Uint8Array }[], seed?: Uint8Array) =>
    encodeCanonical({
      t: readings.map((r, i) => r.ts - (i === 0 ? 0 : readings[i - 1].ts)),
      v: readings.map(r => JSON.stringify(r.value)),
      ...(seed ? { s: seed } : {}),
      ...(readings.some(r => r.bytes) ? { b: readings.map(r => r.bytes ?? null) } : {}),
    })
  /** the readings as they decrypt: values through JSON, and with a seed, each one's salt */
  const decrypted = (readings: { ts: number; value: unknown; bytes?: Uint8Array }[], seed?: Uint8Array) =>
    readings.map((r, i) => ({
      ...r,
      value: JSON.parse(JSON.stringify(r.value)),
      ...(seed
        ? { salt: shake256(concat(utf8('edgeward/reading-salts/v1\0'), seed), { dkLen: 16 * (i + 1) }).slice(16 * i) }
        : {}),
    }))
  const singleAad = (c: { space: string; stream: string; epoch: number; seq: number; form: string }) =>
    encodeCanonical(['edgeward/reading/v1', c.space, c.stream, c.epoch, c.seq, c.form])
  const listAad = (c: { space: string; stream: string; epoch: number; seq: number; form: string }, n: number) =>
    encodeCanonical(['edgeward/readings/v1', c.space, c.stream, c.epoch, c.seq, n, c.form])

  it('encrypts one reading as canonical columns, with the single-reading associated data', () => {
    const key = generateAeadKey()
    const value = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.dictionary(fc.string({ unit: 'grapheme' }), fc.oneof(fc.string({ unit: 'binary' }), fc.integer())),
    )
    fc.assert(
      fc.property(
        coords,
        count,
        value,
        fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
        (c, ts, v, seed, bytes) => {
          const reading = { ts, value: v, ...(bytes ? { bytes } : {}) }
          const e = encryptReading(key, c, reading, seed)
          assert.equal(e.n, undefined)
          assert.deepEqual(aeadDecrypt(key, e.ct, singleAad(c)), columns([reading], seed))
          assert.deepEqual(decryptReading(key, e), decrypted([reading], seed)[0])
        },
      ),
      { numRuns: 100 },
    )
  })

  it('encrypts several readings as canonical columns (times as differences, in any order), with the count in the associated data', () => {
    const key = generateAeadKey()
    const reading = fc.record({
      ts: fc.oneof(count, fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_100 })),
      value: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.dictionary(fc.string(), fc.integer())),
      bytes: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
    })
    fc.assert(
      fc.property(
        coords,
        fc.array(reading, { minLength: 2, maxLength: 40 }),
        fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
        (c, drawn, seed) => {
          fc.pre(c.seq <= Number.MAX_SAFE_INTEGER - (drawn.length - 1))
          const readings = drawn.map(r =>
            r.bytes ? { ts: r.ts, value: r.value, bytes: r.bytes } : { ts: r.ts, value: r.value },
          )
          const e = encryptReadings(key, c, readings, seed)
          assert.equal(e.n, readings.length)
          assert.deepEqual(aeadDecrypt(key, e.ct, listAad(c, readings.length)), columns(readings, seed))
          assert.deepEqual(decryptReadings(key, e), decrypted(readings, seed))
          assert.deepEqual(decodeEncryptedReading(encodeEncryptedReading(e)), e)
        },
      ),
      { numRuns: 100 },
    )
  })

  it('encrypts the hashed form as a column of commitments; decrypted, each value is { commitment: hex }', () => {
    const key = generateAeadKey()
    fc.assert(
      fc.property(
        coords,
        fc.array(fc.record({ ts: count, commitment: fc.uint8Array({ minLength: 32, maxLength: 32 }) }), {
          minLength: 1,
          maxLength: 40,
        }),
        (c, drawn) => {
          fc.pre(c.seq <= Number.MAX_SAFE_INTEGER - (drawn.length - 1))
          const e = encryptReadings(
            key,
            c,
            drawn.map(d => ({ ts: d.ts, value: undefined, commitment: d.commitment })),
          )
          const plaintext = encodeCanonical({
            c: Uint8Array.from(drawn.flatMap(d => [...d.commitment])),
            t: drawn.map((d, i) => d.ts - (i === 0 ? 0 : drawn[i - 1].ts)),
          })
          const aadOf = drawn.length === 1 ? singleAad(c) : listAad(c, drawn.length)
          assert.deepEqual(aeadDecrypt(key, e.ct, aadOf), plaintext)
          assert.deepEqual(
            decryptReadings(key, e),
            drawn.map(d => ({ ts: d.ts, value: { commitment: toHex(d.commitment) } })),
          )
        },
      ),
      { numRuns: 100 },
    )
  })

  it("derives a salted record's salts from its seed with SHAKE256, a longer run starting with a shorter", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 1, max: 256 }), (seed, n) => {
        const salts = deriveSalts(seed, n)
        assert.deepEqual(salts, shake256(concat(utf8('edgeward/reading-salts/v1\0'), seed), { dkLen: 16 * n }))
        assert.deepEqual(deriveSalts(seed, n + 1).subarray(0, 16 * n), salts)
      }),
      { numRuns: 50 },
    )
    assert.throws(() => deriveSalts(new Uint8Array(16), 1), RangeError)
  })

  it('gives a salted record of more readings than it expected the same salts as one that expected them all', () => {
    const seed = new Uint8Array(32).fill(3)
    const few = new RecordBuilder(0, seed, 1)
    const all = new RecordBuilder(0, seed, 200)
    for (let i = 0; i < 200; i++) {
      few.add(i, '1')
      all.add(i, '1')
      assert.deepEqual(few.salt(i), all.salt(i))
    }
    assert.deepEqual(all.salt(199), deriveSalts(seed, 200).subarray(16 * 199))
  })

  it('still decrypts records written before columns: a map of one reading, a list of maps', () => {
    const key = generateAeadKey()
    const c = { space: 'd'.repeat(64), stream: 't', form: 'raw', epoch: 3, seq: 7 }
    const salt = new Uint8Array(16).fill(9)
    const one = { ts: 1_700_000_000_000, value: { t: 20.5 }, salt, bytes: Uint8Array.of(1, 2) }
    const single = {
      ...c,
      ct: aeadEncrypt(key, encodeCanonical({ ...one, value: JSON.stringify(one.value) }), singleAad(c)),
    }
    assert.deepEqual(decryptReading(key, single), one)
    const list = [one, { ts: 5, value: 21 }]
    const several = {
      ...c,
      n: 2,
      ct: aeadEncrypt(key, encodeCanonical(list.map(r => ({ ...r, value: JSON.stringify(r.value) }))), listAad(c, 2)),
    }
    assert.deepEqual(decryptReadings(key, several), list)
  })

  it('refuses columns that do not fit the record', () => {
    const key = generateAeadKey()
    const c = { space: 'e'.repeat(64), stream: 't', form: 'raw', epoch: 0, seq: 0 }
    const sealed = (cols: Record<string, unknown>, n: number) => ({
      ...c,
      ...(n === 1 ? {} : { n }),
      ct: aeadEncrypt(key, encodeCanonical(cols), n === 1 ? singleAad(c) : listAad(c, n)),
    })
    const bad: [string, Record<string, unknown>, number][] = [
      ['fewer times than readings', { t: [1], v: ['1', '2'] }, 2],
      ['fewer values than times', { t: [1, 1], v: ['1'] }, 2],
      ['neither values nor commitments', { t: [1] }, 1],
      ['values and commitments', { c: new Uint8Array(32), t: [1], v: ['1'] }, 1],
      ['a salt seed with a commitment', { c: new Uint8Array(32), s: new Uint8Array(32), t: [1] }, 1],
      ['a salt seed of the wrong length', { s: new Uint8Array(16), t: [1], v: ['1'] }, 1],
      ['commitments of the wrong length', { c: new Uint8Array(33), t: [1] }, 1],
      ['a time that goes below zero', { t: [5, -6], v: ['1', '2'] }, 2],
      ['a time that is not an integer', { t: [1.5], v: ['1'] }, 1],
      ['a value that is not text', { t: [1], v: [1] }, 1],
      ['bytes that are not bytes', { b: ['x'], t: [1], v: ['1'] }, 1],
      ['an unknown column', { t: [1], v: ['1'], x: [1] }, 1],
    ]
    for (const [what, cols, n] of bad) {
      assert.throws(() => decryptReadings(key, sealed(cols, n)), { name: 'InvalidMessageError' }, what)
    }
    assert.deepEqual(decryptReadings(key, sealed({ t: [5, -5], v: ['1', '2'] }, 2)), [
      { ts: 5, value: 1 },
      { ts: 0, value: 2 },
    ])
  })

  it('refuses readings whose time is not a safe non-negative integer, and mixed readings in one record', () => {
    const key = generateAeadKey()
    const c = { space: 'b'.repeat(64), stream: 't', form: 'raw', epoch: 0, seq: 0 }
    for (const ts of [-1, 1.5, 2 ** 60]) {
      assert.throws(() => encryptReading(key, c, { ts, value: 1 }), { name: 'InvalidMessageError' }, String(ts))
    }
    // salts come from the record's seed; a commitment takes none
    assert.throws(() => encryptReadings(key, c, [{ ts: 1, value: 1, salt: new Uint8Array(16) }]), RangeError)
    assert.throws(
      () => encryptReadings(key, c, [{ ts: 1, value: undefined, commitment: new Uint8Array(32) }], new Uint8Array(32)),
      RangeError,
    )
    assert.throws(
      () =>
        encryptReadings(key, c, [
          { ts: 1, value: 1 },
          { ts: 2, value: undefined, commitment: new Uint8Array(32) },
        ]),
      RangeError,
    )
  })

  it('reads a readings message as encodeCanonical writes it, and accepts nothing else that is not canonical', () => {
    fc.assert(
      fc.property(
        fc.array(encrypted, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (rs, i, v) => {
          const shared = rs.map(r => ({ ...r, space: rs[0].space }))
          const bytes = shared.map(encodeEncryptedReading)
          const msg = encodeReadingsMessage(bytes)
          assert.deepEqual(msg, encodeCanonical({ readings: bytes }))
          const back = decodeReadingsMessage(msg)
          assert.deepEqual(back.records, shared)
          assert.deepEqual(back.bytes, bytes)
          const changed = new Uint8Array(msg)
          changed[i % Math.min(changed.byteLength, 64)] = v
          try {
            const d = decodeReadingsMessage(changed)
            assert.deepEqual(encodeCanonical({ readings: d.bytes }), changed)
          } catch (err) {
            assert.ok(['InvalidEncodingError', 'InvalidMessageError'].includes((err as Error).name), String(err))
          }
        },
      ),
      { numRuns: 100 },
    )
  })

  it('refuses a readings message that mixes spaces', () => {
    const a = encodeEncryptedReading({
      space: 'a'.repeat(64),
      stream: 's',
      form: 'raw',
      epoch: 0,
      seq: 0,
      ct: new Uint8Array(28),
    })
    const b = encodeEncryptedReading({
      space: 'c'.repeat(64),
      stream: 's',
      form: 'raw',
      epoch: 0,
      seq: 1,
      ct: new Uint8Array(28),
    })
    assert.throws(() => decodeReadingsMessage(encodeReadingsMessage([a, b])), { name: 'InvalidMessageError' })
  })
})

describe('encrypted reading codec, values it cannot encode', () => {
  it('refuses a reading without a value as encodeCanonical does', () => {
    const c = { space: 'b'.repeat(64), stream: 't', form: 'raw', epoch: 0, seq: 0 }
    assert.throws(() => encryptReading(generateAeadKey(), c, { ts: 1, value: undefined }), {
      name: 'InvalidEncodingError',
    })
  })
})

describe('hashed-form commitments written directly', () => {
  it('are taggedHash of the canonical [ts, JSON of the value, salt], in hex, as the general encoder gives', () => {
    const value = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.dictionary(fc.string({ unit: 'grapheme' }), fc.oneof(fc.string({ unit: 'binary' }), fc.integer())),
    )
    const ts = fc.oneof(count, fc.integer({ min: -1000, max: -1 }), fc.constantFrom(1.5, 2 ** 60))
    fc.assert(
      fc.property(ts, value, fc.uint8Array({ minLength: 16, maxLength: 16 }), (t, v, salt) => {
        const expected = toHex(taggedHash('edgeward/hashed-reading/v1', encodeCanonical([t, JSON.stringify(v), salt])))
        assert.equal(commitReading(t, v, salt), expected)
        assert.equal(verifyCommitment(expected, t, v, salt), true)
      }),
      { numRuns: 300 },
    )
  })
})
