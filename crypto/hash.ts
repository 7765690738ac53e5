/** SHA-256 and tagged hashing (domain separation for every hash we compute). */
import { createHash, randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto'

/** SHA-256 of the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** Incremental SHA-256, for content that is hashed as it streams past (files of any size). */
export interface Sha256Stream {
  update(bytes: Uint8Array): void
  digest(): Uint8Array
}

/** A SHA-256 fed a piece at a time, for content too large to hold at once. */
export function sha256Stream(): Sha256Stream {
  const h = createHash('sha256')
  return {
    update: bytes => void h.update(bytes),
    digest: () => new Uint8Array(h.digest()),
  }
}

const utf8 = new TextEncoder()

/** H(tag || 0x00 || bytes): the tag keeps hashes of different kinds of record apart. */
export function taggedHash(tag: string, bytes: Uint8Array): Uint8Array {
  return sha256(utf8.encode(tag), new Uint8Array([0]), bytes)
}

/** `n` bytes from the system CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  return new Uint8Array(nodeRandomBytes(n))
}

/** Constant-time equality for secrets, MACs and tokens. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  return timingSafeEqual(a, b)
}
