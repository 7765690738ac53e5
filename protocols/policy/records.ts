/**
 * The signed records of the control plane: a space's genesis, its streams, grants,
 * revocations, and the device certificate that binds a libp2p peer to a principal.
 *
 * Guarantees: every `open*` function verifies the signature, decodes with a size limit,
 * and checks every field's type and range; what it returns can be trusted as far as the
 * signature goes. The `create*` functions check the same rules (one `check*` function per
 * kind) before they sign, so a record this code signs is one every peer opens, and a peer
 * refuses on arrival what it could not honour or show: times outside 1970..9999 (see
 * MAX_TIME_MS), windows that end before they start, aggregate windows of zero, epochs
 * outside what the data plane runs, counts under one, text too long or with control
 * characters. Authority (who may sign what in which space) is checked by the policy
 * state, not here.
 */
import { randomBytes } from '../../crypto/hash.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { checkSpaceRecordHead, recordKind, type Signer } from '../record-kind.ts'
import {
  asMap,
  bytes,
  did,
  type Fields,
  ID_PATTERN,
  int,
  list,
  NAME_PATTERN,
  optInt,
  optStr,
  PEER_ID_PATTERN,
  str,
  TEXT_PATTERN,
  time,
  timeWindow,
} from '../validate.ts'

export const TAGS = {
  genesis: 'edgeward/space/v1',
  stream: 'edgeward/stream/v1',
  grant: 'edgeward/grant/v1',
  revocation: 'edgeward/revocation/v1',
  delegation: 'edgeward/delegation/v1',
  device: 'edgeward/device/v1',
} as const

export const MAX_RECORD_BYTES = 8 * 1024

/**
 * Forms of a stream's data (see DESIGN, "Spaces, resources, forms"). An aggregate window is
 * a positive whole number without leading zeros and a unit, so that one window has one name
 * and none is empty: `aggregate:0m` would be a stream no gateway can publish to.
 */
export const FORM_PATTERN = /^(raw|hashed|aggregate:[1-9][0-9]{0,5}[smhd])$/

const DAY_MS = 24 * 3600 * 1000
/** A stream's key epochs: from one second (the data plane's shortest) to 366 days (an object's). */
export const MIN_EPOCH_MS = 1000
export const MAX_EPOCH_MS = 366 * DAY_MS
/** The longest aggregate window: 366 days, as the longest epoch. */
export const MAX_AGGREGATE_WINDOW_MS = 366 * DAY_MS
const WINDOW_UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS }

/** Is `form` a form records may name: raw, hashed, or an aggregate of 1 s to 366 days? */
export function isForm(form: unknown): form is string {
  if (typeof form !== 'string') return false
  if (!FORM_PATTERN.test(form)) return false
  if (!form.startsWith('aggregate:')) return true
  return Number(form.slice(10, -1)) * WINDOW_UNIT_MS[form.slice(-1)] <= MAX_AGGREGATE_WINDOW_MS
}

function formList(m: Fields): string[] {
  return list(m, 'forms', 8, v => {
    if (!isForm(v)) {
      throw new InvalidMessageError(
        `bad form ${JSON.stringify(v)}: raw, hashed or aggregate:<window> (1s to 366d, e.g. aggregate:15m)`,
      )
    }
    return v
  })
}

export interface SpaceGenesis {
  t: 'space'
  iss: string
  name: string
  /** creation time, ms since epoch */
  iat: number
  nonce: Uint8Array
  /** libp2p peer ids that hold the space's data keys and answer key requests */
  holders: string[]
}

export interface StreamRecord {
  t: 'stream'
  iss: string
  space: string
  name: string
  /** epoch length in ms */
  epochMs: number
  iat: number
  /** the forms the gateway produces (default raw and hashed), e.g. `aggregate:15m` too */
  forms?: string[]
  /**
   * an object's kind (a stream named `obj-…`): what a reader's inbox shows before it opens
   * it. Every member of the space reads it; the object's name and content stay encrypted.
   */
  media?: ObjectMedia
  /**
   * the device (peer id) that publishes the stream, for a member's object (a stream whose
   * author is not the owner): the only peer whose gossip of it is taken
   */
  peer?: string
}

/** The kinds of object a stream record may name. */
export const OBJECT_MEDIA = ['file', 'message'] as const
export type ObjectMedia = (typeof OBJECT_MEDIA)[number]

/** What a grant's holder may do with access beyond reading it: see DESIGN, "Grants and revocations". */
export type ForwardPermission = 'never' | 'ask-owner' | 'allowed'
export const FORWARD_PERMISSIONS: readonly ForwardPermission[] = ['never', 'ask-owner', 'allowed']

export interface Grant {
  t: 'grant'
  iss: string
  space: string
  /** the principal (did:key) the grant is for */
  sub: string
  /** stream names, prefixes (`line-1.*`), or ['*'] for every stream of the space */
  streams: string[]
  forms: string[]
  /** valid from (inclusive), ms */
  nbf: number
  /** valid until (exclusive), ms */
  exp: number
  iat: number
  nonce: Uint8Array
  /** data window: which time range of the data the grant covers (ms, from inclusive, until exclusive) */
  dataFrom?: number
  dataUntil?: number
  /** may the holder persist plaintext (default true) */
  download?: boolean
  /** may the holder pass access on (default 'never') */
  forward?: ForwardPermission
  /** "from where": the only devices (peer ids) the grant may be used from */
  devices?: string[]
  /** at most this many key releases under this grant */
  maxReleases?: number
  /** why access is given; recorded in the audit trail with every release */
  purpose?: string
  /** the grant this one was derived from (delegation chain); it may only narrow its parent */
  parent?: string
  /**
   * may the holder share its own files and messages into the space (objects it encrypts, whose
   * keys it deals to the space's custodians) and grant people access to them
   */
  contribute?: boolean
}

/** The owner hands part of the space's grant/revoke authority to an admin principal. */
export interface Delegation {
  t: 'delegation'
  iss: string
  space: string
  admin: string
  /** the streams (names, prefixes or '*') the admin may grant and revoke */
  streams: string[]
  nbf: number
  exp: number
  iat: number
  nonce: Uint8Array
}

export type RevocationTarget = { grant: string } | { subject: string } | { device: string } | { delegation: string }

export interface Revocation {
  t: 'revocation'
  iss: string
  space: string
  target: RevocationTarget
  iat: number
  reason?: string
}

export interface DeviceCert {
  t: 'device'
  iss: string
  /** libp2p peer id of the device */
  peer: string
  /** the device's X25519 public key, to which keys are sealed */
  xpk: Uint8Array
  nbf: number
  exp: number
}

const nonce = (): Uint8Array => randomBytes(16)

/** Sign the genesis record of a new space: its owner, name and key holders. */
export function createGenesis(owner: Signer, name: string, holders: string[], now: number) {
  return GENESIS.sign({ t: 'space', iss: owner.did, name, iat: now, nonce: nonce(), holders }, owner)
}

/** Sign the record that creates a stream in a space, with its epoch length and (optionally) its forms. */
export function createStream(
  owner: Signer,
  space: string,
  name: string,
  epochMs: number,
  now: number,
  forms?: string[],
  media?: ObjectMedia,
  peer?: string,
) {
  const body: StreamRecord = { t: 'stream', iss: owner.did, space, name, epochMs, iat: now }
  if (forms !== undefined) body.forms = forms
  if (media !== undefined) body.media = media
  if (peer !== undefined) body.peer = peer
  return STREAM.sign(body, owner)
}

/** Optional fields that are undefined are left out: canonical bytes have no undefined. */
function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}

export type GrantFields = Omit<Grant, 't' | 'iss' | 'nonce' | 'iat'>

/** Sign a grant from `issuer` with `fields`, dated `now`. */
export function createGrant(issuer: Signer, fields: GrantFields, now: number): OpenedRecord<Grant> {
  return GRANT.sign(
    withoutUndefined<Grant>({ t: 'grant', iss: issuer.did, ...fields, iat: now, nonce: nonce() }),
    issuer,
  )
}

/** Sign a delegation: the owner makes an admin for part of the space, for a time. */
export function createDelegation(
  owner: Signer,
  fields: Omit<Delegation, 't' | 'iss' | 'nonce' | 'iat'>,
  now: number,
): OpenedRecord<Delegation> {
  return DELEGATION.sign({ t: 'delegation', iss: owner.did, ...fields, iat: now, nonce: nonce() }, owner)
}

/** Sign a revocation of a grant, a subject, a device or a delegation. */
export function createRevocation(
  issuer: Signer,
  space: string,
  target: RevocationTarget,
  now: number,
  reason?: string,
): OpenedRecord<Revocation> {
  const body: Revocation = { t: 'revocation', iss: issuer.did, space, target, iat: now }
  if (reason !== undefined) body.reason = reason
  return REVOCATION.sign(body, issuer)
}

/** Sign a device certificate: the principal binds a peer and its X25519 key for [nbf, exp). */
export function createDeviceCert(principal: Signer, peer: string, xpk: Uint8Array, nbf: number, exp: number) {
  return DEVICE.sign({ t: 'device', iss: principal.did, peer, xpk, nbf, exp }, principal)
}

function checkGenesis(m: Fields): void {
  asMap(m, 'space genesis', ['t', 'iss', 'name', 'iat', 'nonce', 'holders'])
  if (m.t !== 'space') throw new InvalidMessageError('not a space genesis')
  did(m, 'iss')
  str(m, 'name', 128, TEXT_PATTERN)
  time(m, 'iat')
  bytes(m, 'nonce', 16, 16)
  const holders = list(m, 'holders', 16, v => {
    if (typeof v !== 'string' || !PEER_ID_PATTERN.test(v)) throw new InvalidMessageError('holder is not a peer id')
    return v
  })
  if (holders.length === 0) throw new InvalidMessageError('a space needs at least one key holder')
  if (new Set(holders).size !== holders.length) throw new InvalidMessageError('a space names each key holder once')
}

function checkStream(m: Fields): void {
  asMap(m, 'stream', ['t', 'iss', 'space', 'name', 'epochMs', 'iat', 'forms', 'media', 'peer'])
  optStr(m, 'peer', 64, PEER_ID_PATTERN)
  if (m.media !== undefined && !(OBJECT_MEDIA as readonly unknown[]).includes(m.media)) {
    throw new InvalidMessageError('an object is a file or a message')
  }
  if (m.forms !== undefined) {
    const forms = formList(m)
    if (!forms.includes('raw') || new Set(forms).size !== forms.length) {
      throw new InvalidMessageError('a stream produces the raw form, and each form once')
    }
  }
  checkSpaceRecordHead(m, 'stream', 'a stream record')
  str(m, 'name', 64, NAME_PATTERN)
  int(m, 'epochMs', MIN_EPOCH_MS, MAX_EPOCH_MS)
  time(m, 'iat')
}

/** Stream names, prefixes ending in `*`, or `*` alone. */
export const STREAM_PATTERN = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63}\*?)$/

function streamPatterns(m: Fields, what: string): string[] {
  const streams = list(m, 'streams', 64, v => {
    if (typeof v !== 'string' || !STREAM_PATTERN.test(v)) throw new InvalidMessageError('bad stream name or prefix')
    return v
  })
  if (streams.length === 0) throw new InvalidMessageError(`a ${what} names at least one stream, prefix or *`)
  return streams
}

/** The fields a grant and an access request open with: who gives (or asks) whom what, in which space. */
export const ACCESS_HEAD_FIELDS = ['t', 'iss', 'space', 'sub', 'streams', 'forms'] as const

function checkGrant(m: Fields): void {
  asMap(m, 'grant', [
    ...ACCESS_HEAD_FIELDS,
    'nbf',
    'exp',
    'iat',
    'nonce',
    'dataFrom',
    'dataUntil',
    'download',
    'forward',
    'devices',
    'maxReleases',
    'purpose',
    'parent',
    'contribute',
  ])
  checkSpaceRecordHead(m, 'grant', 'a grant')
  did(m, 'sub')
  streamPatterns(m, 'grant')
  const forms = formList(m)
  if (forms.length === 0) throw new InvalidMessageError('a grant names at least one form')
  timeWindow(m, 'nbf', 'exp', 'a grant')
  time(m, 'iat')
  bytes(m, 'nonce', 16, 16)
  timeWindow(m, 'dataFrom', 'dataUntil', 'a data window', false)
  if (m.download !== undefined && typeof m.download !== 'boolean')
    throw new InvalidMessageError('download is a boolean')
  if (m.forward !== undefined && !FORWARD_PERMISSIONS.includes(m.forward as ForwardPermission)) {
    throw new InvalidMessageError('forward is never, ask-owner or allowed')
  }
  if (m.devices !== undefined) {
    const devices = list(m, 'devices', 16, v => {
      if (typeof v !== 'string' || !PEER_ID_PATTERN.test(v)) throw new InvalidMessageError('bad device peer id')
      return v
    })
    if (devices.length === 0) throw new InvalidMessageError('a device condition names at least one device')
  }
  optInt(m, 'maxReleases', 1)
  optStr(m, 'purpose', 256, TEXT_PATTERN)
  optStr(m, 'parent', 64, ID_PATTERN)
  if (m.contribute !== undefined && m.contribute !== true) throw new InvalidMessageError('contribute is true or absent')
}

function checkDelegation(m: Fields): void {
  asMap(m, 'delegation', ['t', 'iss', 'space', 'admin', 'streams', 'nbf', 'exp', 'iat', 'nonce'])
  checkSpaceRecordHead(m, 'delegation', 'a delegation')
  did(m, 'admin')
  streamPatterns(m, 'delegation')
  timeWindow(m, 'nbf', 'exp', 'a delegation')
  time(m, 'iat')
  bytes(m, 'nonce', 16, 16)
}

function checkRevocation(m: Fields): void {
  asMap(m, 'revocation', ['t', 'iss', 'space', 'target', 'iat', 'reason'])
  checkSpaceRecordHead(m, 'revocation', 'a revocation')
  time(m, 'iat')
  optStr(m, 'reason', 512, TEXT_PATTERN)
  const target = asMap(m.target, 'target', ['grant', 'subject', 'device', 'delegation'])
  const keys = Object.keys(target)
  if (keys.length !== 1) throw new InvalidMessageError('a revocation has exactly one target')
  if (keys[0] === 'grant') str(target, 'grant', 64, ID_PATTERN)
  else if (keys[0] === 'delegation') str(target, 'delegation', 64, ID_PATTERN)
  else if (keys[0] === 'subject') did(target, 'subject')
  else str(target, 'device', 64, PEER_ID_PATTERN)
}

function checkDevice(m: Fields): void {
  asMap(m, 'device certificate', ['t', 'iss', 'peer', 'xpk', 'nbf', 'exp'])
  if (m.t !== 'device') throw new InvalidMessageError('not a device certificate')
  did(m, 'iss')
  str(m, 'peer', 64, PEER_ID_PATTERN)
  bytes(m, 'xpk', 32, 32)
  timeWindow(m, 'nbf', 'exp', 'a device certificate')
}

const GENESIS = recordKind<SpaceGenesis>(TAGS.genesis, MAX_RECORD_BYTES, checkGenesis)
const STREAM = recordKind<StreamRecord>(TAGS.stream, MAX_RECORD_BYTES, checkStream)
const GRANT = recordKind<Grant>(TAGS.grant, MAX_RECORD_BYTES, checkGrant)
const REVOCATION = recordKind<Revocation>(TAGS.revocation, MAX_RECORD_BYTES, checkRevocation)
const DEVICE = recordKind<DeviceCert>(TAGS.device, MAX_RECORD_BYTES, checkDevice)
const DELEGATION = recordKind<Delegation>(TAGS.delegation, MAX_RECORD_BYTES, checkDelegation)

export const openGenesis = GENESIS.open
export const openStream = STREAM.open
export const openGrant = GRANT.open
export const openRevocation = REVOCATION.open
export const openDeviceCert = DEVICE.open
export const openDelegation = DELEGATION.open

/** The id of a space is the id of its signed genesis record. */
export function spaceIdOf(genesis: OpenedRecord<SpaceGenesis>): string {
  return genesis.id
}
