/**
 * The policy model's rules, one test (or table) per rule, on PolicyState and the records
 * with `now` passed in: data windows, stream prefixes, forms, devices, release limits,
 * admins by delegation, forwarding by child grants, revocation targets, "revocation wins",
 * access requests with their decisions, and the grant states the listing shows.
 * Each case names the outcome the rule gives; breaking the rule changes that outcome.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import type { AppliedRecord } from '../../protocols/policy/document.ts'
import * as records from '../../protocols/policy/records.ts'
import {
  type AccessRequest,
  createAccessRequest,
  createDecision,
  type OpenedDecision,
  openAccessRequest,
  openDecision,
} from '../../protocols/policy/requests.ts'
import {
  type AccessDecision,
  type AccessQuery,
  narrowingProblem,
  type PolicyState,
  patternsWithin,
} from '../../protocols/policy/state.ts'
import {
  EXP,
  flipSignatureBit,
  HOUR,
  INSIDE,
  NBF,
  newDevice,
  newGrant,
  newPrincipal,
  newSpace,
  type Principal,
  T0,
  Timeline,
} from '../protocols/fixtures.ts'

const YEAR = 365 * 24 * HOUR
/** when most grants are issued */
const ISSUED = T0 + 5 * HOUR
/** the admin's delegation */
const DEL_NBF = T0 + 2 * HOUR
const DEL_EXP = T0 + 200 * HOUR

const { owner, genesis, space } = newSpace('facility')
const admin = newPrincipal()
const stranger = newPrincipal()
const reader = newPrincipal()
const child = newPrincipal()
const grandchild = newPrincipal()

const xpk = () => generateSealingKeyPair().publicKey
const STREAMS = ['temp', 'hum', 'line-1.a', 'line-1.b', 'line-1.a.x', 'line-10', 'line-2.a']
const streamRecords = STREAMS.map((name, i) => records.createStream(owner, space, name, HOUR, T0 + i))

interface Who {
  p: Principal
  peer: string
  device: OpenedRecord<records.DeviceCert>
}
const withDevice = (p: Principal): Who => ({ p, ...newDevice(p) })
const R = withDevice(reader)
const C = withDevice(child)
const E = withDevice(grandchild)
const S = withDevice(stranger)
/** a second device of the reader */
const { peer: R2peer, device: R2device } = newDevice(reader)

function grant(
  by: Principal,
  to: Principal,
  over: Partial<records.GrantFields> = {},
  iat = ISSUED,
): OpenedRecord<records.Grant> {
  return newGrant(by, { space, sub: to.did, ...over }, iat)
}
function revoke(
  by: Principal,
  target: records.RevocationTarget,
  iat = T0 + 6 * HOUR,
): OpenedRecord<records.Revocation> {
  return records.createRevocation(by, space, target, iat)
}
function delegate(
  streams: string[],
  over: Partial<{ nbf: number; exp: number }> = {},
  to: Principal = admin,
): OpenedRecord<records.Delegation> {
  return records.createDelegation(
    owner,
    { space, admin: to.did, streams, nbf: DEL_NBF, exp: DEL_EXP, ...over },
    T0 + HOUR,
  )
}

const g = (record: OpenedRecord<records.Grant>): AppliedRecord => ({ kind: 'grant', record })
const r = (record: OpenedRecord<records.Revocation>): AppliedRecord => ({ kind: 'revocation', record })
const d = (record: OpenedRecord<records.Delegation>): AppliedRecord => ({ kind: 'delegation', record })
const dec = (record: OpenedDecision): AppliedRecord => ({ kind: 'decision', record })

/** A timeline with the streams, then `history`, each written knowing the ones before it in the list. */
function timelineWith(history: AppliedRecord[]): Timeline {
  const t = new Timeline(genesis)
  for (const s of streamRecords) assert.deepEqual(t.add({ kind: 'stream', record: s }), { added: true })
  for (const x of history) assert.deepEqual(t.add(x), { added: true }, `${x.kind} ${x.record.id} is added`)
  return t
}

function stateWith(history: AppliedRecord[]): PolicyState {
  return timelineWith(history).state
}

function ask(who: Who, over: Partial<AccessQuery> = {}): AccessQuery {
  return { subject: who.p.did, device: who.device, stream: 'temp', form: 'raw', ...over }
}

/** The part of a decision every test compares: allowed with which grant, or the refusal code. */
function summary(x: AccessDecision): string {
  return x.allowed ? `allowed:${x.grant.id}` : `refused:${x.code}`
}

function answer(state: PolicyState, q: AccessQuery, now = INSIDE): string {
  return summary(state.evaluateAccess(q, now))
}

const allowedBy = (rec: OpenedRecord<records.Grant>) => `allowed:${rec.id}`

describe('data window', () => {
  const windowed = grant(owner, reader, { dataFrom: T0 - 24 * HOUR, dataUntil: T0 - 12 * HOUR })

  it('is carried in the signed grant and survives decoding', () => {
    const opened = records.openGrant(windowed.bytes)
    assert.equal(opened.body.dataFrom, T0 - 24 * HOUR)
    assert.equal(opened.body.dataUntil, T0 - 12 * HOUR)
    assert.equal(opened.id, windowed.id)
  })

  it('is exposed on the permit, for the key holder to enforce at release', () => {
    const decision = stateWith([g(windowed)]).evaluateAccess(ask(R), INSIDE)
    assert.equal(decision.allowed, true, 'a data window in the past does not refuse access to the grant')
    assert.ok(decision.allowed)
    assert.equal(decision.grant.body.dataFrom, T0 - 24 * HOUR)
    assert.equal(decision.grant.body.dataUntil, T0 - 12 * HOUR)
  })

  it('an open-ended window carries only the bound it names', () => {
    const from = grant(owner, reader, { dataFrom: T0 })
    const decision = stateWith([g(from)]).evaluateAccess(ask(R), INSIDE)
    assert.ok(decision.allowed)
    assert.equal(decision.grant.body.dataFrom, T0)
    assert.equal('dataUntil' in decision.grant.body, false)
  })

  it('a window that ends before it starts is refused when the grant is made', () => {
    assert.throws(() => grant(owner, reader, { dataFrom: T0, dataUntil: T0 }), { name: 'InvalidMessageError' })
    assert.throws(() => grant(owner, reader, { dataFrom: T0, dataUntil: T0 - 1 }), { name: 'InvalidMessageError' })
  })
})

describe('stream names, prefixes and *', () => {
  const cases: { patterns: string[]; covers: string[] }[] = [
    { patterns: ['line-1.*'], covers: ['line-1.a', 'line-1.b', 'line-1.a.x'] },
    { patterns: ['line-1.a'], covers: ['line-1.a'] },
    { patterns: ['line-1.a*'], covers: ['line-1.a', 'line-1.a.x'] },
    { patterns: ['*'], covers: STREAMS },
    { patterns: ['temp', 'line-2.*'], covers: ['temp', 'line-2.a'] },
  ]
  for (const c of cases) {
    it(`a grant for ${c.patterns.join(', ')} covers ${c.covers.join(', ')} and no other stream`, () => {
      const rec = grant(owner, reader, { streams: c.patterns })
      const state = stateWith([g(rec)])
      for (const stream of STREAMS) {
        const expected = c.covers.includes(stream) ? allowedBy(rec) : 'refused:stream-not-covered'
        assert.equal(answer(state, ask(R, { stream })), expected, stream)
      }
    })
  }

  it('patternsWithin: a name or narrower prefix is within a prefix; a wider one, or *, is not', () => {
    const table: [string[], string[], boolean][] = [
      [['line-1.a'], ['line-1.*'], true],
      [['line-1.a.*'], ['line-1.*'], true],
      [['line-1.*'], ['line-1.*'], true],
      [['line-1.*'], ['line-1.a'], false],
      [['line-1*'], ['line-1.*'], false],
      [['line-10'], ['line-1.*'], false],
      [['*'], ['line-1.*'], false],
      [['line-1.*', 'hum'], ['line-1.*'], false],
      [['line-1.*', 'hum'], ['line-1.*', 'hum'], true],
      [['anything'], ['*'], true],
      [['*'], ['*'], true],
      [['temp'], ['temp'], true],
      [['temp*'], ['temp'], false],
    ]
    for (const [childPatterns, parentPatterns, within] of table) {
      assert.equal(
        patternsWithin(childPatterns, parentPatterns),
        within,
        `${childPatterns.join(',')} within ${parentPatterns.join(',')}`,
      )
    }
  })
})

describe('which refusal a reader is given when several grants were tried', () => {
  it("a new grant that expired is named, not an older one's revocation", () => {
    const old = grant(owner, reader, { nbf: T0, exp: EXP + YEAR })
    const renewed = grant(owner, reader, { nbf: T0, exp: NBF })
    const state = stateWith([g(old), r(revoke(owner, { grant: old.id })), g(renewed)])
    const d = state.evaluateAccess(ask(R), INSIDE)
    assert.ok(!d.allowed)
    assert.equal(d.code, 'expired')
  })

  it('grants written concurrently: the more telling code', () => {
    const a = grant(owner, reader, { nbf: T0, exp: EXP + YEAR })
    const b = grant(owner, reader, { nbf: T0, exp: NBF })
    const t = timelineWith([])
    t.add(g(a), [])
    t.add(g(b), [])
    t.add(r(revoke(owner, { grant: a.id })), [a])
    assert.equal(answer(t.state, ask(R)), 'refused:revoked')
  })
})

describe('objects (files and messages): covered only by a grant that names them', () => {
  const file = 'obj-0123456789abcdef'
  const other = 'obj-fedcba9876543210'
  const objects = [file, other].map((name, i) => records.createStream(owner, space, name, YEAR, T0 + 100 + i))
  function withObjects(history: AppliedRecord[]): PolicyState {
    return stateWith([...objects.map(record => ({ kind: 'stream', record }) as AppliedRecord), ...history])
  }

  for (const patterns of [['*'], ['obj-*'], ['obj-0*'], ['temp', '*']]) {
    it(`a grant for ${patterns.join(', ')} covers no object`, () => {
      const rec = grant(owner, reader, { streams: patterns })
      const state = withObjects([g(rec)])
      assert.equal(answer(state, ask(R, { stream: file })), 'refused:stream-not-covered')
      assert.equal(answer(state, ask(R, { stream: other })), 'refused:stream-not-covered')
      if (patterns.includes('*')) assert.equal(answer(state, ask(R, { stream: 'temp' })), allowedBy(rec))
    })
  }

  it('a grant naming one object covers that object and no other', () => {
    const rec = grant(owner, reader, { streams: [file] })
    const state = withObjects([g(rec)])
    assert.equal(answer(state, ask(R, { stream: file })), allowedBy(rec))
    assert.equal(answer(state, ask(R, { stream: other })), 'refused:stream-not-covered')
  })

  it("an admin of the whole space cannot grant someone else's object; a delegation naming it can", () => {
    const everything = delegate(['*'])
    const byAdmin = grant(admin, reader, { streams: [file] })
    assert.equal(
      answer(withObjects([d(everything), g(byAdmin)]), ask(R, { stream: file })),
      'refused:issuer-not-authorized',
    )
    assert.equal(answer(withObjects([d(delegate([file])), g(byAdmin)]), ask(R, { stream: file })), allowedBy(byAdmin))
  })

  it('a forwardable grant of every stream does not let its holder pass on an object', () => {
    const vendor = grant(owner, child, { streams: ['*'], forward: 'allowed' })
    const onward = grant(child, reader, { streams: [file], parent: vendor.id })
    assert.equal(answer(withObjects([g(vendor), g(onward)]), ask(R, { stream: file })), 'refused:issuer-not-authorized')
  })

  it('patternsWithin: an object is within a list only by its own name', () => {
    assert.equal(patternsWithin([file], ['*']), false)
    assert.equal(patternsWithin([file], ['obj-*']), false)
    assert.equal(patternsWithin([file], [file]), true)
    assert.equal(patternsWithin([file, 'temp'], [file, '*']), true)
  })
})

describe('forms', () => {
  it("a grant for 'aggregate:15m' permits that form only: not raw, hashed or another window", () => {
    const rec = grant(owner, reader, { forms: ['aggregate:15m'] })
    const state = stateWith([g(rec)])
    assert.equal(answer(state, ask(R, { form: 'aggregate:15m' })), allowedBy(rec))
    for (const form of ['raw', 'hashed', 'aggregate:1h', 'aggregate:15s']) {
      assert.equal(answer(state, ask(R, { form })), 'refused:form-not-covered', form)
    }
  })
})

describe('devices condition ("from where")', () => {
  const onlyOther = grant(owner, reader, { devices: [R2peer] })

  it('a request from a device the grant does not list is refused with device-not-allowed', () => {
    assert.equal(answer(stateWith([g(onlyOther)]), ask(R)), 'refused:device-not-allowed')
  })

  it('the same principal on a listed device is allowed', () => {
    assert.equal(answer(stateWith([g(onlyOther)]), ask(R, { device: R2device })), allowedBy(onlyOther))
  })

  it('a grant without the condition allows any of the subject’s certified devices', () => {
    const any = grant(owner, reader)
    const state = stateWith([g(any)])
    assert.equal(answer(state, ask(R)), allowedBy(any))
    assert.equal(answer(state, ask(R, { device: R2device })), allowedBy(any))
  })
})

describe('maxReleases', () => {
  const limited = grant(owner, reader, { maxReleases: 3 })
  const cases: { count: number | undefined; expect: string }[] = [
    { count: undefined, expect: allowedBy(limited) },
    { count: 0, expect: allowedBy(limited) },
    { count: 2, expect: allowedBy(limited) },
    { count: 3, expect: 'refused:max-releases' },
    { count: 7, expect: 'refused:max-releases' },
  ]
  for (const c of cases) {
    it(`maxReleases 3 with ${c.count ?? 'no'} releases so far -> ${c.expect.split(':')[0]}`, () => {
      const q = ask(R, c.count === undefined ? {} : { releaseCount: id => (id === limited.id ? c.count! : 0) })
      assert.equal(answer(stateWith([g(limited)]), q), c.expect)
    })
  }

  it('counts are per grant: another grant of the subject without a limit still permits', () => {
    const unlimited = grant(owner, reader, {}, ISSUED + 1)
    const state = stateWith([g(limited), g(unlimited)])
    assert.equal(answer(state, ask(R, { releaseCount: () => 99 })), allowedBy(unlimited))
    assert.equal(answer(state, ask(R, { grantId: limited.id, releaseCount: () => 99 })), 'refused:max-releases')
  })

  it('maxReleases must be at least 1', () => {
    assert.throws(() => grant(owner, reader, { maxReleases: 0 }), { name: 'InvalidMessageError' })
  })
})

describe('admins: delegated authority', () => {
  const delegation = delegate(['temp', 'line-1.*'])
  const byAdmin = grant(admin, reader)
  const byAdminPrefix = grant(admin, reader, { streams: ['line-1.a'] })
  const byAdminHum = grant(admin, reader, { streams: ['hum'] })
  const byAdminStar = grant(admin, reader, { streams: ['*'] })
  const byOwnerTemp = grant(owner, reader, {}, ISSUED + 1)
  const byOwnerHum = grant(owner, reader, { streams: ['hum'] }, ISSUED + 1)

  it("the admin's grant inside its delegation is honoured, on a name and under a prefix", () => {
    const state = stateWith([d(delegation), g(byAdmin), g(byAdminPrefix)])
    assert.equal(answer(state, ask(R, { grantId: byAdmin.id })), allowedBy(byAdmin))
    assert.equal(answer(state, ask(R, { stream: 'line-1.a' })), allowedBy(byAdminPrefix))
    assert.equal(state.grantStatus(byAdmin, INSIDE).status, 'active')
  })

  it("the admin's grant outside its delegation is not honoured (issuer-not-authorized)", () => {
    const state = stateWith([d(delegation), g(byAdminHum), g(byAdminStar)])
    assert.equal(answer(state, ask(R, { stream: 'hum' })), 'refused:issuer-not-authorized')
    assert.equal(answer(state, ask(R, { grantId: byAdminStar.id })), 'refused:issuer-not-authorized')
  })

  it('without any delegation the same grant is not honoured', () => {
    assert.equal(answer(stateWith([g(byAdmin)]), ask(R)), 'refused:issuer-not-authorized')
  })

  it('a delegation issued by someone other than the owner is refused, and gives no authority', () => {
    const forged = records.createDelegation(
      stranger,
      { space, admin: admin.did, streams: ['*'], nbf: DEL_NBF, exp: DEL_EXP },
      T0,
    )
    const state = stateWith([g(byAdmin)])
    const res = state.addDelegation(forged)
    assert.ok(!res.added && !res.duplicate)
    assert.equal(answer(state, ask(R)), 'refused:issuer-not-authorized')
  })

  // the grant itself runs from T0 to long after the delegation: only the delegation's window, now, decides
  const timing: { name: string; now: number; honoured: boolean }[] = [
    { name: 'one ms before the delegation starts', now: DEL_NBF - 1, honoured: false },
    { name: 'at the very ms the delegation starts', now: DEL_NBF, honoured: true },
    { name: 'one ms before the delegation ends', now: DEL_EXP - 1, honoured: true },
    { name: 'at the very ms the delegation ends', now: DEL_EXP, honoured: false },
    { name: 'long after the delegation ended', now: DEL_EXP + 10 * HOUR, honoured: false },
  ]
  for (const c of timing) {
    for (const iat of [DEL_NBF + HOUR, DEL_EXP - HOUR, T0 - YEAR]) {
      it(`an admin grant (claimed issue ${iat - DEL_NBF} ms after the delegation's start) is ${c.honoured ? '' : 'not '}honoured ${c.name}`, () => {
        const rec = grant(admin, reader, { nbf: T0, exp: DEL_EXP + 100 * HOUR }, iat)
        const state = stateWith([d(delegation), g(rec)])
        assert.equal(answer(state, ask(R), c.now), c.honoured ? allowedBy(rec) : 'refused:issuer-not-authorized')
      })
    }
  }

  it("an admin grant never outlives its delegation: its permit and lease end with the delegation's", () => {
    const rec = grant(admin, reader, { nbf: T0, exp: DEL_EXP + 10 * YEAR })
    const state = stateWith([d(delegation), g(rec)])
    const permit = state.evaluateAccess(ask(R), DEL_EXP - HOUR)
    assert.ok(permit.allowed)
    assert.equal(permit.until, DEL_EXP)
    assert.equal(state.activeUntil(rec, DEL_EXP - HOUR), DEL_EXP)
    assert.equal(state.grantStatus(rec, DEL_EXP).status, 'not-honoured')
  })

  it('an admin grant written before the admin knew of its delegation is not honoured under it', () => {
    const t = timelineWith([])
    t.add(g(byAdmin), [])
    t.add(d(delegation), [])
    assert.equal(answer(t.state, ask(R)), 'refused:issuer-not-authorized')
  })

  it("the owner revoking the delegation ends the admin's grants; the same grant re-issued by the owner stays active", () => {
    const reissued = grant(owner, reader, { streams: byAdmin.body.streams }, T0 + 7 * HOUR)
    const endDelegation = revoke(owner, { delegation: delegation.id })
    const state = stateWith([d(delegation), g(byAdmin), g(reissued), r(endDelegation)])
    assert.equal(answer(state, ask(R, { grantId: byAdmin.id })), 'refused:issuer-not-authorized')
    assert.equal(state.grantStatus(byAdmin, INSIDE).status, 'not-honoured')
    assert.equal(answer(state, ask(R, { grantId: reissued.id })), allowedBy(reissued))
    assert.equal(answer(state, ask(R)), allowedBy(reissued))
  })

  it('a delegation revoked by the admin itself or by a stranger stays in force', () => {
    for (const by of [admin, stranger]) {
      const state = stateWith([d(delegation), g(byAdmin), r(revoke(by, { delegation: delegation.id }))])
      assert.equal(answer(state, ask(R)), allowedBy(byAdmin), `revoked by ${by === admin ? 'admin' : 'stranger'}`)
    }
  })

  it("a second, unrevoked delegation keeps the admin's authority where it covers", () => {
    const second = delegate(['temp'])
    const state = stateWith([d(delegation), d(second), g(byAdmin), r(revoke(owner, { delegation: delegation.id }))])
    assert.equal(answer(state, ask(R)), allowedBy(byAdmin))
  })

  it("the admin's revocation applies to a grant within its scope, not to one outside it", () => {
    const state = stateWith([
      d(delegation),
      g(byOwnerTemp),
      g(byOwnerHum),
      r(revoke(admin, { grant: byOwnerTemp.id })),
      r(revoke(admin, { grant: byOwnerHum.id })),
    ])
    assert.equal(answer(state, ask(R)), 'refused:revoked')
    assert.equal(answer(state, ask(R, { stream: 'hum' })), allowedBy(byOwnerHum))
  })

  it("the admin's subject revocation ends the subject's grants within its scope only", () => {
    const state = stateWith([d(delegation), g(byOwnerTemp), g(byOwnerHum), r(revoke(admin, { subject: reader.did }))])
    assert.equal(answer(state, ask(R)), 'refused:subject-revoked')
    assert.equal(answer(state, ask(R, { stream: 'hum' })), allowedBy(byOwnerHum))
  })

  it("the admin's device revocation does not apply: only the owner cuts off a device", () => {
    const state = stateWith([d(delegation), g(byOwnerTemp), r(revoke(admin, { device: R.peer }))])
    assert.equal(answer(state, ask(R)), allowedBy(byOwnerTemp))
  })

  it("the admin's revocation made before its delegation started does not apply", () => {
    const state = stateWith([d(delegation), g(byOwnerTemp), r(revoke(admin, { grant: byOwnerTemp.id }, DEL_NBF - 1))])
    assert.equal(answer(state, ask(R)), allowedBy(byOwnerTemp))
  })

  it("the admin's revocation stays in force after its delegation is revoked (revocations are permanent)", () => {
    const byAdminRevocation = revoke(admin, { grant: byOwnerTemp.id }, T0 + 6 * HOUR)
    const endDelegation = revoke(owner, { delegation: delegation.id }, T0 + 8 * HOUR)
    // one history (the owner fires the admin knowing its revocation), added in two orders
    const knew = new Map<string, OpenedRecord<unknown>[]>([
      [delegation.id, []],
      [byOwnerTemp.id, [delegation]],
      [byAdminRevocation.id, [delegation, byOwnerTemp]],
      [endDelegation.id, [delegation, byOwnerTemp, byAdminRevocation]],
    ])
    for (const order of [
      [d(delegation), g(byOwnerTemp), r(byAdminRevocation), r(endDelegation)],
      [r(endDelegation), g(byOwnerTemp), r(byAdminRevocation), d(delegation)],
    ]) {
      const t = timelineWith([])
      for (const x of order) t.add(x, knew.get(x.record.id))
      assert.equal(answer(t.state, ask(R)), 'refused:revoked')
      assert.equal(t.state.grantStatus(byOwnerTemp, INSIDE).status, 'revoked')
    }
  })

  it('a fired admin has no power left: what it writes after the owner revoked its delegation counts for nothing, whatever date it claims', () => {
    const endDelegation = revoke(owner, { delegation: delegation.id }, T0 + 8 * HOUR)
    // backdated inside the old window, and written after (or without knowing of) the firing
    const backdated = revoke(admin, { grant: byOwnerTemp.id }, DEL_NBF + 1)
    const subject = revoke(admin, { subject: reader.did }, DEL_NBF + 1)
    const request = createAccessRequest(
      reader,
      { space, sub: reader.did, streams: ['temp'], forms: ['raw'], durationMs: HOUR, reason: 'x' },
      T0 + 7 * HOUR,
    )
    const deny = createDecision(admin, request, { approved: false, reason: 'no' }, DEL_NBF + 1)
    for (const knowsFiring of [true, false]) {
      const t = timelineWith([d(delegation), g(byOwnerTemp)])
      t.add(r(endDelegation))
      const seen = knowsFiring ? [delegation, byOwnerTemp, endDelegation] : [delegation, byOwnerTemp]
      t.add(r(backdated), seen)
      t.add(r(subject), seen)
      t.add(dec(deny), seen)
      assert.equal(answer(t.state, ask(R)), allowedBy(byOwnerTemp), `knows of the firing: ${knowsFiring}`)
      assert.equal(t.state.grantStatus(byOwnerTemp, INSIDE).status, 'active')
      assert.equal(t.state.decisionOn(request.id), undefined, 'the fired admin decides nothing')
    }
  })

  it("an admin's revocation never applies to a grant written after it: the owner's later grant stands", () => {
    const bySubject = revoke(admin, { subject: reader.did })
    const later = grant(owner, reader, {}, T0 + 7 * HOUR)
    const state = stateWith([d(delegation), g(byOwnerTemp), r(bySubject), g(later)])
    assert.equal(answer(state, ask(R, { grantId: byOwnerTemp.id })), 'refused:subject-revoked')
    assert.equal(answer(state, ask(R, { grantId: later.id })), allowedBy(later))
  })

  describe('mayWrite', () => {
    const state = stateWith([d(delegation)])
    const kinds = (author: Principal) => ({
      stream: state.mayWrite(author.did, {
        kind: 'stream',
        body: records.createStream(author, space, 'wind', HOUR, T0).body as never,
      }),
      delegation: state.mayWrite(author.did, {
        kind: 'delegation',
        body: { admin: author.did, streams: ['*'] },
      }),
      grant: state.mayWrite(author.did, { kind: 'grant', body: grant(author, reader).body as never }),
      revocation: state.mayWrite(author.did, {
        kind: 'revocation',
        body: revoke(author, { subject: reader.did }).body as never,
      }),
      decision: state.mayWrite(author.did, { kind: 'decision', body: { approved: false } }),
    })
    const allowed = (problems: Record<string, string | undefined>) =>
      Object.entries(problems)
        .filter(([, p]) => p === undefined)
        .map(([k]) => k)
        .sort()

    it('the owner may write every kind of record', () => {
      assert.deepEqual(allowed(kinds(owner)), ['decision', 'delegation', 'grant', 'revocation', 'stream'])
    })

    it('an admin may write grants, revocations and decisions, not streams or delegations', () => {
      const problems = kinds(admin)
      assert.deepEqual(allowed(problems), ['decision', 'grant', 'revocation'])
      assert.match(problems.stream!, /only the owner/)
      assert.match(problems.delegation!, /only the owner/)
    })

    it('a stranger may write nothing', () => {
      assert.deepEqual(allowed(kinds(stranger)), [])
    })

    it('the subject of a forward:allowed grant may write a child grant of it, and only of it', () => {
      const parents = {
        allowed: grant(owner, reader, { forward: 'allowed' }),
        askOwner: grant(owner, reader, { forward: 'ask-owner' }),
        never: grant(owner, reader, { forward: 'never' }),
        unset: grant(owner, reader),
      }
      const s = stateWith(Object.values(parents).map(g))
      const childOf = (parent: OpenedRecord<records.Grant>, by: Principal) =>
        s.mayWrite(by.did, { kind: 'grant', body: grant(by, child, { parent: parent.id }).body as never })
      assert.equal(childOf(parents.allowed, reader), undefined)
      assert.notEqual(childOf(parents.allowed, stranger), undefined, 'not the subject of the parent')
      assert.notEqual(childOf(parents.askOwner, reader), undefined)
      assert.notEqual(childOf(parents.never, reader), undefined)
      assert.notEqual(childOf(parents.unset, reader), undefined)
      const rootGrant = s.mayWrite(reader.did, { kind: 'grant', body: grant(reader, child).body as never })
      assert.notEqual(rootGrant, undefined, 'a grant without a parent')
      const unknownParent = s.mayWrite(reader.did, {
        kind: 'grant',
        body: grant(reader, child, { parent: 'e'.repeat(64) }).body as never,
      })
      assert.notEqual(unknownParent, undefined, 'a parent not known yet')
    })

    it('the issuer of a grant may revoke that grant, and nothing else', () => {
      const parent = grant(owner, reader, { forward: 'allowed' })
      const kid = grant(reader, child, { parent: parent.id })
      const s = stateWith([g(parent), g(kid)])
      const revokes = (target: records.RevocationTarget) =>
        s.mayWrite(reader.did, { kind: 'revocation', body: revoke(reader, target).body as never })
      assert.equal(revokes({ grant: kid.id }), undefined)
      assert.notEqual(revokes({ grant: parent.id }), undefined)
      assert.notEqual(revokes({ subject: child.did }), undefined)
    })
  })
})

describe('forwarding: child grants that only narrow their parent', () => {
  const DF = T0 - 100 * HOUR
  const DU = T0 - 10 * HOUR
  const parentFields: Partial<records.GrantFields> = {
    streams: ['line-1.*', 'temp'],
    forms: ['raw', 'hashed'],
    dataFrom: DF,
    dataUntil: DU,
    download: false,
    forward: 'allowed',
    devices: [R.peer, C.peer],
    maxReleases: 10,
  }
  const parent = grant(owner, reader, parentFields)
  const narrowFields: Partial<records.GrantFields> = {
    streams: ['line-1.a'],
    forms: ['raw'],
    nbf: NBF + HOUR,
    exp: EXP - HOUR,
    dataFrom: DF + 1,
    dataUntil: DU - 1,
    download: false,
    forward: 'never',
    devices: [C.peer],
    maxReleases: 5,
    parent: parent.id,
  }
  const narrow = grant(reader, child, narrowFields)
  const askChild = (rec: OpenedRecord<records.Grant>) => ask(C, { stream: 'line-1.a', grantId: rec.id })
  const AT = NBF + 2 * HOUR

  it('a child issued by the parent’s subject, narrowing every field, is honoured', () => {
    const state = stateWith([g(parent), g(narrow)])
    assert.equal(answer(state, askChild(narrow), AT), allowedBy(narrow))
    assert.equal(answer(state, ask(C, { stream: 'line-1.a' }), AT), allowedBy(narrow))
    assert.equal(state.grantStatus(narrow, AT).status, 'active')
  })

  it('a child with the very same scope as its parent is honoured (narrowing is not strict)', () => {
    const same = grant(reader, child, { ...parentFields, parent: parent.id })
    assert.equal(answer(stateWith([g(parent), g(same)]), askChild(same), AT), allowedBy(same))
  })

  const widenings: { name: string; over: Partial<records.GrantFields>; reason: RegExp }[] = [
    { name: 'an extra stream', over: { streams: ['line-1.a', 'hum'] }, reason: /streams/ },
    { name: 'every stream', over: { streams: ['*'] }, reason: /streams/ },
    { name: 'a wider prefix', over: { streams: ['line-1*'] }, reason: /streams/ },
    { name: 'an extra form', over: { forms: ['raw', 'aggregate:1h'] }, reason: /forms/ },
    { name: 'a later end', over: { exp: EXP + 1 }, reason: /validity/ },
    { name: 'an earlier start', over: { nbf: NBF - 1 }, reason: /validity/ },
    { name: 'a data window starting earlier', over: { dataFrom: DF - 1 }, reason: /data window starts/ },
    { name: 'a data window with no start', over: { dataFrom: undefined }, reason: /data window starts/ },
    { name: 'a data window ending later', over: { dataUntil: DU + 1 }, reason: /data window ends/ },
    { name: 'a data window with no end', over: { dataUntil: undefined }, reason: /data window ends/ },
    { name: 'download where the parent forbids it', over: { download: true }, reason: /download/ },
    { name: 'download by default where the parent forbids it', over: { download: undefined }, reason: /download/ },
    { name: 'a device the parent does not list', over: { devices: [C.peer, S.peer] }, reason: /devices/ },
    { name: 'no device condition under a parent that has one', over: { devices: undefined }, reason: /devices/ },
    { name: 'more key releases', over: { maxReleases: 11 }, reason: /key releases/ },
    { name: 'no release limit under a parent that has one', over: { maxReleases: undefined }, reason: /key releases/ },
  ]
  for (const w of widenings) {
    it(`a child with ${w.name} is refused with issuer-not-authorized`, () => {
      const wide = grant(reader, child, { ...narrowFields, ...w.over })
      const state = stateWith([g(parent), g(wide)])
      const decision = state.evaluateAccess(askChild(wide), AT)
      assert.equal(summary(decision), 'refused:issuer-not-authorized')
      assert.ok(!decision.allowed && w.reason.test(decision.reason), !decision.allowed ? decision.reason : '')
      assert.equal(state.grantStatus(wide, AT).status, 'not-honoured')
    })
  }

  it('more forwarding than the parent allows is a widening (narrowingProblem)', () => {
    const askOwnerParent = grant(owner, reader, { forward: 'ask-owner' }).body
    for (const forward of ['allowed'] as const) {
      const kid = grant(reader, child, { forward }).body
      assert.match(narrowingProblem(kid, askOwnerParent) ?? '', /forwarding/)
    }
    for (const forward of ['never', 'ask-owner', undefined] as const) {
      const kid = grant(reader, child, { forward }).body
      assert.equal(narrowingProblem(kid, askOwnerParent), undefined, `forward ${forward}`)
    }
    const neverParent = grant(owner, reader, { forward: 'never' }).body
    assert.match(narrowingProblem(grant(reader, child, { forward: 'ask-owner' }).body, neverParent) ?? '', /forwarding/)
  })

  it('a child not issued by the subject of its parent is refused', () => {
    for (const by of [stranger, owner, child]) {
      const rec = grant(by, child, narrowFields)
      assert.equal(answer(stateWith([g(parent), g(rec)]), askChild(rec), AT), 'refused:issuer-not-authorized')
    }
  })

  for (const forward of ['never', 'ask-owner', undefined] as const) {
    it(`a child of a parent with forward ${forward ?? 'unset'} is not honoured`, () => {
      const p = grant(owner, reader, { ...parentFields, forward })
      const kid = grant(reader, child, { ...narrowFields, parent: p.id })
      const state = stateWith([g(p), g(kid)])
      const decision = state.evaluateAccess(askChild(kid), AT)
      assert.equal(summary(decision), 'refused:issuer-not-authorized')
      assert.ok(!decision.allowed && /forwarding/.test(decision.reason))
    })
  }

  it('revoking the parent ends the child (parent-not-active); so does revoking the parent’s subject', () => {
    for (const rv of [revoke(owner, { grant: parent.id }), revoke(owner, { subject: reader.did })]) {
      const state = stateWith([g(parent), g(narrow), r(rv)])
      assert.equal(answer(state, askChild(narrow), AT), 'refused:parent-not-active')
      assert.equal(state.grantStatus(narrow, AT).status, 'not-honoured')
    }
  })

  it('the parent’s issuer losing its authority ends the child', () => {
    const delegation = delegate(['*'])
    const adminParent = grant(admin, reader, parentFields)
    const kid = grant(reader, child, { ...narrowFields, parent: adminParent.id })
    const state = stateWith([d(delegation), g(adminParent), g(kid)])
    assert.equal(answer(state, askChild(kid), AT), allowedBy(kid))
    state.addRevocation(revoke(owner, { delegation: delegation.id }))
    assert.equal(answer(state, askChild(kid), AT), 'refused:parent-not-active')
  })

  it('the parent’s end ends the child', () => {
    const kid = grant(reader, child, { ...narrowFields, exp: EXP })
    const state = stateWith([g(parent), g(kid)])
    assert.equal(answer(state, askChild(kid), EXP - 1), allowedBy(kid))
    assert.equal(answer(state, askChild(kid), EXP), 'refused:parent-not-active')
  })

  it('a child whose parent has not arrived is not honoured, and is once the parent arrives', () => {
    const state = stateWith([g(narrow)])
    assert.equal(answer(state, askChild(narrow), AT), 'refused:parent-not-active')
    state.addGrant(parent)
    assert.equal(answer(state, askChild(narrow), AT), allowedBy(narrow))
  })

  it('a chain of depth 3 works, and revoking its root ends every link', () => {
    const g1 = grant(owner, reader, { streams: ['*'], forms: ['raw', 'hashed'], forward: 'allowed' })
    const g2 = grant(reader, child, { streams: ['line-1.*'], forward: 'allowed', parent: g1.id })
    const g3 = grant(child, grandchild, { streams: ['line-1.a'], forward: 'never', parent: g2.id })
    const state = stateWith([g(g1), g(g2), g(g3)])
    assert.equal(answer(state, ask(E, { stream: 'line-1.a' })), allowedBy(g3))
    assert.equal(answer(state, ask(E, { stream: 'line-1.b' })), 'refused:stream-not-covered')
    assert.equal(answer(state, ask(C, { stream: 'line-1.b' })), allowedBy(g2))
    state.addRevocation(revoke(owner, { grant: g1.id }))
    assert.equal(answer(state, ask(E, { stream: 'line-1.a' })), 'refused:parent-not-active')
    assert.equal(answer(state, ask(C, { stream: 'line-1.b' })), 'refused:parent-not-active')
  })

  it('a chain of 8 links is followed; one of 9 links (longer than 8) is refused', () => {
    const people = Array.from({ length: 10 }, () => newPrincipal())
    const chain: OpenedRecord<records.Grant>[] = [grant(owner, people[0], { forward: 'allowed' })]
    for (let i = 1; i < people.length; i++) {
      chain.push(grant(people[i - 1], people[i], { forward: 'allowed', parent: chain[i - 1].id }))
    }
    const state = stateWith(chain.map(g))
    for (let links = 0; links <= 8; links++) {
      assert.equal(state.grantStatus(chain[links], INSIDE).status, 'active', `${links} links`)
    }
    const tooLong = state.grantProblem(chain[9], INSIDE)
    assert.equal(tooLong?.code, 'parent-not-active')
    assert.match(tooLong?.reason ?? '', /too long/)
  })
})

describe('revocation targets', () => {
  const first = grant(owner, reader, {}, ISSUED)
  const hum = grant(owner, reader, { streams: ['hum'] }, ISSUED)
  const later = grant(owner, reader, {}, T0 + 7 * HOUR)

  it('a grant: only that grant ends', () => {
    const state = stateWith([g(first), g(hum), r(revoke(owner, { grant: first.id }))])
    assert.equal(answer(state, ask(R)), 'refused:revoked')
    assert.equal(answer(state, ask(R, { stream: 'hum' })), allowedBy(hum))
  })

  it("a subject: the grants written before the revocation or concurrently end; the owner's written after it do not, whatever their dates", () => {
    const concurrent = grant(owner, reader, { streams: ['hum'] }, T0 + 9 * HOUR)
    // claims to be issued before the revocation, but was written knowing it
    const writtenAfter = grant(owner, reader, {}, T0)
    const bySubject = revoke(owner, { subject: reader.did }, T0 + 6 * HOUR)
    const t = timelineWith([g(first)])
    t.add(r(bySubject))
    t.add(g(concurrent), [first])
    t.add(g(writtenAfter))
    assert.equal(answer(t.state, ask(R, { grantId: first.id })), 'refused:subject-revoked')
    assert.equal(answer(t.state, ask(R, { stream: 'hum' })), 'refused:subject-revoked')
    assert.equal(answer(t.state, ask(R)), allowedBy(writtenAfter))
  })

  it("after the owner revokes a subject, only the owner re-admits it: an admin's or a forwarder's later grant is not honoured, whatever its date", () => {
    const delegation = delegate(['*'])
    const parent = grant(owner, child, { forward: 'allowed', exp: EXP + 100 * YEAR })
    const bySubject = revoke(owner, { subject: reader.did }, T0 + 6 * HOUR)
    const byAdmin = grant(admin, reader, {}, T0 + 7 * HOUR)
    const byForwarder = grant(child, reader, { parent: parent.id, exp: EXP + 100 * YEAR }, T0 + 100 * YEAR)
    const byOwner = grant(owner, reader, { streams: ['hum'] }, T0 + 7 * HOUR)
    const state = stateWith([d(delegation), g(parent), r(bySubject), g(byAdmin), g(byForwarder), g(byOwner)])
    assert.equal(answer(state, ask(R, { grantId: byAdmin.id })), 'refused:subject-revoked')
    assert.equal(answer(state, ask(R, { grantId: byForwarder.id })), 'refused:subject-revoked')
    assert.equal(state.grantStatus(byForwarder, INSIDE).status, 'revoked')
    assert.equal(answer(state, ask(R, { stream: 'hum' })), allowedBy(byOwner))
  })

  it('a device: permanent, whatever grant is issued or certificate signed later', () => {
    const recertified = records.createDeviceCert(reader, R.peer, xpk(), T0 + 8 * HOUR, T0 + YEAR)
    const state = stateWith([g(first), g(later), r(revoke(owner, { device: R.peer }))])
    assert.equal(answer(state, ask(R)), 'refused:device-revoked')
    assert.equal(answer(state, ask(R, { device: recertified })), 'refused:device-revoked')
    assert.equal(
      answer(state, ask(R, { device: R2device, grantId: first.id })),
      allowedBy(first),
      'the other device is untouched',
    )
  })

  it('a delegation: every grant the admin issued under it ends, owner grants do not', () => {
    const delegation = delegate(['*'])
    const byAdmin = grant(admin, reader, { streams: ['hum'] })
    const state = stateWith([d(delegation), g(first), g(byAdmin), r(revoke(owner, { delegation: delegation.id }))])
    assert.equal(answer(state, ask(R, { stream: 'hum' })), 'refused:issuer-not-authorized')
    assert.equal(answer(state, ask(R)), allowedBy(first))
  })

  it('a revocation that arrives before its target still applies', () => {
    const t = timelineWith([r(revoke(owner, { grant: first.id })), r(revoke(owner, { subject: reader.did }))])
    t.add(g(first), []) // written before the revocations, arrived after them
    t.add(g(later)) // written after them
    assert.equal(answer(t.state, ask(R, { grantId: first.id })), 'refused:revoked')
    assert.equal(answer(t.state, ask(R)), allowedBy(later))
  })
})

describe('revocation wins: nothing added later re-activates what a valid revocation ended', () => {
  const target = grant(owner, reader)
  const revocation = revoke(owner, { grant: target.id })

  it('re-adding the revoked grant is a duplicate and changes nothing', () => {
    const state = stateWith([g(target), r(revocation)])
    assert.deepEqual(state.addGrant(target), { added: false, duplicate: true })
    assert.deepEqual(state.addRevocation(revocation), { added: false, duplicate: true })
    assert.equal(answer(state, ask(R)), 'refused:revoked')
  })

  it('a grant with the same fields is a new record with a new id (a revoked id cannot be made again)', () => {
    const again = grant(owner, reader, {}, target.body.iat)
    assert.notEqual(again.id, target.id)
    const state = stateWith([g(target), r(revocation), g(again)])
    assert.equal(answer(state, ask(R, { grantId: target.id })), 'refused:revoked')
    assert.equal(answer(state, ask(R, { grantId: again.id })), allowedBy(again), 'only a new grant brings access back')
  })

  it('a grant written without knowing a subject revocation stays ended, however late it is dated', () => {
    const postdated = grant(owner, reader, {}, T0 + 60 * HOUR)
    const t = timelineWith([r(revoke(owner, { subject: reader.did }, T0 + 6 * HOUR))])
    t.add(g(postdated), [])
    assert.equal(answer(t.state, ask(R)), 'refused:subject-revoked')
  })

  it('a revoked child stays revoked when its parent arrives later', () => {
    const parent = grant(owner, reader, { forward: 'allowed' })
    const kid = grant(reader, child, { parent: parent.id })
    const state = stateWith([g(kid), r(revoke(owner, { grant: kid.id }))])
    state.addGrant(parent)
    assert.equal(answer(state, ask(C)), 'refused:revoked')
  })

  it('a revoked parent stays revoked when its children, and other grants, arrive later', () => {
    const parent = grant(owner, reader, { forward: 'allowed' })
    const state = stateWith([g(parent), r(revoke(owner, { grant: parent.id }))])
    state.addGrant(grant(reader, child, { parent: parent.id }))
    state.addGrant(grant(owner, child, { streams: ['hum'] }))
    assert.equal(answer(state, ask(R)), 'refused:revoked')
    assert.equal(answer(state, ask(C)), 'refused:parent-not-active')
  })

  it('a new delegation for the admin does not bring back the grants a revoked one ended', () => {
    const delegation = delegate(['*'])
    const byAdmin = grant(admin, reader)
    const state = stateWith([d(delegation), g(byAdmin), r(revoke(owner, { delegation: delegation.id }))])
    state.addDelegation(delegate(['*'], { nbf: T0 + 8 * HOUR }))
    assert.equal(answer(state, ask(R)), 'refused:issuer-not-authorized')
  })

  it('a later delegation revocation does not undo an admin revocation', () => {
    const delegation = delegate(['*'])
    const t = timelineWith([d(delegation), g(target), r(revoke(admin, { grant: target.id }))])
    t.add(r(revoke(owner, { delegation: delegation.id }, T0 + 9 * HOUR)))
    t.add(d(delegate(['temp'])))
    assert.equal(answer(t.state, ask(R)), 'refused:revoked')
  })
})

describe('access requests and decisions', () => {
  const fields = (over: Partial<Omit<AccessRequest, 't' | 'iss' | 'iat' | 'nonce'>> = {}) => ({
    space,
    sub: reader.did,
    streams: ['temp'],
    forms: ['raw'],
    durationMs: 2 * HOUR,
    reason: 'quarterly calibration',
    ...over,
  })

  it('a principal files a request for itself, without via', () => {
    const req = createAccessRequest(reader, fields(), T0)
    assert.equal(req.body.sub, reader.did)
    assert.equal('via' in req.body, false)
    assert.equal(openAccessRequest(req.bytes).id, req.id)
  })

  it('a forwarded request names via and a subject other than its issuer; anything else is refused', () => {
    const via = grant(owner, reader, { forward: 'ask-owner' })
    const fwd = createAccessRequest(reader, fields({ sub: child.did, via: via.id }), T0)
    assert.equal(openAccessRequest(fwd.bytes).body.via, via.id)
    assert.throws(() => createAccessRequest(reader, fields({ sub: child.did }), T0), { name: 'InvalidMessageError' })
    assert.throws(() => createAccessRequest(reader, fields({ via: via.id }), T0), { name: 'InvalidMessageError' })
  })

  it('openDecision checks the signature of the request inside the decision', () => {
    const req = createAccessRequest(reader, fields(), T0)
    const good = createDecision(owner, req, { approved: false, reason: 'no' }, T0 + 1)
    assert.equal(openDecision(good.bytes).accessRequest.id, req.id)
    const tampered = { ...req, bytes: flipSignatureBit(req.bytes, 3) }
    const bad = createDecision(owner, tampered, { approved: false, reason: 'no' }, T0 + 1)
    assert.throws(() => openDecision(bad.bytes), { name: 'InvalidSignatureError' })
  })

  it('openDecision refuses a decision on a request of another space', () => {
    const elsewhere = newSpace('elsewhere', { owner }).space
    const req = createAccessRequest(reader, fields({ space: elsewhere }), T0)
    const decision = createDecision(owner, req, { approved: false, reason: 'no' }, T0 + 1)
    const relabelled = createDecision(
      owner,
      { ...req, body: { ...req.body, space } },
      { approved: false, reason: 'no' },
      T0,
    )
    assert.equal(openDecision(decision.bytes).body.space, elsewhere)
    assert.throws(() => openDecision(relabelled.bytes), { name: 'InvalidMessageError', message: /another space/ })
  })

  it('decisionOn picks the earliest honoured decision, whatever the order they were added in', () => {
    const req = createAccessRequest(reader, fields(), T0)
    const early = createDecision(owner, req, { approved: false, reason: 'first' }, T0 + 10)
    const late = createDecision(owner, req, { approved: true, grant: 'a'.repeat(64) }, T0 + 20)
    const tieA = createDecision(owner, req, { approved: false, reason: 'tie a' }, T0 + 5)
    const tieB = createDecision(owner, req, { approved: false, reason: 'tie b' }, T0 + 5)
    const tieWinner = tieA.id < tieB.id ? tieA : tieB
    for (const order of [
      [early, late],
      [late, early],
    ]) {
      assert.equal(stateWith(order.map(dec)).decisionOn(req.id)?.id, early.id)
    }
    for (const order of [
      [late, tieA, early, tieB],
      [tieB, early, tieA, late],
    ]) {
      assert.equal(stateWith(order.map(dec)).decisionOn(req.id)?.id, tieWinner.id)
    }
  })

  it("a stranger's decision is not honoured, even when it is the earliest", () => {
    const req = createAccessRequest(reader, fields(), T0)
    const byStranger = createDecision(stranger, req, { approved: true, grant: 'b'.repeat(64) }, T0 + 1)
    const state = stateWith([dec(byStranger)])
    assert.equal(state.decisionOn(req.id), undefined)
    const byOwner = createDecision(owner, req, { approved: false, reason: 'no' }, T0 + 50)
    state.addDecision(byOwner)
    assert.equal(state.decisionOn(req.id)?.id, byOwner.id)
  })

  it("an admin's decision is honoured only within its delegation (streams and time)", () => {
    const delegation = delegate(['temp'])
    const onTemp = createAccessRequest(reader, fields(), T0)
    const onHum = createAccessRequest(reader, fields({ streams: ['hum'] }), T0)
    const inScope = createDecision(admin, onTemp, { approved: true, grant: 'c'.repeat(64) }, T0 + 3 * HOUR)
    const outOfScope = createDecision(admin, onHum, { approved: true, grant: 'c'.repeat(64) }, T0 + 3 * HOUR)
    const tooEarly = createDecision(admin, onTemp, { approved: false, reason: 'early' }, DEL_NBF - 1)
    const state = stateWith([d(delegation), dec(inScope), dec(outOfScope), dec(tooEarly)])
    assert.equal(
      state.decisionOn(onTemp.id)?.id,
      inScope.id,
      'the earlier decision made before the delegation is ignored',
    )
    assert.equal(state.decisionOn(onHum.id), undefined)
    assert.equal(stateWith([dec(inScope)]).decisionOn(onTemp.id), undefined, 'no delegation, no decision')
  })
})

describe('grantStatus', () => {
  const delegation = delegate(['temp'])
  const cases: {
    name: string
    records: () => { target: OpenedRecord<records.Grant>; others: AppliedRecord[] }
    now?: number
    status: string
    reason?: RegExp
  }[] = [
    { name: 'inside its window', records: () => ({ target: grant(owner, reader), others: [] }), status: 'active' },
    {
      name: 'before its window',
      records: () => ({ target: grant(owner, reader), others: [] }),
      now: NBF - 1,
      status: 'pending',
      reason: /not valid yet/,
    },
    {
      name: 'after its window',
      records: () => ({ target: grant(owner, reader), others: [] }),
      now: EXP,
      status: 'expired',
      reason: /expired/,
    },
    {
      name: 'revoked by id',
      records: () => {
        const target = grant(owner, reader)
        return { target, others: [r(revoke(owner, { grant: target.id }))] }
      },
      status: 'revoked',
      reason: /revoked/,
    },
    {
      name: 'revoked with its subject, even once expired',
      records: () => ({ target: grant(owner, reader), others: [r(revoke(owner, { subject: reader.did }))] }),
      now: EXP + HOUR,
      status: 'revoked',
      reason: /subject/,
    },
    {
      name: 'issued by a stranger',
      records: () => ({ target: grant(stranger, reader), others: [] }),
      status: 'not-honoured',
      reason: /delegation/,
    },
    {
      name: 'issued by an admin outside its scope',
      records: () => ({ target: grant(admin, reader, { streams: ['hum'] }), others: [d(delegation)] }),
      status: 'not-honoured',
      reason: /delegation/,
    },
    {
      name: 'issued by an admin inside its scope',
      records: () => ({ target: grant(admin, reader), others: [d(delegation)] }),
      status: 'active',
    },
    {
      name: 'a child whose parent is unknown',
      records: () => ({ target: grant(reader, child, { parent: 'd'.repeat(64) }), others: [] }),
      status: 'not-honoured',
      reason: /parent/,
    },
  ]
  for (const c of cases) {
    it(`a grant ${c.name} is ${c.status}`, () => {
      const { target, others } = c.records()
      // the target is written knowing the delegations, and the revocations knowing the target
      const revocations = others.filter(x => x.kind === 'revocation')
      const state = stateWith([...others.filter(x => x.kind !== 'revocation'), g(target), ...revocations])
      const s = state.grantStatus(target, c.now ?? INSIDE)
      assert.equal(s.status, c.status)
      if (c.reason === undefined) assert.equal(s.reason, undefined)
      else assert.match(s.reason ?? '', c.reason)
    })
  }
})
