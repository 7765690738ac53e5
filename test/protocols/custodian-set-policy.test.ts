/**
 * A space's custodian set as a policy record (protocols/policy/state.ts and document.ts): only
 * the owner writes one; every set is kept; the set in force is the one no other set was written
 * knowing, and of concurrent ones the greatest by (claimed time, id), so that replicas agree
 * whatever the order in which the sets arrive.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { type Custodian, type CustodianSet, createCustodianSet } from '../../protocols/custody/records.ts'
import { actorFor, PolicyDocument } from '../../protocols/policy/document.ts'
import { PolicyState } from '../../protocols/policy/state.ts'
import { HOUR, newPeerId, newPrincipal, newSpace, T0, TestHistory } from './fixtures.ts'

const { owner, genesis, space } = newSpace('vault')
const admin = newPrincipal()

const custodians: Custodian[] = Array.from({ length: 5 }, () => ({
  peer: newPeerId(),
  xpk: generateSealingKeyPair().publicKey,
}))

/** A set of custodians `from`..`from + n - 1`, threshold k, signed by `by` at `iat`. */
function setOf(from: number, n: number, k: number, iat: number, by = owner): OpenedRecord<CustodianSet> {
  return createCustodianSet(by, space, custodians.slice(from, from + n), k, iat)
}

const firstSet = setOf(0, 3, 2, T0 + 1)

/** The owner's document on device `device`, with the genesis only. */
function ownerDoc(device: string): { doc: PolicyDocument; genesisEnvelope: Uint8Array } {
  const { document, envelope } = PolicyDocument.create(owner, actorFor(owner.did, device), genesis, T0)
  return { doc: document, genesisEnvelope: envelope }
}

function writeSet(doc: PolicyDocument, set: OpenedRecord<CustodianSet>): Uint8Array {
  const { envelope, outcome } = doc.write(owner, [{ kind: 'custodian-set', record: set }], T0 + HOUR)
  assert.equal(outcome.status, 'applied')
  return envelope
}

const ids = (state: PolicyState) => [...state.custodianSets.keys()].sort()
/** The set in force (a call, so that a check of it does not narrow its type for the next one). */
const inForce = (state: PolicyState) => state.custodianSet

describe('custodian sets in the policy document', () => {
  it('none is in force before the owner writes one; the owner’s set is in force once written', () => {
    const { doc } = ownerDoc('a')
    assert.equal(inForce(doc.state), undefined)
    assert.equal(doc.state.custodianSets.size, 0)
    const { outcome } = doc.write(owner, [{ kind: 'custodian-set', record: firstSet }], T0 + HOUR)
    assert.ok(outcome.status === 'applied')
    assert.deepEqual(
      outcome.records.map(r => `${r.kind}:${r.record.id}`),
      [`custodian-set:${firstSet.id}`],
    )
    assert.equal(inForce(doc.state)?.id, firstSet.id)
    assert.deepEqual(inForce(doc.state)?.body, firstSet.body)
  })

  it('a set written knowing the one in force supersedes it, whatever time either claims', () => {
    const { doc } = ownerDoc('a')
    writeSet(doc, firstSet)
    // claims an earlier time than the set it replaces: the causal order decides, not the clocks
    const second = setOf(1, 4, 3, T0)
    writeSet(doc, second)
    assert.equal(inForce(doc.state)?.id, second.id)
    // the old set stays known: deals made to it still name it
    assert.deepEqual(ids(doc.state), [firstSet.id, second.id].sort())
    assert.equal(doc.state.custodianSets.get(firstSet.id)?.body.k, 2)
  })

  it('sets replicate: a replica that applies the changes holds the same sets and the same set in force', () => {
    const { doc, genesisEnvelope } = ownerDoc('a')
    const e1 = writeSet(doc, firstSet)
    const second = setOf(2, 3, 3, T0 + 2)
    const e2 = writeSet(doc, second)
    const replica = new PolicyDocument(space)
    // out of order: the second change waits for the first
    assert.equal(replica.applyEnvelope(genesisEnvelope).status, 'applied')
    assert.equal(replica.applyEnvelope(e2).status, 'pending')
    assert.equal(inForce(replica.state), undefined)
    assert.equal(replica.applyEnvelope(e1).status, 'applied')
    assert.deepEqual(ids(replica.state), ids(doc.state))
    assert.equal(inForce(replica.state)?.id, second.id)
    assert.equal(inForce(replica.state)?.id, inForce(doc.state)?.id)
    // and in one batch, in any order
    const batch = new PolicyDocument(space)
    batch.applyEnvelopes([e2, e1, genesisEnvelope])
    assert.deepEqual(ids(batch.state), ids(doc.state))
    assert.equal(inForce(batch.state)?.id, second.id)
  })

  it('two sets written concurrently on two owner devices: both replicas converge on the same one, in either order', () => {
    const { doc: a, genesisEnvelope } = ownerDoc('a')
    const b = new PolicyDocument(space, actorFor(owner.did, 'b'))
    assert.equal(b.applyEnvelope(genesisEnvelope).status, 'applied')
    const setA = setOf(0, 3, 2, T0 + 5)
    const setB = setOf(2, 3, 2, T0 + 3)
    const eA = writeSet(a, setA)
    const eB = writeSet(b, setB)
    // each device first sees its own set in force
    assert.equal(inForce(a.state)?.id, setA.id)
    assert.equal(inForce(b.state)?.id, setB.id)
    assert.equal(a.applyEnvelope(eB).status, 'applied')
    assert.equal(b.applyEnvelope(eA).status, 'applied')
    // neither knew the other: the later claimed time wins, on both
    assert.equal(inForce(a.state)?.id, setA.id)
    assert.equal(inForce(b.state)?.id, setA.id)
    assert.deepEqual(ids(a.state), ids(b.state))
    for (const order of [
      [genesisEnvelope, eA, eB],
      [genesisEnvelope, eB, eA],
      [eB, eA, genesisEnvelope],
    ]) {
      const c = new PolicyDocument(space)
      for (const e of order) c.applyEnvelope(e)
      assert.equal(inForce(c.state)?.id, setA.id)
    }
    // a set written by B knowing both supersedes both, though it claims the earliest time of all
    const merged = setOf(1, 4, 2, T0 + 1)
    const eM = writeSet(b, merged)
    assert.equal(a.applyEnvelope(eM).status, 'applied')
    assert.equal(inForce(a.state)?.id, merged.id)
    assert.equal(inForce(b.state)?.id, merged.id)
  })

  it('concurrent sets claiming the same time are told apart by id, the same on both replicas', () => {
    const { doc: a, genesisEnvelope } = ownerDoc('a')
    const b = new PolicyDocument(space, actorFor(owner.did, 'b'))
    b.applyEnvelope(genesisEnvelope)
    const setA = setOf(0, 2, 2, T0 + 7)
    const setB = setOf(3, 2, 2, T0 + 7)
    const eA = writeSet(a, setA)
    const eB = writeSet(b, setB)
    a.applyEnvelope(eB)
    b.applyEnvelope(eA)
    const greater = setA.id > setB.id ? setA : setB
    assert.equal(inForce(a.state)?.id, greater.id)
    assert.equal(inForce(b.state)?.id, greater.id)
  })

  it('a set from anyone but the owner is refused: by mayWrite, by addCustodianSet and by the document', () => {
    const { doc, genesisEnvelope } = ownerDoc('a')
    const forged = setOf(0, 3, 2, T0 + 9, admin)
    assert.match(
      doc.state.mayWrite(admin.did, { kind: 'custodian-set', body: { space } }) ?? '',
      /only the owner may write streams, delegations and custodian sets/,
    )
    assert.equal(doc.state.mayWrite(owner.did, { kind: 'custodian-set', body: { space } }), undefined)
    const state = new PolicyState(genesis)
    assert.deepEqual(state.addCustodianSet(forged), {
      added: false,
      duplicate: false,
      reason: 'issuer is not the owner of the space',
    })
    assert.equal(state.custodianSet, undefined)
    const adminDoc = new PolicyDocument(space, actorFor(admin.did, 'x'))
    adminDoc.applyEnvelope(genesisEnvelope)
    assert.throws(() => adminDoc.write(admin, [{ kind: 'custodian-set', record: forged }], T0 + HOUR), {
      name: 'UnauthorizedChangeError',
      message: /only the owner/,
    })
    assert.equal(adminDoc.state.custodianSets.size, 0)
    assert.equal(inForce(doc.state), undefined)
  })

  it('addCustodianSet: another space’s set is refused, the same set twice is a duplicate', () => {
    const state = new PolicyState(genesis)
    const elsewhere = createCustodianSet(owner, newSpace('other', { owner }).space, custodians.slice(0, 2), 2, T0)
    assert.deepEqual(state.addCustodianSet(elsewhere), {
      added: false,
      duplicate: false,
      reason: 'record belongs to another space',
    })
    assert.deepEqual(state.addCustodianSet(firstSet, 'c1'), { added: true })
    assert.deepEqual(state.addCustodianSet(firstSet, 'c2'), { added: false, duplicate: true })
    assert.equal(state.originOf(firstSet.id), 'c1')
    assert.equal(state.custodianSet?.id, firstSet.id)
  })
})

describe('custodian sets: the set in force, as a property', () => {
  // signing is slow: a pool of sets with distinct and shared claimed times, made once
  const pool = Array.from({ length: 6 }, (_, i) => setOf(i % 4, 2, 2, T0 + (i % 3)))

  it('whatever the causal history and the order of arrival, two states agree on the set in force, and it is the reference model’s', () => {
    fc.assert(
      fc.property(
        // for each set, which earlier sets its writer knew
        fc.array(fc.array(fc.boolean(), { minLength: pool.length, maxLength: pool.length }), {
          minLength: pool.length,
          maxLength: pool.length,
        }),
        fc.integer({ min: 1, max: pool.length }),
        fc.integer(),
        (knows, count, seed) => {
          const sets = pool.slice(0, count)
          const history = new TestHistory()
          sets.forEach((s, i) => {
            history.write(
              s.id,
              sets.filter((_, j) => j < i && knows[i][j]).map(x => x.id),
            )
          })
          const one = new PolicyState(genesis, history)
          const two = new PolicyState(genesis, history)
          for (const s of sets) one.addCustodianSet(s, s.id)
          // asked before all have arrived: the memoised answer must not outlive an addition
          const shuffled = shuffle(sets, seed)
          for (const s of shuffled) {
            two.addCustodianSet(s, s.id)
            assert.notEqual(two.custodianSet, undefined)
          }
          const reference = sets
            .filter(a => !sets.some(b => history.precedes(a.id, b.id)))
            .sort((a, b) => b.body.iat - a.body.iat || (a.id < b.id ? 1 : -1))[0]
          assert.equal(one.custodianSet?.id, reference.id)
          assert.equal(two.custodianSet?.id, reference.id)
          assert.equal(one.custodianSets.size, sets.length)
        },
      ),
      { numRuns: 200 },
    )
  })
})

/** A permutation of `xs` that depends on `seed` only. */
function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs]
  let s = seed >>> 0
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}
