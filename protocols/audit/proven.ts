/**
 * What every log's part of an audit report shares, the key holder's and each custodian's: the
 * query that picks entries, the check of entries proven against one signed tree head, and the
 * arithmetic of held intervals.
 *
 * `verifyProvenEntries` checks, for each entry: its index is new, its RFC 9162 inclusion proof
 * verifies against the head, it decodes, it matches the query, and a release embeds a signed
 * key request that asked for what was released (same subject, device, space, stream, form,
 * epochs and grant, at a time within the releasing node's clock window). It returns the first
 * failure, as text naming the entry.
 */
import { bytesEqual, fromBase64url } from '../../crypto/encoding.ts'
import { leafHash, verifyInclusion } from '../../crypto/merkle.ts'
import { decodeKeyRequest, REQUEST_WINDOW_MS } from '../access/messages.ts'
import {
  type AuditEntry,
  decodeEntry,
  type ReleaseEntry,
  type RevocationEntry,
  requestHash,
  revocationEndsRelease,
} from './entries.ts'
import type { TreeHead } from './heads.ts'

export interface ReportQuery {
  space: string
  subject?: string
  resource?: string
  from?: number
  until?: number
}

export interface Interval {
  from: number
  until: number
  /** what ended it: 'lease-end', 'revocation', or 'open' when the lease outlasts the head */
  endedBy: 'lease-end' | 'revocation' | 'open'
}

/** An entry of a log as a report carries it: its index, its bytes and its inclusion proof (base64url). */
export interface ProvenEntry {
  index: number
  entry: string
  proof: string[]
}

/**
 * How far a release's time may be from the time in the key request it embeds: the releasing
 * node refuses a request whose time is more than REQUEST_WINDOW_MS from its own clock (either
 * way, for clock skew), and logs the release at that same clock reading, so an honest release
 * is never further from its request than this.
 */
export const RELEASE_REQUEST_SKEW_MS = REQUEST_WINDOW_MS

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

/** Overlapping or touching intervals merge; the merged one ends as the latest-ending part did. */
export function mergeIntervals(raw: Interval[]): Interval[] {
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

/** The total length of intervals in minutes, to 2 decimals. */
export function minutesOf(intervals: Interval[]): number {
  const ms = intervals.reduce((sum, i) => sum + (i.until - i.from), 0)
  return Math.round((ms / 60_000) * 100) / 100
}

/**
 * Check the entries of one log against its head (see the module comment); `what` names the log
 * in a failure ('' for the key holder's, as before custodians' logs were reported).
 */
export function verifyProvenEntries(
  entries: unknown,
  head: TreeHead,
  query: ReportQuery,
  what: string,
): { ok: true; entries: AuditEntry[] } | { ok: false; failure: string } {
  const fail = (failure: string) => ({ ok: false as const, failure: `${what}${failure}` })
  if (!Array.isArray(entries)) return fail('report has no entries')
  const out: AuditEntry[] = []
  const seen = new Set<number>()
  for (const [i, e] of (entries as ProvenEntry[]).entries()) {
    try {
      if (e == null || !Number.isSafeInteger(e.index) || seen.has(e.index))
        return fail(`entry ${i}: bad or repeated index`)
      seen.add(e.index)
      const bytes = fromBase64url(e.entry)
      if (!Array.isArray(e.proof)) return fail(`entry ${i}: no inclusion proof`)
      const proof = e.proof.map(fromBase64url)
      if (!verifyInclusion(leafHash(bytes), e.index, head.size, proof, head.root)) {
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
      if (!matchesQuery(entry, query))
        return fail(`entry ${i} (log index ${e.index}): does not match the report's query`)
      out.push(entry)
    } catch (err) {
      return fail(`entry ${i}: ${(err as Error).message}`)
    }
  }
  return { ok: true, entries: out }
}

/** A time for a failure message; an entry's time is an integer, but not always a valid date. */
export function isoTime(ms: number): string {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString()
}

/** How long what a release gave was held: to its lease end, or a revocation that ends it first, cut at `asOf`. */
export function releaseInterval(rel: ReleaseEntry, revocations: RevocationEntry[], asOf: number): Interval {
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
  return { from: rel.ts, until: Math.max(until, rel.ts), endedBy }
}
