/**
 * Audit reports across custodians, on real nodes in one process (LevelDB, libp2p over TCP on
 * loopback): with the owner stopped, a reader reads from two of three custodians (k = 2); the
 * owner, back, makes a report that carries each releasing custodian's entries with inclusion
 * proofs against that custodian's signed head, and the interval the reader held two shares;
 * it verifies offline, and a changed custodian entry or head fails naming the log. A custodian
 * answers only the space's owner, from the peer the request names; one that is down is named
 * missing. Custodians' heads are gossiped to the space's members, which catch them equivocating.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import { runCli } from '../../node/cli/local-network.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { request } from '../../node/services/stream-io.ts'
import {
  AUDIT_ENTRIES_PROTOCOL,
  createEntriesRequest,
  decodeEntriesResponse,
  MAX_ENTRIES_RESPONSE_BYTES,
} from '../../protocols/audit/entries-request.ts'
import { auditTopic, encodeAuditMessage, openTreeHead, signTreeHead } from '../../protocols/audit/heads.ts'
import { type AuditReport, verifyReport } from '../../protocols/audit/report.ts'
import { seenHead } from '../support/audit.ts'
import { custodySuite } from '../support/custody.ts'
import { publish, STREAM } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const released = (c: EdgewardNode) => c.metrics.total('edgeward_custody_releases_total')
const refused = (c: EdgewardNode, reason: string) =>
  c.metrics.total('edgeward_audit_entries_requests_refused_total', `reason="${reason}"`)

/** A copy of a report, to change. */
const copy = (r: AuditReport): AuditReport => JSON.parse(JSON.stringify(r))

describe('audit: reports across custodians', { timeout: 180_000 }, () => {
  const s = custodySuite('audit-custody')
  let report: AuditReport
  let releasers: EdgewardNode[]

  it('a custodian’s head is gossiped to the space’s members once its log grows', async () => {
    await s.setUp()
    await s.grantReader()
    await publish(s.owner, [s.reader, ...s.custodians], s.space, STREAM, [1, 2, 3])
    await s.dealt(1)
    await s.peers.stop(s.owner)
    const read = await s.reader.data.read(s.space, STREAM)
    assert.deepEqual(
      read.map(r => r.value),
      [1, 2, 3],
    )
    releasers = s.custodians.filter(c => released(c) > 0)
    assert.ok(releasers.length >= 2, `${releasers.length} custodians released`)
    for (const c of releasers) {
      await waitFor(`the reader to accept a head of ${c.identity.peerId}'s log with its release`, async () => {
        const head = await seenHead(s.reader, c.identity.peerId)
        return head !== undefined && head.size === c.audit!.size ? true : undefined
      })
    }
  })

  it('the owner’s report carries each releasing custodian’s entries, proven, and the reader’s two-share interval', async () => {
    s.owner = await s.peers.start(s.peers.dir('owner'), { bootstrap: s.custodians.flatMap(c => c.addresses()) })
    const asked = Date.now()
    report = await s.owner.audit!.report({ space: s.space })
    const custody = report.custody!
    assert.ok(custody !== undefined, 'the report has a custody part')
    assert.equal(custody.sets.length, 1)
    assert.deepEqual(custody.missing, [])
    assert.deepEqual(custody.logs.map(l => l.peer).sort(), s.custodians.map(c => c.identity.peerId).sort())
    const result = verifyReport(report, { space: s.space, owner: s.owner.identity.principal.did })
    if (!result.ok) assert.fail(result.failure)
    const verified = result.custody!.logs
    const reader = s.reader.identity.principal.did
    for (const c of releasers) {
      const log = verified.find(l => l.peer === c.identity.peerId)!
      assert.equal(log.principal, c.identity.principal.did)
      assert.ok(
        log.entries.some(e => e.t === 'release' && e.subject === reader && e.stream === STREAM),
        `the release of ${c.identity.peerId} is in the report`,
      )
    }
    const held = custody.holdings.find(h => h.subject === reader && h.resource === STREAM && h.epoch === 0)!
    assert.ok(held !== undefined, 'a holding through custodians for the reader')
    assert.deepEqual(held.releasedBy, releasers.map(c => c.identity.peerId).sort())
    assert.equal(held.intervals.length, 1)
    assert.equal(held.intervals[0].endedBy, 'open')
    assert.ok(held.intervals[0].until > held.intervals[0].from)
    // each custodian vouches for its log as of the report: the shares are still held then
    assert.ok(held.intervals[0].until >= asked, 'held until the report was made')
    // the key holder released nothing while it was stopped: its own holdings do not show this one
    assert.deepEqual(
      report.holdings.filter(h => h.subject === reader),
      [],
    )
  })

  it('verify names the custodian whose entry or head was changed', () => {
    const logIndex = report.custody!.logs.findIndex(l => l.entries.length > 0)
    const peer = report.custody!.logs[logIndex].peer

    const entry = copy(report)
    const bytes = fromBase64url(entry.custody!.logs[logIndex].entries[0].entry)
    bytes[bytes.length - 1] ^= 1
    entry.custody!.logs[logIndex].entries[0].entry = toBase64url(bytes)
    const e = verifyReport(entry)
    assert.equal(e.ok, false)
    assert.match(e.ok ? '' : e.failure, new RegExp(`^custodian log ${peer}: entry 0 `))

    const head = copy(report)
    const raw = fromBase64url(head.custody!.logs[logIndex].head)
    raw[raw.length - 1] ^= 1
    head.custody!.logs[logIndex].head = toBase64url(raw)
    const h = verifyReport(head)
    assert.equal(h.ok, false)
    assert.match(h.ok ? '' : h.failure, new RegExp(`^custodian log ${peer}: tree head`))

    // a head signed by someone else for the custodian's log, with proofs that fit it
    const forged = copy(report)
    const real = openTreeHead(fromBase64url(report.custody!.logs[logIndex].head)).body
    const other = signTreeHead(s.reader.identity.principal, real.log, real.size, real.root, real.ts)
    forged.custody!.logs[logIndex].head = toBase64url(other.bytes)
    const f = verifyReport(forged)
    assert.equal(f.ok, false)
    assert.match(
      f.ok ? '' : f.failure,
      new RegExp(`^custodian log ${peer}: the tree head is not signed by the custodian`),
    )

    const held = copy(report)
    held.custody!.holdings[0].minutes += 1
    const m = verifyReport(held)
    assert.equal(m.ok, false)
    assert.match(m.ok ? '' : m.failure, /holdings with custodians differ/)

    const dropped = copy(report)
    dropped.custody!.logs.splice(logIndex, 1)
    const d = verifyReport(dropped)
    assert.equal(d.ok, false)
    assert.match(d.ok ? '' : d.failure, new RegExp(`custodian ${peer} is neither in the report nor named missing`))
  })

  it('`edgeward audit verify` (a real process) lists each custodian’s log, and names a changed one with exit 1', async () => {
    const file = s.peers.dir('report.json')
    await writeFile(file, JSON.stringify(report))
    const ok = await runCli(['audit', 'verify', file, '--owner', s.owner.identity.principal.did])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /custodians' logs: 3 verified, 0 missing/)
    for (const c of releasers) assert.match(ok.stdout, new RegExp(`custodian ${c.identity.peerId} \\(did:key:`))
    assert.match(ok.stdout, /keys held through custodians/)
    const json = JSON.parse((await runCli(['audit', 'verify', file, '--json'])).stdout)
    assert.equal(json.custodians.verified.length, 3)
    const changed = copy(report)
    const logIndex = changed.custody!.logs.findIndex(l => l.entries.length > 0)
    const entry = changed.custody!.logs[logIndex].entries[0]
    entry.proof = [...entry.proof, toBase64url(new Uint8Array(32))]
    await writeFile(file, JSON.stringify(changed))
    const bad = await runCli(['audit', 'verify', file])
    assert.equal(bad.code, 1)
    assert.match(
      bad.stderr,
      new RegExp(`custodian log ${changed.custody!.logs[logIndex].peer}: entry 0 .*inclusion proof`),
    )
  })

  it('a custodian refuses anyone but the space’s owner, and the owner’s request from another peer', async () => {
    const c = s.custodians[0]
    const ask = async (body: Uint8Array) =>
      decodeEntriesResponse(
        await request(
          s.reader.libp2p,
          peerIdFromString(c.identity.peerId),
          AUDIT_ENTRIES_PROTOCOL,
          body,
          MAX_ENTRIES_RESPONSE_BYTES,
        ),
      )
    // a member's own signed request; the owner's signed request, replayed by a peer it does not name
    for (const [by, code] of [
      [s.reader, 'not-the-owner'],
      [s.owner, 'not-the-sender'],
    ] as const) {
      const before = refused(c, code)
      const req = createEntriesRequest(by.identity.principal, by.identity.peerId, { space: s.space }, Date.now())
      const res = await ask(req.bytes)
      assert.equal(res.ok, false)
      if (!res.ok) assert.equal(res.code, code)
      assert.equal(refused(c, code), before + 1)
    }
    const junk = await ask(new Uint8Array([1, 2, 3]))
    assert.equal(junk.ok, false)
    if (!junk.ok) assert.equal(junk.code, 'malformed')
  })

  it('members catch a custodian whose log equivocates', async () => {
    const c = releasers[0]
    const log = c.identity.peerId
    const raw = await s.reader.store.audit.get(`seen!${log}`)
    assert.ok(raw !== undefined)
    const seen = openTreeHead(raw).body
    const root = new Uint8Array(seen.root)
    root[0] ^= 1
    const fork = signTreeHead(c.identity.principal, log, seen.size, root, seen.ts + 1)
    const message = encodeAuditMessage({ t: 'equivocation', a: raw, b: fork.bytes, reason: 'a test fork' })
    await s.custodians.find(o => o !== c)!.libp2p.services.pubsub.publish(auditTopic(s.space), message)
    await waitFor('the reader to keep the evidence against the custodian', async () =>
      s.reader.audit!.equivocations().some(e => e.log === log) ? true : undefined,
    )
  })

  it('a custodian that does not answer is named missing, and the report still verifies', async () => {
    const gone = s.custodians.find(c => !releasers.includes(c)) ?? s.custodians[2]
    await s.peers.stop(gone)
    const again = await s.owner.audit!.report({ space: s.space, subject: s.reader.identity.principal.did })
    const missing = again.custody!.missing
    assert.deepEqual(
      missing.map(m => m.peer),
      [gone.identity.peerId],
    )
    assert.ok(missing[0].reason.length > 0)
    assert.equal(again.custody!.logs.length, 2)
    const result = verifyReport(again, { space: s.space })
    assert.ok(result.ok, result.ok ? '' : result.failure)
    assert.deepEqual(
      result.custody!.missing.map(m => m.peer),
      [gone.identity.peerId],
    )
  })
})
