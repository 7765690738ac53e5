/**
 * Audit log entries: what a key holder did, one canonical CBOR map per entry, leaf of an
 * RFC 9162 Merkle log. Entries name who, what, when and why, never a payload and never key
 * material: a release entry carries the requester's signed key request (so the requester
 * cannot deny asking) and the lease it was given, not the keys.
 */
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { taggedHash } from '../../crypto/hash.ts'
import { InvalidMessageError } from '../errors.ts'
import { FORM_PATTERN, STREAM_PATTERN } from '../policy/records.ts'
import {
  asMap,
  bytes,
  did,
  type Fields,
  ID_PATTERN,
  int,
  list,
  NAME_PATTERN,
  optStr,
  PEER_ID_PATTERN,
  str,
} from '../validate.ts'

export const MAX_ENTRY_BYTES = 32 * 1024

/** A key release (or the renewal of a lease the requester already held). */
export interface ReleaseEntry {
  t: 'release'
  ts: number
  space: string
  subject: string
  device: string
  grant: string
  stream: string
  form: string
  epochs: number[]
  leaseEnd: number
  renewal: boolean
  /** the requester's signed key request, as received */
  request: Uint8Array
  reqHash: Uint8Array
  /** the grant's purpose, when it states one */
  purpose?: string
}

export interface RefusalEntry {
  t: 'refusal'
  ts: number
  space: string
  subject: string
  device: string
  stream: string
  form: string
  code: string
  reason: string
  reqHash: Uint8Array
}

export interface GrantEntry {
  t: 'grant'
  ts: number
  space: string
  grant: string
  subject: string
  streams: string[]
  nbf: number
  exp: number
}

export interface RevocationEntry {
  t: 'revocation'
  ts: number
  space: string
  revocation: string
  target: { grant: string } | { subject: string } | { device: string } | { delegation: string }
}

/** An access request approved (with the grant it issued) or denied (with the reason), as applied. */
export interface DecisionEntry {
  t: 'decision'
  ts: number
  space: string
  request: string
  /** who access was asked for */
  subject: string
  /** who filed the request (differs from the subject when forwarded through a grant) */
  requester: string
  decidedBy: string
  /** the streams access was asked for */
  streams: string[]
  approved: boolean
  grant?: string
  reason?: string
}

export type AuditEntry = ReleaseEntry | RefusalEntry | GrantEntry | RevocationEntry | DecisionEntry

/** The hash of a signed key request that a release or refusal entry names. */
export function requestHash(requestBytes: Uint8Array): Uint8Array {
  return taggedHash('edgeward/key-request-hash/v1', requestBytes)
}

/** Check and encode an audit log entry. */
export function encodeEntry(e: AuditEntry): Uint8Array {
  checkEntry(e as unknown as Fields)
  return encodeCanonical(e)
}

/** Decode and check an audit log entry; a typed error otherwise. */
export function decodeEntry(data: Uint8Array): AuditEntry {
  const v = decodeCanonical(data, MAX_ENTRY_BYTES) as Fields
  checkEntry(v)
  return v as unknown as AuditEntry
}

const stringList = (max: number, pattern: RegExp) => (v: unknown) => {
  if (typeof v !== 'string' || !pattern.test(v)) throw new InvalidMessageError('bad list item')
  if (v.length > max) throw new InvalidMessageError('list item too long')
  return v
}

function common(m: Fields): void {
  int(m, 'ts')
  str(m, 'space', 64, ID_PATTERN)
}

function checkEntry(v: Fields): void {
  if (v == null || typeof v !== 'object') throw new InvalidMessageError('an audit entry is a map')
  switch (v.t) {
    case 'release': {
      const m = asMap(v, 'release entry', [
        't',
        'ts',
        'space',
        'subject',
        'device',
        'grant',
        'stream',
        'form',
        'epochs',
        'leaseEnd',
        'renewal',
        'request',
        'reqHash',
        'purpose',
      ])
      common(m)
      did(m, 'subject')
      optStr(m, 'purpose', 256)
      str(m, 'device', 64, PEER_ID_PATTERN)
      str(m, 'grant', 64, ID_PATTERN)
      str(m, 'stream', 64, NAME_PATTERN)
      str(m, 'form', 32, FORM_PATTERN)
      list(m, 'epochs', 256, v => {
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidMessageError('bad epoch')
        return v
      })
      int(m, 'leaseEnd')
      if (typeof m.renewal !== 'boolean') throw new InvalidMessageError('renewal must be a boolean')
      bytes(m, 'request', 1, 16 * 1024)
      bytes(m, 'reqHash', 32, 32)
      return
    }
    case 'refusal': {
      const m = asMap(v, 'refusal entry', [
        't',
        'ts',
        'space',
        'subject',
        'device',
        'stream',
        'form',
        'code',
        'reason',
        'reqHash',
      ])
      common(m)
      did(m, 'subject')
      str(m, 'device', 64, PEER_ID_PATTERN)
      str(m, 'stream', 64, NAME_PATTERN)
      str(m, 'form', 32, FORM_PATTERN)
      str(m, 'code', 64)
      str(m, 'reason', 512)
      bytes(m, 'reqHash', 32, 32)
      return
    }
    case 'grant': {
      const m = asMap(v, 'grant entry', ['t', 'ts', 'space', 'grant', 'subject', 'streams', 'nbf', 'exp'])
      common(m)
      str(m, 'grant', 64, ID_PATTERN)
      did(m, 'subject')
      list(m, 'streams', 64, stringList(64, /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/))
      int(m, 'nbf')
      int(m, 'exp')
      return
    }
    case 'revocation': {
      const m = asMap(v, 'revocation entry', ['t', 'ts', 'space', 'revocation', 'target'])
      common(m)
      str(m, 'revocation', 64, ID_PATTERN)
      const target = asMap(m.target, 'target', ['grant', 'subject', 'device', 'delegation'])
      if (Object.keys(target).length !== 1) throw new InvalidMessageError('a revocation has one target')
      optStr(target, 'grant', 64, ID_PATTERN)
      optStr(target, 'delegation', 64, ID_PATTERN)
      if (target.subject !== undefined) did(target, 'subject')
      optStr(target, 'device', 64, PEER_ID_PATTERN)
      return
    }
    case 'decision': {
      const m = asMap(v, 'decision entry', [
        't',
        'ts',
        'space',
        'request',
        'subject',
        'requester',
        'decidedBy',
        'streams',
        'approved',
        'grant',
        'reason',
      ])
      common(m)
      str(m, 'request', 64, ID_PATTERN)
      did(m, 'subject')
      did(m, 'requester')
      did(m, 'decidedBy')
      list(m, 'streams', 64, stringList(64, STREAM_PATTERN))
      if (typeof m.approved !== 'boolean') throw new InvalidMessageError('approved must be a boolean')
      optStr(m, 'grant', 64, ID_PATTERN)
      optStr(m, 'reason', 512)
      return
    }
    default:
      throw new InvalidMessageError(`unknown audit entry kind ${String(v.t)}`)
  }
}

/**
 * Does a revocation entry end a release (its grant, its subject or its device)? A revoked
 * delegation ends the grants its admin issued, which the log does not list, so the interval
 * of such a release runs to its lease end (at most the lease maximum later).
 */
export function revocationEndsRelease(rev: RevocationEntry, rel: ReleaseEntry): boolean {
  const t = rev.target
  if ('grant' in t) return t.grant === rel.grant
  if ('subject' in t) return t.subject === rel.subject
  if ('device' in t) return t.device === rel.device
  return false
}
