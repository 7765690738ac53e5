/**
 * Inputs the decoder fuzz suites found, kept as fixed cases so that they never come back.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { aeadEncrypt } from '../../crypto/aead.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { decodeProofRequest } from '../../protocols/audit/heads.ts'
import { decryptReadings, type EncryptedReading } from '../../protocols/data/reading.ts'
import { createAccessRequest, DECISION_TAG, openDecision } from '../../protocols/policy/requests.ts'
import { decodeSyncRequest } from '../../protocols/sync/messages.ts'
import { fakeId, newPrincipal } from '../protocols/fixtures.ts'
import { nestedCbor, signBodyBytes } from './fuzz.ts'

describe('fuzz regressions', () => {
  it('CBOR nested deeper than the re-encoding check can follow is an InvalidEncodingError, not a RangeError', () => {
    // cborg decoded these and overflowed the stack encoding them again for the canonical check
    for (const depth of [2500, 3500, 3750, 4000, 5000, 6750, 7000, 8000]) {
      for (const kind of ['array', 'map'] as const) {
        const bytes = nestedCbor(depth, kind)
        try {
          decodeCanonical(bytes, 1 << 20)
        } catch (err) {
          assert.equal((err as Error).name, 'InvalidEncodingError', `${kind} ${depth}: ${(err as Error).message}`)
        }
        assert.throws(() => decodeSyncRequest(bytes), { name: /^Invalid(Encoding|Message)Error$/ }, `${kind} ${depth}`)
      }
    }
  })

  it('a proof request carrying the fields of the other kind is refused, not read with them ignored', () => {
    const bad = [
      { kind: 'consistency', from: 3, to: 9, size: 0 },
      { kind: 'consistency', from: 3, to: 9, index: null },
      { kind: 'inclusion', index: 2, size: 9, from: 'x' },
      { kind: 'inclusion', index: 2, size: 9, to: 1 },
    ]
    for (const m of bad) assert.throws(() => decodeProofRequest(encodeCanonical(m)), { name: 'InvalidMessageError' })
    assert.deepEqual(decodeProofRequest(encodeCanonical({ kind: 'inclusion', index: 2, size: 9 })), {
      kind: 'inclusion',
      index: 2,
      size: 9,
    })
  })

  it("a decision carrying the other outcome's field is refused (it went unchecked into the key holder's audit entry)", () => {
    const owner = newPrincipal()
    const reader = newPrincipal()
    const space = fakeId('3')
    const request = createAccessRequest(
      reader,
      { space, sub: reader.did, streams: ['temp'], forms: ['raw'], durationMs: 60_000, reason: 'audit' },
      0,
    )
    const base = { t: 'decision', iss: owner.did, space, request: request.bytes, iat: 0 }
    const bad = [
      { ...base, approved: true, grant: fakeId('e'), reason: '' },
      { ...base, approved: true, grant: fakeId('e'), reason: { nested: [1] } },
      { ...base, approved: false, reason: 'no', grant: 7 },
    ]
    for (const body of bad) {
      const bytes = signBodyBytes(DECISION_TAG, owner.secretKey, encodeCanonical(body))
      assert.throws(() => openDecision(bytes), { name: 'InvalidMessageError' })
    }
    const good = signBodyBytes(
      DECISION_TAG,
      owner.secretKey,
      encodeCanonical({ ...base, approved: false, reason: 'no' }),
    )
    assert.equal(openDecision(good).body.reason, 'no')
  })

  it("a record whose value is not JSON text is an InvalidMessageError, not JSON.parse's SyntaxError", () => {
    const key = randomBytes(32)
    const record: EncryptedReading = {
      space: fakeId('7'),
      stream: 'temp',
      form: 'raw',
      epoch: 3,
      seq: 10,
      ct: randomBytes(0),
    }
    const aad = encodeCanonical([
      'edgeward/reading/v1',
      record.space,
      record.stream,
      record.epoch,
      record.seq,
      record.form,
    ])
    // a record of columns, and a record of the older layout (a map per reading)
    for (const plaintext of [
      { t: [5], v: ['{'] },
      { ts: 5, value: '{' },
      { t: [5], v: ['1e'] },
    ]) {
      const ct = aeadEncrypt(key, encodeCanonical(plaintext), aad)
      assert.throws(() => decryptReadings(key, { ...record, ct }), { name: 'InvalidMessageError' })
    }
    const ct = aeadEncrypt(key, encodeCanonical({ t: [5], v: ['{"a":1}'] }), aad)
    assert.deepEqual(decryptReadings(key, { ...record, ct }), [{ ts: 5, value: { a: 1 } }])
  })
})
