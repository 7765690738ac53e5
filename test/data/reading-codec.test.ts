/**
 * The encrypted reading's bytes are written and read directly (not through cborg) on the hot
 * path: they must be exactly the canonical CBOR that encodeCanonical gives, and the reader
 * must accept nothing that is not canonical.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { aeadDecrypt, generateAeadKey } from '../../crypto/aead.ts'
import { encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { taggedHash } from '../../crypto/hash.ts'
import { commitReading, verifyCommitment } from '../../protocols/data/forms.ts'
import {
  decodeEncryptedReading,
  decodeReadingsMessage,
  decryptReading,
  decryptReadings,
  type EncryptedReading,
  encodeEncryptedReading,
  encodeReadingsMessage,
  encryptReading,
  encryptReadings,
  MAX_READINGS_PER_RECORD,
} from '../../protocols/data/reading.ts'

// boundaries of CBOR's head sizes, and the largest safe integer
const edges = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]
const count = fc.oneof(fc.constantFrom(...edges), fc.nat(), fc.maxSafeNat())
const hexChar = fc.constantFrom(...'0123456789abcdef'.split(''))
const space = fc.array(hexChar, { minLength: 64, maxLength: 64 }).map(a => a.join(''))
const stream = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)
const form = fc.oneof(fc.constantFrom('raw', 'hashed'), fc.stringMatching(/^aggregate:[0-9]{1,6}[smhd]$/))
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

  it('encrypts with the canonical plaintext and associated data', () => {
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
        fc.option(fc.uint8Array({ minLength: 16, maxLength: 16 }), { nil: undefined }),
        fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
        (c, ts, v, salt, bytes) => {
          const reading = { ts, value: v, ...(salt ? { salt } : {}), ...(bytes ? { bytes } : {}) }
          const e = encryptReading(key, c, reading)
          const aad = encodeCanonical(['edgeward/reading/v1', c.space, c.stream, c.epoch, c.seq, c.form])
          const plaintext = encodeCanonical({
            ts,
            value: JSON.stringify(v),
            ...(salt ? { salt } : {}),
            ...(bytes ? { bytes } : {}),
          })
          assert.deepEqual(aeadDecrypt(key, e.ct, aad), plaintext)
          assert.deepEqual(decryptReading(key, e), { ...reading, value: JSON.parse(JSON.stringify(v)) })
        },
      ),
      { numRuns: 100 },
    )
  })

  it('encrypts several readings as one canonical list, with the count in the associated data', () => {
    const key = generateAeadKey()
    const reading = fc.record(
      {
        ts: count,
        value: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.dictionary(fc.string(), fc.integer())),
        salt: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      },
      { requiredKeys: ['ts', 'value'] },
    )
    fc.assert(
      fc.property(coords, fc.array(reading, { minLength: 2, maxLength: 40 }), (c, readings) => {
        fc.pre(c.seq <= Number.MAX_SAFE_INTEGER - (readings.length - 1))
        const e = encryptReadings(key, c, readings)
        assert.equal(e.n, readings.length)
        const aad = encodeCanonical([
          'edgeward/readings/v1',
          c.space,
          c.stream,
          c.epoch,
          c.seq,
          readings.length,
          c.form,
        ])
        const plaintext = encodeCanonical(readings.map(r => ({ ...r, value: JSON.stringify(r.value) })))
        assert.deepEqual(aeadDecrypt(key, e.ct, aad), plaintext)
        assert.deepEqual(
          decryptReadings(key, e),
          readings.map(r => ({ ...r, value: JSON.parse(JSON.stringify(r.value)) })),
        )
        assert.deepEqual(decodeEncryptedReading(encodeEncryptedReading(e)), e)
      }),
      { numRuns: 100 },
    )
  })

  it('encrypts readings whose time is not a safe non-negative integer as encodeCanonical does', () => {
    const key = generateAeadKey()
    const c = { space: 'b'.repeat(64), stream: 't', form: 'raw', epoch: 0, seq: 0 }
    for (const ts of [-1, 1.5, 2 ** 60]) {
      const e = encryptReading(key, c, { ts, value: 1 })
      const aad = encodeCanonical(['edgeward/reading/v1', c.space, c.stream, 0, 0, 'raw'])
      assert.deepEqual(aeadDecrypt(key, e.ct, aad), encodeCanonical({ ts, value: '1' }))
    }
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
