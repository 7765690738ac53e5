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
 * are exactly those the entries give. When the space has custodians, the report also carries
 * their logs, each checked the same way against its own signed head (custody-report.ts). It
 * returns the first thing that fails.
 *
 * A report is self-contained: anyone can make up a space (a genesis, an owner key, a log) and
 * a report that checks out against it. What it vouches for is the space, owner and key holder
 * it names, which `verifyReport` returns, and which the caller pins (`expected`) when it knows
 * which space and owner to expect.
 *
 * What a report cannot prove: that the key holder logged everything. It proves that what it
 * shows is in a log whose heads every peer checks for consistency.
 */
import { fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { openGenesis } from '../policy/records.ts'
import { type CustodyReport, type VerifiedCustody, verifyCustody } from './custody-report.ts'
import { type AuditEntry, decodeEntry, type ReleaseEntry, type RevocationEntry } from './entries.ts'
import { openTreeHead, type TreeHead } from './heads.ts'
import {
  type Interval,
  mergeIntervals,
  minutesOf,
  type ReportQuery,
  releaseInterval,
  verifyProvenEntries,
} from './proven.ts'

export { matchesQuery, RELEASE_REQUEST_SKEW_MS } from './proven.ts'
export type { Interval, ReportQuery }

export const REPORT_FORMAT = 'edgeward-audit-report/v1'

export interface Holding {
  subject: string
  /** `<stream>` within the report's space */
  resource: string
  intervals: Interval[]
  /** total time held, in minutes (2 decimals) */
  minutes: number
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
  /** the custodians' logs, when the space has custodians (custody-report.ts) */
  custody?: CustodyReport
}

export interface IndexedEntry {
  index: number
  bytes: Uint8Array
  entry: AuditEntry
}

/** Intervals of key possession from release and revocation entries; `asOf` is the head's time. */
export function computeHoldings(entries: AuditEntry[], asOf: number): Holding[] {
  const revocations = entries.filter((e): e is RevocationEntry => e.t === 'revocation')
  const groups = new Map<string, { subject: string; resource: string; raw: Interval[] }>()
  for (const e of entries) {
    if (e.t !== 'release') continue
    const rel = e as ReleaseEntry
    const key = `${rel.subject}\u0000${rel.stream}`
    const g = groups.get(key) ?? { subject: rel.subject, resource: rel.stream, raw: [] }
    g.raw.push(releaseInterval(rel, revocations, asOf))
    groups.set(key, g)
  }
  const out: Holding[] = []
  for (const g of groups.values()) {
    const intervals = mergeIntervals(g.raw)
    out.push({ subject: g.subject, resource: g.resource, intervals, minutes: minutesOf(intervals) })
  }
  return out.sort((a, b) => (a.subject + a.resource < b.subject + b.resource ? -1 : 1))
}

/** Assemble an audit report: the entries with their inclusion proofs under `head`, the space's genesis, and the intervals a key was held. */
export function buildReport(
  query: ReportQuery,
  genesisBytes: Uint8Array,
  head: OpenedRecord<TreeHead>,
  entries: { index: number; bytes: Uint8Array; proof: Uint8Array[] }[],
  custody?: CustodyReport,
): AuditReport {
  const decoded = entries.map(e => decodeEntry(e.bytes))
  const report: AuditReport = {
    format: REPORT_FORMAT,
    query,
    genesis: toBase64url(genesisBytes),
    head: toBase64url(head.bytes),
    entries: entries.map(e => ({ index: e.index, entry: toBase64url(e.bytes), proof: e.proof.map(toBase64url) })),
    holdings: computeHoldings(decoded, head.body.ts),
  }
  if (custody !== undefined) report.custody = custody
  return report
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

export type VerifyResult =
  | {
      ok: true
      space: ReportSpace
      head: TreeHead
      entries: AuditEntry[]
      holdings: Holding[]
      /** the custodians' logs, checked, when the report carries them */
      custody?: VerifiedCustody
    }
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
  const proven = verifyProvenEntries(r.entries, head.body, r.query, '')
  if (!proven.ok) return proven
  const { entries } = proven
  const holdings = computeHoldings(entries, head.body.ts)
  if (JSON.stringify(holdings) !== JSON.stringify(r.holdings)) {
    return fail('the stated holdings differ from those the entries give')
  }
  const space = { id: genesis.id, name: genesis.body.name, owner: genesis.body.iss, keyHolder: head.body.log }
  if (r.custody === undefined) return { ok: true, space, head: head.body, entries, holdings }
  const revocations = entries.filter((e): e is RevocationEntry => e.t === 'revocation')
  const custody = verifyCustody(r.custody, genesis.id, genesis.body.iss, r.query, revocations)
  if (!custody.ok) return custody
  return { ok: true, space, head: head.body, entries, holdings, custody: custody.custody }
}
