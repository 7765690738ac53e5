/**
 * Inputs the decoder fuzz suites found, kept as fixed cases so that they never come back.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { decodeProofRequest } from '../../protocols/audit/heads.ts'
import { decodeSyncRequest } from '../../protocols/sync/messages.ts'
import { nestedCbor } from './fuzz.ts'

describe('fuzz regressions', () => {
  it('CBOR nested deeper than the re-encoding check can follow is an InvalidEncodingError, not a RangeError', () => {
    // cborg decoded these and overflowed the stack encoding them again for the canonical check
    for (let depth = 2500; depth <= 8000; depth += 500) {
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
})
