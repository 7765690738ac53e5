/**
 * A deal: a data key split k-of-n among a space's custodians, one share sealed (HPKE) to each
 * custodian's X25519 key, with a commitment to the key and one to each share, signed by
 * whoever encrypted the data (the dealer: the gateway for a stream's epochs, a member for a
 * file or message).
 *
 * Guarantees: `openDeal` verifies the signature, decodes with a size limit, and checks every
 * field: the resource (a stream's form and epoch, or an object), the set id, 1 <= k <= n <=
 * MAX_CUSTODIANS, exactly n shares, each a 32-byte commitment and a sealed box of exactly one
 * share's size. `checkDealForSet` says whether a deal matches the custodian set it names
 * (its id, space, k and n). A sealed share opens only with its custodian's key and only as
 * the share of this space, resource, set, index and key commitment (the HPKE info binds them).
 * `mayDeal` says whether the deal's signer may deal its key, as the policy stands.
 * Assumes, and does not check: that this is the only deal of the resource (the service keeps
 * the first).
 * Not verifiable secret sharing: the shares are checked against the dealer's commitments,
 * and the key they give against the dealer's key commitment, only when they are combined; a
 * dealer that committed to inconsistent shares is found out then, by its signed deal.
 */
import { encodeCanonical } from '../../crypto/encoding.ts'
import { constantTimeEqual, taggedHash } from '../../crypto/hash.ts'
import type { SigningKeyPair } from '../../crypto/identity.ts'
import { openSealed, type SealedBox, sealTo } from '../../crypto/seal.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../../crypto/signed.ts'
import { OBJECT_PATTERN } from '../data/objects.ts'
import { InvalidMessageError } from '../errors.ts'
import { isForm } from '../policy/records.ts'
import type { PolicyState } from '../policy/state.ts'
import { asMap, bytes, did, type Fields, ID_PATTERN, int, list, NAME_PATTERN, str, time } from '../validate.ts'
import type { Custodian, CustodianSet } from './records.ts'
import {
  decodeShare,
  KEY_BYTES,
  keyCommitment,
  MAX_CUSTODIANS,
  SHARE_BYTES,
  shareCommitment,
  splitKey,
} from './shares.ts'

export const DEAL_TAG = 'edgeward/custody-deal/v1'
export const MAX_DEAL_BYTES = 8 * 1024
/** a sealed share's ciphertext: the share and AES-256-GCM's tag */
export const SEALED_SHARE_BYTES = SHARE_BYTES + 16
const DEALT_SHARE_INFO_TAG = 'edgeward/custody-dealt-share/v1'

/** What a dealt key encrypts: one (stream, form, epoch), or one object. */
export type CustodyResource = { stream: string; form: string; epoch: number } | { object: string }

export interface DealtShare {
  /** shareCommitment(index, share) */
  commitment: Uint8Array
  /** the share sealed to custodian `index` (see dealtShareInfo) */
  sealed: SealedBox
}

export interface Deal {
  t: 'deal'
  iss: string
  space: string
  resource: CustodyResource
  /** the id of the custodian set the shares are dealt to */
  set: string
  k: number
  n: number
  /** keyCommitment(key) */
  commitment: Uint8Array
  /** one per custodian, in the set's order */
  shares: DealtShare[]
  iat: number
}

/** Who deals, for what, to which set, when. */
export interface DealContext {
  dealer: SigningKeyPair & { did: string }
  space: string
  resource: CustodyResource
  /** the custodian set's id */
  set: string
  now: number
}

/** The HPKE info a dealt share is sealed under: space, resource, set, index and key commitment. */
export function dealtShareInfo(
  space: string,
  resource: CustodyResource,
  set: string,
  index: number,
  commitment: Uint8Array,
): Uint8Array {
  return taggedHash(DEALT_SHARE_INFO_TAG, encodeCanonical([space, resource, set, index, commitment]))
}

/**
 * Split `key` k-of-n among `custodians` (in the set's order; a CustodianSet's `custodians`
 * as they are), seal each share to its custodian and sign the deal as `ctx.dealer`.
 * @example
 * const deal = await dealKey(key, set.body.custodians, set.body.k, { dealer, space, resource, set: set.id, now })
 */
export async function dealKey(
  key: Uint8Array,
  custodians: readonly Pick<Custodian, 'xpk'>[],
  k: number,
  ctx: DealContext,
): Promise<OpenedRecord<Deal>> {
  if (key.byteLength !== KEY_BYTES) throw new RangeError(`a data key is ${KEY_BYTES} bytes`)
  const n = custodians.length
  const commitment = keyCommitment(key)
  const split = await splitKey(key, n, k)
  const shares: DealtShare[] = []
  for (let i = 0; i < n; i++) {
    const info = dealtShareInfo(ctx.space, ctx.resource, ctx.set, i, commitment)
    shares.push({
      commitment: shareCommitment(i, split[i]),
      sealed: await sealTo(custodians[i].xpk, split[i], info),
    })
    split[i].fill(0)
  }
  const body: Deal = {
    t: 'deal',
    iss: ctx.dealer.did,
    space: ctx.space,
    resource: ctx.resource,
    set: ctx.set,
    k,
    n,
    commitment,
    shares,
    iat: ctx.now,
  }
  checkDeal(body as unknown as Fields)
  return signRecord(DEAL_TAG, body, ctx.dealer)
}

/** A resource as a deal names it; InvalidMessageError otherwise. */
export function checkResource(value: unknown): CustodyResource {
  const m = asMap(value, 'resource', ['stream', 'form', 'epoch', 'object'])
  if (m.object !== undefined) {
    asMap(m, 'object resource', ['object'])
    return { object: str(m, 'object', 20, OBJECT_PATTERN) }
  }
  asMap(m, 'stream resource', ['stream', 'form', 'epoch'])
  const stream = str(m, 'stream', 64, NAME_PATTERN)
  if (!isForm(m.form)) throw new InvalidMessageError('form is malformed')
  return { stream, form: m.form, epoch: int(m, 'epoch') }
}

function checkDeal(m: Fields): void {
  asMap(m, 'deal', ['t', 'iss', 'space', 'resource', 'set', 'k', 'n', 'commitment', 'shares', 'iat'])
  if (m.t !== 'deal') throw new InvalidMessageError('not a deal')
  did(m, 'iss')
  str(m, 'space', 64, ID_PATTERN)
  checkResource(m.resource)
  str(m, 'set', 64, ID_PATTERN)
  const n = int(m, 'n', 1, MAX_CUSTODIANS)
  int(m, 'k', 1, n)
  bytes(m, 'commitment', 32, 32)
  const shares = list(m, 'shares', MAX_CUSTODIANS, v => {
    const s = asMap(v, 'dealt share', ['commitment', 'sealed'])
    bytes(s, 'commitment', 32, 32)
    const sealed = asMap(s.sealed, 'sealed share', ['enc', 'ct'])
    bytes(sealed, 'enc', 32, 32)
    bytes(sealed, 'ct', SEALED_SHARE_BYTES, SEALED_SHARE_BYTES)
    return s
  })
  if (shares.length !== n) throw new InvalidMessageError('a deal carries one share per custodian')
  time(m, 'iat')
}

/** Decode and verify a signed deal; throws a typed error. */
export function openDeal(data: Uint8Array): OpenedRecord<Deal> {
  const rec = openSignedRecord<Deal>(DEAL_TAG, data, MAX_DEAL_BYTES)
  checkDeal(rec.body as unknown as Fields)
  return rec
}

/** Why `deal` does not fit the custodian set `set` (its id, space, k and n), or undefined when it does. */
export function checkDealForSet(deal: OpenedRecord<Deal>, set: OpenedRecord<CustodianSet>): string | undefined {
  if (deal.body.set !== set.id) return 'the deal names another custodian set'
  if (deal.body.space !== set.body.space) return 'the deal and the custodian set are of different spaces'
  if (deal.body.n !== set.body.custodians.length) return 'the deal has not one share per custodian of the set'
  if (deal.body.k !== set.body.k) return "the deal's threshold is not the set's"
  return undefined
}

/** Whether `share` is custodian `index`'s share of `deal` (its commitment, compared in constant time). */
export function verifyShare(deal: OpenedRecord<Deal>, index: number, share: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || index < 0 || index >= deal.body.shares.length) return false
  if (!(share instanceof Uint8Array) || share.byteLength !== SHARE_BYTES) return false
  return constantTimeEqual(shareCommitment(index, share), deal.body.shares[index].commitment)
}

/**
 * A custodian opens its share of `deal` with its X25519 secret key: DecryptionError when it
 * is not sealed to that key (or not for this deal), InvalidMessageError when what opens is not
 * a share or not the one the deal commits to.
 */
export async function openDealtShare(
  deal: OpenedRecord<Deal>,
  index: number,
  secretKey: Uint8Array,
): Promise<Uint8Array> {
  const d = deal.body
  if (!Number.isSafeInteger(index) || index < 0 || index >= d.shares.length) throw new RangeError('bad share index')
  const info = dealtShareInfo(d.space, d.resource, d.set, index, d.commitment)
  const share = decodeShare(await openSealed(secretKey, d.shares[index].sealed, info))
  if (!verifyShare(deal, index, share)) throw new InvalidMessageError('the share does not match its commitment')
  return share
}

/**
 * May the deal's signer deal the key it names: the space's owner (its key holder) any, a member
 * the keys of its own files and messages (whose stream record it wrote, naming its device).
 */
export function mayDeal(state: Pick<PolicyState, 'owner' | 'streams'>, deal: OpenedRecord<Deal>): boolean {
  if (deal.issuer === state.owner) return true
  const r = deal.body.resource
  if (!('stream' in r)) return false
  const rec = state.streams.get(r.stream)
  return rec !== undefined && rec.body.peer !== undefined && rec.issuer === deal.issuer
}
