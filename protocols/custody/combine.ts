/**
 * A reader combines released shares into the data key of a deal.
 *
 * Guarantees: a key comes back only if it matches the deal's key commitment, and only from
 * shares that each match the deal's commitment for their index (compared in constant time).
 * A share that does not (tampered, from another deal, another index, malformed) is skipped
 * and named with the reason, and the key is still made when k good shares remain. With fewer
 * than k good shares nothing is combined. A refusal is a value, never an exception.
 * A key that does not match its commitment from shares that all match theirs can only come
 * from a dealer that committed to inconsistent shares: the refusal says so, and the signed
 * deal is the evidence.
 */
import type { OpenedRecord } from '../../crypto/signed.ts'
import { type Deal, verifyShare } from './deal.ts'
import { combineShares, matchesKeyCommitment, shareX } from './shares.ts'

export interface IndexedShare {
  /** the custodian's index in the deal's set */
  index: number
  share: Uint8Array
}

export interface SkippedShare {
  index: number
  reason: string
}

export type CombineResult =
  | { ok: true; key: Uint8Array; used: number[]; skipped: SkippedShare[] }
  | { ok: false; reason: string; skipped: SkippedShare[] }

/** The data key of `deal` from any k of `shares` that match its commitments; see the module comment. */
export async function combine(deal: OpenedRecord<Deal>, shares: readonly IndexedShare[]): Promise<CombineResult> {
  const k = deal.body.k
  const skipped: SkippedShare[] = []
  const chosen: IndexedShare[] = []
  const indices = new Set<number>()
  const xs = new Set<number>()
  for (const s of shares) {
    if (chosen.length === k) break
    if (indices.has(s.index)) {
      skipped.push({ index: s.index, reason: 'a second share for this index' })
      continue
    }
    if (!verifyShare(deal, s.index, s.share)) {
      skipped.push({ index: s.index, reason: 'does not match the deal’s commitment for its index' })
      continue
    }
    indices.add(s.index)
    // committed shares with one x-coordinate cannot both be right: the dealer's fault, not the custodian's
    if (xs.has(shareX(s.share))) {
      skipped.push({ index: s.index, reason: 'the dealer gave this share the x-coordinate of another' })
      continue
    }
    xs.add(shareX(s.share))
    chosen.push(s)
  }
  if (chosen.length < k) {
    return { ok: false, reason: `${chosen.length} good shares of the ${k} needed`, skipped }
  }
  const key = await combineShares(
    chosen.map(s => s.share),
    k,
  )
  if (!matchesKeyCommitment(key, deal.body.commitment)) {
    key.fill(0)
    return {
      ok: false,
      reason: `the shares match their commitments but not the key's: deal ${deal.id} by ${deal.issuer} is inconsistent`,
      skipped,
    }
  }
  return { ok: true, key, used: chosen.map(s => s.index), skipped }
}
