/**
 * Shamir shares of a data key and the commitments that check them.
 *
 * Splitting and combining are shamir-secret-sharing's (Privy; audited by Cure53 and Zellic):
 * GF(2^8), one polynomial per key byte, a share laid out as the 32 y-bytes followed by its
 * x-coordinate (one byte, 1..255). The library needs a threshold of at least 2; a threshold
 * of 1 has no polynomial to hide anything (every share is the key itself), so a 1-of-n share
 * is written here as `key || x` with x = index + 1, the same layout, and no field arithmetic.
 *
 * Commitments (SHA-256, domain-separated by tag):
 * - key: H("edgeward/custody-key/v1" || 0x00 || key). Unsalted on purpose: a data key is 32
 *   bytes from the CSPRNG, so the commitment can only be checked against a guess of all 256
 *   bits; a salt would add nothing but a second secret to carry. It must never be used for
 *   a key of less entropy (a passphrase-derived one), which it would let anyone brute-force.
 * - share: H("edgeward/custody-share/v1" || 0x00 || index || share), index one byte. With
 *   k >= 2 any one share is uniformly random; with k - 1 shares known, every other share is
 *   a bijection of the key, so checking a guessed share is as hard as guessing the key.
 *
 * The library does not check what it reconstructs (its README says so): combine.ts checks
 * every share against its commitment before use and the result against the key commitment.
 */
import { combine as shamirCombine, split as shamirSplit } from 'shamir-secret-sharing'
import { constantTimeEqual, taggedHash } from '../../crypto/hash.ts'
import { InvalidMessageError } from '../errors.ts'

/** a data key's length (AES-256-GCM) */
export const KEY_BYTES = 32
/** a share: the key's length in y-bytes, then the x-coordinate */
export const SHARE_BYTES = KEY_BYTES + 1
/** the most custodians of one set (and shares of one deal) */
export const MAX_CUSTODIANS = 16

export const KEY_COMMITMENT_TAG = 'edgeward/custody-key/v1'
export const SHARE_COMMITMENT_TAG = 'edgeward/custody-share/v1'

/** The commitment to a data key (see the module comment for why it is unsalted). */
export function keyCommitment(key: Uint8Array): Uint8Array {
  if (key.byteLength !== KEY_BYTES) throw new RangeError(`a data key is ${KEY_BYTES} bytes`)
  return taggedHash(KEY_COMMITMENT_TAG, key)
}

/** The commitment to custodian `index`'s share. */
export function shareCommitment(index: number, share: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0 || index >= MAX_CUSTODIANS) throw new RangeError('bad share index')
  if (share.byteLength !== SHARE_BYTES) throw new RangeError(`a share is ${SHARE_BYTES} bytes`)
  const input = new Uint8Array(1 + SHARE_BYTES)
  input[0] = index
  input.set(share, 1)
  return taggedHash(SHARE_COMMITMENT_TAG, input)
}

/** Whether `key` is the one `commitment` commits to (constant time). */
export function matchesKeyCommitment(key: Uint8Array, commitment: Uint8Array): boolean {
  return key.byteLength === KEY_BYTES && constantTimeEqual(keyCommitment(key), commitment)
}

/** A share's x-coordinate (its last byte). */
export function shareX(share: Uint8Array): number {
  return share[share.byteLength - 1]
}

/** The bytes of one share as they come out of a sealed box: 33 bytes, x-coordinate not 0; InvalidMessageError otherwise. */
export function decodeShare(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== SHARE_BYTES) {
    throw new InvalidMessageError(`a share is ${SHARE_BYTES} bytes`)
  }
  // x = 0 would make the share's y-bytes the key itself
  if (shareX(bytes) === 0) throw new InvalidMessageError('a share has an x-coordinate of 1..255')
  // a plain Uint8Array of its own: the library refuses subclasses (Buffer) and views are shared
  return Uint8Array.from(bytes)
}

/** Split `key` into `n` shares of which any `k` give it back (1 <= k <= n <= MAX_CUSTODIANS). */
export async function splitKey(key: Uint8Array, n: number, k: number): Promise<Uint8Array[]> {
  if (key.byteLength !== KEY_BYTES) throw new RangeError(`a data key is ${KEY_BYTES} bytes`)
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_CUSTODIANS) throw new RangeError(`n must be 1..${MAX_CUSTODIANS}`)
  if (!Number.isSafeInteger(k) || k < 1 || k > n) throw new RangeError('k must be 1..n')
  if (k === 1) {
    return Array.from({ length: n }, (_, i) => {
      const share = new Uint8Array(SHARE_BYTES)
      share.set(key)
      share[KEY_BYTES] = i + 1
      return share
    })
  }
  return shamirSplit(Uint8Array.from(key), n, k)
}

/**
 * The value that `shares` (at least `k`, distinct x-coordinates, SHARE_BYTES each)
 * interpolate to at x = 0. Not checked: combine.ts compares it with the key commitment.
 */
export async function combineShares(shares: readonly Uint8Array[], k: number): Promise<Uint8Array> {
  if (shares.length < k || shares.length === 0) throw new RangeError('fewer shares than the threshold')
  if (k === 1) return shares[0].slice(0, KEY_BYTES)
  return shamirCombine(shares.map(s => Uint8Array.from(s)))
}
