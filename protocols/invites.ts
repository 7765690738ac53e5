/**
 * Invites: how a person joins a space without handling its id or anyone's address.
 *
 * An invite code (`ew1-` + unpadded base64url of a canonical CBOR map) carries the space's id
 * and name, up to MAX_INVITE_ADDRESSES multiaddrs of the inviter (binary, each ending in
 * `/p2p/<inviter>`, all of one peer), a random token, an expiry and, optionally, the inviter's
 * did and the name they go by (unsigned: a suggestion). The code grants nothing by
 * itself: the inviter keeps sha256(token) with the uses left and the grant to issue, and the
 * joiner redeems the token over `/edgeward/invite/1` with a Redemption signed by its principal,
 * bound to the space and to the libp2p peer of the connection, so that a redemption seen on one
 * connection is worth nothing on another; it may carry the joiner's name (signed by them).
 *
 * Guarantees: decodeInvite refuses a code over MAX_INVITE_CODE_CHARS before decoding it, and
 * anything that is not exactly a version-1 invite (unknown fields, wrong types, multiaddrs that
 * do not parse or do not end in the inviter's peer, non-canonical encodings), with
 * InvalidMessageError only. Expiry is a separate, pure check (`hasExpired`): the caller passes
 * its clock in.
 */
import { multiaddr } from '@multiformats/multiaddr'
import {
  bytesEqual,
  decodeCanonical,
  encodeCanonical,
  fromBase64url,
  fromHex,
  toBase64url,
  toHex,
} from '../crypto/encoding.ts'
import type { SigningKeyPair } from '../crypto/identity.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../crypto/signed.ts'
import { InvalidMessageError } from './errors.ts'
import { FORM_PATTERN, STREAM_PATTERN } from './policy/records.ts'
import {
  asMap,
  bytes,
  did,
  type Fields,
  ID_PATTERN,
  list,
  PEER_ID_PATTERN,
  str,
  TEXT_PATTERN,
  time,
} from './validate.ts'

/** The stream protocol a joiner redeems an invite on: one length-prefixed message each way. */
export const INVITE_PROTOCOL = '/edgeward/invite/1'
/** What every invite code starts with: the format's version, readable by a person. */
export const INVITE_CODE_PREFIX = 'ew1-'
/** The largest invite, in CBOR bytes: a code stays under ~1.4 KB of text, pasteable anywhere. */
export const MAX_INVITE_BYTES = 1024
/** The longest code decodeInvite reads (checked before anything is decoded). */
export const MAX_INVITE_CODE_CHARS = INVITE_CODE_PREFIX.length + Math.ceil((MAX_INVITE_BYTES * 4) / 3)
export const MAX_INVITE_ADDRESSES = 8
export const INVITE_TOKEN_BYTES = 16
/** The domain tag of a joiner's signed redemption. */
export const REDEMPTION_TAG = 'edgeward/invite-redeem/v1'
export const MAX_REDEMPTION_BYTES = 2048
export const MAX_REDEEM_ANSWER_BYTES = 4096

/** Why an inviter refuses a redemption: each is counted, and shown to the joiner in words. */
export const INVITE_REFUSALS = ['malformed', 'unknown', 'expired', 'used', 'bad-signature', 'not-authorized'] as const
export type InviteRefusal = (typeof INVITE_REFUSALS)[number]

/** What an invite code carries. */
export interface Invite {
  /** the space id (64 hex) */
  space: string
  /** the space's name, as its owner gave it */
  name: string
  /** where the inviter listens, each ending in /p2p/<peer> */
  addresses: string[]
  /** the inviter's libp2p peer id */
  peer: string
  token: Uint8Array
  /** ms since the epoch; the invite is refused from then on */
  expiresAt: number
  /**
   * who invites, as they name themselves: a suggestion the joiner keeps only when that did may
   * write the space's policy (its owner, an admin; the code is not signed)
   */
  from?: { did: string; name: string }
}

const INVITE_FIELDS = ['v', 's', 'n', 'a', 't', 'e', 'd', 'i'] as const
/** fields an invite may leave out */
const OPTIONAL_FIELDS = new Set(['d', 'i'])
/** a person's name in an invite or a redemption: as contacts keep it */
export const MAX_PERSON_NAME = 64

/** The peer id a multiaddr ends with (`/p2p/<peer>`), if it does. */
function lastPeer(ma: ReturnType<typeof multiaddr>): string | undefined {
  const components = ma.getComponents()
  const last = components[components.length - 1]
  return last?.name === 'p2p' ? last.value : undefined
}

/**
 * The invite code of `invite`: its addresses as given (non-loopback first is the caller's
 * order), at most MAX_INVITE_ADDRESSES, and fewer when the code would exceed MAX_INVITE_BYTES.
 * InvalidMessageError when no address fits or a field is out of shape.
 *
 * @example encodeInvite({ space, name: 'plant-7', addresses: ['/ip4/192.0.2.1/tcp/4001/p2p/12D3…'], token, expiresAt })
 */
export function encodeInvite(invite: Omit<Invite, 'peer'>): string {
  if (!ID_PATTERN.test(invite.space)) throw new InvalidMessageError('the space is not a space id')
  let addresses = invite.addresses.slice(0, MAX_INVITE_ADDRESSES).map(a => {
    try {
      return multiaddr(a).bytes
    } catch (err) {
      throw new InvalidMessageError(`not a multiaddr: ${a} (${(err as Error).message})`)
    }
  })
  for (;;) {
    const bytes = encodeCanonical({
      v: 1,
      s: fromHex(invite.space),
      n: invite.name,
      a: addresses,
      t: invite.token,
      e: invite.expiresAt,
      ...(invite.from === undefined ? {} : { d: invite.from.did, i: invite.from.name }),
    })
    if (bytes.byteLength <= MAX_INVITE_BYTES || addresses.length <= 1) {
      const code = `${INVITE_CODE_PREFIX}${toBase64url(bytes)}`
      decodeInvite(code) // what we hand out, we would accept
      return code
    }
    addresses = addresses.slice(0, -1)
  }
}

/** Decode and validate an invite code (surrounding whitespace allowed); InvalidMessageError for anything else. */
export function decodeInvite(code: string): Invite {
  if (typeof code !== 'string') throw new InvalidMessageError('an invite code is text')
  const text = code.trim()
  if (text.length > MAX_INVITE_CODE_CHARS) throw new InvalidMessageError('too long for an invite code')
  if (!text.startsWith(INVITE_CODE_PREFIX)) {
    throw new InvalidMessageError(`not an invite code (they start with ${INVITE_CODE_PREFIX})`)
  }
  let m: Fields
  try {
    const raw = fromBase64url(text.slice(INVITE_CODE_PREFIX.length))
    m = asMap(decodeCanonical(raw, MAX_INVITE_BYTES), 'invite', INVITE_FIELDS)
  } catch (err) {
    if ((err as Error).name === InvalidMessageError.name) throw err
    throw new InvalidMessageError(`the invite code is damaged (${(err as Error).message})`)
  }
  for (const k of INVITE_FIELDS)
    if (m[k] === undefined && !OPTIONAL_FIELDS.has(k)) throw new InvalidMessageError(`the invite lacks its ${k}`)
  if ((m.d === undefined) !== (m.i === undefined)) throw new InvalidMessageError('an inviter has a did and a name')
  const from = m.d === undefined ? undefined : { did: did(m, 'd'), name: str(m, 'i', MAX_PERSON_NAME, TEXT_PATTERN) }
  if (m.v !== 1) throw new InvalidMessageError('an invite of another version: update edgeward')
  const space = toHex(bytes(m, 's', 32, 32))
  const name = str(m, 'n', 128, TEXT_PATTERN)
  const token = bytes(m, 't', INVITE_TOKEN_BYTES, INVITE_TOKEN_BYTES)
  const expiresAt = time(m, 'e')
  let peer: string | undefined
  const addresses = list(m, 'a', MAX_INVITE_ADDRESSES, v => {
    if (!(v instanceof Uint8Array) || v.byteLength === 0 || v.byteLength > 256) {
      throw new InvalidMessageError('an address is a binary multiaddr')
    }
    let ma: ReturnType<typeof multiaddr>
    try {
      ma = multiaddr(v)
    } catch (err) {
      throw new InvalidMessageError(`an address does not parse (${(err as Error).message})`)
    }
    // one encoding per address: what does not re-encode to the same bytes is refused
    if (!bytesEqual(ma.bytes, v)) throw new InvalidMessageError('an address is not canonical')
    const p = lastPeer(ma)
    if (p === undefined || !PEER_ID_PATTERN.test(p))
      throw new InvalidMessageError('an address does not end in /p2p/PEER')
    if (peer !== undefined && p !== peer) throw new InvalidMessageError('the addresses name more than one peer')
    peer = p
    return ma.toString()
  })
  if (peer === undefined) throw new InvalidMessageError('the invite carries no address of the inviter')
  return { space, name, addresses, peer, token, expiresAt, ...(from === undefined ? {} : { from }) }
}

/** Whether the invite has expired at `now` (its expiry is exclusive). */
export function hasExpired(invite: Pick<Invite, 'expiresAt'>, now: number): boolean {
  return now >= invite.expiresAt
}

/** What a joiner signs to redeem an invite: the token, for this space, from this libp2p peer. */
export interface Redemption {
  t: 'invite-redeem'
  /** the joiner's principal */
  iss: string
  space: string
  token: Uint8Array
  /** the joiner's libp2p peer id: the inviter compares it with the connection's */
  peer: string
  /** the name the joiner goes by (signed by them): the inviter keeps it as a suggestion */
  name?: string
}

function checkRedemption(m: Fields): void {
  asMap(m, 'redemption', ['t', 'iss', 'space', 'token', 'peer', 'name'])
  if (m.name !== undefined) str(m, 'name', MAX_PERSON_NAME, TEXT_PATTERN)
  if (m.t !== 'invite-redeem') throw new InvalidMessageError('not an invite redemption')
  did(m, 'iss')
  str(m, 'space', 64, ID_PATTERN)
  bytes(m, 'token', INVITE_TOKEN_BYTES, INVITE_TOKEN_BYTES)
  str(m, 'peer', 64, PEER_ID_PATTERN)
}

/** Sign a redemption of `token` as `joiner`, from the libp2p peer `peer`. */
export function createRedemption(
  joiner: SigningKeyPair & { did: string },
  fields: Omit<Redemption, 't' | 'iss'>,
): OpenedRecord<Redemption> {
  const body: Redemption = { t: 'invite-redeem', iss: joiner.did, ...fields }
  checkRedemption(body as unknown as Fields)
  return signRecord(REDEMPTION_TAG, body, joiner)
}

/**
 * Decode a redemption and verify its signature by its issuer's key: InvalidMessageError or
 * InvalidEncodingError when malformed, InvalidDidError / InvalidSignatureError when it is not
 * signed by the did it names.
 */
export function openRedemption(data: Uint8Array): OpenedRecord<Redemption> {
  const rec = openSignedRecord<Redemption>(REDEMPTION_TAG, data, MAX_REDEMPTION_BYTES)
  checkRedemption(rec.body as unknown as Fields)
  return rec
}

/** The grant an inviter issued to a joiner, as the answer describes it. */
export interface InviteGrant {
  id: string
  streams: string[]
  forms: string[]
  /** ms since the epoch, exclusive */
  notAfter: number
  download: boolean
}

/** The inviter's answer to a redemption. */
export type RedeemAnswer = { ok: true; grant?: InviteGrant } | { ok: false; refusal: InviteRefusal }

/** Encode the inviter's answer. */
export function encodeRedeemAnswer(answer: RedeemAnswer): Uint8Array {
  if (!answer.ok) return encodeCanonical({ ok: false, refusal: answer.refusal })
  return encodeCanonical(answer.grant === undefined ? { ok: true } : { ok: true, grant: answer.grant })
}

/** Decode the inviter's answer; InvalidMessageError (or InvalidEncodingError) otherwise. */
export function decodeRedeemAnswer(data: Uint8Array): RedeemAnswer {
  const m = asMap(decodeCanonical(data, MAX_REDEEM_ANSWER_BYTES), 'invite answer', ['ok', 'refusal', 'grant'])
  if (m.ok === false) {
    if (m.grant !== undefined || Object.keys(m).length !== 2)
      throw new InvalidMessageError('a refusal carries its code only')
    const refusal = m.refusal
    if (!INVITE_REFUSALS.includes(refusal as InviteRefusal)) throw new InvalidMessageError('unknown refusal')
    return { ok: false, refusal: refusal as InviteRefusal }
  }
  if (m.ok !== true || m.refusal !== undefined) throw new InvalidMessageError('ok is a boolean')
  if (m.grant === undefined) return { ok: true }
  const g = asMap(m.grant, 'grant', ['id', 'streams', 'forms', 'notAfter', 'download'])
  const streams = list(g, 'streams', 64, v => {
    if (typeof v !== 'string' || !STREAM_PATTERN.test(v)) throw new InvalidMessageError('bad stream')
    return v
  })
  const forms = list(g, 'forms', 8, v => {
    if (typeof v !== 'string' || !FORM_PATTERN.test(v)) throw new InvalidMessageError('bad form')
    return v
  })
  if (typeof g.download !== 'boolean') throw new InvalidMessageError('download is a boolean')
  return {
    ok: true,
    grant: { id: str(g, 'id', 64, ID_PATTERN), streams, forms, notAfter: time(g, 'notAfter'), download: g.download },
  }
}
