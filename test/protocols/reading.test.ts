import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateAeadKey } from '../../crypto/aead.ts'
import { encodeCanonical } from '../../crypto/encoding.ts'
import {
  decodeEncryptedReading,
  decryptReading,
  decryptReadings,
  type EncryptedReading,
  encodeEncryptedReading,
  encryptReading,
  encryptReadings,
  MAX_READING_BYTES,
  MAX_READINGS_PER_RECORD,
  MAX_VALUE_JSON,
  validateReadingInput,
} from '../../protocols/data/reading.ts'
import { fakeId } from './fixtures.ts'

const T0 = 1_700_000_000_000
const key = generateAeadKey()
const coords = { space: fakeId('1'), stream: 'temp', form: 'raw', epoch: 472_222, seq: 17 }

describe('encrypted readings: encrypt and decrypt', () => {
  it('a number value round-trips', () => {
    const enc = encryptReading(key, coords, { ts: T0, value: 21.5 })
    assert.deepEqual(decryptReading(key, enc), { ts: T0, value: 21.5 })
  })

  it('an object value round-trips', () => {
    const value = { celsius: -3.25, ok: true, tags: ['a', 'b'], nested: { n: 0, s: 'ünïcode ✓' } }
    const enc = encryptReading(key, { ...coords, form: 'aggregate:15m' }, { ts: 0, value })
    assert.deepEqual(decryptReading(key, enc), { ts: 0, value })
  })

  it('only the coordinates are in the clear: neither time nor value appear in the ciphertext', () => {
    const enc = encryptReading(key, coords, { ts: T0, value: { marker: 'PLAINTEXT-MARKER' } })
    assert.deepEqual({ ...enc, ct: undefined }, { ...coords, ct: undefined })
    assert.equal(Buffer.from(enc.ct).includes(Buffer.from('PLAINTEXT-MARKER')), false)
  })

  it('encrypting the same reading twice gives different ciphertexts (fresh nonce)', () => {
    const a = encryptReading(key, coords, { ts: T0, value: 1 })
    const b = encryptReading(key, coords, { ts: T0, value: 1 })
    assert.notDeepEqual(a.ct, b.ct)
  })

  const moved: [string, Partial<EncryptedReading>][] = [
    ['another space', { space: fakeId('2') }],
    ['another stream', { stream: 'hum' }],
    ['another epoch', { epoch: coords.epoch + 1 }],
    ['another sequence number', { seq: coords.seq + 1 }],
    ['another form', { form: 'hashed' }],
  ]
  for (const [name, change] of moved) {
    it(`a ciphertext moved to ${name} fails to decrypt`, () => {
      const enc = encryptReading(key, coords, { ts: T0, value: 20 })
      assert.throws(() => decryptReading(key, { ...enc, ...change }), { name: 'DecryptionError' })
    })
  }

  it('a change to any byte of the ciphertext fails to decrypt', () => {
    const enc = encryptReading(key, coords, { ts: T0, value: { v: 20 } })
    for (let i = 0; i < enc.ct.length; i++) {
      const ct = Uint8Array.from(enc.ct)
      ct[i] ^= 0x80
      assert.throws(() => decryptReading(key, { ...enc, ct }), { name: 'DecryptionError' }, `byte ${i}`)
    }
  })

  it('a truncated ciphertext fails to decrypt', () => {
    const enc = encryptReading(key, coords, { ts: T0, value: 20 })
    assert.throws(() => decryptReading(key, { ...enc, ct: enc.ct.subarray(0, enc.ct.length - 1) }), {
      name: 'DecryptionError',
    })
    assert.throws(() => decryptReading(key, { ...enc, ct: enc.ct.subarray(0, 27) }), { name: 'DecryptionError' })
  })

  it('another key fails to decrypt', () => {
    const enc = encryptReading(key, coords, { ts: T0, value: 20 })
    assert.throws(() => decryptReading(generateAeadKey(), enc), { name: 'DecryptionError' })
  })
})

describe('encrypted readings: wire codec', () => {
  it('round-trips', () => {
    const enc = encryptReading(key, coords, { ts: T0, value: { a: 1 } })
    const decoded = decodeEncryptedReading(encodeEncryptedReading(enc))
    assert.deepEqual({ ...decoded, ct: [...decoded.ct] }, { ...enc, ct: [...enc.ct] })
    assert.deepEqual(decryptReading(key, decoded), { ts: T0, value: { a: 1 } })
  })

  const enc = encryptReading(key, coords, { ts: T0, value: 1 })
  const wire = { space: enc.space, stream: enc.stream, form: enc.form, epoch: enc.epoch, seq: enc.seq, ct: enc.ct }
  const bad: [string, Record<string, unknown>][] = [
    ['a malformed space id', { ...wire, space: 'abc' }],
    ['a bad stream name', { ...wire, stream: '-temp' }],
    ['an unknown form', { ...wire, form: 'aggregate:1y' }],
    ['a negative epoch', { ...wire, epoch: -1 }],
    ['a fractional sequence number', { ...wire, seq: 0.5 }],
    ['a ciphertext shorter than nonce + tag', { ...wire, ct: new Uint8Array(27) }],
    ['a ciphertext as text', { ...wire, ct: 'ciphertext' }],
    ['a missing sequence number', { ...wire, seq: undefined }],
    ['an extra field', { ...wire, ts: T0 }],
  ]
  for (const [name, value] of bad) {
    it(`refuses ${name}`, () => {
      const v = Object.fromEntries(Object.entries(value).filter(([, x]) => x !== undefined))
      assert.throws(() => decodeEncryptedReading(encodeCanonical(v)), { name: 'InvalidMessageError' })
    })
  }

  it('refuses input over MAX_READING_BYTES and bytes that are not canonical CBOR', () => {
    assert.throws(() => decodeEncryptedReading(new Uint8Array(MAX_READING_BYTES + 1)), {
      name: 'InvalidEncodingError',
    })
    assert.throws(() => decodeEncryptedReading(new Uint8Array([0xff])), { name: 'InvalidEncodingError' })
  })
})

describe('encrypted readings: a record of several readings', () => {
  const readings = [0, 1, 2, 3].map(i => ({ ts: T0 + i, value: 20 + i }))

  it('round-trips, numbered from its first sequence number', () => {
    const enc = encryptReadings(key, coords, readings)
    assert.equal(enc.n, 4)
    assert.deepEqual(decryptReadings(key, enc), readings)
    assert.deepEqual(decodeEncryptedReading(encodeEncryptedReading(enc)), enc)
  })

  it('one reading makes the single-reading record, without a count', () => {
    const enc = encryptReadings(key, coords, readings.slice(0, 1))
    assert.equal(enc.n, undefined)
    assert.deepEqual(decryptReading(key, enc), readings[0])
  })

  const moved: [string, Partial<EncryptedReading>][] = [
    ['another first sequence number', { seq: coords.seq + 1 }],
    ['a smaller count (cut short)', { n: 3 }],
    ['a larger count', { n: 5 }],
    ['a single reading', { n: undefined }],
  ]
  for (const [name, change] of moved) {
    it(`a ciphertext moved to ${name} fails to decrypt`, () => {
      const enc = encryptReadings(key, coords, readings)
      assert.throws(() => decryptReadings(key, { ...enc, ...change }), { name: 'DecryptionError' })
    })
  }

  it('decryptReading refuses a record of several readings', () => {
    assert.throws(() => decryptReading(key, encryptReadings(key, coords, readings)), { name: 'InvalidMessageError' })
  })

  it('refuses to encrypt no readings or more than a record holds', () => {
    assert.throws(() => encryptReadings(key, coords, []), RangeError)
    const many = Array.from({ length: MAX_READINGS_PER_RECORD + 1 }, (_, i) => ({ ts: i, value: i }))
    assert.throws(() => encryptReadings(key, coords, many), RangeError)
  })

  it('the wire codec refuses a count of 1 (written without it), 0, or above the most a record holds', () => {
    const ct = new Uint8Array(28)
    for (const n of [0, 1, MAX_READINGS_PER_RECORD + 1]) {
      assert.throws(() => decodeEncryptedReading(encodeCanonical({ ...coords, n, ct })), {
        name: 'InvalidMessageError',
      })
    }
    assert.equal(decodeEncryptedReading(encodeCanonical({ ...coords, n: 2, ct })).n, 2)
    assert.throws(
      () => decodeEncryptedReading(encodeCanonical({ ...coords, seq: Number.MAX_SAFE_INTEGER, n: 2, ct })),
      { name: 'InvalidMessageError' },
    )
  })
})

describe('validateReadingInput', () => {
  it('accepts a number value and an object value', () => {
    assert.deepEqual(validateReadingInput({ ts: T0, value: 21.5 }), { ts: T0, value: 21.5 })
    assert.deepEqual(validateReadingInput({ ts: 0, value: -0.001 }), { ts: 0, value: -0.001 })
    assert.deepEqual(validateReadingInput(JSON.parse('{"ts":1,"value":{"t":[1,2]}}')), { ts: 1, value: { t: [1, 2] } })
  })

  it('accepts a value whose JSON is exactly MAX_VALUE_JSON long, and it survives encryption', () => {
    const value = { s: 'x'.repeat(MAX_VALUE_JSON - '{"s":""}'.length) }
    assert.equal(JSON.stringify(value).length, MAX_VALUE_JSON)
    const reading = validateReadingInput({ ts: T0, value })
    assert.deepEqual(decryptReading(key, encryptReading(key, coords, reading)), reading)
  })

  const refused: [string, unknown][] = [
    ['null', null],
    ['a number', 5],
    ['a JSON string', '{"ts":1,"value":2}'],
    ['an array', [1, 2]],
    ['a string value', { ts: 1, value: '21.5' }],
    ['an array value', { ts: 1, value: [21.5] }],
    ['a null value', { ts: 1, value: null }],
    ['a boolean value', { ts: 1, value: true }],
    ['a missing value', { ts: 1 }],
    ['NaN', { ts: 1, value: Number.NaN }],
    ['Infinity', { ts: 1, value: Number.POSITIVE_INFINITY }],
    ['-Infinity', { ts: 1, value: Number.NEGATIVE_INFINITY }],
    ['a negative ts', { ts: -1, value: 1 }],
    ['a fractional ts', { ts: 1.5, value: 1 }],
    ['a ts as text', { ts: '1', value: 1 }],
    ['a ts past the safe integers', { ts: 2 ** 53, value: 1 }],
    ['a missing ts', { value: 1 }],
    ['an extra field', { ts: 1, value: 1, unit: 'C' }],
    ['a value whose JSON is one character too long', { ts: 1, value: { s: 'x'.repeat(MAX_VALUE_JSON - 7) } }],
  ]
  for (const [name, input] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(() => validateReadingInput(input), { name: 'InvalidMessageError' })
    })
  }
})
