/**
 * The custodian set of a space: the n peers that hold shares of its data keys and the
 * threshold k of them that together release a key. Signed by the space's owner.
 *
 * Guarantees: `openCustodianSet` verifies the signature, decodes with a size limit, and
 * checks every field: 2..MAX_CUSTODIANS custodians, each a peer id with a 32-byte X25519 key
 * and optionally the did:key of the principal that runs it; no peer, key or did twice (one
 * party holding two shares would need fewer than k others); 2 <= k <= n, so that no custodian
 * ever releases a key alone. A custodian's index is its position in the list: shares and
 * releases name custodians by it.
 * Assumes, and does not check: that the issuer is the owner of `space`, and that this set is
 * the one in force. That is the policy state's job; this module only knows the record.
 * A set's id (its record id) is what deals name.
 */
import { toHex } from '../../crypto/encoding.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { checkSpaceRecordHead, recordKind, type Signer } from '../record-kind.ts'
import { asMap, bytes, did, type Fields, int, list, PEER_ID_PATTERN, str, time } from '../validate.ts'
import { MAX_CUSTODIANS } from './shares.ts'

export const CUSTODIAN_SET_TAG = 'edgeward/custodian-set/v1'
export const MAX_CUSTODIAN_SET_BYTES = 8 * 1024

export interface Custodian {
  /** the custodian's libp2p peer id */
  peer: string
  /** its X25519 key, to which shares are sealed */
  xpk: Uint8Array
  /** the principal that runs it; when present, only that principal's releases count */
  did?: string
}

export interface CustodianSet {
  t: 'custodian-set'
  iss: string
  space: string
  custodians: Custodian[]
  /** the threshold: how many custodians together release a key */
  k: number
  iat: number
}

/** Sign a custodian set for `space`: the custodians (by index) and the threshold k. */
export function createCustodianSet(
  owner: Signer,
  space: string,
  custodians: readonly Custodian[],
  k: number,
  now: number,
): OpenedRecord<CustodianSet> {
  const body: CustodianSet = {
    t: 'custodian-set',
    iss: owner.did,
    space,
    custodians: custodians.map(c => (c.did === undefined ? { peer: c.peer, xpk: c.xpk } : { ...c })),
    k,
    iat: now,
  }
  return CUSTODIAN_SET.sign(body, owner)
}

function checkCustodianSet(m: Fields): void {
  asMap(m, 'custodian set', ['t', 'iss', 'space', 'custodians', 'k', 'iat'])
  checkSpaceRecordHead(m, 'custodian-set', 'a custodian set')
  time(m, 'iat')
  const custodians = list(m, 'custodians', MAX_CUSTODIANS, v => {
    const c = asMap(v, 'custodian', ['peer', 'xpk', 'did'])
    const entry: Custodian = { peer: str(c, 'peer', 64, PEER_ID_PATTERN), xpk: bytes(c, 'xpk', 32, 32) }
    if (c.did !== undefined) entry.did = did(c, 'did')
    return entry
  })
  // k >= 2 needs n >= 2: said on its own, since a one-custodian set is the likelier mistake
  if (custodians.length < 2) {
    throw new InvalidMessageError('a custodian set names at least two custodians: no custodian may release alone')
  }
  const distinct = (values: string[]) => new Set(values).size === values.length
  if (!distinct(custodians.map(c => c.peer))) throw new InvalidMessageError('a custodian set names each peer once')
  if (!distinct(custodians.map(c => toHex(c.xpk)))) {
    throw new InvalidMessageError('a custodian set names each sealing key once')
  }
  if (!distinct(custodians.flatMap(c => (c.did === undefined ? [] : [c.did])))) {
    throw new InvalidMessageError('a custodian set names each principal once')
  }
  // a threshold of one would let any single custodian release the key
  int(m, 'k', 2, custodians.length)
}

const CUSTODIAN_SET = recordKind<CustodianSet>(CUSTODIAN_SET_TAG, MAX_CUSTODIAN_SET_BYTES, checkCustodianSet)

/** Decode and verify a signed custodian set; throws a typed error. */
export function openCustodianSet(data: Uint8Array): OpenedRecord<CustodianSet> {
  return CUSTODIAN_SET.open(data)
}
