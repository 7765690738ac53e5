/**
 * `/edgeward/audit/entries/1.0.0`: the owner of a space asks a custodian of the space for the
 * entries of its audit log that match a report's query, each with an inclusion proof against
 * the custodian's signed tree head, so that a report shows the releases of every log.
 *
 * Guarantees: the request is a signed record (tag `edgeward/audit-entries-request/v1`) of
 * the space's owner principal, naming the peer that sends it and its time, so a custodian can
 * answer only its owner, on that peer's connection, while the request is fresh
 * (ENTRIES_REQUEST_WINDOW_MS). Both sides decode with a size limit before parsing and check
 * every field. An answer is one page: the first carries the custodian's signed head and device
 * certificate, and a `next` index when more entries match; a later page asks for the same log
 * size (`size`) from that index (`start`), so every page proves against the first head.
 * Refuses: what does not decode, is not signed by the owner, names another peer, or is stale —
 * as a response with a code and a reason, never a dropped stream.
 */
import { encodeCanonical } from '../../crypto/encoding.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { checkSpaceRecordHead, recordKind, type Signer } from '../record-kind.ts'
import {
  asMap,
  bytes,
  decodeCanonicalMap,
  did,
  type Fields,
  int,
  list,
  NAME_PATTERN,
  optInt,
  optStr,
  optTime,
  PEER_ID_PATTERN,
  str,
  TEXT_PATTERN,
  time,
} from '../validate.ts'
import { MAX_ENTRY_BYTES } from './entries.ts'
import { MAX_HEAD_BYTES, MAX_PROOF_HASHES } from './heads.ts'
import type { ReportQuery } from './proven.ts'

export const AUDIT_ENTRIES_PROTOCOL = '/edgeward/audit/entries/1.0.0'
export const ENTRIES_REQUEST_TAG = 'edgeward/audit-entries-request/v1'
export const MAX_ENTRIES_REQUEST_BYTES = 2048
/** the most entries one page carries */
export const MAX_ENTRIES_PER_PAGE = 1024
/** the bytes of entries and proofs a custodian puts in one page at most (the last one may pass it) */
export const ENTRIES_PAGE_BYTES = 4 * 1024 * 1024
const MAX_DEVICE_BYTES = 4096
/** a page: its entries, one more entry with its proof, a head, a certificate and the framing */
export const MAX_ENTRIES_RESPONSE_BYTES =
  ENTRIES_PAGE_BYTES + MAX_ENTRY_BYTES + 40 * (MAX_PROOF_HASHES + 4) + MAX_HEAD_BYTES + MAX_DEVICE_BYTES + 64 * 1024
/** how far a request's time may be from the custodian's clock, either way */
export const ENTRIES_REQUEST_WINDOW_MS = 2 * 60 * 1000

/** A request for the entries of a custodian's log that match a report's query. */
export interface EntriesRequest {
  t: 'audit-entries-request'
  /** the space's owner */
  iss: string
  space: string
  /** the peer that sends the request: it is answered on that peer's connection only */
  peer: string
  subject?: string
  resource?: string
  from?: number
  until?: number
  /** a later page: the log size the first page proved against, and the index to go on from */
  size?: number
  start?: number
  ts: number
}

function checkEntriesRequest(m: Fields): void {
  asMap(m, 'entries request', [
    't',
    'iss',
    'space',
    'peer',
    'subject',
    'resource',
    'from',
    'until',
    'size',
    'start',
    'ts',
  ])
  checkSpaceRecordHead(m, 'audit-entries-request', 'an audit entries request')
  str(m, 'peer', 64, PEER_ID_PATTERN)
  if (m.subject !== undefined) did(m, 'subject')
  optStr(m, 'resource', 64, NAME_PATTERN)
  optTime(m, 'from')
  optTime(m, 'until')
  const size = optInt(m, 'size')
  const start = optInt(m, 'start')
  if ((size === undefined) !== (start === undefined))
    throw new InvalidMessageError('a later page names both the size and the start')
  if (size !== undefined && start! > size) throw new InvalidMessageError('a page starts inside the log')
  time(m, 'ts')
}

const ENTRIES_REQUEST = recordKind<EntriesRequest>(ENTRIES_REQUEST_TAG, MAX_ENTRIES_REQUEST_BYTES, checkEntriesRequest)

/** Sign a request for the entries matching `query` (the report's) as the space's owner, sent by `peer`. */
export function createEntriesRequest(
  owner: Signer,
  peer: string,
  query: ReportQuery,
  now: number,
  page?: { size: number; start: number },
): OpenedRecord<EntriesRequest> {
  const body: EntriesRequest = { t: 'audit-entries-request', iss: owner.did, space: query.space, peer, ts: now }
  if (query.subject !== undefined) body.subject = query.subject
  if (query.resource !== undefined) body.resource = query.resource
  if (query.from !== undefined) body.from = query.from
  if (query.until !== undefined) body.until = query.until
  if (page !== undefined) Object.assign(body, page)
  return ENTRIES_REQUEST.sign(body, owner)
}

/** Decode and verify a request for entries; throws a typed error. Who may ask is the caller's check. */
export function openEntriesRequest(data: Uint8Array): OpenedRecord<EntriesRequest> {
  return ENTRIES_REQUEST.open(data)
}

/** The report query a request carries. */
export function queryOf(r: EntriesRequest): ReportQuery {
  const q: ReportQuery = { space: r.space }
  if (r.subject !== undefined) q.subject = r.subject
  if (r.resource !== undefined) q.resource = r.resource
  if (r.from !== undefined) q.from = r.from
  if (r.until !== undefined) q.until = r.until
  return q
}

/** An entry of the custodian's log with its inclusion proof. */
export interface PagedEntry {
  index: number
  entry: Uint8Array
  proof: Uint8Array[]
}

export type EntriesResponse =
  | {
      ok: true
      /** the first page: the custodian's signed tree head and its device certificate */
      head?: Uint8Array
      device?: Uint8Array
      entries: PagedEntry[]
      /** where the next page starts, when more entries may match */
      next?: number
    }
  | { ok: false; code: string; reason: string }

/** Encode an answer to a request for entries. */
export function encodeEntriesResponse(r: EntriesResponse): Uint8Array {
  return encodeCanonical(r)
}

/** Decode an answer to a request for entries; InvalidMessageError otherwise. */
export function decodeEntriesResponse(data: Uint8Array): EntriesResponse {
  const m = decodeCanonicalMap(data, MAX_ENTRIES_RESPONSE_BYTES, 'entries response', [
    'ok',
    'head',
    'device',
    'entries',
    'next',
    'code',
    'reason',
  ])
  if (m.ok === false) {
    asMap(m, 'entries refusal', ['ok', 'code', 'reason'])
    return { ok: false, code: str(m, 'code', 64, NAME_PATTERN), reason: str(m, 'reason', 512, TEXT_PATTERN) }
  }
  if (m.ok !== true) throw new InvalidMessageError('ok must be a boolean')
  asMap(m, 'entries answer', ['ok', 'head', 'device', 'entries', 'next'])
  const entries = list(m, 'entries', MAX_ENTRIES_PER_PAGE, v => {
    const e = asMap(v, 'entry', ['index', 'entry', 'proof'])
    return {
      index: int(e, 'index'),
      entry: bytes(e, 'entry', 1, MAX_ENTRY_BYTES),
      proof: list(e, 'proof', MAX_PROOF_HASHES, p => {
        if (!(p instanceof Uint8Array) || p.byteLength !== 32) throw new InvalidMessageError('a proof hash is 32 bytes')
        return p
      }),
    }
  })
  const out: EntriesResponse = { ok: true, entries }
  if (m.head !== undefined) out.head = bytes(m, 'head', 1, MAX_HEAD_BYTES)
  if (m.device !== undefined) out.device = bytes(m, 'device', 1, MAX_DEVICE_BYTES)
  const next = optInt(m, 'next')
  if (next !== undefined) out.next = next
  return out
}
