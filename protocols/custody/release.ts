/**
 * A share release: custodian `index` of a deal hands its share to a reader's device, sealed
 * (HPKE) to the device's X25519 key, for a lease, in answer to one signed request. Signed by
 * the custodian's principal, with the device certificate that binds the custodian's peer to
 * that principal (as a key request carries the reader's).
 *
 * Guarantees: `openShareRelease` verifies the signature, decodes with a size limit, checks
 * every field, and opens the custodian's device certificate (its signature and fields), whose
 * principal must be the release's signer. `checkShareRelease` says whether a release answers
 * this request for this deal from the custodian at its index in this set, while its lease
 * and the custodian's certificate are in force. The sealed share opens only with the reader
 * device's key and only for this deal, index and request (the HPKE info binds them).
 * Assumes, and does not check: that the custodian's device certificate is not revoked, and
 * that the reader was entitled to the share (each custodian checks the policy; the reader
 * cannot). A device certificate is its principal's claim about a peer, not the peer's: when
 * the set names no principal for a custodian, anyone can certify its peer id, so the service
 * must take a release only over a connection from that peer (as a key holder does with a
 * key request's device), or the set must name the principal.
 */
import { bytesEqual, encodeCanonical } from '../../crypto/encoding.ts'
import { taggedHash } from '../../crypto/hash.ts'
import type { SigningKeyPair } from '../../crypto/identity.ts'
import { openSealed, type SealedBox, sealTo } from '../../crypto/seal.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { type DeviceCert, openDeviceCert } from '../policy/records.ts'
import { asMap, bytes, did, type Fields, ID_PATTERN, int, str, timeWindow } from '../validate.ts'
import { type Deal, SEALED_SHARE_BYTES, verifyShare } from './deal.ts'
import type { CustodianSet } from './records.ts'
import { decodeShare, MAX_CUSTODIANS } from './shares.ts'

export const SHARE_RELEASE_TAG = 'edgeward/custody-release/v1'
export const MAX_SHARE_RELEASE_BYTES = 4 * 1024
const RELEASED_SHARE_INFO_TAG = 'edgeward/custody-released-share/v1'
/** the largest device certificate a release may carry */
const MAX_DEVICE_CERT_BYTES = 1024

export interface ShareRelease {
  t: 'share-release'
  /** the custodian's principal */
  iss: string
  /** the custodian's signed device certificate (its peer and principal) */
  device: Uint8Array
  /** the deal's id */
  deal: string
  /** the custodian's index in the deal's set */
  index: number
  /** the hash of the reader's signed request this answers (what the custodian's audit log records) */
  req: Uint8Array
  /** the share, sealed to the reader's device (see releasedShareInfo) */
  sealed: SealedBox
  /** the lease end: the reader drops the share and the key made from it then */
  lease: number
  iat: number
}

export interface OpenedShareRelease {
  release: OpenedRecord<ShareRelease>
  device: OpenedRecord<DeviceCert>
}

/** The HPKE info a released share is sealed under: the deal, the index and the request. */
export function releasedShareInfo(deal: string, index: number, req: Uint8Array): Uint8Array {
  return taggedHash(RELEASED_SHARE_INFO_TAG, encodeCanonical([deal, index, req]))
}

export interface ShareReleaseFields {
  /** the custodian's signed device certificate */
  device: Uint8Array
  deal: OpenedRecord<Deal>
  index: number
  /** the custodian's share (openDealtShare) */
  share: Uint8Array
  /** the reader device's X25519 key (from its certificate) */
  readerXpk: Uint8Array
  /** the hash of the reader's signed request */
  req: Uint8Array
  lease: number
  now: number
}

/** A custodian releases its share of a deal to a reader's device; the share must be the one the deal commits to. */
export async function createShareRelease(
  custodian: SigningKeyPair & { did: string },
  f: ShareReleaseFields,
): Promise<OpenedRecord<ShareRelease>> {
  if (!verifyShare(f.deal, f.index, f.share)) throw new RangeError('not the share the deal commits to at this index')
  const sealed = await sealTo(f.readerXpk, f.share, releasedShareInfo(f.deal.id, f.index, f.req))
  const body: ShareRelease = {
    t: 'share-release',
    iss: custodian.did,
    device: f.device,
    deal: f.deal.id,
    index: f.index,
    req: f.req,
    sealed,
    lease: f.lease,
    iat: f.now,
  }
  checkShareReleaseFields(body as unknown as Fields)
  return signRecord(SHARE_RELEASE_TAG, body, custodian)
}

function checkShareReleaseFields(m: Fields): void {
  asMap(m, 'share release', ['t', 'iss', 'device', 'deal', 'index', 'req', 'sealed', 'lease', 'iat'])
  if (m.t !== 'share-release') throw new InvalidMessageError('not a share release')
  did(m, 'iss')
  bytes(m, 'device', 1, MAX_DEVICE_CERT_BYTES)
  str(m, 'deal', 64, ID_PATTERN)
  int(m, 'index', 0, MAX_CUSTODIANS - 1)
  bytes(m, 'req', 32, 32)
  const sealed = asMap(m.sealed, 'sealed share', ['enc', 'ct'])
  bytes(sealed, 'enc', 32, 32)
  bytes(sealed, 'ct', SEALED_SHARE_BYTES, SEALED_SHARE_BYTES)
  timeWindow(m, 'iat', 'lease', 'a lease')
}

/** Decode and verify a share release and the custodian's device certificate in it; throws a typed error. */
export function openShareRelease(data: Uint8Array): OpenedShareRelease {
  const release = openSignedRecord<ShareRelease>(SHARE_RELEASE_TAG, data, MAX_SHARE_RELEASE_BYTES)
  checkShareReleaseFields(release.body as unknown as Fields)
  const device = openDeviceCert(release.body.device)
  if (device.body.iss !== release.body.iss) {
    throw new InvalidMessageError("the release is not signed by the principal of the custodian's device")
  }
  return { release, device }
}

/** What a reader knows when a release arrives: the deal, its set, its own request's hash and the time. */
export interface ReleaseContext {
  deal: OpenedRecord<Deal>
  set: OpenedRecord<CustodianSet>
  req: Uint8Array
  now: number
}

/**
 * Why `opened` is not an answer to the reader's request for the deal's share from the
 * custodian at its index, now; undefined when it is. Checks that the deal names the set,
 * that the certificate's peer is the set's custodian at `index` (and the signer its
 * principal, when the set names one), that both the lease and the certificate are in force
 * at `now`, and that the release answers this request.
 */
export function checkShareRelease(opened: OpenedShareRelease, ctx: ReleaseContext): string | undefined {
  const r = opened.release.body
  const cert = opened.device.body
  if (ctx.deal.body.set !== ctx.set.id) return 'the deal names another custodian set'
  if (r.deal !== ctx.deal.id) return 'the release is for another deal'
  if (!bytesEqual(r.req, ctx.req)) return 'the release answers another request'
  const custodian = ctx.set.body.custodians[r.index]
  if (custodian === undefined || r.index >= ctx.deal.body.n) return 'no custodian has this index'
  if (cert.peer !== custodian.peer) return 'the release comes from a peer that is not the custodian at its index'
  if (custodian.did !== undefined && custodian.did !== r.iss)
    return "the release is not signed by the custodian's principal"
  if (ctx.now < cert.nbf || ctx.now >= cert.exp) return "the custodian's device certificate is not in force"
  if (ctx.now >= r.lease) return 'the lease has ended'
  return undefined
}

/**
 * The reader opens a released share with its device's X25519 secret key: the index and the
 * share, not yet checked against the deal (combine does that). DecryptionError when it is not
 * sealed to that key or not for this deal, index and request; InvalidMessageError when what
 * opens is not a share.
 */
export async function openReleasedShare(
  release: OpenedRecord<ShareRelease>,
  secretKey: Uint8Array,
): Promise<{ index: number; share: Uint8Array }> {
  const r = release.body
  const share = decodeShare(await openSealed(secretKey, r.sealed, releasedShareInfo(r.deal, r.index, r.req)))
  return { index: r.index, share }
}
