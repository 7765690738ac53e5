/**
 * Access requests and the owner's (or an admin's) decisions on them.
 *
 * A principal with no grant files a signed AccessRequest (streams, forms, duration, reason);
 * a holder whose grant says `forward: ask-owner` may file one for a third party (`sub`),
 * naming the grant it asks through (`via`), so the owner sees who asked and through whom.
 * Requests travel on the space's requests topic to whoever decides; a Decision (approve,
 * with the grant it issued, or deny, with a reason) carries the signed request and is
 * written to the policy document, so the requester sees the outcome wherever it is.
 */
import { randomBytes } from '../../crypto/hash.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { checkSpaceRecordHead, recordKind, type Signer } from '../record-kind.ts'
import { asMap, bytes, did, type Fields, ID_PATTERN, int, list, optStr, str, TEXT_PATTERN, time } from '../validate.ts'
import { ACCESS_HEAD_FIELDS, isForm, MAX_RECORD_BYTES, STREAM_PATTERN } from './records.ts'

export const REQUEST_TAG = 'edgeward/access-request/v1'
export const DECISION_TAG = 'edgeward/access-decision/v1'
export const MAX_REQUEST_BYTES = 4 * 1024

/** The gossip topic of a space's access requests and decisions. */
export function requestsTopic(space: string): string {
  return `/edgeward/requests/1.0.0/${space}`
}

export interface AccessRequest {
  t: 'access-request'
  /** who files the request (the requester itself, or the holder forwarding it) */
  iss: string
  space: string
  /** who access is for */
  sub: string
  streams: string[]
  forms: string[]
  /** how long access is asked for, ms */
  durationMs: number
  reason: string
  /** for a forwarded request: the grant of `iss` that allows asking the owner */
  via?: string
  iat: number
  nonce: Uint8Array
}

export interface Decision {
  t: 'decision'
  iss: string
  space: string
  /** the signed access request decided on */
  request: Uint8Array
  approved: boolean
  /** the grant issued, when approved */
  grant?: string
  reason?: string
  iat: number
}

export type OpenedDecision = OpenedRecord<Decision> & { accessRequest: OpenedRecord<AccessRequest> }

/** Sign an access request from `issuer`, dated `now`, with a fresh nonce. */
export function createAccessRequest(
  issuer: Signer,
  fields: Omit<AccessRequest, 't' | 'iss' | 'iat' | 'nonce'>,
  now: number,
): OpenedRecord<AccessRequest> {
  const body: AccessRequest = { t: 'access-request', iss: issuer.did, ...fields, iat: now, nonce: randomBytes(16) }
  if (body.via === undefined) delete body.via
  return REQUEST.sign(body, issuer)
}

function checkRequest(m: Fields): void {
  asMap(m, 'access request', [...ACCESS_HEAD_FIELDS, 'durationMs', 'reason', 'via', 'iat', 'nonce'])
  checkSpaceRecordHead(m, 'access-request', 'an access request')
  did(m, 'sub')
  const streams = list(m, 'streams', 16, v => {
    if (typeof v !== 'string' || !STREAM_PATTERN.test(v)) throw new InvalidMessageError('bad stream')
    return v
  })
  const forms = list(m, 'forms', 8, v => {
    if (!isForm(v)) throw new InvalidMessageError('bad form')
    return v
  })
  if (streams.length === 0 || forms.length === 0) throw new InvalidMessageError('a request names streams and forms')
  int(m, 'durationMs', 1000, 366 * 24 * 3600 * 1000)
  str(m, 'reason', 512, TEXT_PATTERN)
  optStr(m, 'via', 64, ID_PATTERN)
  if ((m.via === undefined) !== (m.iss === m.sub)) {
    throw new InvalidMessageError('a request is either for its issuer, or forwarded through a grant for someone else')
  }
  time(m, 'iat')
  bytes(m, 'nonce', 16, 16)
}

const REQUEST = recordKind<AccessRequest>(REQUEST_TAG, MAX_REQUEST_BYTES, checkRequest)
const DECISION = recordKind<Decision>(DECISION_TAG, MAX_RECORD_BYTES, checkDecision)

/** Decode, verify and check a signed access request; throws a typed error. */
export const openAccessRequest = REQUEST.open

/** Sign the owner's decision on a request: approved with the grant made, or denied with a reason. */
export function createDecision(
  decider: Signer,
  request: OpenedRecord<AccessRequest>,
  outcome: { approved: true; grant: string } | { approved: false; reason: string },
  now: number,
): OpenedDecision {
  const body: Decision = {
    t: 'decision',
    iss: decider.did,
    space: request.body.space,
    request: request.bytes,
    approved: outcome.approved,
    iat: now,
    ...(outcome.approved ? { grant: outcome.grant } : { reason: outcome.reason }),
  }
  return { ...DECISION.sign(body, decider), accessRequest: request }
}

function checkDecision(m: Fields): void {
  asMap(m, 'decision', ['t', 'iss', 'space', 'request', 'approved', 'grant', 'reason', 'iat'])
  checkSpaceRecordHead(m, 'decision', 'a decision')
  bytes(m, 'request', 1, MAX_REQUEST_BYTES)
  if (typeof m.approved !== 'boolean') throw new InvalidMessageError('approved is a boolean')
  if (m.approved) str(m, 'grant', 64, ID_PATTERN)
  else str(m, 'reason', 512, TEXT_PATTERN)
  // only the outcome's own field: an unchecked other one would reach the audit log unchecked
  if (m[m.approved ? 'reason' : 'grant'] !== undefined) {
    throw new InvalidMessageError('an approval names its grant, a denial its reason, and neither carries the other')
  }
  time(m, 'iat')
}

/** Opens a decision and the request inside it (whose signature is checked too). */
export function openDecision(data: Uint8Array): OpenedDecision {
  const rec = DECISION.open(data)
  const accessRequest = openAccessRequest(rec.body.request)
  if (accessRequest.body.space !== rec.body.space)
    throw new InvalidMessageError('the decided request is for another space')
  return { ...rec, accessRequest }
}
