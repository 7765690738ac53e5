/**
 * Keys held through custodians, pure: `computeCustodyHoldings` over a table of cases (k shares
 * overlapping, one custodian alone, a custodian counted once however often it released, a
 * revocation in the key holder's log, a head that cuts a lease, several sets), and a property
 * against a reference that checks every millisecond; the wire messages of the entries request
 * decoded, and refused when malformed.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { encodeCanonical } from '../../crypto/encoding.ts'
import { computeCustodyHoldings, type SetShape } from '../../protocols/audit/custody-report.ts'
import type { AuditEntry, ReleaseEntry, RevocationEntry } from '../../protocols/audit/entries.ts'
import {
  createEntriesRequest,
  decodeEntriesResponse,
  encodeEntriesResponse,
  openEntriesRequest,
} from '../../protocols/audit/entries-request.ts'
import { fakeId, newPeerId, newPrincipal } from '../protocols/fixtures.ts'

const SPACE = fakeId('5')
const GRANT = fakeId('a')
const READER = newPrincipal().did
const DEVICE = newPeerId()
const [C1, C2, C3] = [newPeerId(), newPeerId(), newPeerId()]
const FAR = 1_000_000

/** A custodian's release of epoch 0 (or `epochs`) to the reader, from `ts` to `leaseEnd`. */
function release(ts: number, leaseEnd: number, epochs = [0]): ReleaseEntry {
  return {
    t: 'release',
    ts,
    space: SPACE,
    subject: READER,
    device: DEVICE,
    grant: GRANT,
    stream: 'temperature',
    form: 'raw',
    epochs,
    leaseEnd,
    renewal: false,
    request: new Uint8Array(1),
    reqHash: new Uint8Array(32),
  }
}

const revocation = (ts: number): RevocationEntry => ({
  t: 'revocation',
  ts,
  space: SPACE,
  revocation: fakeId('b'),
  target: { grant: GRANT },
})

const log = (peer: string, entries: AuditEntry[], asOf = FAR) => ({ peer, entries, asOf })
const ALL: SetShape = { peers: [C1, C2, C3], k: 2 }

describe('computeCustodyHoldings', () => {
  const cases: {
    name: string
    sets?: SetShape[]
    logs: ReturnType<typeof log>[]
    revocations?: RevocationEntry[]
    want: { from: number; until: number; endedBy: string }[]
  }[] = [
    {
      name: 'two custodians overlap: held from the second release to the first lease end',
      logs: [log(C1, [release(0, 10)]), log(C2, [release(5, 20)])],
      want: [{ from: 5, until: 10, endedBy: 'lease-end' }],
    },
    {
      name: 'one custodian alone: never held',
      logs: [log(C1, [release(0, 10)])],
      want: [],
    },
    {
      name: 'one custodian releasing twice counts once',
      logs: [log(C1, [release(0, 10), release(5, 15)])],
      want: [],
    },
    {
      name: 'a revocation in the key holder’s log ends both shares',
      logs: [log(C1, [release(0, 100)]), log(C2, [release(5, 100)])],
      revocations: [revocation(8)],
      want: [{ from: 5, until: 8, endedBy: 'revocation' }],
    },
    {
      name: 'a lease past a custodian’s head is open at that head',
      logs: [log(C1, [release(0, 100)], 50), log(C2, [release(5, 100)], 60)],
      want: [{ from: 5, until: 50, endedBy: 'open' }],
    },
    {
      name: 'a third share keeps k while another ends',
      logs: [log(C1, [release(0, 10)]), log(C2, [release(0, 20)]), log(C3, [release(10, 30)])],
      want: [{ from: 0, until: 20, endedBy: 'lease-end' }],
    },
    {
      name: 'shares of custodians of different sets do not add up',
      sets: [
        { peers: [C1, C3], k: 2 },
        { peers: [C2, C3], k: 2 },
      ],
      logs: [log(C1, [release(0, 10)]), log(C2, [release(0, 10)])],
      want: [],
    },
    {
      name: 'a set with a lower threshold is enough',
      sets: [ALL, { peers: [C1, C2, C3], k: 3 }],
      logs: [log(C1, [release(0, 10)]), log(C2, [release(2, 10)])],
      want: [{ from: 2, until: 10, endedBy: 'lease-end' }],
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const got = computeCustodyHoldings(c.sets ?? [ALL], c.logs, c.revocations ?? [])
      assert.equal(got.length, 1)
      assert.equal(got[0].subject, READER)
      assert.equal(got[0].epoch, 0)
      assert.deepEqual(got[0].intervals, c.want)
      assert.deepEqual(got[0].releasedBy, [...new Set(c.logs.map(l => l.peer))].sort())
    })
  }

  it('keeps epochs apart: shares of two epochs are two holdings', () => {
    const got = computeCustodyHoldings([ALL], [log(C1, [release(0, 10, [0, 1])]), log(C2, [release(0, 10, [1])])], [])
    assert.deepEqual(
      got.map(h => [h.epoch, h.intervals.length]),
      [
        [0, 0],
        [1, 1],
      ],
    )
  })

  it('holds exactly at the times k custodians of one set hold a share (a reference checks each ms)', () => {
    const peers = [C1, C2, C3]
    const arbRelease = fc.record({ peer: fc.nat(2), from: fc.nat(60), length: fc.integer({ min: 1, max: 40 }) })
    fc.assert(
      fc.property(fc.array(arbRelease, { maxLength: 8 }), fc.integer({ min: 1, max: 110 }), (rs, asOf) => {
        const logs = peers.map(p =>
          log(
            p,
            rs.filter(r => peers[r.peer] === p).map(r => release(r.from, r.from + r.length)),
            asOf,
          ),
        )
        const got = computeCustodyHoldings([ALL], logs, [])
        const held = (t: number) => got.some(h => h.intervals.some(i => i.from <= t && t < i.until))
        for (let t = 0; t < 110; t++) {
          const holders = new Set(rs.filter(r => r.from <= t && t < Math.min(r.from + r.length, asOf)).map(r => r.peer))
          assert.equal(held(t), holders.size >= 2, `at ${t}`)
        }
      }),
    )
  })
})

describe('entries request and response', () => {
  const owner = newPrincipal()
  const peer = newPeerId()

  it('opens what it signs, with the query and a page', () => {
    const q = { space: SPACE, subject: READER, resource: 'temperature', from: 1, until: 2 }
    const req = createEntriesRequest(owner, peer, q, 1000, { size: 10, start: 3 })
    const opened = openEntriesRequest(req.bytes)
    assert.equal(opened.issuer, owner.did)
    assert.deepEqual(opened.body, {
      t: 'audit-entries-request',
      iss: owner.did,
      peer,
      ts: 1000,
      size: 10,
      start: 3,
      ...q,
    })
  })

  it('refuses a page that starts past its size, and a record changed after signing', () => {
    assert.throws(() => createEntriesRequest(owner, peer, { space: SPACE }, 1000, { size: 2, start: 3 }))
    const req = createEntriesRequest(owner, peer, { space: SPACE }, 1000)
    const bytes = new Uint8Array(req.bytes)
    bytes[bytes.length - 1] ^= 1
    assert.throws(() => openEntriesRequest(bytes))
  })

  it('decodes answers and refusals, and refuses what is malformed', () => {
    const page = {
      ok: true as const,
      entries: [{ index: 4, entry: new Uint8Array(3), proof: [new Uint8Array(32)] }],
      next: 5,
    }
    assert.deepEqual(decodeEntriesResponse(encodeEntriesResponse(page)), page)
    const no = { ok: false as const, code: 'not-the-owner', reason: 'only the owner' }
    assert.deepEqual(decodeEntriesResponse(encodeEntriesResponse(no)), no)
    for (const bad of [
      { ok: true, entries: [{ index: 0, entry: new Uint8Array(3), proof: [new Uint8Array(31)] }] },
      { ok: true, entries: [], extra: 1 },
      { ok: false, code: 'x', reason: 'two\nlines' },
      { ok: 'yes', entries: [] },
    ]) {
      assert.throws(
        () => decodeEntriesResponse(encodeCanonical(bad)),
        (err: Error) => err.name === 'InvalidMessageError',
      )
    }
  })
})
