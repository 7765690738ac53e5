/**
 * The wire messages of custody, on three request/response protocols:
 * - `/edgeward/custody/info/1.0.0`: a peer asked to be a custodian answers with its signed
 *   device certificate (its peer id, its X25519 key and the principal that runs it), which the
 *   owner puts in the custodian set; the asker checks that the certificate names the peer it
 *   asked.
 * - `/edgeward/custody/deal/1.0.0`: a dealer hands a custodian a signed deal (deal.ts); the
 *   custodian answers once the deal is stored durably, or refuses with a code and a reason.
 * - `/edgeward/custody/release/1.0.0`: a reader sends the same signed key request it sends a
 *   key holder (access/messages.ts); a custodian answers with, per epoch it releases, the deal
 *   and its share release (release.ts), or refuses with a code and a reason.
 *
 * Guarantees: each decoder refuses oversize input before parsing and checks every field; the
 * records inside (device certificate, deals, releases) are opened by their own modules, which
 * verify their signatures.
 */
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { InvalidMessageError } from '../errors.ts'
import { asMap, bytes, ID_PATTERN, list, str } from '../validate.ts'
import { MAX_DEAL_BYTES } from './deal.ts'
import { MAX_SHARE_RELEASE_BYTES } from './release.ts'

export const CUSTODY_INFO_PROTOCOL = '/edgeward/custody/info/1.0.0'
export const CUSTODY_DEAL_PROTOCOL = '/edgeward/custody/deal/1.0.0'
export const CUSTODY_RELEASE_PROTOCOL = '/edgeward/custody/release/1.0.0'

/** an info request carries nothing; the answer is one device certificate */
export const MAX_INFO_REQUEST_BYTES = 16
export const MAX_INFO_RESPONSE_BYTES = 2 * 1024
/** an answer to a deal or a refusal: a code and a reason */
export const MAX_ANSWER_BYTES = 1024
/** the most epochs one release request to a custodian names (a reader asks again for more) */
export const MAX_CUSTODY_EPOCHS = 32
export const MAX_CUSTODY_RESPONSE_BYTES = MAX_CUSTODY_EPOCHS * (MAX_DEAL_BYTES + MAX_SHARE_RELEASE_BYTES + 64) + 1024
/** refusal codes are short kebab-case words, e.g. `not-a-custodian`, `revoked` */
const CODE_PATTERN = /^[a-z][a-z0-9-]{0,63}$/

/** A custodian's or a refusal's answer: done, or refused with a code and a reason. */
export type CustodyAnswer = { ok: true } | { ok: false; code: string; reason: string }

/** What a custodian gives a reader for one epoch: the signed deal and its signed share release. */
export interface ReleasedShare {
  deal: Uint8Array
  release: Uint8Array
}

export type CustodyReleaseResponse =
  /** `grant`: the grant the custodian released under (the reader checks it is its own) */
  { ok: true; grant: string; shares: ReleasedShare[] } | { ok: false; code: string; reason: string }

/** Encode an answer to a deal (or any refusal). */
export function encodeCustodyAnswer(a: CustodyAnswer): Uint8Array {
  return encodeCanonical(a)
}

function refusal(value: unknown, limit: number): { ok: false; code: string; reason: string } {
  const m = asMap(value, 'refusal', ['ok', 'code', 'reason'])
  return { ok: false, code: str(m, 'code', 64, CODE_PATTERN), reason: str(m, 'reason', limit) }
}

/** Decode an answer to a deal; InvalidMessageError otherwise. */
export function decodeCustodyAnswer(data: Uint8Array): CustodyAnswer {
  const value = decodeCanonical(data, MAX_ANSWER_BYTES)
  const ok = (value as { ok?: unknown } | null)?.ok
  if (ok === true) {
    asMap(value, 'answer', ['ok'])
    return { ok: true }
  }
  if (ok === false) return refusal(value, 512)
  throw new InvalidMessageError('an answer is ok or a refusal')
}

/** Encode a custodian's answer to a release request. */
export function encodeCustodyReleaseResponse(res: CustodyReleaseResponse): Uint8Array {
  return encodeCanonical(res)
}

/** Decode a custodian's answer to a release request; InvalidMessageError otherwise. */
export function decodeCustodyReleaseResponse(data: Uint8Array): CustodyReleaseResponse {
  const value = decodeCanonical(data, MAX_CUSTODY_RESPONSE_BYTES)
  const ok = (value as { ok?: unknown } | null)?.ok
  if (ok === false) return refusal(value, 512)
  if (ok !== true) throw new InvalidMessageError('an answer is ok or a refusal')
  const m = asMap(value, 'custody release', ['ok', 'grant', 'shares'])
  const grant = str(m, 'grant', 64, ID_PATTERN)
  const shares = list(m, 'shares', MAX_CUSTODY_EPOCHS, v => {
    const s = asMap(v, 'released share', ['deal', 'release'])
    return { deal: bytes(s, 'deal', 1, MAX_DEAL_BYTES), release: bytes(s, 'release', 1, MAX_SHARE_RELEASE_BYTES) }
  })
  return { ok: true, grant, shares }
}
