/**
 * The custodians' part of an audit report. When a space has custodians, a reader whose key
 * holder is offline gets a key from k of them, and each custodian logs its release in its own
 * Merkle log. A report then carries, beside the key holder's log, the space's custodian sets
 * (signed by its owner), one section per custodian that answered (its device certificate, its
 * signed tree head and its matching entries with inclusion proofs), the custodians that did not
 * answer with why, and the intervals during which a subject held k shares of a key.
 *
 * Held with custody: for each (subject, stream, epoch), each custodian's releases hold a share
 * from the release to the earliest of its lease end and a revocation that ends it (the key
 * holder's and the custodian's own revocation entries), cut at that custodian's head time; the
 * key was held while at least k distinct custodians of one set held a share at once. Which set a
 * share came from is not in the log, so each set is counted on its own and the union is taken.
 *
 * `verifyCustody` checks offline: every set is signed by the space's owner for the space; each
 * section is of a custodian of a set, its device certificate names that peer and is signed by
 * the principal that signed its head (the one the sets name for it, when they name one), in
 * force at the head's time; every entry (`verifyProvenEntries`); every custodian is in a
 * section or named missing, once; and the stated intervals are those the entries give.
 *
 * What it cannot prove: that the report names every set the owner wrote, that a custodian
 * logged every release, or that a custodian named missing could not have answered.
 */
import { fromBase64url } from '../../crypto/encoding.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { type CustodianSet, openCustodianSet } from '../custody/records.ts'
import { openDeviceCert } from '../policy/records.ts'
import { TEXT_PATTERN } from '../validate.ts'
import type { AuditEntry, RevocationEntry } from './entries.ts'
import { openTreeHead, type TreeHead } from './heads.ts'
import {
  type Interval,
  mergeIntervals,
  minutesOf,
  type ProvenEntry,
  type ReportQuery,
  releaseInterval,
  verifyProvenEntries,
} from './proven.ts'

/** One custodian's log in a report. */
export interface CustodianLogSection {
  /** the custodian's peer id: the log's name */
  peer: string
  /** its signed device certificate, binding the peer to the principal that signs its heads (base64url) */
  device: string
  /** its signed tree head the proofs are against (base64url) */
  head: string
  entries: ProvenEntry[]
}

/** A key of an epoch held through custodians: k shares at once. */
export interface CustodyHolding {
  subject: string
  /** `<stream>` within the report's space */
  resource: string
  epoch: number
  /** the custodians that released a share of it to the subject (peer ids, sorted) */
  releasedBy: string[]
  /** when k of them held a share at once; empty when that never happened */
  intervals: Interval[]
  /** total time held, in minutes (2 decimals) */
  minutes: number
}

export interface CustodyReport {
  /** every custodian set of the space the report's maker knew (signed records, base64url) */
  sets: string[]
  logs: CustodianLogSection[]
  /** custodians that gave no entries, and why */
  missing: { peer: string; reason: string }[]
  holdings: CustodyHolding[]
}

/** One custodian's releases and revocations, decoded, and the time of its head. */
export interface CustodianLog {
  peer: string
  entries: AuditEntry[]
  asOf: number
}

/** A custodian set as the computation needs it: its custodians' peer ids and its threshold. */
export interface SetShape {
  peers: string[]
  k: number
}

const MAX_REASON = 512

/** The intervals during which a subject held k shares of a key (see the module comment). */
export function computeCustodyHoldings(
  sets: SetShape[],
  logs: CustodianLog[],
  holderRevocations: RevocationEntry[],
): CustodyHolding[] {
  // (subject, stream, epoch) -> custodian peer -> intervals of that custodian's share
  const groups = new Map<string, { subject: string; resource: string; epoch: number; by: Map<string, Interval[]> }>()
  for (const log of logs) {
    const revocations = [...holderRevocations, ...log.entries.filter((e): e is RevocationEntry => e.t === 'revocation')]
    for (const e of log.entries) {
      if (e.t !== 'release') continue
      const i = releaseInterval(e, revocations, log.asOf)
      for (const epoch of e.epochs) {
        const key = `${e.subject}\u0000${e.stream}\u0000${epoch}`
        const g = groups.get(key) ?? { subject: e.subject, resource: e.stream, epoch, by: new Map() }
        g.by.set(log.peer, [...(g.by.get(log.peer) ?? []), i])
        groups.set(key, g)
      }
    }
  }
  const out: CustodyHolding[] = []
  for (const g of groups.values()) {
    const held: Interval[] = []
    for (const set of sets) {
      const shares = set.peers.flatMap(p => (g.by.has(p) ? [mergeIntervals(g.by.get(p)!)] : []))
      held.push(...atLeast(set.k, shares))
    }
    const intervals = mergeIntervals(held)
    out.push({
      subject: g.subject,
      resource: g.resource,
      epoch: g.epoch,
      releasedBy: [...g.by.keys()].sort(),
      intervals,
      minutes: minutesOf(intervals),
    })
  }
  const order = (h: CustodyHolding) => `${h.subject}\u0000${h.resource}\u0000${String(h.epoch).padStart(16, '0')}`
  return out.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))
}

/**
 * The times at which at least `k` of the lists (each one custodian's merged intervals) hold at
 * once; an interval ends as the share whose end took the count below k did.
 */
function atLeast(k: number, lists: Interval[][]): Interval[] {
  if (lists.length < k) return []
  const events: { t: number; d: 1 | -1; endedBy: Interval['endedBy'] }[] = []
  for (const list of lists) {
    for (const i of list) {
      if (i.until <= i.from) continue
      events.push({ t: i.from, d: 1, endedBy: i.endedBy }, { t: i.until, d: -1, endedBy: i.endedBy })
    }
  }
  // at one time, starts before ends: a share handed on at the instant another ends keeps k
  events.sort((a, b) => a.t - b.t || b.d - a.d)
  const out: Interval[] = []
  let count = 0
  let since = 0
  for (const e of events) {
    const before = count
    count += e.d
    if (before < k && count >= k) since = e.t
    if (before >= k && count < k && e.t > since) out.push({ from: since, until: e.t, endedBy: e.endedBy })
  }
  return mergeIntervals(out)
}

/** The sets of a report, opened: each must be the owner's, for the space. */
function openSets(
  raw: unknown,
  space: string,
  owner: string,
): { ok: true; sets: OpenedRecord<CustodianSet>[] } | { ok: false; failure: string } {
  if (!Array.isArray(raw) || raw.length === 0)
    return { ok: false, failure: 'custody: the report names no custodian set' }
  const sets: OpenedRecord<CustodianSet>[] = []
  for (const [i, s] of raw.entries()) {
    let set: OpenedRecord<CustodianSet>
    try {
      set = openCustodianSet(fromBase64url(s as string))
    } catch (err) {
      return { ok: false, failure: `custody: custodian set ${i}: ${(err as Error).message}` }
    }
    if (set.issuer !== owner)
      return { ok: false, failure: `custody: custodian set ${i} is not signed by the space's owner` }
    if (set.body.space !== space) return { ok: false, failure: `custody: custodian set ${i} is for another space` }
    if (sets.some(o => o.id === set.id)) return { ok: false, failure: `custody: custodian set ${i} is repeated` }
    sets.push(set)
  }
  return { ok: true, sets }
}

/** What a verified custody part says: each log's head, the custodians missing, and the intervals. */
export interface VerifiedCustody {
  logs: { peer: string; principal: string; head: TreeHead; entries: AuditEntry[] }[]
  missing: { peer: string; reason: string }[]
  holdings: CustodyHolding[]
}

/**
 * Check the custody part of a report offline (see the module comment) for the space `space`
 * of `owner`; `holderRevocations` are the revocation entries proven in the key holder's log.
 * Returns the first failure, naming the custodian's log it is in.
 */
export function verifyCustody(
  raw: unknown,
  space: string,
  owner: string,
  query: ReportQuery,
  holderRevocations: RevocationEntry[],
): { ok: true; custody: VerifiedCustody } | { ok: false; failure: string } {
  const fail = (failure: string) => ({ ok: false as const, failure })
  const c = raw as CustodyReport
  if (c == null || typeof c !== 'object' || !Array.isArray(c.logs) || !Array.isArray(c.missing))
    return fail('custody: not a custody part of a report')
  const opened = openSets(c.sets, space, owner)
  if (!opened.ok) return opened
  // every principal the sets name for a peer: a head of its log must be signed by it
  const named = new Map<string, Set<string>>()
  for (const set of opened.sets) {
    for (const cu of set.body.custodians) {
      const dids = named.get(cu.peer) ?? new Set<string>()
      if (cu.did !== undefined) dids.add(cu.did)
      named.set(cu.peer, dids)
    }
  }
  const accounted = new Set<string>()
  const logs: VerifiedCustody['logs'] = []
  for (const [i, section] of c.logs.entries()) {
    const peer = (section as CustodianLogSection | null)?.peer
    if (typeof peer !== 'string' || !named.has(peer))
      return fail(`custody: log section ${i} is not of a custodian of the space`)
    if (accounted.has(peer)) return fail(`custodian log ${peer}: repeated`)
    accounted.add(peer)
    const what = `custodian log ${peer}: `
    let head: OpenedRecord<TreeHead>
    let principal: string
    try {
      head = openTreeHead(fromBase64url(section.head))
    } catch (err) {
      return fail(`${what}tree head: ${(err as Error).message}`)
    }
    try {
      const cert = openDeviceCert(fromBase64url(section.device))
      if (cert.body.peer !== peer) return fail(`${what}the device certificate is of another peer`)
      if (head.body.ts < cert.body.nbf || head.body.ts >= cert.body.exp)
        return fail(`${what}the device certificate is not in force at the tree head's time`)
      principal = cert.issuer
    } catch (err) {
      return fail(`${what}device certificate: ${(err as Error).message}`)
    }
    if (head.body.log !== peer) return fail(`${what}the tree head is of another log`)
    if (head.issuer !== principal) return fail(`${what}the tree head is not signed by the custodian's principal`)
    const dids = named.get(peer)!
    if (dids.size > 0 && !dids.has(principal))
      return fail(`${what}the tree head is signed by a principal the custodian set does not name`)
    const checked = verifyProvenEntries(section.entries, head.body, query, what)
    if (!checked.ok) return checked
    logs.push({ peer, principal, head: head.body, entries: checked.entries })
  }
  const missing: VerifiedCustody['missing'] = []
  for (const [i, m] of c.missing.entries()) {
    const peer = (m as { peer?: unknown } | null)?.peer
    if (typeof peer !== 'string' || !named.has(peer))
      return fail(`custody: missing custodian ${i} is not a custodian of the space`)
    if (accounted.has(peer)) return fail(`custody: custodian ${peer} is both in the report and named missing`)
    accounted.add(peer)
    if (typeof m.reason !== 'string' || m.reason.length > MAX_REASON || !TEXT_PATTERN.test(m.reason))
      return fail(`custody: the reason custodian ${peer} is missing is not a line of text`)
    missing.push({ peer, reason: m.reason })
  }
  for (const peer of named.keys()) {
    if (!accounted.has(peer)) return fail(`custody: custodian ${peer} is neither in the report nor named missing`)
  }
  const holdings = computeCustodyHoldings(
    shapes(opened.sets),
    logs.map(l => ({ peer: l.peer, entries: l.entries, asOf: l.head.ts })),
    holderRevocations,
  )
  if (JSON.stringify(holdings) !== JSON.stringify(c.holdings))
    return fail('custody: the stated holdings with custodians differ from those the entries give')
  return { ok: true, custody: { logs, missing, holdings } }
}

/** The shapes of custodian sets, for `computeCustodyHoldings`. */
export function shapes(sets: OpenedRecord<CustodianSet>[]): SetShape[] {
  return sets.map(s => ({ peers: s.body.custodians.map(c => c.peer), k: s.body.k }))
}
