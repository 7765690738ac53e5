/**
 * The policy document's shards and its batch path (applyEnvelopes): records must go into the
 * shard their id names; a batch applies in any order, checks and refuses each envelope on its
 * own, and leaves a replica where applying the same envelopes one at a time would; a document
 * with many grants converges whether its changes arrive one by one or in batches.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as Automerge from '@automerge/automerge'
import {
  type AppliedRecord,
  actorFor,
  openEnvelope,
  PolicyDocument,
  SHARDS,
  shardOf,
} from '../../protocols/policy/document.ts'
import { createDelegation, createGrant, createRevocation, createStream } from '../../protocols/policy/records.ts'
import { envelopeFor, flipSignatureBit, HOUR, newPrincipal, newSpace, type Principal, T0 } from './fixtures.ts'

const { owner, genesis, space } = newSpace('batches')
const admin = newPrincipal()
const reader = newPrincipal()

type Shape = Record<string, any>

const grantFor = (sub: string, issuer: Principal = owner, i = 0) =>
  createGrant(issuer, { space, sub, streams: ['temp'], forms: ['raw'], nbf: T0, exp: T0 + 48 * HOUR }, T0 + i)

/** The owner's history: genesis, a stream, a delegation to the admin, then `n` changes of grants. */
function ownerHistory(n: number, perChange = 1) {
  const { document, envelope } = PolicyDocument.create(owner, actorFor(owner.did, 'a'), genesis, T0)
  const envelopes = [envelope]
  const write = (entries: AppliedRecord[]) => {
    const { envelope, outcome } = document.write(owner, entries, T0 + HOUR)
    assert.equal(outcome.status, 'applied')
    envelopes.push(envelope)
  }
  write([{ kind: 'stream', record: createStream(owner, space, 'temp', HOUR, T0) }])
  write([
    {
      kind: 'delegation',
      record: createDelegation(owner, { space, admin: admin.did, streams: ['*'], nbf: T0, exp: T0 + 100 * HOUR }, T0),
    },
  ])
  for (let i = 0; i < n; i++) {
    write(
      Array.from({ length: perChange }, (_, k) => ({
        kind: 'grant' as const,
        record: grantFor(newPrincipal().did, owner, i * perChange + k),
      })),
    )
  }
  return { document, envelopes }
}

function craft(envelopes: Uint8Array[], signer: Principal, actor: string, edit: (d: Shape) => void): Uint8Array {
  const [doc] = Automerge.applyChanges(
    Automerge.init<Shape>({ actor }),
    envelopes.map(e => openEnvelope(e).body.change),
  )
  const change = Automerge.getLastLocalChange(Automerge.change(doc, { time: 0 }, edit))
  assert.ok(change !== undefined)
  return envelopeFor(signer, space, change)
}

function summary(doc: PolicyDocument) {
  return {
    heads: [...doc.heads()].sort(),
    size: doc.size,
    waiting: doc.waiting,
    grants: [...doc.state.grants.keys()].sort(),
    revocations: [...doc.state.revocations.keys()].sort(),
  }
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs]
  let a = seed
  for (let i = out.length - 1; i > 0; i--) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0
    const j = a % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

const H = ownerHistory(6)
const ownerActor = actorFor(owner.did, 'crafted')

describe('shards', () => {
  it('the genesis makes 256 shards in grants, revocations and decisions; records land in the shard of their id', () => {
    const [doc] = Automerge.applyChanges(
      Automerge.init<Shape>(),
      H.envelopes.map(e => openEnvelope(e).body.change),
    )
    for (const c of ['grants', 'revocations', 'decisions']) assert.deepEqual(Object.keys(doc[c]).sort(), [...SHARDS])
    for (const id of H.document.state.grants.keys()) assert.ok(doc.grants[shardOf(id)][id] instanceof Uint8Array)
  })

  it('a grant put into another shard than its id names is refused, and the replica is unchanged', () => {
    const replica = new PolicyDocument(space)
    replica.applyEnvelopes(H.envelopes)
    const before = summary(replica)
    const g = grantFor(reader.did)
    const wrong = SHARDS.find(s => s !== shardOf(g.id))!
    const envelope = craft(H.envelopes, owner, ownerActor, d => {
      d.grants[wrong][g.id] = g.bytes
    })
    assert.throws(() => replica.applyEnvelope(envelope), { name: 'UnauthorizedChangeError', message: /wrong shard/ })
    const { outcomes } = replica.applyEnvelopes([envelope])
    assert.equal(outcomes[0].status, 'refused')
    assert.deepEqual(summary(replica), before)
    // the same grant in its own shard applies
    const right = craft(H.envelopes, owner, ownerActor, d => {
      d.grants[shardOf(g.id)][g.id] = g.bytes
    })
    assert.equal(replica.applyEnvelope(right).status, 'applied')
    assert.ok(replica.state.grants.has(g.id))
  })

  it('a revocation put into the wrong shard is refused', () => {
    const replica = new PolicyDocument(space)
    replica.applyEnvelopes(H.envelopes)
    const r = createRevocation(owner, space, { subject: reader.did }, T0)
    const wrong = SHARDS.find(s => s !== shardOf(r.id))!
    const envelope = craft(H.envelopes, owner, ownerActor, d => {
      d.revocations[wrong][r.id] = r.bytes
    })
    assert.throws(() => replica.applyEnvelope(envelope), { name: 'UnauthorizedChangeError', message: /wrong shard/ })
  })

  it('a grant put into the grants map itself, beside the shards, is refused', () => {
    const replica = new PolicyDocument(space)
    replica.applyEnvelopes(H.envelopes)
    const g = grantFor(reader.did)
    const envelope = craft(H.envelopes, owner, ownerActor, d => {
      d.grants[g.id] = g.bytes
    })
    assert.throws(() => replica.applyEnvelope(envelope), {
      name: 'UnauthorizedChangeError',
      message: /only add records/,
    })
  })

  it('a new shard made after the genesis is refused', () => {
    const replica = new PolicyDocument(space)
    replica.applyEnvelopes(H.envelopes)
    const envelope = craft(H.envelopes, owner, ownerActor, d => {
      d.grants.zz = {}
    })
    assert.throws(() => replica.applyEnvelope(envelope), { name: 'UnauthorizedChangeError' })
  })

  for (const [name, edit] of [
    ['lacks a shard', (d: Shape) => delete d.grants.ff],
    ['has a shard too many', (d: Shape) => (d.decisions['1ff'] = {})],
    ['shards the streams', (d: Shape) => (d.streams['00'] = {})],
  ] as const) {
    it(`a genesis change that ${name} is refused`, () => {
      const envelope = craft([], owner, actorFor(owner.did, 'a'), d => {
        d.genesis = genesis.bytes
        for (const c of ['streams', 'grants', 'revocations', 'delegations', 'decisions']) {
          d[c] = ['grants', 'revocations', 'decisions'].includes(c) ? Object.fromEntries(SHARDS.map(s => [s, {}])) : {}
        }
        edit(d)
      })
      const replica = new PolicyDocument(space)
      assert.throws(() => replica.applyEnvelope(envelope), { name: 'UnauthorizedChangeError', message: /genesis/ })
      assert.equal(replica.hasGenesis, false)
    })
  }
})

describe('applyEnvelopes', () => {
  const reference = () => {
    const one = new PolicyDocument(space)
    for (const e of H.envelopes) assert.equal(one.applyEnvelope(e).status, 'applied')
    return summary(one)
  }
  const REFERENCE = reference()

  it('applies a history given in any order, leaving nothing waiting, where one-by-one application does', () => {
    for (const [i, order] of [H.envelopes, [...H.envelopes].reverse(), shuffled(H.envelopes, 7)].entries()) {
      const replica = new PolicyDocument(space)
      const { outcomes, records } = replica.applyEnvelopes(order)
      assert.deepEqual(
        outcomes.map(o => o.status),
        order.map(() => 'applied'),
        `order ${i}`,
      )
      assert.equal(records.filter(r => r.kind === 'grant').length, 6)
      assert.deepEqual(summary(replica), REFERENCE)
    }
  })

  it('an envelope given twice in one batch, or already applied, is a duplicate', () => {
    const replica = new PolicyDocument(space)
    replica.applyEnvelopes(H.envelopes.slice(0, 3))
    const { outcomes } = replica.applyEnvelopes([H.envelopes[2], H.envelopes[3], H.envelopes[3]])
    assert.deepEqual(
      outcomes.map(o => o.status),
      ['duplicate', 'applied', 'duplicate'],
    )
  })

  it('a batch with bad envelopes applies the good ones and refuses each bad one with its own error', () => {
    const stranger = newPrincipal()
    const strangerGrant = grantFor(reader.did, stranger)
    const unauthorized = craft(H.envelopes, stranger, actorFor(stranger.did, 'x'), d => {
      d.grants[shardOf(strangerGrant.id)][strangerGrant.id] = strangerGrant.bytes
    })
    const tampered = flipSignatureBit(H.envelopes[4], 9)
    const batch = [
      ...H.envelopes.slice(0, 4),
      tampered,
      unauthorized,
      new Uint8Array([1, 2, 3]),
      ...H.envelopes.slice(4),
    ]
    const replica = new PolicyDocument(space)
    const { outcomes } = replica.applyEnvelopes(batch)
    const refused = outcomes.flatMap(o => (o.status === 'refused' ? [o.error.name] : []))
    assert.deepEqual(
      refused.sort(),
      ['InvalidEncodingError', 'InvalidSignatureError', 'UnauthorizedChangeError'].sort(),
    )
    assert.equal(outcomes.filter(o => o.status === 'applied').length, H.envelopes.length)
    assert.deepEqual(summary(replica), REFERENCE)
    assert.ok(!replica.state.grants.has(strangerGrant.id))
  })

  it('an admin change checked in the state the earlier changes of the same batch make', () => {
    // the admin's grant is authorised only by the delegation, which arrives in the same batch
    const adminDoc = new PolicyDocument(space, actorFor(admin.did, 'x'))
    adminDoc.applyEnvelopes(H.envelopes)
    const g = grantFor(reader.did, admin)
    const { envelope } = adminDoc.write(admin, [{ kind: 'grant', record: g }], T0 + HOUR)
    for (const order of [
      [...H.envelopes, envelope],
      [envelope, ...H.envelopes],
    ]) {
      const replica = new PolicyDocument(space)
      const { outcomes } = replica.applyEnvelopes(order)
      assert.ok(
        outcomes.every(o => o.status === 'applied'),
        JSON.stringify(outcomes.map(o => o.status)),
      )
      assert.ok(replica.state.grants.has(g.id))
    }
  })

  it('a change Automerge refuses (one actor id reused on two devices) is refused alone; the rest of the batch applies', () => {
    const { document: a, envelope: g } = PolicyDocument.create(owner, actorFor(owner.did, 'same'), genesis, T0)
    const b = new PolicyDocument(space, actorFor(owner.did, 'same'))
    b.applyEnvelope(g)
    const fromA = a.write(owner, [{ kind: 'grant', record: grantFor(reader.did, owner, 1) }], T0).envelope
    const fromB = b.write(owner, [{ kind: 'grant', record: grantFor(reader.did, owner, 2) }], T0).envelope
    const c = new PolicyDocument(space, actorFor(owner.did, 'other'))
    c.applyEnvelope(g)
    const other = grantFor(reader.did, owner, 3)
    const fromC = c.write(owner, [{ kind: 'grant', record: other }], T0).envelope
    const replica = new PolicyDocument(space)
    replica.applyEnvelopes([g, fromA])
    const { outcomes } = replica.applyEnvelopes([fromC, fromB])
    assert.equal(outcomes[0].status, 'applied')
    assert.equal(outcomes[1].status, 'refused')
    assert.ok(replica.state.grants.has(other.id))
    assert.equal(replica.state.grants.size, 2)
  })

  it('a change whose history is missing waits, and applies when a later batch brings it', () => {
    const replica = new PolicyDocument(space)
    const first = replica.applyEnvelopes([H.envelopes[0], H.envelopes[5], H.envelopes[6]])
    assert.deepEqual(
      first.outcomes.map(o => o.status),
      ['applied', 'pending', 'pending'],
    )
    assert.equal(replica.waiting, 2)
    const second = replica.applyEnvelopes(H.envelopes.filter((_, i) => ![0, 5, 6].includes(i)))
    assert.equal(replica.waiting, 0)
    // the four grants of the batch, and the two that were waiting
    assert.equal(second.records.filter(r => r.kind === 'grant').length, 6)
    assert.deepEqual(summary(replica), REFERENCE)
  })
})

describe('a document with many grants', () => {
  it('converges: replicas fed one by one in order, in batches of any order, and by catch-up reach the same state', () => {
    const big = ownerHistory(200, 10)
    const all = big.document.allEnvelopes()
    const oneByOne = new PolicyDocument(space)
    for (const e of all) assert.equal(oneByOne.applyEnvelope(e).status, 'applied')
    const batched = new PolicyDocument(space)
    for (const page of [0, 1, 2, 3].map(k => shuffled(all, 11).slice(k * 60, (k + 1) * 60 + (k === 3 ? 1000 : 0)))) {
      batched.applyEnvelopes(page)
    }
    const caughtUp = new PolicyDocument(space)
    caughtUp.applyEnvelopes(big.document.envelopesSince([]).slice(0, 100))
    caughtUp.applyEnvelopes(big.document.envelopesSince(caughtUp.heads()))
    const expected = summary(big.document)
    assert.equal(expected.grants.length, 2000)
    for (const replica of [oneByOne, batched, caughtUp]) assert.deepEqual(summary(replica), expected)
    // the grants spread over the shards instead of filling one map
    const shardsUsed = new Set(expected.grants.map(shardOf))
    assert.ok(shardsUsed.size > 200, `${shardsUsed.size} shards used`)
  })
})
