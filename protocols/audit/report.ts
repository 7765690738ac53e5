/**
 * Audit reports: for (subject, resource, time range), the matching log entries, an inclusion
 * proof for each against one signed tree head, and the intervals during which each subject
 * held a valid key to each resource: from a release to the earliest of its lease end and a
 * revocation that ends it (a lease never outlives its grant, so expiry is inside the lease).
 *
 * `verifyReport` checks a report offline from its own content and the public keys it names:
 * the space's genesis (which names the owner and the key holders), the head's signature by
 * the owner for a holder's log, every entry's inclusion proof, each release's embedded signed
 * key request (the same subject, device, space, stream, form and epochs, and a release time
 * within the key holder's clock window of the request's time), and that the stated intervals
 * are exactly those the entries give. It returns the first thing that fails.
 *
 * A report is self-contained: anyone can make up a space (a genesis, an owner key, a log) and
 * a report that checks out against it. What it vouches for is the space, owner and key holder
 * it names, which `verifyReport` returns, and which the caller pins (`expected`) when it knows
 * which space and owner to expect.
 *
 * What a report cannot prove: that the key holder logged everything. It proves that what it
 * shows is in a log whose heads every peer checks for consistency.
 */
import { bytesEqual, fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import { leafHash, verifyInclusion } from '../../crypto/merkle.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { decodeKeyRequest, REQUEST_WINDOW_MS } from '../access/messages.ts'
import { openGenesis } from '../policy/records.ts'
import {
  type AuditEntry,
  decodeEntry,
  type ReleaseEntry,
  type RevocationEntry,
  requestHash,
  revocationEndsRelease,
} from './entries.ts'
import { openTreeHead, type TreeHead } from './heads.ts'

export const REPORT_FORMAT = 'edgeward-audit-report/v1'

export interface Interval {
  from: number
  until: number
  /** what ended it: 'lease-end', 'revocation', or 'open' when the lease outlasts the head */
  endedBy: 'lease-end' | 'revocation' | 'open'
}

export interface Holding {
  subject: string
  /** `<stream>` within the report's space */
  resource: string
  intervals: Interval[]
  /** total time held, in minutes (2 decimals) */
  minutes: number
}

export interface ReportQuery {
  space: string
  subject?: string
  resource?: string
  from?: number
  until?: number
}

export interface AuditReport {
  format: typeof REPORT_FORMAT
  query: ReportQuery
  /** the space's signed genesis record (base64url) */
  genesis: string
  /** the signed tree head all proofs are against (base64url) */
  head: string
  entries: { index: number; entry: string; proof: string[] }[]
  holdings: Holding[]
}

export interface IndexedEntry {
  index: number
  bytes: Uint8Array
  entry: AuditEntry
}

/** Does an entry belong in a report for `q`? Revocations of the space always do: they end intervals. */
export function matchesQuery(e: AuditEntry, q: ReportQuery): boolean {
  if (e.space !== q.space) return false
  if (e.t === 'revocation') return true
  // a key released before the range whose lease runs into it was held during the range
  const end = e.t === 'release' ? e.leaseEnd : e.ts + 1
  if (q.from !== undefined && end <= q.from) return false
  if (q.until !== undefined && e.ts >= q.until) return false
  if (q.subject !== undefined && e.subject !== q.subject) return false
  if (q.resource !== undefined) {
    if (e.t === 'grant' || e.t === 'decision') return e.streams.includes('*') || e.streams.includes(q.resource)
    if (e.stream !== q.resource) return false
  }
  return true
}

/** Intervals of key possession from release and revocation entries; `asOf` is the head's time. */
export function computeHoldings(entries: AuditEntry[], asOf: number): Holding[] {
  const revocations = entries.filter((e): e is RevocationEntry => e.t === 'revocation')
  const groups = new Map<string, { subject: string; resource: string; raw: Interval[] }>()
  for (const e of entries) {
    if (e.t !== 'release') continue
    const rel = e as ReleaseEntry
    let until = rel.leaseEnd
    let endedBy: Interval['endedBy'] = 'lease-end'
    for (const rev of revocations) {
      if (rev.ts >= rel.ts && rev.ts < until && revocationEndsRelease(rev, rel)) {
        until = rev.ts
        endedBy = 'revocation'
      }
    }
    if (until > asOf) {
      until = asOf
      endedBy = 'open'
    }
    const key = `${rel.subject}\u0000${rel.stream}`
    const g = groups.get(key) ?? { subject: rel.subject, resource: rel.stream, raw: [] }
    g.raw.push({ from: rel.ts, until: Math.max(until, rel.ts), endedBy })
    groups.set(key, g)
  }
  const out: Holding[] = []
  for (const g of groups.values()) {
    const intervals = mergeIntervals(g.raw)
    const ms = intervals.reduce((sum, i) => sum + (i.until - i.from), 0)
    out.push({ subject: g.subject, resource: g.resource, intervals, minutes: Math.round((ms / 60_000) * 100) / 100 })
  }
  return out.sort((a, b) => (a.subject + a.resource < b.subject + b.resource ? -1 : 1))
}

/** Overlapping or touching intervals merge; the merged one ends as the latest-ending part did. */
function mergeIntervals(raw: Interval[]): Interval[] {
  const sorted = [...raw].sort((a, b) => a.from - b.from || a.until - b.until)
  const out: Interval[] = []
  for (const i of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && i.from <= last.until) {
      if (i.until >= last.until) {
        last.until = i.until
        last.endedBy = i.endedBy
      }
    } else {
      out.push({ ...i })
    }
  }
  return out
}

/** Assemble an audit report: the entries with their inclusion proofs under `head`, the space's genesis, and the intervals a key was held. */
export function buildReport(
  query: ReportQuery,
  genesisBytes: Uint8Array,
  head: OpenedRecord<TreeHead>,
  entries: { index: number; bytes: Uint8Array; proof: Uint8Array[] }[],
): AuditReport {
  const decoded = entries.map(e => decodeEntry(e.bytes))
  return {
    format: REPORT_FORMAT,
    query,
    genesis: toBase64url(genesisBytes),
    head: toBase64url(head.bytes),
    entries: entries.map(e => ({ index: e.index, entry: toBase64url(e.bytes), proof: e.proof.map(toBase64url) })),
    holdings: computeHoldings(decoded, head.body.ts),
  }
}

/** The space a report is about, as its signed genesis names it: what a verified report vouches for. */
export interface ReportSpace {
  id: string
  name: string
  /** the owner's did:key: it signed the genesis and the tree head */
  owner: string
  /** the key holder (peer id) whose log the report's head is for */
  keyHolder: string
}

/** What the verifier expects a report to be about; each one given must match. */
export interface ExpectedReport {
  /** the space id */
  space?: string
  /** the owner's did:key */
  owner?: string
}

/**
 * How far a release's time may be from the time in the key request it embeds: the key holder
 * refuses a request whose time is more than REQUEST_WINDOW_MS from its own clock (either way,
 * for clock skew), and logs the release at that same clock reading, so an honest release is
 * never further from its request than this.
 */
export const RELEASE_REQUEST_SKEW_MS = REQUEST_WINDOW_MS

export type VerifyResult =
  | { ok: true; space: ReportSpace; head: TreeHead; entries: AuditEntry[]; holdings: Holding[] }
  | { ok: false; failure: string }

/**
 * Check a report offline. `expected` pins what the report must be about: a space id (a string,
 * as before) or `{ space, owner }`. Without it, the report is checked only against itself, and
 * `space` in the result says what it vouches for.
 */
export function verifyReport(report: unknown, expected?: string | ExpectedReport): VerifyResult {
  const fail = (failure: string): VerifyResult => ({ ok: false, failure })
  const pinned: ExpectedReport = typeof expected === 'string' ? { space: expected } : (expected ?? {})
  const r = report as AuditReport
  if (r == null || typeof r !== 'object' || r.format !== REPORT_FORMAT) return fail('not an edgeward audit report')
  if (r.query == null || typeof r.query.space !== 'string') return fail('report has no query')
  let genesis: ReturnType<typeof openGenesis>
  try {
    genesis = openGenesis(fromBase64url(r.genesis))
  } catch (err) {
    return fail(`space genesis: ${(err as Error).message}`)
  }
  if (genesis.id !== r.query.space) return fail('space genesis does not hash to the report space')
  if (pinned.space !== undefined && genesis.id !== pinned.space)
    return fail(`report is for another space: ${genesis.id}, not ${pinned.space}`)
  if (pinned.owner !== undefined && genesis.body.iss !== pinned.owner)
    return fail(`report is for a space of another owner: ${genesis.body.iss}, not ${pinned.owner}`)
  let head: OpenedRecord<TreeHead>
  try {
    head = openTreeHead(fromBase64url(r.head))
  } catch (err) {
    return fail(`tree head: ${(err as Error).message}`)
  }
  if (head.issuer !== genesis.body.iss) return fail("tree head is not signed by the space's owner")
  if (!genesis.body.holders.includes(head.body.log))
    return fail('tree head is for a log that is not a key holder of the space')
  if (!Array.isArray(r.entries)) return fail('report has no entries')
  const entries: AuditEntry[] = []
  const seen = new Set<number>()
  for (const [i, e] of r.entries.entries()) {
    try {
      if (!Number.isSafeInteger(e.index) || seen.has(e.index)) return fail(`entry ${i}: bad or repeated index`)
      seen.add(e.index)
      const bytes = fromBase64url(e.entry)
      const proof = e.proof.map(fromBase64url)
      if (!verifyInclusion(leafHash(bytes), e.index, head.body.size, proof, head.body.root)) {
        return fail(`entry ${i} (log index ${e.index}): inclusion proof does not verify against the tree head`)
      }
      const entry = decodeEntry(bytes)
      if (entry.t === 'release') {
        // the requester's own signature: proof that it asked for what it was given
        const { request, device } = decodeKeyRequest(entry.request)
        const q = request.body
        const matches =
          request.issuer === entry.subject &&
          bytesEqual(requestHash(entry.request), entry.reqHash) &&
          q.space === entry.space &&
          q.stream === entry.stream &&
          q.form === entry.form &&
          entry.epochs.every(ep => q.epochs.includes(ep)) &&
          device.body.peer === entry.device &&
          device.issuer === entry.subject &&
          (q.grant === undefined || q.grant === entry.grant)
        if (!matches)
          return fail(`entry ${i} (log index ${e.index}): the signed key request does not match the release`)
        if (Math.abs(entry.ts - q.ts) > RELEASE_REQUEST_SKEW_MS) {
          return fail(
            `entry ${i} (log index ${e.index}): released at ${isoTime(entry.ts)}, ${entry.ts < q.ts ? 'before' : 'after'} the signed key request's time ${isoTime(q.ts)} by more than the key holder's clock window (${RELEASE_REQUEST_SKEW_MS / 1000} s)`,
          )
        }
      }
      if (!matchesQuery(entry, r.query))
        return fail(`entry ${i} (log index ${e.index}): does not match the report's query`)
      entries.push(entry)
    } catch (err) {
      return fail(`entry ${i}: ${(err as Error).message}`)
    }
  }
  const holdings = computeHoldings(entries, head.body.ts)
  if (JSON.stringify(holdings) !== JSON.stringify(r.holdings)) {
    return fail('the stated holdings differ from those the entries give')
  }
  const space = { id: genesis.id, name: genesis.body.name, owner: genesis.body.iss, keyHolder: head.body.log }
  return { ok: true, space, head: head.body, entries, holdings }
}

/** A time for a failure message; an entry's time is an integer, but not always a valid date. */
function isoTime(ms: number): string {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString()
}
