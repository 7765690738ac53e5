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
 *   access back); a device revocation cuts that peer off for good, whatever certifies it.
 * - Evaluation is indexed by grant id and by subject: it never scans all grants.
 * Assumes: records were opened (signature and shape verified) by records.ts.
 * Refuses: records of another space, and records not signed by the space's owner.
 */
import type { OpenedRecord } from '../../crypto/signed.ts'
import type { DeviceCert, Grant, Revocation, SpaceGenesis, StreamRecord } from './records.ts'

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
  | 'stream-not-covered'
  | 'form-not-covered'

export interface AccessQuery {
  subject: string
  device: OpenedRecord<DeviceCert>
  stream: string
  form: string
  /** the grant the requester names, if any */
  grantId?: string
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
  'not-yet-valid': 6,
  expired: 7,
  'device-invalid': 8,
  'subject-revoked': 9,
  'device-revoked': 10,
  revoked: 11,
}

export class PolicyState {
  readonly spaceId: string
  readonly genesis: OpenedRecord<SpaceGenesis>
  readonly streams = new Map<string, OpenedRecord<StreamRecord>>()
  readonly grants = new Map<string, OpenedRecord<Grant>>()
  readonly revocations = new Map<string, OpenedRecord<Revocation>>()
  private readonly grantsBySubject = new Map<string, Set<string>>()
  private readonly revocationsOfGrant = new Map<string, string>()
  /** subject did -> latest iat among revocations of that subject */
  private readonly subjectRevokedAt = new Map<string, number>()
  /** device peer ids that have been revoked */
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

  private authorityProblem(rec: OpenedRecord<{ iss: string; space: string }>): string | undefined {
    if (rec.body.space !== this.spaceId) return 'record belongs to another space'
    if (rec.issuer !== this.owner) return 'issuer is not the owner of the space'
    return undefined
  }

  addStream(rec: OpenedRecord<StreamRecord>): AddResult {
    const problem = this.authorityProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    const existing = this.streams.get(rec.body.name)
    if (existing !== undefined) {
      // two definitions of one name converge on the smaller id
      if (existing.id <= rec.id) return { added: false, duplicate: true }
    }
    this.streams.set(rec.body.name, rec)
    return { added: true }
  }

  addGrant(rec: OpenedRecord<Grant>): AddResult {
    const problem = this.authorityProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    if (this.grants.has(rec.id)) return { added: false, duplicate: true }
    this.grants.set(rec.id, rec)
    const set = this.grantsBySubject.get(rec.body.sub) ?? new Set<string>()
    set.add(rec.id)
    this.grantsBySubject.set(rec.body.sub, set)
    return { added: true }
  }

  addRevocation(rec: OpenedRecord<Revocation>): AddResult {
    const problem = this.authorityProblem(rec)
    if (problem !== undefined) return { added: false, duplicate: false, reason: problem }
    if (this.revocations.has(rec.id)) return { added: false, duplicate: true }
    this.revocations.set(rec.id, rec)
    const t = rec.body.target
    if ('grant' in t) {
      const prev = this.revocationsOfGrant.get(t.grant)
      if (prev === undefined || rec.id < prev) this.revocationsOfGrant.set(t.grant, rec.id)
    } else if ('subject' in t) {
      this.subjectRevokedAt.set(t.subject, Math.max(this.subjectRevokedAt.get(t.subject) ?? -1, rec.body.iat))
    } else {
      this.revokedDevices.add(t.device)
    }
    return { added: true }
  }

  grantsOf(subject: string): OpenedRecord<Grant>[] {
    const ids = this.grantsBySubject.get(subject)
    if (ids === undefined) return []
    return [...ids].map(id => this.grants.get(id)!).sort((a, b) => (a.id < b.id ? -1 : 1))
  }

  /** Why a grant is not usable now, ignoring the request's stream and form; undefined if it is active. */
  grantProblem(grant: OpenedRecord<Grant>, now: number): Refusal | undefined {
    if (this.revocationsOfGrant.has(grant.id)) return refuse('revoked', 'the grant has been revoked')
    const subjectRevokedAt = this.subjectRevokedAt.get(grant.body.sub)
    if (subjectRevokedAt !== undefined && grant.body.iat <= subjectRevokedAt) {
      return refuse('subject-revoked', "the subject's access has been revoked")
    }
    if (now < grant.body.nbf) return refuse('not-yet-valid', 'the grant is not valid yet')
    if (now >= grant.body.exp) return refuse('expired', 'the grant has expired')
    return undefined
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
      const problem = this.grantProblem(g, now) ?? coverageProblem(g, q.stream, q.form)
      if (problem === undefined) return { allowed: true, grant: g }
      if (best === undefined || REFUSAL_RANK[problem.code] > REFUSAL_RANK[best.code]) best = problem
    }
    return best!
  }

  /** Is anything in `rec` a revocation that ends `grant` (used by readers to drop cached keys)? */
  revocationEnds(rec: OpenedRecord<Revocation>, grant: OpenedRecord<Grant>, devicePeer: string): boolean {
    const t = rec.body.target
    if ('grant' in t) return t.grant === grant.id
    if ('subject' in t) return t.subject === grant.body.sub && grant.body.iat <= rec.body.iat
    return t.device === devicePeer
  }
}

function coverageProblem(g: OpenedRecord<Grant>, stream: string, form: string): Refusal | undefined {
  if (!g.body.streams.includes('*') && !g.body.streams.includes(stream)) {
    return refuse('stream-not-covered', `the grant does not cover stream ${stream}`)
  }
  if (!g.body.forms.includes(form)) return refuse('form-not-covered', `the grant does not cover form ${form}`)
  return undefined
}

function refuse(code: RefusalCode, reason: string): Refusal {
  return { allowed: false, code, reason }
}

/** A lease ends at the earlier of the grant's end and now + leaseMax. */
export function leaseEnd(grant: Grant, now: number, leaseMaxMs: number): number {
  return Math.min(grant.exp, now + leaseMaxMs)
}
