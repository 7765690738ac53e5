/** Bytes written as hex and back, a bit flipped for tampering, and the error a failed open throws. */
import { DecryptionError } from '../../crypto/errors.ts'

/** The bytes a hex string (a known-answer vector's) writes. */
export function bytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

export function hexOf(b: ArrayBuffer | Uint8Array): string {
  return Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString('hex')
}

/** A copy of `b` with one bit of byte `index` flipped. */
export function flipBit(b: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = new Uint8Array(b)
  copy[index] ^= 1 << bit
  return copy
}

/** For `assert.throws`/`rejects`: a `DecryptionError`, by class and by name. */
export function isDecryptionError(err: unknown): boolean {
  return err instanceof DecryptionError && err.name === 'DecryptionError'
}
