/**
 * The policy of one space as an index over its verified records, and the rule that
 * answers "may this principal, on this device, read this stream in this form, now?".
 *
 * Time: `now` is the clock of the node that asks (passed in; never read here). The issue time
 * (`iat`) a signer writes into a record is a claim and decides nothing about authority; order
 * between records is the policy document's causal order (a change that was written knowing
 * another comes after it), which every replica agrees on (CausalHistory).
 *
 * Guarantees:
 * - The state is a function of the set of records added, with where each came from in the
 *   document's history, whatever their order, so replicas that received the same changes give
 *   the same answers (convergence).
 * - A revocation applies whether it arrives before or after what it targets, and nothing
 *   added later re-activates its target: a grant revoked by id stays revoked; a device
 *   revocation cuts that peer off for good, whatever certifies it; a revoked delegation ends
 *   every grant its admin issued under it.
 * - A subject revocation ends every grant of the subject that is not causally after it. The
 *   owner's ends, besides, every grant to the subject from anyone but the owner, whenever it
 *   was issued: after the owner revokes a subject, only the owner re-admits it.
 * - Authority: a grant is honoured only if its issuer is the owner; or an admin with a
 *   delegation that covers the grant's streams, that the admin knew when it wrote the grant
 *   (causally before it) and that is in force now (inside its window, not revoked), and then
 *   never past the delegation's end; or the subject of an active parent
 *   grant that allows forwarding, with the child only narrowing its parent. A revoked or
 *   expired parent ends its children.
 * - A fired admin has no power left: once the owner revokes a delegation, only the admin's
 *   records in the causal past of that revocation count (revocations and decisions it made
 *   before stay; anything it writes afterwards, whatever date it claims, has no effect).
 *   An admin's revocation or decision counts only if its claimed time is inside the
 *   delegation's window.
 * - Objects (streams named `obj-<16 hex>`: files and messages) are covered only by a grant or
 *   delegation that names them: no wildcard or prefix matches an object.
 * - Evaluation is indexed by grant id, by subject and by admin: it never scans all grants.
 * - Custodian sets: every set the owner wrote is kept (deals name the set they were made for);
 *   the one in force is the same on every replica: of the sets no other set was written
 *   knowing (causally after), the greatest by (claimed time, id).
 * Assumes: records were opened (signature and shape verified) by records.ts; records written
 * in the future beyond MAX_CLOCK_SKEW_MS were refused on arrival (document.ts).
 * Refuses: records of another space, streams, delegations and custodian sets not signed by the owner.
 */
import type { OpenedRecord } from '../../crypto/signed.ts'
import type { CustodianSet } from '../custody/records.ts'
import { isObjectStream } from '../data/objects.ts'
import type { Delegation, DeviceCert, Grant, Revocation, SpaceGenesis, StreamRecord } from './records.ts'
import type { OpenedDecision } from './requests.ts'

export type Refusal = { allowed: false; code: RefusalCode; reason: string }
/** `until`: when the grant's authority ends at the latest (its own end, its delegation's, its parent's). */
export type Permit = { allowed: true; grant: OpenedRecord<Grant>; until: number }
export type AccessDecision = Permit | Refusal

export type RefusalCode =
  | 'unknown-stream'
  | 'no-grant'
  | 'unknown-grant'
  | 'wrong-subject'
  | 'not-yet-valid'
  | 'expired'
  | 'revoked'
  | 'subject-revoked'
  | 'device-revoked'
  | 'device-invalid'
  | 'device-not-allowed'
  | 'stream-not-covered'
  | 'form-not-covered'
  | 'issuer-not-authorized'
  | 'parent-not-active'
  | 'max-releases'

export interface AccessQuery {
  subject: string
  device: OpenedRecord<DeviceCert>
  stream: string
  form: string
  /** the grant the requester names, if any */
  grantId?: string
  /** how many keys the key holder has released under a grant so far (for maxReleases) */
  releaseCount?: (grantId: string) => number
}

/**
 * The causal order of the policy document's changes, as the document knows it. A record's
 * origin is the hash of the change that carried it.
 */
export interface CausalHistory {
  /** Is change `earlier` in the causal past of change `later`? False for the same change or an unknown one. */
  precedes(earlier: string, later: string): boolean
}

/** With no history given, no record is known to come after another. */
const NO_HISTORY: CausalHistory = { precedes: () => false }

/** How far ahead of a receiver's clock a record's issue time may be before the record is refused on arrival. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000

export type AddResult =
  | { added: true }
  | { added: false; duplicate: true }
  | { added: false; duplicate: false; reason: string }

/** How informative a refusal is when several grants were tried: the highest wins. */
const REFUSAL_RANK: Record<RefusalCode, number> = {
  'unknown-stream': 0,
  'no-grant': 1,
  'unknown-grant': 2,
  'wrong-subject': 3,
  'stream-not-covered': 4,
  'form-not-covered': 5,
  'device-not-allowed': 6,
  'not-yet-valid': 7,
  expired: 8,
  'max-releases': 9,
  'issuer-not-authorized': 10,
  'parent-not-active': 11,
  'device-invalid': 12,
  'subject-revoked': 13,
  'device-revoked': 14,
  revoked: 15,
}

/** Refusals about what a grant covers, rather than whether it stands. */
const SCOPE_CODES = new Set<RefusalCode>([
  'wrong-subject',
  'stream-not-covered',
  'form-not-covered',
  'device-not-allowed',
])

/** Delegation chains longer than this are refused rather than followed. */
const MAX_CHAIN = 8
const FORWARD_ORDER = { never: 0, 'ask-owner': 1, allowed: 2 } as const

/**
 * Members name their streams of readings with this prefix (files and messages are named by the
 * node), so that no member takes a name the owner may want.
 */
export const MEMBER_STREAM_PREFIX = 'm-'

/** May a member (with the right to contribute) name a stream so: a file, a message, or `m-…`. */
export function isMemberStreamName(name: string): boolean {
  return isObjectStream(name) || (name.startsWith(MEMBER_STREAM_PREFIX) && name.length > MEMBER_STREAM_PREFIX.length)
}

/** Does a stream pattern (`*`, `prefix*`, or a name) cover a stream name? An object only by its own name. */
export function patternCovers(pattern: string, stream: string): boolean {
  if (isObjectStream(stream)) return pattern === stream
  if (pattern === '*') return true
  if (pattern.endsWith('*')) return stream.startsWith(pattern.slice(0, -1))
  return pattern === stream
}

/** Does a list of patterns cover a stream? */
export function streamsCover(patterns: readonly string[], stream: string): boolean {
  return patterns.some(p => patternCovers(p, stream))
}

/** Is every stream a child pattern can name also named by some parent pattern? */
export function patternsWithin(child: readonly string[], parent: readonly string[]): boolean {
  return child.every(c =>
    parent.some(p => {
      if (isObjectStream(c)) return p === c
      if (p === '*') return true
      if (c === '*') return false
      if (p.endsWith('*')) return c.startsWith(p.slice(0, -1))
      return !c.endsWith('*') && c === p
    }),
  )
}

/** Why a child grant is not a narrowing of its parent; undefined if it is. */
export function narrowingProblem(child: Grant, parent: Grant): string | undefined {
  if (child.iss !== parent.sub) return 'the child grant is not issued by the subject of its parent'
  if (!patternsWithin(child.streams, parent.streams)) return 'the child covers streams its parent does not'
  if (!child.forms.every(f => parent.forms.includes(f))) return 'the child covers forms its parent does not'
  if (child.nbf < parent.nbf || child.exp > parent.exp) return "the child's validity is not inside its parent's"
  if (parent.dataFrom !== undefined && (child.dataFrom ?? Number.NEGATIVE_INFINITY) < parent.dataFrom) {
    return "the child's data window starts before its parent's"
  }
  if (parent.dataUntil !== undefined && (child.dataUntil ?? Number.POSITIVE_INFINITY) > parent.dataUntil) {
    return "the child's data window ends after its parent's"
  }
  if (parent.download === false && child.download !== false) return 'the child allows download, its parent does not'
  if (FORWARD_ORDER[child.forward ?? 'never'] > FORWARD_ORDER[parent.forward ?? 'never']) {
    return 'the child allows more forwarding than its parent'
  }
  if (
    parent.devices !== undefined &&
    (child.devices === undefined || !child.devices.every(d => parent.devices!.includes(d)))
  ) {
    return 'the child allows devices its parent does not'
  }
  if (parent.maxReleases !== undefined && (child.maxReleases ?? Number.POSITIVE_INFINITY) > parent.maxReleases) {
    return 'the child allows more key releases than its parent'
  }
  return undefined
}

export type GrantStatus = 'active' | 'expired' | 'revoked' | 'pending' | 'not-honoured'

/** A space's applied records, indexed for evaluation: streams, grants, delegations, revocations and who may write. */
export class PolicyState {
  readonly spaceId: string
  readonly genesis: OpenedRecord<SpaceGenesis>
  readonly streams = new Map<string, OpenedRecord<StreamRecord>>()
  readonly grants = new Map<string, OpenedRecord<Grant>>()
  readonly revocations = new Map<string, OpenedRecord<Revocation>>()
  readonly delegations = new Map<string, OpenedRecord<Delegation>>()
  /** every custodian set the owner wrote, by record id: deals made to an old set still name it */
  readonly custodianSets = new Map<string, OpenedRecord<CustodianSet>>()
  /** the set in force, once worked out; forgotten when a set is added */
  private custodianSetInForce: { set: OpenedRecord<CustodianSet> | undefined } | undefined
  private readonly history: CausalHistory
  /** the change that carried each record, by record id (records added without one have none) */
  private readonly origins = new Map<string, string>()
  /** decisions by the id of the access request they decide */
  private readonly decisionsByRequest = new Map<string, OpenedDecision[]>()
  private readonly grantsBySubject = new Map<string, Set<string>>()
  private readonly delegationsByAdmin = new Map<string, Set<string>>()
  private readonly revocationsOfGrant = new Map<string, OpenedRecord<Revocation>[]>()
  private readonly revocationsOfSubject = new Map<string, OpenedRecord<Revocation>[]>()
  /** the owner's revocations of each delegation, by delegation id */
  private readonly revocationsOfDelegation = new Map<string, OpenedRecord<Revocation>[]>()
  /** device peer ids the owner revoked */
  private readonly revokedDevices = new Set<string>()

  /** `history` answers "was this change written after that one?" for the records' origins. */
  constructor(genesis: OpenedRecord<SpaceGenesis>, history: CausalHistory = NO_HISTORY) {
    this.genesis = genesis
    this.spaceId = genesis.id
    this.history = history
  }

  get owner(): string {
    return this.genesis.body.iss
  }

  get holders(): string[] {
    return this.genesis.body.holders
  }

  /**
   * May `author` write `kind` records to the document at all? (Whether a record is honoured
   * is decided at evaluation.) Owner: anything, and alone delegations and custodian sets, and
   * streams but a contributor's own. A member granted `contribute`: the stream record of a
   * file, a message or a stream of readings (`m-…`) of its own, and grants on exactly its own
   * streams. An admin with a
   * delegation: grants and
   * revocations. The subject of a grant that allows forwarding: child grants of it. The
   * issuer of a grant: revocations of that grant.
   */
  mayWrite(author: string, rec: { kind: string; body: Record<string, unknown> }): string | undefined {
    if (author === this.owner) return undefined
    if (rec.kind === 'stream' && this.isContributor(author)) {
      return typeof rec.body.name === 'string' && isMemberStreamName(rec.body.name) && typeof rec.body.peer === 'string'
        ? undefined
        : `a member's stream is a file or message of its own, or a stream named ${MEMBER_STREAM_PREFIX}…, naming the device that publishes it`
    }
    if (rec.kind === 'grant' && rec.body.parent === undefined && this.ownStreams(author, rec.body.streams)) {
      return undefined
    }
    if (rec.kind === 'stream' || rec.kind === 'delegation' || rec.kind === 'custodian-set') {
      return 'only the owner may write streams, delegations and custodian sets'
    }
    if (this.delegationsByAdmin.has(author)) return undefined
    if (rec.kind === 'decision') return 'only the owner or an admin may decide on access requests'
    if (rec.kind === 'grant') {
      const parent = typeof rec.body.parent === 'string' ? this.grants.get(rec.body.parent) : undefined
      if (parent !== undefined && parent.body.sub === author && parent.body.forward === 'allowed') return undefined
      return 'the author is neither the owner, nor an admin, nor allowed to forward the parent grant'
    }
    if (rec.kind === 'revocation') {
      const target = rec.body.target as Record<string, string>
      if (target.grant !== undefined && this.grants.get(target.grant)?.issuer === author) return undefined
      return 'the author may not revoke that'
    }
    return 'unknown kind of record'
  }

  /**
   * Can `did` write anything to the document at all, as far as this replica knows: the owner,
   * an admin, or the holder of a grant it may forward. (A change whose history has not arrived
   * is kept only if so.)
   */
  mayBeAuthor(did: string): boolean {
    if (did === this.owner || this.delegationsByAdmin.has(did) || this.isContributor(did)) return true
    return this.grantsOf(did).some(g => g.body.forward === 'allowed')
  }

  private spaceProblem(rec: OpenedRecord<{ iss: string; space: string }>): string | undefined {
    return rec.body.space === this.spaceId ? undefined : 'record belongs to another space'
  }

  private setOrigin(id: string, origin: string | undefined): void {
    if (origin !== undefined) this.origins.set(id, origin)
  }

  /** The hash of the change that carried a record, if known. */
  originOf(id: string): string | undefined {
    return this.origins.get(id)
  }

  /**
   * Is record `a` causally before record `b` (b's change was written knowing a's)? A record `b`
   * not in the document yet is a draft this replica is about to write, knowing all it holds.
   */
  private precedes(a: { id: string }, b: { id: string }): boolean {
    const from = this.origins.get(a.id)
    if (from === undefined) return false
    const to = this.origins.get(b.id)
    if (to === undefined) return !this.isRecorded(b.id)
    return this.history.precedes(from, to)
  }

  private isRecorded(id: string): boolean {
    return (
      this.grants.has(id) ||
      this.revocations.has(id) ||
      this.delegations.has(id) ||
      this.custodianSets.has(id) ||
      this.origins.has(id)
    )
  }

  /** Has `did` been granted `contribute` (by any grant this replica knows; whether it is honoured is decided at evaluation)? */
  isContributor(did: string): boolean {
    return this.grantsOf(did).some(g => g.body.contribute === true)
  }

  /** Does `did` hold a grant to contribute that is in force at `now` (what lets a member share into the space)? */
  contributesAt(did: string, now: number): boolean {
    return this.grantsOf(did).some(g => g.body.contribute === true && this.grantProblem(g, now) === undefined)
  }

  /** Are `streams` (a record's field, unchecked) exact names of a member's streams that `author` wrote the records of? */
  private ownStreams(author: string, streams: unknown): boolean {
    return (
      Array.isArray(streams) &&
      streams.length > 0 &&
      streams.every(name => {
        const rec = typeof name === 'string' ? this.streams.get(name) : undefined
        return rec !== undefined && rec.issuer === author && rec.body.peer !== undefined
      })
    )
  }

  addStream(rec: OpenedRecord<StreamRecord>, origin?: string): AddResult {
    const byMember = rec.issuer !== this.owner
    const problem =
      this.spaceProblem(rec) ??
      (!byMember || (isMemberStreamName(rec.body.name) && rec.body.peer !== undefined)
        ? undefined
        : `a stream not written by the owner is a member's own (a file, a message, or ${MEMBER_STREAM_PREFIX}…), naming its device`)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    const existing = this.streams.get(rec.body.name)
    // two definitions of one name converge: the owner's over a member's, else the smaller id
    if (existing !== undefined) {
      const existingByMember = existing.issuer !== this.owner
      if (byMember && !existingByMember) return { added: false, duplicate: true }
      if (byMember === existingByMember && existing.id <= rec.id) return { added: false, duplicate: true }
    }
    this.streams.set(rec.body.name, rec)
    this.setOrigin(rec.id, origin)
    return { added: true }
  }

  /** Why a record only the owner may write cannot be added: of another space, or not the owner's. */
  private ownerRecordProblem(rec: OpenedRecord<{ iss: string; space: string }>): string | undefined {
    return this.spaceProblem(rec) ?? (rec.issuer === this.owner ? undefined : 'issuer is not the owner of the space')
  }

  /**
   * Keeps `rec` in `records` by id, with the change that carried it, unless it has a `problem`
   * or is there already; the caller indexes it further only when it was added.
   */
  private addById<T>(
    records: Map<string, OpenedRecord<T>>,
    rec: OpenedRecord<T>,
    origin: string | undefined,
    problem: string | undefined,
  ): AddResult {
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    if (records.has(rec.id)) return { added: false, duplicate: true }
    records.set(rec.id, rec)
    this.setOrigin(rec.id, origin)
    return { added: true }
  }

  addDelegation(rec: OpenedRecord<Delegation>, origin?: string): AddResult {
    const res = this.addById(this.delegations, rec, origin, this.ownerRecordProblem(rec))
    if (res.added) addTo(this.delegationsByAdmin, rec.body.admin, rec.id)
    return res
  }

  addCustodianSet(rec: OpenedRecord<CustodianSet>, origin?: string): AddResult {
    const res = this.addById(this.custodianSets, rec, origin, this.ownerRecordProblem(rec))
    if (res.added) this.custodianSetInForce = undefined
    return res
  }

  /**
   * The custodian set in force, the same on every replica whatever the order of arrival: a set
   * is superseded by any set written knowing it (causally after it); of the sets not superseded
   * (written concurrently), the greatest by claimed time, then id. Undefined before the owner
   * writes one.
   */
  get custodianSet(): OpenedRecord<CustodianSet> | undefined {
    if (this.custodianSetInForce === undefined) {
      const sets = [...this.custodianSets.values()]
      let best: OpenedRecord<CustodianSet> | undefined
      for (const a of sets) {
        if (sets.some(b => b !== a && this.precedes(a, b))) continue
        if (best === undefined || a.body.iat > best.body.iat || (a.body.iat === best.body.iat && a.id > best.id)) {
          best = a
        }
      }
      this.custodianSetInForce = { set: best }
    }
    return this.custodianSetInForce.set
  }

  addGrant(rec: OpenedRecord<Grant>, origin?: string): AddResult {
    const res = this.addById(this.grants, rec, origin, this.spaceProblem(rec))
    if (res.added) addTo(this.grantsBySubject, rec.body.sub, rec.id)
    return res
  }

  addRevocation(rec: OpenedRecord<Revocation>, origin?: string): AddResult {
    const res = this.addById(this.revocations, rec, origin, this.spaceProblem(rec))
    if (!res.added) return res
    const t = rec.body.target
    const byOwner = rec.issuer === this.owner
    if ('grant' in t) push(this.revocationsOfGrant, t.grant, rec)
    else if ('subject' in t) push(this.revocationsOfSubject, t.subject, rec)
    else if ('device' in t && byOwner) this.revokedDevices.add(t.device)
    else if ('delegation' in t && byOwner) push(this.revocationsOfDelegation, t.delegation, rec)
    return res
  }

  addDecision(rec: OpenedDecision, origin?: string): AddResult {
    const problem = this.spaceProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    const list = this.decisionsByRequest.get(rec.accessRequest.id) ?? []
    if (list.some(d => d.id === rec.id)) return { added: false, duplicate: true }
    list.push(rec)
    this.decisionsByRequest.set(rec.accessRequest.id, list)
    this.setOrigin(rec.id, origin)
    return { added: true }
  }

  /**
   * The decision that stands for an access request, the same on every replica: the owner's if
   * there is one, else an honoured admin's; among several, the earliest by claimed time, then
   * the smaller id. An admin's decision is honoured if a delegation covering the requested
   * streams gave it authority (see adminRecordCounts).
   */
  decisionOn(requestId: string): OpenedDecision | undefined {
    const rank = (d: OpenedDecision) => (d.issuer === this.owner ? 0 : 1)
    const honoured = (this.decisionsByRequest.get(requestId) ?? []).filter(
      d =>
        d.issuer === this.owner ||
        this.delegationsOf(d.issuer).some(
          dl => patternsWithin(d.accessRequest.body.streams, dl.body.streams) && this.adminRecordCounts(d, dl),
        ),
    )
    return honoured.sort((a, b) => rank(a) - rank(b) || a.body.iat - b.body.iat || (a.id < b.id ? -1 : 1))[0]
  }

  decisions(): OpenedDecision[] {
    return [...this.decisionsByRequest.values()].flat()
  }

  grantsOf(subject: string): OpenedRecord<Grant>[] {
    const ids = this.grantsBySubject.get(subject)
    if (ids === undefined) return []
    return [...ids].map(id => this.grants.get(id)!).sort((a, b) => (a.id < b.id ? -1 : 1))
  }

  /** The revocations of a subject written by `issuer` (e.g. the owner's). */
  revocationsOfSubjectBy(subject: string, issuer: string): OpenedRecord<Revocation>[] {
    return (this.revocationsOfSubject.get(subject) ?? []).filter(r => r.issuer === issuer)
  }

  private delegationsOf(admin: string): OpenedRecord<Delegation>[] {
    return [...(this.delegationsByAdmin.get(admin) ?? [])].map(id => this.delegations.get(id)!)
  }

  /** Has the owner revoked this delegation? */
  isDelegationRevoked(id: string): boolean {
    return this.revocationsOfDelegation.has(id)
  }

  /** Is a delegation in force at `now`: inside its window and not revoked? */
  delegationInForce(d: OpenedRecord<Delegation>, now: number): boolean {
    return !this.revocationsOfDelegation.has(d.id) && d.body.nbf <= now && now < d.body.exp
  }

  /**
   * Does a revocation or decision written by an admin count under one of its delegations? It
   * must have been written knowing the delegation (causally after it), its claimed time must
   * lie inside the delegation's window, and once the owner has revoked the
   * delegation, only what lies in the causal past of every such revocation counts: nothing
   * the admin writes after it is fired has any effect, whatever time it claims.
   */
  private adminRecordCounts(rec: OpenedRecord<{ iat: number }>, d: OpenedRecord<Delegation>): boolean {
    if (!this.precedes(d, rec) || rec.body.iat < d.body.nbf || rec.body.iat >= d.body.exp) return false
    const fired = this.revocationsOfDelegation.get(d.id)
    return fired === undefined || fired.every(rev => this.precedes(rec, rev))
  }

  /** Is a revocation honoured against a grant: by the owner, the grant's issuer, or an admin whose scope covers it. */
  private revocationApplies(rev: OpenedRecord<Revocation>, grant: OpenedRecord<Grant>): boolean {
    if (rev.issuer === this.owner) return true
    if ('grant' in rev.body.target && rev.issuer === grant.issuer) return true
    // an admin's revocations stay in force after its delegation ends or is revoked: revocations are permanent
    return this.delegationsOf(rev.issuer).some(
      d => patternsWithin(grant.body.streams, d.body.streams) && this.adminRecordCounts(rev, d),
    )
  }

  /**
   * Does a subject revocation end this grant of the subject? It ends the grants not causally
   * after it; the owner's also ends every grant to the subject by anyone but the owner.
   */
  private subjectRevocationEnds(rev: OpenedRecord<Revocation>, grant: OpenedRecord<Grant>): boolean {
    if (!this.revocationApplies(rev, grant)) return false
    if (rev.issuer === this.owner && grant.issuer !== this.owner) return true
    return !this.precedes(rev, grant)
  }

  /** Why a grant is not usable now, ignoring the request's stream, form and device; undefined if it is active. */
  grantProblem(grant: OpenedRecord<Grant>, now: number): Refusal | undefined {
    const standing = this.standing(grant, now, 0)
    return 'allowed' in standing ? standing : undefined
  }

  /** When an active grant's authority ends at the latest (its end, its delegation's, its parent's); undefined if not active. */
  activeUntil(grant: OpenedRecord<Grant>, now: number): number | undefined {
    const standing = this.standing(grant, now, 0)
    return 'allowed' in standing ? undefined : standing.until
  }

  private standing(grant: OpenedRecord<Grant>, now: number, depth: number): Refusal | { until: number } {
    for (const rev of this.revocationsOfGrant.get(grant.id) ?? []) {
      if (this.revocationApplies(rev, grant)) return refuse('revoked', 'the grant has been revoked')
    }
    for (const rev of this.revocationsOfSubject.get(grant.body.sub) ?? []) {
      if (this.subjectRevocationEnds(rev, grant))
        return refuse('subject-revoked', "the subject's access has been revoked")
    }
    const authority = this.authority(grant, now, depth)
    if ('allowed' in authority) return authority
    if (now < grant.body.nbf) return refuse('not-yet-valid', 'the grant is not valid yet')
    if (now >= grant.body.exp) return refuse('expired', 'the grant has expired')
    return { until: Math.min(grant.body.exp, authority.until) }
  }

  /** Is the grant's issuer entitled to it now, and until when does that authority last? */
  private authority(grant: OpenedRecord<Grant>, now: number, depth: number): Refusal | { until: number } {
    const g = grant.body
    if (g.parent !== undefined) {
      if (depth >= MAX_CHAIN) return refuse('parent-not-active', 'the delegation chain is too long')
      const parent = this.grants.get(g.parent)
      if (parent === undefined) return refuse('parent-not-active', 'the parent grant is not known')
      if (parent.body.forward !== 'allowed')
        return refuse('issuer-not-authorized', 'the parent grant does not allow forwarding')
      const narrowing = narrowingProblem(g, parent.body)
      if (narrowing !== undefined) return refuse('issuer-not-authorized', narrowing)
      const parentStanding = this.standing(parent, now, depth + 1)
      if ('allowed' in parentStanding)
        return refuse('parent-not-active', `the parent grant is not active: ${parentStanding.reason}`)
      return parentStanding
    }
    if (grant.issuer === this.owner) return { until: Number.POSITIVE_INFINITY }
    if (this.ownStreams(grant.issuer, g.streams)) return this.contributorAuthority(grant, now, depth)
    // a grant is issued under the delegations its admin knew when writing it: a later one does not revive it
    const covering = this.delegationsOf(grant.issuer).filter(
      d => patternsWithin(g.streams, d.body.streams) && this.precedes(d, grant),
    )
    if (covering.length === 0)
      return refuse('issuer-not-authorized', 'the issuer has no delegation covering this grant')
    const inForce = covering.filter(d => this.delegationInForce(d, now))
    if (inForce.length === 0) {
      return refuse(
        'issuer-not-authorized',
        covering.some(d => this.revocationsOfDelegation.has(d.id))
          ? "the issuer's delegation has been revoked"
          : "the issuer's delegation is not in force now",
      )
    }
    // whatever is issued under a delegation never outlives it
    return { until: Math.max(...inForce.map(d => d.body.exp)) }
  }

  /**
   * A member's grant on its own objects is honoured while a grant to contribute that the member
   * knew when it wrote it (causally before it) is active now, and never past its end: a member
   * whose right to contribute was revoked or ran out shares nothing more, and what it shared
   * ends with it.
   */
  private contributorAuthority(grant: OpenedRecord<Grant>, now: number, depth: number): Refusal | { until: number } {
    if (depth >= MAX_CHAIN) return refuse('issuer-not-authorized', 'the chain of grants is too long')
    const rights = this.grantsOf(grant.issuer).filter(g => g.body.contribute === true && this.precedes(g, grant))
    if (rights.length === 0) return refuse('issuer-not-authorized', 'the issuer may not share into the space')
    const ends = rights.flatMap(r => {
      const standing = this.standing(r, now, depth + 1)
      return 'allowed' in standing ? [] : [standing.until]
    })
    if (ends.length === 0)
      return refuse('issuer-not-authorized', "the issuer's right to share into the space has ended")
    return { until: Math.max(...ends) }
  }

  /**
   * Why a record its author could write has no effect, as things stand at `now`: a grant whose
   * issuer holds no authority for it, an admin's revocation or decision that no delegation
   * backs (written after the admin was fired, outside its window, or before it knew of it).
   * Undefined for a record that counts. For operators: such records are kept but powerless.
   */
  powerlessReason(
    r:
      | { kind: 'grant'; record: OpenedRecord<Grant> }
      | { kind: 'revocation'; record: OpenedRecord<Revocation> }
      | { kind: 'decision'; record: OpenedDecision }
      | { kind: string; record: OpenedRecord<{ iat: number }> },
    now: number,
  ): string | undefined {
    if (r.record.issuer === this.owner) return undefined
    if (r.kind === 'grant') {
      const a = this.authority(r.record as OpenedRecord<Grant>, now, 0)
      return 'allowed' in a && a.code === 'issuer-not-authorized' ? a.reason : undefined
    }
    if (r.kind !== 'revocation' && r.kind !== 'decision') return undefined
    if (r.kind === 'revocation') {
      const t = (r.record as OpenedRecord<Revocation>).body.target
      if ('grant' in t && this.grants.get(t.grant)?.issuer === r.record.issuer) return undefined
    }
    return this.delegationsOf(r.record.issuer).some(d => this.adminRecordCounts(r.record, d))
      ? undefined
      : 'its author holds no delegation that backs it (fired, expired, or not yet known when it wrote it)'
  }

  /** Is a device certificate usable now: valid window, not revoked. */
  deviceProblem(device: OpenedRecord<DeviceCert>, subject: string, now: number): Refusal | undefined {
    if (device.issuer !== subject) return refuse('device-invalid', 'the device is not certified by the requester')
    // permanent: a principal that certifies a revoked device again does not bring it back
    if (this.revokedDevices.has(device.body.peer)) return refuse('device-revoked', 'the device has been revoked')
    if (now < device.body.nbf || now >= device.body.exp) {
      return refuse('device-invalid', 'the device certificate is outside its validity window')
    }
    return undefined
  }

  evaluateAccess(q: AccessQuery, now: number): AccessDecision {
    if (!this.streams.has(q.stream)) return refuse('unknown-stream', `the space has no stream ${q.stream}`)
    const deviceProblem = this.deviceProblem(q.device, q.subject, now)
    if (deviceProblem !== undefined) return deviceProblem
    let candidates: OpenedRecord<Grant>[]
    if (q.grantId !== undefined) {
      const g = this.grants.get(q.grantId)
      if (g === undefined) return refuse('unknown-grant', 'the named grant is not known to the key holder')
      if (g.body.sub !== q.subject) return refuse('wrong-subject', 'the named grant is for another subject')
      candidates = [g]
    } else {
      candidates = this.grantsOf(q.subject)
      if (candidates.length === 0) return refuse('no-grant', 'no grant for this subject in the space')
    }
    let best: { refusal: Refusal; grant: OpenedRecord<Grant> } | undefined
    for (const g of candidates) {
      const problem = coverageProblem(g, q)
      const standing = problem ?? this.standing(g, now, 0)
      if (!('allowed' in standing)) return { allowed: true, grant: g, until: standing.until }
      if (best === undefined || this.tellsMore(standing, g, best)) best = { refusal: standing, grant: g }
    }
    return best!.refusal
  }

  /**
   * Which refusal to give when several grants were tried: of two grants that cover the request
   * but no longer (or not yet) stand, the one written later (a new grant that expired says more
   * than an old one that was revoked); otherwise the more informative code.
   */
  private tellsMore(
    r: Refusal,
    g: OpenedRecord<Grant>,
    best: { refusal: Refusal; grant: OpenedRecord<Grant> },
  ): boolean {
    if (!SCOPE_CODES.has(r.code) && !SCOPE_CODES.has(best.refusal.code)) {
      if (this.precedes(best.grant, g)) return true
      if (this.precedes(g, best.grant)) return false
    }
    return REFUSAL_RANK[r.code] > REFUSAL_RANK[best.refusal.code]
  }

  /** A grant's state for listing: active, expired, revoked, pending (not valid yet) or not honoured, and why. */
  grantStatus(grant: OpenedRecord<Grant>, now: number): { status: GrantStatus; reason?: string } {
    const problem = this.grantProblem(grant, now)
    if (problem === undefined) return { status: 'active' }
    const status: GrantStatus =
      problem.code === 'expired'
        ? 'expired'
        : problem.code === 'not-yet-valid'
          ? 'pending'
          : problem.code === 'revoked' || problem.code === 'subject-revoked'
            ? 'revoked'
            : 'not-honoured'
    return { status, reason: problem.reason }
  }

  /** Does `rec` end `grant`, for a reader on `devicePeer`, at `now` (used by readers to drop cached keys)? */
  revocationEnds(rec: OpenedRecord<Revocation>, grant: OpenedRecord<Grant>, devicePeer: string, now: number): boolean {
    const t = rec.body.target
    if ('grant' in t) return t.grant === grant.id && this.revocationApplies(rec, grant)
    if ('subject' in t) return t.subject === grant.body.sub && this.subjectRevocationEnds(rec, grant)
    if ('device' in t) return t.device === devicePeer && rec.issuer === this.owner
    // a revoked delegation or parent ends the grant if the grant is no longer active because of it
    return this.grantProblem(grant, now) !== undefined
  }
}

function coverageProblem(g: OpenedRecord<Grant>, q: AccessQuery): Refusal | undefined {
  if (!streamsCover(g.body.streams, q.stream))
    return refuse('stream-not-covered', `the grant does not cover stream ${q.stream}`)
  if (!g.body.forms.includes(q.form)) return refuse('form-not-covered', `the grant does not cover form ${q.form}`)
  if (g.body.devices !== undefined && !g.body.devices.includes(q.device.body.peer)) {
    return refuse('device-not-allowed', 'the grant may not be used from this device')
  }
  if (g.body.maxReleases !== undefined && (q.releaseCount?.(g.id) ?? 0) >= g.body.maxReleases) {
    return refuse('max-releases', `the grant allows at most ${g.body.maxReleases} key releases`)
  }
  return undefined
}

function refuse(code: RefusalCode, reason: string): Refusal {
  return { allowed: false, code, reason }
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  const set = index.get(key) ?? new Set<string>()
  set.add(id)
  index.set(key, set)
}

function push<T>(index: Map<string, T[]>, key: string, value: T): void {
  const list = index.get(key) ?? []
  list.push(value)
  index.set(key, list)
}

/**
 * Does an epoch whose data runs from `begins` (its start) to `ends` (the next epoch's start)
 * overlap a grant's data window [dataFrom, dataUntil)? Windows are enforced per epoch.
 */
export function epochInDataWindow(begins: number, ends: number, grant: Pick<Grant, 'dataFrom' | 'dataUntil'>): boolean {
  return begins < (grant.dataUntil ?? Number.POSITIVE_INFINITY) && ends > (grant.dataFrom ?? 0)
}

/** A lease ends at the earlier of the grant's end (its authority's: Permit.until) and now + leaseMax. */
export function leaseEnd(grant: Pick<Grant, 'exp'>, now: number, leaseMaxMs: number): number {
  return Math.min(grant.exp, now + leaseMaxMs)
}
