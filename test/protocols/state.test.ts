import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import type { AppliedRecord } from '../../protocols/policy/document.ts'
import * as records from '../../protocols/policy/records.ts'
import { type AccessDecision, type AccessQuery, leaseEnd, PolicyState } from '../../protocols/policy/state.ts'
import {
  EXP,
  HOUR,
  INSIDE,
  NBF,
  newDevice,
  newGrant,
  newPeerId,
  newPrincipal,
  newSpace,
  type Principal,
  T0,
  TestHistory,
  Timeline,
} from './fixtures.ts'

const { owner, genesis, space } = newSpace('facility')
const reader = newPrincipal()
const other = newPrincipal()
const xpk = () => generateSealingKeyPair().publicKey
const temp = records.createStream(owner, space, 'temp', HOUR, T0 + 1)
const hum = records.createStream(owner, space, 'hum', HOUR, T0 + 2)

const { peer: readerPeer, device } = newDevice(reader)
const { peer: otherPeer, device: otherDevice } = newDevice(other)

function grantTo(
  sub: Principal,
  over: Partial<records.GrantFields> = {},
  iat = T0 + 5 * HOUR,
): OpenedRecord<records.Grant> {
  return newGrant(owner, { space, sub: sub.did, ...over }, iat)
}
function revoke(
  target: records.RevocationTarget,
  iat = T0 + 6 * HOUR,
  by: Principal = owner,
): OpenedRecord<records.Revocation> {
  return records.createRevocation(by, space, target, iat)
}

type AnyRecord =
  | { kind: 'stream'; rec: OpenedRecord<records.StreamRecord> }
  | { kind: 'grant'; rec: OpenedRecord<records.Grant> }
  | { kind: 'revocation'; rec: OpenedRecord<records.Revocation> }
const g = (rec: OpenedRecord<records.Grant>): AnyRecord => ({ kind: 'grant', rec })
const r = (rec: OpenedRecord<records.Revocation>): AnyRecord => ({ kind: 'revocation', rec })

/** Add a record with its id as the change that carried it (the history says how changes relate). */
function addTo(state: PolicyState, x: AnyRecord) {
  if (x.kind === 'stream') return state.addStream(x.rec, x.rec.id)
  if (x.kind === 'grant') return state.addGrant(x.rec, x.rec.id)
  return state.addRevocation(x.rec, x.rec.id)
}

const applied = (x: AnyRecord): AppliedRecord => ({ kind: x.kind, record: x.rec }) as AppliedRecord

/** The streams, then `history`, each written knowing those before it in the list. */
function timelineWith(history: AnyRecord[]): Timeline {
  const t = new Timeline(genesis)
  for (const s of [temp, hum]) assert.deepEqual(t.add({ kind: 'stream', record: s }), { added: true })
  for (const x of history) assert.deepEqual(t.add(applied(x)), { added: true })
  return t
}

function stateWith(history: AnyRecord[]): PolicyState {
  return timelineWith(history).state
}

function query(over: Partial<AccessQuery> = {}): AccessQuery {
  return { subject: reader.did, device, stream: 'temp', form: 'raw', ...over }
}

/** The part of a decision that every replica must agree on. */
function summary(d: AccessDecision): string {
  return d.allowed ? `allowed:${d.grant.id}` : `refused:${d.code}`
}

describe('PolicyState.evaluateAccess: one reader, one device, stream temp', () => {
  const active = grantTo(reader)
  const activeLater = grantTo(reader, {}, T0 + 7 * HOUR) // issued after the revocations at T0 + 6h
  const forHum = grantTo(reader, { streams: ['hum'] })
  const everyStream = grantTo(reader, { streams: ['*'], forms: ['hashed'] })
  const expired = grantTo(reader, { nbf: T0, exp: T0 + HOUR })
  const forOther = grantTo(other)
  const deviceByOther = records.createDeviceCert(other, readerPeer, xpk(), T0, T0 + 365 * 24 * HOUR)
  const deviceExpired = records.createDeviceCert(reader, readerPeer, xpk(), T0, NBF)
  const deviceNotYet = records.createDeviceCert(reader, readerPeer, xpk(), EXP - HOUR, EXP + HOUR)
  const deviceRecertified = records.createDeviceCert(reader, readerPeer, xpk(), T0 + 7 * HOUR, T0 + 365 * 24 * HOUR)

  const cases: {
    name: string
    /**
     * in the order they are added (by default the active grant alone); each was written knowing
     * the ones before it, unless `concurrent`
     */
    records?: AnyRecord[]
    /** every record was written without knowing the others */
    concurrent?: boolean
    q?: Partial<AccessQuery>
    now?: number
    expect: string
  }[] = [
    { name: 'no grant at all', records: [], expect: 'refused:no-grant' },
    { name: 'a grant only for another subject', records: [g(forOther)], expect: 'refused:no-grant' },
    { name: 'an active grant, inside its window', expect: `allowed:${active.id}` },
    { name: 'exactly at notBefore', now: NBF, expect: `allowed:${active.id}` },
    { name: 'one ms before notAfter', now: EXP - 1, expect: `allowed:${active.id}` },
    { name: 'exactly at notAfter', now: EXP, expect: 'refused:expired' },
    { name: 'after notAfter', now: EXP + HOUR, expect: 'refused:expired' },
    { name: 'one ms before notBefore', now: NBF - 1, expect: 'refused:not-yet-valid' },
    { name: 'grant revoked by id', records: [g(active), r(revoke({ grant: active.id }))], expect: 'refused:revoked' },
    {
      name: 'revocation of another grant leaves this one active',
      records: [g(active), g(forHum), r(revoke({ grant: forHum.id }))],
      expect: `allowed:${active.id}`,
    },
    {
      name: 'revocation added before the grant it targets',
      records: [r(revoke({ grant: active.id })), g(active)],
      expect: 'refused:revoked',
    },
    {
      name: 'subject revoked after the grant was issued',
      records: [g(active), r(revoke({ subject: reader.did }))],
      expect: 'refused:subject-revoked',
    },
    {
      name: 'subject revoked at the very ms the grant was issued',
      records: [g(active), r(revoke({ subject: reader.did }, active.body.iat))],
      expect: 'refused:subject-revoked',
    },
    {
      name: 'subject revoked, then a new grant issued after the revocation',
      records: [g(active), r(revoke({ subject: reader.did })), g(activeLater)],
      expect: `allowed:${activeLater.id}`,
    },
    {
      name: 'subject revocation added before a grant written without knowing it',
      records: [r(revoke({ subject: reader.did })), g(active)],
      concurrent: true,
      expect: 'refused:subject-revoked',
    },
    {
      name: 'another subject revoked',
      records: [g(active), r(revoke({ subject: other.did }))],
      expect: `allowed:${active.id}`,
    },
    {
      name: 'the device revoked',
      records: [g(active), r(revoke({ device: readerPeer }))],
      expect: 'refused:device-revoked',
    },
    {
      name: 'the device revoked at the very ms its certificate begins',
      records: [g(active), r(revoke({ device: readerPeer }, device.body.nbf))],
      expect: 'refused:device-revoked',
    },
    {
      name: 'the device revoked, even with a grant issued later',
      records: [g(activeLater), r(revoke({ device: readerPeer }))],
      expect: 'refused:device-revoked',
    },
    {
      name: 'a revoked device stays revoked when its principal certifies it again',
      records: [g(active), r(revoke({ device: readerPeer }))],
      q: { device: deviceRecertified },
      expect: 'refused:device-revoked',
    },
    {
      name: 'another device revoked',
      records: [g(active), r(revoke({ device: otherPeer }))],
      expect: `allowed:${active.id}`,
    },
    {
      name: 'a device certificate signed by another principal',
      q: { device: deviceByOther },
      expect: 'refused:device-invalid',
    },
    { name: "another principal's own device", q: { device: otherDevice }, expect: 'refused:device-invalid' },
    { name: 'an expired device certificate', q: { device: deviceExpired }, expect: 'refused:device-invalid' },
    { name: 'a device certificate not valid yet', q: { device: deviceNotYet }, expect: 'refused:device-invalid' },
    { name: 'a grant for another stream', records: [g(forHum)], expect: 'refused:stream-not-covered' },
    { name: "'*' covers temp", records: [g(everyStream)], q: { form: 'hashed' }, expect: `allowed:${everyStream.id}` },
    {
      name: "'*' covers hum",
      records: [g(everyStream)],
      q: { stream: 'hum', form: 'hashed' },
      expect: `allowed:${everyStream.id}`,
    },
    { name: 'a form the grant does not name', q: { form: 'hashed' }, expect: 'refused:form-not-covered' },
    {
      name: "'*' does not widen the forms",
      records: [g(everyStream)],
      q: { form: 'raw' },
      expect: 'refused:form-not-covered',
    },
    {
      name: 'an aggregate form the grant does not name',
      q: { form: 'aggregate:1h' },
      expect: 'refused:form-not-covered',
    },
    { name: 'a named grant that is not known', q: { grantId: forHum.id }, expect: 'refused:unknown-grant' },
    {
      name: 'a named grant of another subject',
      records: [g(active), g(forOther)],
      q: { grantId: forOther.id },
      expect: 'refused:wrong-subject',
    },
    {
      name: 'a named grant that covers the request',
      records: [g(active), g(everyStream)],
      q: { grantId: active.id },
      expect: `allowed:${active.id}`,
    },
    {
      name: 'a named grant is the only candidate, even when another grant would permit',
      records: [g(active), g(forHum)],
      q: { grantId: forHum.id },
      expect: 'refused:stream-not-covered',
    },
    { name: 'a stream the space does not have', q: { stream: 'pressure' }, expect: 'refused:unknown-stream' },
    {
      name: "a stream the space does not have, with '*'",
      records: [g(everyStream)],
      q: { stream: 'pressure', form: 'hashed' },
      expect: 'refused:unknown-stream',
    },
    {
      name: 'any one usable grant permits, whatever the others',
      records: [g(expired), g(forHum), g(active), r(revoke({ grant: forHum.id }))],
      expect: `allowed:${active.id}`,
    },
    {
      name: 'the most informative refusal wins: expired over stream-not-covered',
      records: [g(expired), g(forHum)],
      expect: 'refused:expired',
    },
    {
      name: 'the most informative refusal wins: revoked over expired',
      records: [g(expired), g(active), r(revoke({ grant: active.id }))],
      expect: 'refused:revoked',
    },
  ]

  for (const c of cases) {
    it(`${c.name} -> ${c.expect.replace(/:[0-9a-f]{64}$/, '')}`, () => {
      const t = timelineWith([])
      for (const x of c.records ?? [g(active)]) t.add(applied(x), c.concurrent ? [] : undefined)
      assert.equal(summary(t.state.evaluateAccess(query(c.q), c.now ?? INSIDE)), c.expect)
    })
  }

  it('a refusal carries a human-readable reason', () => {
    const d = stateWith([g(active), r(revoke({ grant: active.id }))]).evaluateAccess(query(), INSIDE)
    assert.equal(d.allowed, false)
    assert.ok(!d.allowed && d.reason.length > 0)
  })
})

describe('PolicyState: authority and idempotence', () => {
  it('does not honour a grant signed by someone who is neither the owner nor an admin', () => {
    const state = stateWith([])
    const forged = records.createGrant(
      other,
      { space, sub: other.did, streams: ['*'], forms: ['raw'], nbf: NBF, exp: EXP },
      T0,
    )
    assert.ok(
      state.mayWrite(other.did, { kind: 'grant', body: forged.body as never }) !== undefined,
      'may not write it',
    )
    state.addGrant(forged)
    const d = state.evaluateAccess(query({ subject: other.did, device: otherDevice }), INSIDE)
    assert.equal(summary(d), 'refused:issuer-not-authorized')
  })

  it('does not honour a revocation signed by someone other than the owner, and the grant stays active', () => {
    const grant = grantTo(reader)
    const state = stateWith([g(grant)])
    for (const target of [{ grant: grant.id }, { subject: reader.did }, { device: readerPeer }]) {
      const rev = revoke(target, T0 + 6 * HOUR, reader)
      assert.ok(state.mayWrite(reader.did, { kind: 'revocation', body: rev.body as never }) !== undefined)
      state.addRevocation(rev)
    }
    assert.equal(summary(state.evaluateAccess(query(), INSIDE)), `allowed:${grant.id}`)
  })

  it('refuses a stream defined by someone other than the owner', () => {
    const state = stateWith([])
    const res = state.addStream(records.createStream(other, space, 'pressure', HOUR, T0))
    assert.ok(!res.added && !res.duplicate)
    assert.equal(state.streams.has('pressure'), false)
  })

  it('refuses owner-signed records that belong to another space', () => {
    const otherSpace = newSpace('elsewhere', { owner }).space
    const state = stateWith([])
    const grant = records.createGrant(
      owner,
      { space: otherSpace, sub: reader.did, streams: ['temp'], forms: ['raw'], nbf: NBF, exp: EXP },
      T0,
    )
    const res = state.addGrant(grant)
    assert.ok(!res.added && !res.duplicate && /another space/.test(res.reason))
    const rev = records.createRevocation(owner, otherSpace, { subject: reader.did }, T0)
    const res2 = state.addRevocation(rev)
    assert.ok(!res2.added && !res2.duplicate && /another space/.test(res2.reason))
    const res3 = state.addStream(records.createStream(owner, otherSpace, 'pressure', HOUR, T0))
    assert.ok(!res3.added && !res3.duplicate && /another space/.test(res3.reason))
    assert.equal(state.grants.size + state.revocations.size, 0)
    assert.equal(state.streams.has('pressure'), false)
  })

  it('a refused revocation from another space does not revoke a grant of this one', () => {
    const grant = grantTo(reader)
    const state = stateWith([g(grant)])
    const otherSpace = newSpace('elsewhere', { owner }).space
    state.addRevocation(records.createRevocation(owner, otherSpace, { grant: grant.id }, T0))
    assert.equal(summary(state.evaluateAccess(query(), INSIDE)), `allowed:${grant.id}`)
  })

  it('adding the same record twice reports a duplicate and changes nothing', () => {
    const grant = grantTo(reader)
    const rev = revoke({ grant: grant.id })
    const state = stateWith([g(grant), r(rev)])
    assert.deepEqual(state.addGrant(grant), { added: false, duplicate: true })
    assert.deepEqual(state.addRevocation(rev), { added: false, duplicate: true })
    assert.deepEqual(state.addStream(temp), { added: false, duplicate: true })
    assert.equal(state.grants.size, 1)
    assert.equal(state.revocations.size, 1)
  })

  it('two definitions of one stream converge on the smaller id whatever the order', () => {
    const a = records.createStream(owner, space, 'pressure', HOUR, T0)
    const b = records.createStream(owner, space, 'pressure', 2 * HOUR, T0)
    const [small, large] = a.id < b.id ? [a, b] : [b, a]
    const one = new PolicyState(genesis)
    const two = new PolicyState(genesis)
    assert.deepEqual(one.addStream(small), { added: true })
    assert.deepEqual(one.addStream(large), { added: false, duplicate: true })
    assert.deepEqual(two.addStream(large), { added: true })
    assert.deepEqual(two.addStream(small), { added: true })
    assert.equal(one.streams.get('pressure')!.id, small.id)
    assert.equal(two.streams.get('pressure')!.id, small.id)
  })

  it('owner and holders come from the genesis', () => {
    const state = new PolicyState(genesis)
    assert.equal(state.owner, owner.did)
    assert.equal(state.spaceId, genesis.id)
    assert.deepEqual(state.holders, genesis.body.holders)
  })

  it('grantsOf lists the subject’s grants in id order and nobody else’s', () => {
    const a = grantTo(reader)
    const b = grantTo(reader, { streams: ['hum'] })
    const c = grantTo(other)
    const state = stateWith([g(b), g(c), g(a)])
    assert.deepEqual(
      state.grantsOf(reader.did).map(x => x.id),
      [a.id, b.id].sort(),
    )
    assert.deepEqual(state.grantsOf(newPrincipal().did), [])
  })
})

describe('leaseEnd and revocationEnds', () => {
  const grant = grantTo(reader)
  const LEASE = 15 * 60_000

  it('a lease ends at now + lease max while the grant runs longer', () => {
    assert.equal(leaseEnd(grant.body, INSIDE, LEASE), INSIDE + LEASE)
  })

  it('a lease never outlives its grant', () => {
    assert.equal(leaseEnd(grant.body, EXP - 60_000, LEASE), EXP)
    assert.equal(leaseEnd(grant.body, EXP - LEASE, LEASE), EXP)
    assert.equal(leaseEnd(grant.body, EXP - LEASE - 1, LEASE), EXP - 1)
  })

  it('revocationEnds matches a revocation to the grant and device it ends', () => {
    const later = grantTo(reader, {}, T0 + 7 * HOUR)
    const byId = revoke({ grant: grant.id })
    const bySubject = revoke({ subject: reader.did })
    const byDevice = revoke({ device: readerPeer })
    // `later` was written knowing the subject revocation
    const state = stateWith([g(grant), r(bySubject), g(later)])
    assert.equal(state.revocationEnds(byId, grant, readerPeer, INSIDE), true)
    assert.equal(state.revocationEnds(byId, later, readerPeer, INSIDE), false)
    assert.equal(state.revocationEnds(bySubject, grant, readerPeer, INSIDE), true)
    assert.equal(state.revocationEnds(bySubject, later, readerPeer, INSIDE), false, 'issued after the revocation')
    assert.equal(state.revocationEnds(revoke({ subject: other.did }), grant, readerPeer, INSIDE), false)
    assert.equal(state.revocationEnds(byDevice, grant, readerPeer, INSIDE), true)
    assert.equal(state.revocationEnds(byDevice, grant, otherPeer, INSIDE), false)
  })
})

/**
 * Property tests over a pool of pre-signed records: fast-check picks subsets and orders
 * by index, so hundreds of cases run without signing anything.
 */
describe('PolicyState properties', () => {
  const subjects = [newPrincipal(), newPrincipal(), newPrincipal()]
  const stranger = newPrincipal()
  // device certificates start at t=20, so a device revocation at t=10 misses and one at t=100 hits
  const devices = new Map<string, OpenedRecord<records.DeviceCert>>(
    [...subjects, stranger].map(s => [s.did, records.createDeviceCert(s, newPeerId(), xpk(), 20, 10_000)]),
  )
  // pressure is defined twice (two ids) and only by records in the pool
  const pool: AnyRecord[] = [
    { kind: 'stream', rec: records.createStream(owner, space, 'pressure', HOUR, 1) },
    { kind: 'stream', rec: records.createStream(owner, space, 'pressure', 2 * HOUR, 1) },
  ]
  const streamSets = [['temp'], ['hum'], ['*'], ['temp', 'pressure']]
  const formSets = [['raw'], ['hashed'], ['raw', 'hashed']]
  const windows = [
    [0, 100],
    [50, 150],
    [100, 200],
  ]
  const iats = [10, 60, 120]
  let n = 0
  const grants: OpenedRecord<records.Grant>[] = []
  for (const s of subjects) {
    for (let i = 0; i < 7; i++, n++) {
      const [nbf, exp] = windows[n % windows.length]
      const rec = records.createGrant(
        owner,
        {
          space,
          sub: s.did,
          streams: streamSets[n % streamSets.length],
          forms: formSets[(n >> 1) % formSets.length],
          nbf,
          exp,
        },
        iats[(n * 5) % iats.length],
      )
      grants.push(rec)
      pool.push({ kind: 'grant', rec })
    }
  }
  for (let i = 0; i < grants.length; i += 3) pool.push({ kind: 'revocation', rec: revoke({ grant: grants[i].id }, 70) })
  // revocations of grants nobody has seen must not disturb anything
  pool.push({ kind: 'revocation', rec: revoke({ grant: 'f'.repeat(64) }, 70) })
  for (const s of subjects) {
    pool.push({ kind: 'revocation', rec: revoke({ subject: s.did }, 50) })
    pool.push({ kind: 'revocation', rec: revoke({ subject: s.did }, 100) })
    pool.push({ kind: 'revocation', rec: revoke({ device: devices.get(s.did)!.body.peer }, 10) })
    pool.push({ kind: 'revocation', rec: revoke({ device: devices.get(s.did)!.body.peer }, 100) })
  }

  const times = [0, 19, 20, 49, 50, 99, 100, 149, 150, 199, 200]
  const queries: { q: AccessQuery; now: number }[] = []
  for (const s of [...subjects, stranger]) {
    for (const stream of ['temp', 'hum', 'pressure', 'nope']) {
      for (const form of ['raw', 'hashed']) {
        for (const now of times) queries.push({ q: { subject: s.did, device: devices.get(s.did)!, stream, form }, now })
      }
    }
  }
  for (const grant of grants) {
    for (const s of [subjects[0], subjects[1]]) {
      for (const now of [60, 130]) {
        queries.push({
          q: { subject: s.did, device: devices.get(s.did)!, stream: 'temp', form: 'raw', grantId: grant.id },
          now,
        })
      }
    }
  }

  // the pool's history: each record was written knowing every record with an earlier issue time
  const history = new TestHistory()
  for (const x of pool) {
    history.write(
      x.rec.id,
      pool.filter(y => y.rec.body.iat < x.rec.body.iat).map(y => y.rec.id),
    )
  }

  function build(order: number[]): PolicyState {
    const state = new PolicyState(genesis, history)
    state.addStream(temp)
    state.addStream(hum)
    for (const i of order) addTo(state, pool[i])
    return state
  }

  const indices = pool.map((_, i) => i)
  const sameSetTwoOrders = fc
    .subarray(indices)
    .chain(set =>
      fc.tuple(
        fc.constant(set),
        fc.shuffledSubarray(set, { minLength: set.length, maxLength: set.length }),
        fc.shuffledSubarray(set, { minLength: set.length, maxLength: set.length }),
        fc.subarray(set),
      ),
    )

  it('the pool is varied enough to exercise every outcome', () => {
    const codes = new Set<string>()
    const all = build(indices)
    const none = build(pool.flatMap((x, i) => (x.kind === 'revocation' ? [] : [i])))
    const devicesKept = build(
      pool.flatMap((x, i) => (x.kind === 'revocation' && 'device' in x.rec.body.target ? [] : [i])),
    )
    for (const state of [all, none, devicesKept]) {
      for (const { q, now } of queries) {
        const d = state.evaluateAccess(q, now)
        codes.add(d.allowed ? 'allowed' : d.code)
      }
    }
    for (const code of [
      'allowed',
      'unknown-stream',
      'no-grant',
      'wrong-subject',
      'not-yet-valid',
      'expired',
      'revoked',
      'subject-revoked',
      'device-revoked',
      'device-invalid',
      'stream-not-covered',
      'form-not-covered',
    ]) {
      assert.ok(codes.has(code), `no query yields ${code}`)
    }
  })

  it('convergence: the same records added in two orders (with repeats) give the same answer to every query', () => {
    fc.assert(
      fc.property(sameSetTwoOrders, ([, orderA, orderB, repeats]) => {
        const a = build(orderA)
        const b = build([...orderB, ...repeats])
        assert.deepEqual([...a.grants.keys()].sort(), [...b.grants.keys()].sort())
        assert.deepEqual([...a.revocations.keys()].sort(), [...b.revocations.keys()].sort())
        assert.equal(a.streams.get('pressure')?.id, b.streams.get('pressure')?.id)
        for (const { q, now } of queries) {
          assert.equal(summary(a.evaluateAccess(q, now)), summary(b.evaluateAccess(q, now)))
        }
      }),
      { numRuns: 200 },
    )
  })

  it('revocation wins: a grant targeted by a revocation in the set never permits, nor one its subject or device revocation covers', () => {
    fc.assert(
      fc.property(sameSetTwoOrders, ([set, order]) => {
        const state = build(order)
        const revoked = new Set<string>()
        const subjectRevokedAt = new Map<string, number>()
        const revokedDevices = new Set<string>()
        for (const i of set) {
          const x = pool[i]
          if (x.kind !== 'revocation') continue
          const t = x.rec.body.target
          if ('grant' in t) revoked.add(t.grant)
          else if ('subject' in t)
            subjectRevokedAt.set(t.subject, Math.max(subjectRevokedAt.get(t.subject) ?? -1, x.rec.body.iat))
          else if ('device' in t) revokedDevices.add(t.device)
        }
        for (const { q, now } of queries) {
          const d = state.evaluateAccess(q, now)
          if (!d.allowed) continue
          assert.equal(revoked.has(d.grant.id), false, 'a revoked grant permitted access')
          assert.ok(d.grant.body.iat > (subjectRevokedAt.get(d.grant.body.sub) ?? -1), 'subject revocation ignored')
          assert.equal(revokedDevices.has(q.device.body.peer), false, 'device revocation ignored')
        }
      }),
      { numRuns: 200 },
    )
  })

  it('allowed answers match a direct reading of the rules (reference model)', () => {
    fc.assert(
      fc.property(sameSetTwoOrders, ([, order]) => {
        const state = build(order)
        const present = order.map(i => pool[i])
        const grantsIn = present.flatMap(x => (x.kind === 'grant' ? [x.rec] : []))
        const revs = present.flatMap(x => (x.kind === 'revocation' ? [x.rec.body] : []))
        const streams = new Set([
          'temp',
          'hum',
          ...present.flatMap(x => (x.kind === 'stream' ? [x.rec.body.name] : [])),
        ])
        for (const { q, now } of queries) {
          const dev = q.device.body
          const deviceOk =
            q.device.issuer === q.subject &&
            dev.nbf <= now &&
            now < dev.exp &&
            !revs.some(v => 'device' in v.target && v.target.device === dev.peer)
          const usable = (x: OpenedRecord<records.Grant>) =>
            x.body.sub === q.subject &&
            x.body.nbf <= now &&
            now < x.body.exp &&
            (x.body.streams.includes('*') || x.body.streams.includes(q.stream)) &&
            x.body.forms.includes(q.form) &&
            !revs.some(v => 'grant' in v.target && v.target.grant === x.id) &&
            !revs.some(v => 'subject' in v.target && v.target.subject === x.body.sub && x.body.iat <= v.iat)
          const candidates = q.grantId === undefined ? grantsIn : grantsIn.filter(x => x.id === q.grantId)
          const expected = streams.has(q.stream) && deviceOk && candidates.some(usable)
          assert.equal(state.evaluateAccess(q, now).allowed, expected)
        }
      }),
      { numRuns: 100 },
    )
  })
})
