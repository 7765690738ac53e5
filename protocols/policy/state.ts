/**
 * The policy of one space as an index over its verified records, and the rule that
 * answers "may this principal, on this device, read this stream in this form, now?".
 *
 * Guarantees:
 * - The state is a function of the set of records added, whatever their order, so
 *   replicas that received the same records give the same answers (convergence).
 * - A revocation applies whether it arrives before or after what it targets, and nothing
 *   added later re-activates its target: a grant revoked by id stays revoked; a subject
 *   revocation ends every grant of the subject issued at or before it (a new grant brings
 *   access back); a device revocation cuts that peer off for good, whatever certifies it;
 *   a revoked delegation ends every grant its admin issued under it.
 * - Authority: a grant is honoured only if its issuer is the owner, or an admin whose
 *   unrevoked delegation covers the grant's streams and was valid when the grant was
 *   issued, or the subject of an active parent grant that allows forwarding, with the child
 *   only narrowing its parent. A revoked or expired parent ends its children.
 * - Evaluation is indexed by grant id, by subject and by admin: it never scans all grants.
 * Assumes: records were opened (signature and shape verified) by records.ts.
 * Refuses: records of another space, streams and delegations not signed by the owner.
 */
import type { OpenedRecord } from '../../crypto/signed.ts'
import type { Delegation, DeviceCert, Grant, Revocation, SpaceGenesis, StreamRecord } from './records.ts'
import type { OpenedDecision } from './requests.ts'

export type Refusal = { allowed: false; code: RefusalCode; reason: string }
export type Permit = { allowed: true; grant: OpenedRecord<Grant> }
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

/** Delegation chains longer than this are refused rather than followed. */
const MAX_CHAIN = 8
const FORWARD_ORDER = { never: 0, 'ask-owner': 1, allowed: 2 } as const

/** Does a stream pattern (`*`, `prefix*`, or a name) cover a stream name? */
export function patternCovers(pattern: string, stream: string): boolean {
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

export class PolicyState {
  readonly spaceId: string
  readonly genesis: OpenedRecord<SpaceGenesis>
  readonly streams = new Map<string, OpenedRecord<StreamRecord>>()
  readonly grants = new Map<string, OpenedRecord<Grant>>()
  readonly revocations = new Map<string, OpenedRecord<Revocation>>()
  readonly delegations = new Map<string, OpenedRecord<Delegation>>()
  /** decisions by the id of the access request they decide */
  private readonly decisionsByRequest = new Map<string, OpenedDecision[]>()
  private readonly grantsBySubject = new Map<string, Set<string>>()
  private readonly delegationsByAdmin = new Map<string, Set<string>>()
  private readonly revocationsOfGrant = new Map<string, OpenedRecord<Revocation>[]>()
  private readonly revocationsOfSubject = new Map<string, OpenedRecord<Revocation>[]>()
  /** delegations the owner revoked */
  private readonly revokedDelegations = new Set<string>()
  /** device peer ids the owner revoked */
  private readonly revokedDevices = new Set<string>()

  constructor(genesis: OpenedRecord<SpaceGenesis>) {
    this.genesis = genesis
    this.spaceId = genesis.id
  }

  get owner(): string {
    return this.genesis.body.iss
  }

  get holders(): string[] {
    return this.genesis.body.holders
  }

  /**
   * May `author` write `kind` records to the document at all? (Whether a record is honoured
   * is decided at evaluation.) Owner: anything. An admin with a delegation: grants and
   * revocations. The subject of a grant that allows forwarding: child grants of it. The
   * issuer of a grant: revocations of that grant.
   */
  mayWrite(author: string, rec: { kind: string; body: Record<string, unknown> }): string | undefined {
    if (author === this.owner) return undefined
    if (rec.kind === 'stream' || rec.kind === 'delegation') return 'only the owner may write streams and delegations'
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

  private spaceProblem(rec: OpenedRecord<{ iss: string; space: string }>): string | undefined {
    return rec.body.space === this.spaceId ? undefined : 'record belongs to another space'
  }

  addStream(rec: OpenedRecord<StreamRecord>): AddResult {
    const problem =
      this.spaceProblem(rec) ?? (rec.issuer === this.owner ? undefined : 'issuer is not the owner of the space')
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    const existing = this.streams.get(rec.body.name)
    // two definitions of one name converge on the smaller id
    if (existing !== undefined && existing.id <= rec.id) return { added: false, duplicate: true }
    this.streams.set(rec.body.name, rec)
    return { added: true }
  }

  addDelegation(rec: OpenedRecord<Delegation>): AddResult {
    const problem =
      this.spaceProblem(rec) ?? (rec.issuer === this.owner ? undefined : 'issuer is not the owner of the space')
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    if (this.delegations.has(rec.id)) return { added: false, duplicate: true }
    this.delegations.set(rec.id, rec)
    addTo(this.delegationsByAdmin, rec.body.admin, rec.id)
    return { added: true }
  }

  addGrant(rec: OpenedRecord<Grant>): AddResult {
    const problem = this.spaceProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    if (this.grants.has(rec.id)) return { added: false, duplicate: true }
    this.grants.set(rec.id, rec)
    addTo(this.grantsBySubject, rec.body.sub, rec.id)
    return { added: true }
  }

  addRevocation(rec: OpenedRecord<Revocation>): AddResult {
    const problem = this.spaceProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    if (this.revocations.has(rec.id)) return { added: false, duplicate: true }
    this.revocations.set(rec.id, rec)
    const t = rec.body.target
    const byOwner = rec.issuer === this.owner
    if ('grant' in t) push(this.revocationsOfGrant, t.grant, rec)
    else if ('subject' in t) push(this.revocationsOfSubject, t.subject, rec)
    else if ('device' in t && byOwner) this.revokedDevices.add(t.device)
    else if ('delegation' in t && byOwner) this.revokedDelegations.add(t.delegation)
    return { added: true }
  }

  addDecision(rec: OpenedDecision): AddResult {
    const problem = this.spaceProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    const list = this.decisionsByRequest.get(rec.accessRequest.id) ?? []
    if (list.some(d => d.id === rec.id)) return { added: false, duplicate: true }
    list.push(rec)
    this.decisionsByRequest.set(rec.accessRequest.id, list)
    return { added: true }
  }

  /**
   * The decision that stands for an access request: the earliest honoured one (by time, then
   * id), so every replica picks the same. Honoured: by the owner, or by an admin whose
   * delegation covered the requested streams when it decided.
   */
  decisionOn(requestId: string): OpenedDecision | undefined {
    const honoured = (this.decisionsByRequest.get(requestId) ?? []).filter(
      d =>
        d.issuer === this.owner ||
        this.delegationsCovering(d.issuer, d.accessRequest.body.streams, d.body.iat, false).length > 0,
    )
    return honoured.sort((a, b) => a.body.iat - b.body.iat || (a.id < b.id ? -1 : 1))[0]
  }

  decisions(): OpenedDecision[] {
    return [...this.decisionsByRequest.values()].flat()
  }

  grantsOf(subject: string): OpenedRecord<Grant>[] {
    const ids = this.grantsBySubject.get(subject)
    if (ids === undefined) return []
    return [...ids].map(id => this.grants.get(id)!).sort((a, b) => (a.id < b.id ? -1 : 1))
  }

  /** Delegations of an admin that were valid at `at` and cover `streams` (revoked ones too if asked). */
  private delegationsCovering(admin: string, streams: readonly string[], at: number, includeRevoked: boolean) {
    const ids = this.delegationsByAdmin.get(admin)
    if (ids === undefined) return []
    return [...ids]
      .map(id => this.delegations.get(id)!)
      .filter(
        d =>
          (includeRevoked || !this.revokedDelegations.has(d.id)) &&
          d.body.nbf <= at &&
          at < d.body.exp &&
          patternsWithin(streams, d.body.streams),
      )
  }

  /** Is a revocation honoured against a grant: by the owner, the grant's issuer, or an admin whose scope covers it. */
  private revocationApplies(rev: OpenedRecord<Revocation>, grant: OpenedRecord<Grant>): boolean {
    if (rev.issuer === this.owner) return true
    if ('grant' in rev.body.target && rev.issuer === grant.issuer) return true
    // an admin's revocations stay in force after its delegation ends: revocations are permanent
    return this.delegationsCovering(rev.issuer, grant.body.streams, rev.body.iat, true).length > 0
  }

  /** Why a grant is not usable now, ignoring the request's stream, form and device; undefined if it is active. */
  grantProblem(grant: OpenedRecord<Grant>, now: number, depth = 0): Refusal | undefined {
    for (const rev of this.revocationsOfGrant.get(grant.id) ?? []) {
      if (this.revocationApplies(rev, grant)) return refuse('revoked', 'the grant has been revoked')
    }
    for (const rev of this.revocationsOfSubject.get(grant.body.sub) ?? []) {
      if (grant.body.iat <= rev.body.iat && this.revocationApplies(rev, grant)) {
        return refuse('subject-revoked', "the subject's access has been revoked")
      }
    }
    const authority = this.authorityProblem(grant, now, depth)
    if (authority !== undefined) return authority
    if (now < grant.body.nbf) return refuse('not-yet-valid', 'the grant is not valid yet')
    if (now >= grant.body.exp) return refuse('expired', 'the grant has expired')
    return undefined
  }

  private authorityProblem(grant: OpenedRecord<Grant>, now: number, depth: number): Refusal | undefined {
    const g = grant.body
    if (g.parent !== undefined) {
      if (depth >= MAX_CHAIN) return refuse('parent-not-active', 'the delegation chain is too long')
      const parent = this.grants.get(g.parent)
      if (parent === undefined) return refuse('parent-not-active', 'the parent grant is not known')
      if (parent.body.forward !== 'allowed')
        return refuse('issuer-not-authorized', 'the parent grant does not allow forwarding')
      const narrowing = narrowingProblem(g, parent.body)
      if (narrowing !== undefined) return refuse('issuer-not-authorized', narrowing)
      const parentProblem = this.grantProblem(parent, now, depth + 1)
      if (parentProblem !== undefined)
        return refuse('parent-not-active', `the parent grant is not active: ${parentProblem.reason}`)
      return undefined
    }
    if (grant.issuer === this.owner) return undefined
    if (this.delegationsCovering(grant.issuer, g.streams, g.iat, false).length > 0) return undefined
    return refuse('issuer-not-authorized', 'the issuer has no delegation covering this grant')
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
    let best: Refusal | undefined
    for (const g of candidates) {
      const problem = coverageProblem(g, q) ?? this.grantProblem(g, now)
      if (problem === undefined) return { allowed: true, grant: g }
      if (best === undefined || REFUSAL_RANK[problem.code] > REFUSAL_RANK[best.code]) best = problem
    }
    return best!
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

  /** Does `rec` end `grant` for a reader on `devicePeer` (used by readers to drop cached keys)? */
  revocationEnds(rec: OpenedRecord<Revocation>, grant: OpenedRecord<Grant>, devicePeer: string): boolean {
    const t = rec.body.target
    if ('grant' in t) return t.grant === grant.id && this.revocationApplies(rec, grant)
    if ('subject' in t)
      return t.subject === grant.body.sub && grant.body.iat <= rec.body.iat && this.revocationApplies(rec, grant)
    if ('device' in t) return t.device === devicePeer && rec.issuer === this.owner
    // a revoked delegation or parent ends the grant if the grant is no longer active because of it
    return this.grantProblem(grant, rec.body.iat) !== undefined
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

/** A lease ends at the earlier of the grant's end and now + leaseMax. */
export function leaseEnd(grant: Grant, now: number, leaseMaxMs: number): number {
  return Math.min(grant.exp, now + leaseMaxMs)
}
