/**
 * Audit reports, pure: the holding intervals `computeHoldings` derives from release and
 * revocation entries (a table of cases, and a property against an independent reference),
 * which entries `matchesQuery` keeps, and `verifyReport` over reports built from real
 * logs (a signed genesis naming the key holder, real signed key requests, RFC 9162 proofs,
 * heads signed by the owner), accepted whole and rejected after every kind of tampering.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import { inclusionProof, leafHash, rootFromLeafHashes } from '../../crypto/merkle.ts'
import { createKeyRequest, REQUEST_WINDOW_MS } from '../../protocols/access/messages.ts'
import {
  type AuditEntry,
  decodeEntry,
  encodeEntry,
  type ReleaseEntry,
  type RevocationEntry,
  requestHash,
} from '../../protocols/audit/entries.ts'
import { signTreeHead } from '../../protocols/audit/heads.ts'
import {
  type AuditReport,
  buildReport,
  computeHoldings,
  type Holding,
  matchesQuery,
  type ReportQuery,
  verifyReport,
} from '../../protocols/audit/report.ts'
import { createDeviceCert, createGenesis } from '../../protocols/policy/records.ts'
import { editBody, fakeId, flipSignatureBit, newPeerId, newPrincipal, type Principal } from '../protocols/fixtures.ts'

const MIN = 60_000
const LEASE = 15 * MIN
const T0 = Date.UTC(2025, 0, 1)
const STREAM = 'temperature'
const OTHER_STREAM = 'humidity'
const GRANT_A = fakeId('a')
const GRANT_B = fakeId('b')

/** A principal with one certified device, able to sign real key requests. */
interface Person {
  principal: Principal
  did: string
  peer: string
  device: Uint8Array
}

function newPerson(): Person {
  const principal = newPrincipal()
  const peer = newPeerId()
  const device = createDeviceCert(principal, peer, generateSealingKeyPair().publicKey, 0, T0 + 1000 * 24 * 60 * MIN)
  return { principal, did: principal.did, peer, device: device.bytes }
}

const alice = newPerson()
const bob = newPerson()
const owner = newPrincipal()
const holder = newPeerId()
const genesis = createGenesis(owner, 'plant-7', [holder], T0)
const SPACE = genesis.id

interface ReleaseOpts {
  ts: number
  who?: Person
  grant?: string
  stream?: string
  leaseEnd?: number
  epochs?: number[]
  renewal?: boolean
  space?: string
  /** sign the embedded request as someone else, or for other fields than the entry says */
  signer?: Person
  requestFields?: { space?: string; stream?: string; epochs?: number[]; device?: Uint8Array; ts?: number }
}

/** A release entry embedding a real key request signed by its subject (unless told otherwise). */
function release(o: ReleaseOpts): ReleaseEntry {
  const who = o.who ?? alice
  const signer = o.signer ?? who
  const space = o.space ?? SPACE
  const stream = o.stream ?? STREAM
  const epochs = o.epochs ?? [0]
  const grant = o.grant ?? GRANT_A
  const req = createKeyRequest(signer.principal, {
    space: o.requestFields?.space ?? space,
    stream: o.requestFields?.stream ?? stream,
    form: 'raw',
    epochs: o.requestFields?.epochs ?? epochs,
    grant,
    device: o.requestFields?.device ?? signer.device,
    nonce: randomBytes(16),
    ts: o.requestFields?.ts ?? o.ts,
  })
  return {
    t: 'release',
    ts: o.ts,
    space,
    subject: who.did,
    device: who.peer,
    grant,
    stream,
    form: 'raw',
    epochs,
    leaseEnd: o.leaseEnd ?? o.ts + LEASE,
    renewal: o.renewal ?? false,
    request: req.bytes,
    reqHash: requestHash(req.bytes),
  }
}

function revocation(ts: number, target: RevocationEntry['target'], space = SPACE): RevocationEntry {
  return { t: 'revocation', ts, space, revocation: fakeId(String((ts % 9) + 1)), target }
}

function grantEntry(ts: number, who: Person, streams: string[], grant = GRANT_A): AuditEntry {
  return { t: 'grant', ts, space: SPACE, grant, subject: who.did, streams, nbf: ts, exp: ts + 60 * MIN }
}

function refusal(ts: number, who: Person, stream = STREAM): AuditEntry {
  return {
    t: 'refusal',
    ts,
    space: SPACE,
    subject: who.did,
    device: who.peer,
    stream,
    form: 'raw',
    code: 'no-grant',
    reason: 'no grant for this subject in the space',
    reqHash: randomBytes(32),
  }
}

/** What `who` held of `resource`: its `intervals`, `minutes` in all. */
function holding(intervals: Holding['intervals'], minutes: number, who: Person = alice, resource = STREAM): Holding {
  return { subject: who.did, resource, intervals, minutes }
}

const minutes = (ms: number) => Math.round((ms / MIN) * 100) / 100

describe('computeHoldings', () => {
  const cases: {
    name: string
    entries: AuditEntry[]
    asOf: number
    expected: Holding[]
  }[] = [
    {
      name: 'a release cut by a revocation of its grant',
      entries: [release({ ts: T0 }), revocation(T0 + 4 * MIN, { grant: GRANT_A })],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 4 * MIN, endedBy: 'revocation' }], 4)],
    },
    {
      name: 'a release cut by a revocation of its subject',
      entries: [release({ ts: T0 }), revocation(T0 + 90_000, { subject: alice.did })],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 90_000, endedBy: 'revocation' }], 1.5)],
    },
    {
      name: 'a release cut by a revocation of its device',
      entries: [release({ ts: T0 }), revocation(T0 + 7 * MIN, { device: alice.peer })],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 7 * MIN, endedBy: 'revocation' }], 7)],
    },
    {
      name: 'a release that runs to its lease end',
      entries: [release({ ts: T0, leaseEnd: T0 + 10 * MIN })],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 10 * MIN, endedBy: 'lease-end' }], 10)],
    },
    {
      name: 'the earliest of several revocations that end a release cuts it',
      entries: [
        release({ ts: T0 }),
        revocation(T0 + 3 * MIN, { subject: alice.did }),
        revocation(T0 + 2 * MIN, { grant: GRANT_A }),
      ],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 2 * MIN, endedBy: 'revocation' }], 2)],
    },
    {
      name: 'a revocation before the release does not cut it',
      entries: [revocation(T0 - MIN, { subject: alice.did }), release({ ts: T0 })],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + LEASE, endedBy: 'lease-end' }], 15)],
    },
    {
      name: 'a revocation after the lease end does not cut it',
      entries: [release({ ts: T0, leaseEnd: T0 + 5 * MIN }), revocation(T0 + 6 * MIN, { grant: GRANT_A })],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 5 * MIN, endedBy: 'lease-end' }], 5)],
    },
    {
      name: 'revocations of another grant, subject or device do not cut it',
      entries: [
        release({ ts: T0 }),
        revocation(T0 + MIN, { grant: GRANT_B }),
        revocation(T0 + 2 * MIN, { subject: bob.did }),
        revocation(T0 + 3 * MIN, { device: bob.peer }),
      ],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + LEASE, endedBy: 'lease-end' }], 15)],
    },
    {
      name: 'overlapping releases (renewals) merge into one interval; minutes is the merged total',
      entries: [
        release({ ts: T0 }),
        release({ ts: T0 + 10 * MIN, renewal: true }),
        release({ ts: T0 + 20 * MIN, renewal: true }),
      ],
      asOf: T0 + 60 * MIN,
      expected: [holding([{ from: T0, until: T0 + 35 * MIN, endedBy: 'lease-end' }], 35)],
    },
    {
      name: 'disjoint releases stay two intervals; minutes is their sum',
      entries: [
        release({ ts: T0, leaseEnd: T0 + 5 * MIN }),
        release({ ts: T0 + 20 * MIN }),
        revocation(T0 + 21 * MIN, { grant: GRANT_A }),
      ],
      asOf: T0 + 60 * MIN,
      expected: [
        holding(
          [
            { from: T0, until: T0 + 5 * MIN, endedBy: 'lease-end' },
            { from: T0 + 20 * MIN, until: T0 + 21 * MIN, endedBy: 'revocation' },
          ],
          6,
        ),
      ],
    },
    {
      name: "an interval whose lease outlasts asOf ends at asOf, endedBy 'open'",
      entries: [release({ ts: T0 })],
      asOf: T0 + 3 * MIN,
      expected: [holding([{ from: T0, until: T0 + 3 * MIN, endedBy: 'open' }], 3)],
    },
    {
      name: 'two resources give two holdings',
      entries: [release({ ts: T0 }), release({ ts: T0 + MIN, stream: OTHER_STREAM, leaseEnd: T0 + 2 * MIN })],
      asOf: T0 + 60 * MIN,
      expected: [
        holding([{ from: T0 + MIN, until: T0 + 2 * MIN, endedBy: 'lease-end' }], 1, alice, OTHER_STREAM),
        holding([{ from: T0, until: T0 + LEASE, endedBy: 'lease-end' }], 15),
      ].sort((a, b) => (a.subject + a.resource < b.subject + b.resource ? -1 : 1)) as Holding[],
    },
    {
      name: 'two subjects give two holdings; a subject revocation ends only its own',
      entries: [
        release({ ts: T0 }),
        release({ ts: T0, who: bob, grant: GRANT_B }),
        revocation(T0 + MIN, { subject: bob.did }),
      ],
      asOf: T0 + 60 * MIN,
      expected: [
        holding([{ from: T0, until: T0 + LEASE, endedBy: 'lease-end' }], 15),
        holding([{ from: T0, until: T0 + MIN, endedBy: 'revocation' }], 1, bob),
      ].sort((a, b) => (a.subject + a.resource < b.subject + b.resource ? -1 : 1)) as Holding[],
    },
    {
      name: 'grants and refusals hold nothing',
      entries: [grantEntry(T0, alice, [STREAM]), refusal(T0 + MIN, bob)],
      asOf: T0 + 60 * MIN,
      expected: [],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(computeHoldings(c.entries, c.asOf), c.expected)
    })
  }

  it('does not depend on the order the entries are listed in', () => {
    const entries = [
      release({ ts: T0 }),
      release({ ts: T0 + 10 * MIN, renewal: true }),
      revocation(T0 + 12 * MIN, { grant: GRANT_A }),
      release({ ts: T0 + MIN, who: bob, grant: GRANT_B, stream: OTHER_STREAM }),
    ]
    const expected = computeHoldings(entries, T0 + 60 * MIN)
    assert.deepEqual(computeHoldings([...entries].reverse(), T0 + 60 * MIN), expected)
    assert.deepEqual(computeHoldings([entries[2], entries[0], entries[3], entries[1]], T0 + 60 * MIN), expected)
  })
})

describe('matchesQuery', () => {
  const q: ReportQuery = { space: SPACE, subject: alice.did, resource: STREAM, from: T0, until: T0 + 60 * MIN }
  const cases: [string, AuditEntry, ReportQuery, boolean][] = [
    ['a release of the subject on the resource in range', release({ ts: T0 + MIN }), q, true],
    ['a release of another subject', release({ ts: T0 + MIN, who: bob }), q, false],
    ['a release on another resource', release({ ts: T0 + MIN, stream: OTHER_STREAM }), q, false],
    ['a release before the range whose lease ended before it', release({ ts: T0 - 20 * MIN, leaseEnd: T0 }), q, false],
    ['a release before the range whose lease runs into it', release({ ts: T0 - 1 }), q, true],
    ['a release at the start of the range (inclusive)', release({ ts: T0 }), q, true],
    ['a release at the end of the range (exclusive)', release({ ts: T0 + 60 * MIN }), q, false],
    ['a release in another space', release({ ts: T0 + MIN, space: fakeId('c') }), q, false],
    ['a refusal of the subject', refusal(T0 + MIN, alice), q, true],
    ['a refusal of another subject', refusal(T0 + MIN, bob), q, false],
    ['a grant of the subject naming the resource', grantEntry(T0 + MIN, alice, [STREAM]), q, true],
    ['a grant of the subject on every stream', grantEntry(T0 + MIN, alice, ['*']), q, true],
    ['a grant of the subject on other streams', grantEntry(T0 + MIN, alice, [OTHER_STREAM]), q, false],
    ['a revocation of another subject', revocation(T0 + MIN, { subject: bob.did }), q, true],
    ['a revocation long before the range', revocation(T0 - 600 * MIN, { grant: GRANT_B }), q, true],
    ['a revocation after the range', revocation(T0 + 600 * MIN, { device: bob.peer }), q, true],
    ['a revocation of another space', revocation(T0 + MIN, { grant: GRANT_A }, fakeId('c')), q, false],
    ['anything of the space for a query naming only the space', release({ ts: 1, who: bob }), { space: SPACE }, true],
  ]
  for (const [name, entry, query, expected] of cases) {
    it(`${expected ? 'keeps' : 'drops'} ${name}`, () => {
      assert.equal(matchesQuery(entry, query), expected)
    })
  }
})

// ---- reports over real logs ----

/** A report over a log of `entries` (all of it in the tree), for `query`, with a head at `asOf`. */
function reportOf(
  entries: AuditEntry[],
  query: ReportQuery,
  asOf: number,
  head: { signer?: Principal; log?: string } = {},
): AuditReport {
  const bytes = entries.map(encodeEntry)
  const leaves = bytes.map(leafHash)
  const signed = signTreeHead(head.signer ?? owner, head.log ?? holder, leaves.length, rootFromLeafHashes(leaves), asOf)
  const selected = bytes
    .map((b, index) => ({ index, bytes: b, proof: inclusionProof(leaves, index) }))
    .filter(e => matchesQuery(decodeEntry(e.bytes), query))
  return buildReport(query, genesis.bytes, signed, selected)
}

/** As the report travels: a JSON file. */
const asJson = (r: AuditReport): AuditReport => JSON.parse(JSON.stringify(r))

const flipByte = (b64: string, pos: number, bit = 0): string => {
  const b = fromBase64url(b64)
  b[pos % b.byteLength] ^= 1 << bit
  return toBase64url(b)
}

function assertRejected(
  r: unknown,
  failure: RegExp,
  what: string,
  expected?: string | { space?: string; owner?: string },
): void {
  const v = verifyReport(r, expected)
  assert.equal(v.ok, false, `${what}: the report must not verify`)
  if (!v.ok) assert.match(v.failure, failure, what)
}

describe('verifyReport', () => {
  // alice reads, renews, is refused on another stream, bob reads, alice's grant is revoked
  const log: AuditEntry[] = [
    grantEntry(T0, alice, [STREAM]),
    grantEntry(T0 + 1000, bob, ['*'], GRANT_B),
    release({ ts: T0 + MIN }),
    release({ ts: T0 + 2 * MIN, who: bob, grant: GRANT_B, stream: OTHER_STREAM }),
    refusal(T0 + 3 * MIN, alice, OTHER_STREAM),
    release({ ts: T0 + 10 * MIN, renewal: true }),
    revocation(T0 + 12 * MIN, { grant: GRANT_A }),
    refusal(T0 + 13 * MIN, alice),
    release({ ts: T0 + 14 * MIN, who: bob, grant: GRANT_B, stream: STREAM }),
  ]
  const asOf = T0 + 20 * MIN
  const query: ReportQuery = { space: SPACE, subject: alice.did }
  const good = reportOf(log, query, asOf)

  it('accepts a report built from a real log, and gives back its entries and holdings', () => {
    const v = verifyReport(asJson(good), SPACE)
    assert.equal(v.ok, true, v.ok ? '' : v.failure)
    if (!v.ok) return
    assert.equal(v.head.size, log.length)
    assert.equal(v.head.log, holder)
    // alice's grant, two releases, a refusal, the revocation, a refusal (all of hers, and the revocation)
    assert.deepEqual(
      good.entries.map(e => e.index),
      [0, 2, 4, 5, 6, 7],
    )
    assert.deepEqual(v.holdings, [holding([{ from: T0 + MIN, until: T0 + 12 * MIN, endedBy: 'revocation' }], 11)])
    assert.deepEqual(v.holdings, good.holdings)
  })

  it('accepts a report for the whole space and one for one resource', () => {
    for (const q of [
      { space: SPACE },
      { space: SPACE, resource: OTHER_STREAM },
      { space: SPACE, from: T0 + 5 * MIN },
    ]) {
      const r = reportOf(log, q, asOf)
      const v = verifyReport(asJson(r))
      assert.equal(v.ok, true, v.ok ? '' : `${JSON.stringify(q)}: ${v.failure}`)
    }
    const whole = verifyReport(asJson(reportOf(log, { space: SPACE }, asOf)))
    assert.ok(whole.ok)
    if (whole.ok) assert.deepEqual(whole.holdings.map(h => [h.subject, h.resource]).length, 3)
  })

  it('rejects a report in which any byte of any entry was flipped', () => {
    let tried = 0
    for (const [i, e] of good.entries.entries()) {
      const len = fromBase64url(e.entry).byteLength
      const positions = new Set([0, 1, len >> 1, len - 1, ...Array.from({ length: 8 }, (_, k) => (k * 97 + i) % len)])
      for (const pos of positions) {
        const r = asJson(good)
        r.entries[i].entry = flipByte(e.entry, pos, pos % 8)
        assertRejected(r, /inclusion proof does not verify/, `entry ${i} byte ${pos}`)
        tried++
      }
    }
    assert.ok(tried > 40)
  })

  it('rejects a report in which a byte of any proof hash was flipped', () => {
    for (const [i, e] of good.entries.entries()) {
      assert.ok(e.proof.length > 0)
      for (const [k] of e.proof.entries()) {
        for (const pos of [0, 17, 31]) {
          const r = asJson(good)
          r.entries[i].proof[k] = flipByte(e.proof[k], pos, 3)
          assertRejected(r, /inclusion proof does not verify/, `entry ${i} proof ${k} byte ${pos}`)
        }
      }
    }
  })

  it('rejects a report with a dropped, an extra or a reordered proof element', () => {
    for (const [i, e] of good.entries.entries()) {
      const dropFirst = asJson(good)
      dropFirst.entries[i].proof = e.proof.slice(1)
      assertRejected(dropFirst, /inclusion proof/, `entry ${i} first proof hash dropped`)
      const dropLast = asJson(good)
      dropLast.entries[i].proof = e.proof.slice(0, -1)
      assertRejected(dropLast, /inclusion proof/, `entry ${i} last proof hash dropped`)
      const extra = asJson(good)
      extra.entries[i].proof = [...e.proof, e.proof[0]]
      assertRejected(extra, /inclusion proof/, `entry ${i} extra proof hash`)
      if (e.proof.length > 1) {
        const swapped = asJson(good)
        swapped.entries[i].proof = [e.proof[1], e.proof[0], ...e.proof.slice(2)]
        assertRejected(swapped, /inclusion proof/, `entry ${i} proof reordered`)
      }
    }
  })

  it('rejects a report in which any byte of the head was flipped', () => {
    const len = fromBase64url(good.head).byteLength
    for (let pos = 0; pos < len; pos++) {
      const r = asJson(good)
      r.head = flipByte(good.head, pos, pos % 8)
      assertRejected(r, /^tree head: /, `head byte ${pos}`)
    }
  })

  it("rejects a head whose signature, root, size, time or log was changed after the owner's signature", () => {
    const head = fromBase64url(good.head)
    const edits: [string, Uint8Array][] = [
      ['signature', flipSignatureBit(head, 9)],
      [
        'root',
        editBody(head, b => {
          const root = Uint8Array.from(b.root as Uint8Array)
          root[0] ^= 1
          b.root = root
        }),
      ],
      ['size', editBody(head, b => (b.size = (b.size as number) + 1))],
      ['size', editBody(head, b => (b.size = (b.size as number) - 1))],
      ['time', editBody(head, b => (b.ts = (b.ts as number) + MIN))],
      ['log', editBody(head, b => (b.log = newPeerId()))],
    ]
    for (const [what, bytes] of edits) {
      const r = asJson(good)
      r.head = toBase64url(bytes)
      assertRejected(r, /^tree head: .*signature/i, `head ${what}`)
    }
  })

  it('rejects a head the owner signed for another root or size than the log has', () => {
    const leaves = log.map(encodeEntry).map(leafHash)
    const otherRoot = rootFromLeafHashes([...leaves.slice(0, -1), leafHash(new Uint8Array([1]))])
    const wrongRoot = asJson(good)
    wrongRoot.head = toBase64url(signTreeHead(owner, holder, leaves.length, otherRoot, asOf).bytes)
    assertRejected(wrongRoot, /inclusion proof does not verify/, 'head with another root')
    const smaller = asJson(good)
    smaller.head = toBase64url(signTreeHead(owner, holder, 7, rootFromLeafHashes(leaves.slice(0, 7)), asOf).bytes)
    assertRejected(smaller, /inclusion proof does not verify/, 'head of a smaller tree')
  })

  it('rejects a head signed by another key, or for a log that is not a key holder of the space', () => {
    assertRejected(
      asJson(reportOf(log, query, asOf, { signer: newPrincipal() })),
      /not signed by the space's owner/,
      'another signer',
    )
    assertRejected(
      asJson(reportOf(log, query, asOf, { log: newPeerId() })),
      /not a key holder of the space/,
      'a log that is not a holder',
    )
  })

  it('rejects a report in which any byte of the genesis was flipped, or another genesis is given', () => {
    const len = fromBase64url(good.genesis).byteLength
    for (let pos = 0; pos < len; pos++) {
      const r = asJson(good)
      r.genesis = flipByte(good.genesis, pos, pos % 8)
      assertRejected(r, /^space genesis/, `genesis byte ${pos}`)
    }
    const other = asJson(good)
    other.genesis = toBase64url(createGenesis(owner, 'plant-7', [holder], T0).bytes)
    assertRejected(other, /does not hash to the report space/, 'another genesis of the same owner')
    const otherSpace = asJson(good)
    otherSpace.query.space = fakeId('d')
    assertRejected(otherSpace, /does not hash to the report space/, 'another space in the query')
  })

  it('rejects a report for another space than the one expected', () => {
    assertRejected(asJson(good), /report is for another space/, 'expected another space', fakeId('e'))
    const v = verifyReport(asJson(good), SPACE)
    assert.ok(v.ok)
  })

  it('rejects a changed index: shifted, repeated, swapped or out of the tree', () => {
    for (const [i, e] of good.entries.entries()) {
      const shifted = asJson(good)
      shifted.entries[i].index = e.index + 1
      assertRejected(shifted, /bad or repeated index|inclusion proof/, `entry ${i} index + 1`)
      const outside = asJson(good)
      outside.entries[i].index = log.length + i
      assertRejected(outside, /inclusion proof does not verify/, `entry ${i} outside the tree`)
      const negative = asJson(good)
      negative.entries[i].index = -1
      assertRejected(negative, /inclusion proof does not verify|bad or repeated index/, `entry ${i} index -1`)
    }
    const repeated = asJson(good)
    repeated.entries[1].index = repeated.entries[0].index
    assertRejected(repeated, /bad or repeated index/, 'repeated index')
    const swapped = asJson(good)
    ;[swapped.entries[0].index, swapped.entries[1].index] = [swapped.entries[1].index, swapped.entries[0].index]
    assertRejected(swapped, /inclusion proof does not verify/, 'swapped indexes')
    const text = asJson(good) as unknown as { entries: { index: unknown }[] }
    text.entries[0].index = String(good.entries[0].index)
    assertRejected(text, /bad or repeated index/, 'an index that is not a number')
  })

  it('rejects changed holdings: minutes, an interval bound, endedBy, a holding removed or added', () => {
    const edits: [string, (r: AuditReport) => void][] = [
      ['minutes', r => (r.holdings[0].minutes += 0.01)],
      ['from', r => (r.holdings[0].intervals[0].from -= 1)],
      ['until', r => (r.holdings[0].intervals[0].until += 1)],
      ['endedBy', r => (r.holdings[0].intervals[0].endedBy = 'lease-end')],
      ['subject', r => (r.holdings[0].subject = bob.did)],
      ['resource', r => (r.holdings[0].resource = OTHER_STREAM)],
      ['removed', r => r.holdings.pop()],
      ['added', r => r.holdings.push({ ...r.holdings[0], resource: OTHER_STREAM })],
      [
        'interval split',
        r => {
          const i = r.holdings[0].intervals[0]
          r.holdings[0].intervals = [
            { ...i, until: i.from + MIN },
            { ...i, from: i.from + MIN },
          ]
        },
      ],
    ]
    for (const [what, edit] of edits) {
      const r = asJson(good)
      edit(r)
      assertRejected(r, /holdings differ/, `holdings ${what}`)
    }
  })

  it('rejects a release whose embedded signed request was made by another subject, or whose hash is not its', () => {
    const forged = release({ ts: T0 + MIN, signer: bob })
    assertRejected(
      asJson(reportOf([forged], { space: SPACE }, asOf)),
      /the signed key request does not match the release/,
      'request signed by another subject',
    )
    const wrongHash = { ...release({ ts: T0 + MIN }), reqHash: randomBytes(32) }
    assertRejected(
      asJson(reportOf([wrongHash], { space: SPACE }, asOf)),
      /the signed key request does not match the release/,
      'request hash of another request',
    )
    const garbage = { ...release({ ts: T0 + MIN }), request: randomBytes(100) }
    assertRejected(asJson(reportOf([garbage], { space: SPACE }, asOf)), /^entry 0: /, 'a request that does not decode')
  })

  // The signed request is there so that "the requester cannot deny asking" for what the entry
  // says was released. A request for other fields than the entry's proves nothing about it.
  const mismatches: [string, NonNullable<ReleaseOpts['requestFields']>][] = [
    ['another stream', { stream: OTHER_STREAM }],
    ['another space', { space: fakeId('f') }],
    ['other epochs', { epochs: [7, 8] }],
    ['another device', { device: createDeviceCert(alice.principal, newPeerId(), randomBytes(32), 0, T0 * 2).bytes }],
  ]
  for (const [what, fields] of mismatches) {
    it(`rejects a release whose embedded signed request asked for ${what}`, () => {
      const entry = release({ ts: T0 + MIN, requestFields: fields })
      assertRejected(
        asJson(reportOf([entry], { space: SPACE }, asOf)),
        /the signed key request does not match the release/,
        `request for ${what}`,
      )
    })
  }

  // The key holder releases only for a request whose time is within REQUEST_WINDOW_MS of its
  // clock, and logs the release at that clock reading: a release further from its request's
  // time was not made by an honest key holder for that request (a release moved in time moves
  // the interval the report states).
  it("rejects a release whose time is further from its signed request's time than the key holder's clock window", () => {
    const reqTs = T0 + 5 * MIN
    for (const [what, ts] of [
      ['before the request by more than the window', reqTs - REQUEST_WINDOW_MS - 1],
      ['an hour before the request', reqTs - 60 * MIN],
      ['after the request by more than the window', reqTs + REQUEST_WINDOW_MS + 1],
      ['a day after the request', reqTs + 24 * 60 * MIN],
    ] as const) {
      const entry = release({ ts, requestFields: { ts: reqTs } })
      assertRejected(
        asJson(reportOf([entry], { space: SPACE }, T0 + 2 * 24 * 60 * MIN)),
        /entry 0 \(log index 0\): released at \S+Z, (before|after) the signed key request's time \S+Z by more than the key holder's clock window \(120 s\)/,
        what,
      )
    }
    // clocks differ: the key holder accepts a request dated up to the window either side of its clock
    for (const ts of [reqTs - REQUEST_WINDOW_MS, reqTs - 1, reqTs, reqTs + 1, reqTs + REQUEST_WINDOW_MS]) {
      const entry = release({ ts, requestFields: { ts: reqTs } })
      const v = verifyReport(asJson(reportOf([entry], { space: SPACE }, T0 + 60 * MIN)))
      assert.ok(v.ok, v.ok ? '' : `release at request time ${ts - reqTs >= 0 ? '+' : ''}${ts - reqTs} ms: ${v.failure}`)
    }
  })

  it('says which space, owner and key holder a verified report vouches for', () => {
    const v = verifyReport(asJson(good))
    assert.ok(v.ok, v.ok ? '' : v.failure)
    if (!v.ok) return
    assert.deepEqual(v.space, { id: SPACE, name: 'plant-7', owner: owner.did, keyHolder: holder })
  })

  // A report is checked against itself: whoever makes up a space (a genesis under a key of its
  // own, naming a log of its own) can make a report that checks out. Only pinning the space or
  // the owner tells it from a report of the space the auditor meant.
  it('a made-up space verifies on its own, and is refused once the space or the owner is pinned', () => {
    const mallory = newPrincipal()
    const fakeHolder = newPeerId()
    const fake = createGenesis(mallory, 'plant-7', [fakeHolder], T0)
    const entries = [release({ ts: T0 + MIN, space: fake.id })]
    const bytes = entries.map(encodeEntry)
    const leaves = bytes.map(leafHash)
    const head = signTreeHead(mallory, fakeHolder, leaves.length, rootFromLeafHashes(leaves), T0 + 20 * MIN)
    const made = buildReport(
      { space: fake.id },
      fake.bytes,
      head,
      bytes.map((b, index) => ({ index, bytes: b, proof: inclusionProof(leaves, index) })),
    )
    const alone = verifyReport(asJson(made))
    assert.ok(alone.ok, alone.ok ? '' : alone.failure)
    if (alone.ok)
      assert.deepEqual(alone.space, { id: fake.id, name: 'plant-7', owner: mallory.did, keyHolder: fakeHolder })
    assertRejected(asJson(made), /report is for another space: [0-9a-f]+, not [0-9a-f]+/, 'space pinned', {
      space: SPACE,
    })
    assertRejected(
      asJson(made),
      new RegExp(`report is for a space of another owner: ${mallory.did}, not ${owner.did}`),
      'owner pinned',
      { owner: owner.did },
    )
    assert.ok(verifyReport(asJson(made), { space: fake.id, owner: mallory.did }).ok)
    assert.ok(verifyReport(asJson(good), { space: SPACE, owner: owner.did }).ok)
    assertRejected(asJson(good), /another owner/, 'the right space, another owner', {
      space: SPACE,
      owner: mallory.did,
    })
  })

  // "the intervals during which the subject held a valid key" in the range: a key released
  // five minutes before `from` with a 15-minute lease was held for the first ten minutes of it.
  it('shows, in a report from T, a key released before T whose lease runs into the range', () => {
    const from = T0 + 30 * MIN
    const entries = [release({ ts: from - 5 * MIN }), refusal(from + MIN, alice)]
    const r = reportOf(entries, { space: SPACE, subject: alice.did, from }, from + 20 * MIN)
    const v = verifyReport(asJson(r), SPACE)
    assert.ok(v.ok, v.ok ? '' : v.failure)
    const held = v.holdings.find(h => h.subject === alice.did && h.resource === STREAM)
    assert.ok(held !== undefined, 'the report says alice held no key in the range, yet she held one until T + 10 min')
    assert.ok(held.intervals.some(i => i.from <= from && i.until >= from + 10 * MIN))
  })

  it('rejects an entry that does not match the query, even with a valid proof', () => {
    const leaves = log.map(encodeEntry).map(leafHash)
    const bytes = log.map(encodeEntry)
    const r = asJson(good)
    // bob's release (index 3) is in the log and its proof is valid, but the report is for alice
    r.entries.push({ index: 3, entry: toBase64url(bytes[3]), proof: inclusionProof(leaves, 3).map(toBase64url) })
    assertRejected(r, /log index 3\): does not match the report's query/, "bob's release in alice's report")
    const narrowed = asJson(good)
    narrowed.query.resource = OTHER_STREAM
    assertRejected(narrowed, /does not match the report's query/, 'a query narrowed after the fact')
  })

  it('rejects what is not a report', () => {
    for (const [what, value] of [
      ['null', null],
      ['a string', 'report'],
      ['another format', { ...asJson(good), format: 'edgeward-audit-report/v0' }],
      ['no query', { ...asJson(good), query: undefined }],
      ['no entries', { ...asJson(good), entries: undefined }],
      ['a genesis that is not base64url', { ...asJson(good), genesis: '***' }],
      ['a head that is not base64url', { ...asJson(good), head: '***' }],
    ] as const) {
      const v = verifyReport(value)
      assert.equal(v.ok, false, what)
    }
  })
})

describe('reports of random logs', () => {
  const people = [alice, bob]
  const grants = [GRANT_A, GRANT_B]
  const streams = [STREAM, OTHER_STREAM]

  type Ev =
    | { kind: 'release'; gap: number; who: number; grant: number; stream: number; lease: number }
    | { kind: 'revocation'; gap: number; target: 'grant' | 'subject' | 'device'; which: number }

  const event: fc.Arbitrary<Ev> = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('release' as const),
        gap: fc.integer({ min: 0, max: 10 * MIN }),
        who: fc.nat(1),
        grant: fc.nat(1),
        stream: fc.nat(1),
        lease: fc.integer({ min: 0, max: LEASE }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('revocation' as const),
        gap: fc.integer({ min: 0, max: 10 * MIN }),
        target: fc.constantFrom('grant' as const, 'subject' as const, 'device' as const),
        which: fc.nat(1),
      }),
    },
  )

  function entriesOf(events: Ev[]): AuditEntry[] {
    let ts = T0
    return events.map(ev => {
      ts += ev.gap
      if (ev.kind === 'release') {
        return release({
          ts,
          who: people[ev.who],
          grant: grants[ev.grant],
          stream: streams[ev.stream],
          leaseEnd: ts + ev.lease,
        })
      }
      const p = people[ev.which]
      const target =
        ev.target === 'grant'
          ? { grant: grants[ev.which] }
          : ev.target === 'subject'
            ? { subject: p.did }
            : { device: p.peer }
      return revocation(ts, target)
    })
  }

  /** Reference: each release held until the earliest of lease end, asOf and an ending revocation; then the union. */
  function reference(entries: AuditEntry[], asOf: number): Map<string, [number, number][]> {
    const revs = entries.filter((e): e is RevocationEntry => e.t === 'revocation')
    const raw = new Map<string, [number, number][]>()
    for (const e of entries) {
      if (e.t !== 'release') continue
      const ends = [e.leaseEnd, asOf]
      for (const r of revs) {
        const t = r.target
        const hits =
          ('grant' in t && t.grant === e.grant) ||
          ('subject' in t && t.subject === e.subject) ||
          ('device' in t && t.device === e.device)
        if (hits && r.ts >= e.ts) ends.push(r.ts)
      }
      const key = `${e.subject} ${e.stream}`
      raw.set(key, [...(raw.get(key) ?? []), [e.ts, Math.max(e.ts, Math.min(...ends))]])
    }
    const out = new Map<string, [number, number][]>()
    for (const [key, list] of raw) {
      const merged: [number, number][] = []
      for (const [from, until] of list.sort((a, b) => a[0] - b[0])) {
        const last = merged[merged.length - 1]
        if (last !== undefined && from <= last[1]) last[1] = Math.max(last[1], until)
        else merged.push([from, until])
      }
      out.set(key, merged)
    }
    return out
  }

  it('verifies, and states the holdings an independent reference computes', () => {
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 30 * MIN }),
        fc.option(fc.nat(1), { nil: undefined }),
        (events, tail, subject) => {
          const entries = entriesOf(events)
          const asOf = entries[entries.length - 1].ts + tail
          const query: ReportQuery =
            subject === undefined ? { space: SPACE } : { space: SPACE, subject: people[subject].did }
          const report = reportOf(entries, query, asOf)
          const v = verifyReport(asJson(report), SPACE)
          assert.equal(v.ok, true, v.ok ? '' : v.failure)
          if (!v.ok) return
          const decoded = report.entries.map(e => decodeEntry(fromBase64url(e.entry)))
          assert.deepEqual(v.holdings, computeHoldings(decoded, asOf))
          assert.deepEqual(report.holdings, v.holdings)

          const expected = reference(
            entries.filter(e => matchesQuery(e, query)),
            asOf,
          )
          assert.deepEqual(
            new Map(v.holdings.map(h => [`${h.subject} ${h.resource}`, h.intervals.map(i => [i.from, i.until])])),
            expected,
          )
          for (const h of v.holdings) {
            const total = h.intervals.reduce((s, i) => s + i.until - i.from, 0)
            assert.equal(h.minutes, minutes(total))
            for (const [k, i] of h.intervals.entries()) {
              assert.ok(i.until <= asOf, 'no interval ends after the head')
              if (k > 0) assert.ok(i.from > h.intervals[k - 1].until, 'intervals are sorted and disjoint')
            }
          }
        },
      ),
      { numRuns: 60 },
    )
  })
})
