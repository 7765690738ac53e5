/**
 * Fuzz: the readings topic and the data a record carries: an encrypted reading (record) and
 * a readings gossip message, both read by a fast path and a general decoder (fuzzed here
 * together: a fast path must never accept what the general one refuses); the plaintext of a
 * record under its right key (what the gateway, which holds the key, wrote); and an
 * object's manifest. Codecs throw InvalidEncodingError / InvalidMessageError only; opening a
 * record also DecryptionError.
 */
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { aeadEncrypt } from '../../crypto/aead.ts'
import { encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { decodeManifest } from '../../protocols/data/objects.ts'
import {
  decodeEncryptedReading,
  decodeReadingsMessage,
  decryptReadings,
  type EncryptedReading,
  encodeEncryptedReading,
  encodeReadingsMessage,
  encryptReadings,
} from '../../protocols/data/reading.ts'
import { fakeId } from '../protocols/fixtures.ts'
import {
  applyEdit,
  budget,
  CODEC_ERRORS,
  cborValue,
  checkCodec,
  decodeTyped,
  deepCbor,
  fieldEdit,
  mutatedBytes,
  randomBytes as randomInput,
  SUITE,
} from './fuzz.ts'

const key = randomBytes(32)
const coords = { space: fakeId('7'), stream: 'temp', form: 'raw', epoch: 3, seq: 10 }
const one = encryptReadings(key, coords, [{ ts: 1_700_000_000_000, value: 21.5 }], randomBytes(32))
const many = encryptReadings(key, { ...coords, form: 'hashed', seq: 2 ** 40 }, [
  { ts: 5, value: null, commitment: randomBytes(32) },
  { ts: 4, value: null, commitment: randomBytes(32) },
])
const chunks = encryptReadings(key, { ...coords, stream: 'obj-0123456789abcdef' }, [
  { ts: 0, value: null, bytes: randomBytes(100) },
  { ts: 1, value: { name: 'a.txt', size: 100, chunks: 1, sha256: fakeId('f'), mediaType: 'file' } },
])
const records = [one, many, chunks]
const asMapValue = (r: EncryptedReading) => ({ ...r }) as Record<string, unknown>

/** The associated data a record's ciphertext is bound to (as protocols/data/reading.ts writes it). */
function aadOf(r: Omit<EncryptedReading, 'ct'>): Uint8Array {
  const n = r.n ?? 1
  return encodeCanonical(
    n === 1
      ? ['edgeward/reading/v1', r.space, r.stream, r.epoch, r.seq, r.form]
      : ['edgeward/readings/v1', r.space, r.stream, r.epoch, r.seq, n, r.form],
  )
}

describe('fuzz: readings topic', SUITE, () => {
  it('decodeEncryptedReading', () => {
    checkCodec(decodeEncryptedReading, CODEC_ERRORS, records.map(asMapValue), { strictFields: true, weight: 1.5 })
  })

  it('decodeReadingsMessage', () => {
    const bytes = records.map(encodeEncryptedReading)
    const messages = [encodeReadingsMessage(bytes), encodeReadingsMessage([bytes[0]])]
    checkCodec(decodeReadingsMessage, CODEC_ERRORS, [{ readings: bytes }, { readings: [bytes[1]] }], {
      strictFields: true,
    })
    // edits of the records inside a message, which the fast path reads
    const inner = fc
      .tuple(fc.array(mutatedBytes(fc.constantFrom(...bytes)), { minLength: 1, maxLength: 4 }))
      .map(([rs]) => encodeReadingsMessage(rs))
    fc.assert(
      fc.property(fc.oneof(inner, mutatedBytes(fc.constantFrom(...messages))), m => {
        decodeTyped(decodeReadingsMessage, CODEC_ERRORS, m)
      }),
      budget(),
    )
  })
})

describe('fuzz: record plaintexts and objects', SUITE, () => {
  it('decryptReadings on any plaintext under the right key', () => {
    // what a plaintext may be: edits of real ones (columns, and the older map per reading), any CBOR, raw bytes
    const columns = { t: [5, -1], v: ['1', '{"a":2}'], s: randomBytes(32) }
    const legacy = { ts: 5, value: '21.5', salt: randomBytes(16) }
    const plaintexts = fc.oneof(
      fc.constantFrom<Record<string, unknown>>(columns, legacy).chain(m => fieldEdit(m).map(e => applyEdit(m, e))),
      fc.record({
        t: fc.array(fc.oneof(fc.integer(), cborValue), { maxLength: 3 }),
        v: fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('{', '1e', 'nul', '"', '[1,'), cborValue), {
          maxLength: 3,
        }),
      }),
      fc.record({ ts: fc.nat(), value: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('{', 'tru', '-')) }),
      cborValue,
    )
    const inputs = fc.oneof(
      fc.tuple(plaintexts, fc.constantFrom(1, 2, 3)).map(([p, n]) => ({ plaintext: encodeCanonical(p), n })),
      fc.tuple(fc.oneof(randomInput, deepCbor), fc.constantFrom(1, 2)).map(([plaintext, n]) => ({ plaintext, n })),
    )
    fc.assert(
      fc.property(inputs, ({ plaintext, n }) => {
        const record: EncryptedReading = { ...coords, ...(n === 1 ? {} : { n }), ct: new Uint8Array(0) }
        record.ct = aeadEncrypt(key, plaintext, aadOf(record))
        decodeTyped(x => decryptReadings(key, x.record), [...CODEC_ERRORS, 'DecryptionError'], { n, plaintext, record })
      }),
      budget(1.5),
    )
  })

  it('decryptReadings on a changed record is DecryptionError', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...records).chain(r => mutatedBytes(fc.constant(r.ct)).map(ct => ({ ...r, ct }))),
        r => {
          decodeTyped(x => decryptReadings(key, x), [...CODEC_ERRORS, 'DecryptionError'], r)
        },
      ),
      budget(0.5),
    )
  })

  it('decodeManifest', () => {
    const manifest = { name: 'a.txt', size: 100, chunks: 1, sha256: fakeId('f'), mediaType: 'file' }
    fc.assert(
      fc.property(
        fc.oneof(
          fieldEdit(manifest).map(e => applyEdit(manifest, e)),
          cborValue,
        ),
        v => {
          decodeTyped(decodeManifest, ['InvalidMessageError'], v)
        },
      ),
      budget(),
    )
  })
})
