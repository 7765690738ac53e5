/**
 * A key holder whose heads cannot be checked, with real nodes in one process: a gateway G
 * that gossips tree heads and a reader R that watches its log. G refuses every consistency
 * proof (it no longer speaks the proof protocol) or takes each request and never answers.
 * (a) G gossips a forked head and refuses: after `proofTries` failed requests R shows G's log
 * as unverifiable in `status` (the API's JSON and the CLI's text) and in `/metrics`, keeps the
 * head it had accepted and the forked one on disk (they survive R's restart), and accepts
 * nothing. (b) G's log grows honestly while it ignores the requests: R shows it as
 * unverifiable, and once G answers again R accepts the new head and the log is verified
 * again, in `status` and `/metrics` alike. Before this, R logged each failure at debug level
 * and kept the old head: a holder that forked and answered nothing was never reported.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { bytesEqual } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { leafHash, rootFromLeafHashes } from '../../crypto/merkle.ts'
import { ApiServer } from '../../node/api.ts'
import { ensureApiToken } from '../../node/api-token.ts'
import type { AuditStatus } from '../../node/cli/audit.ts'
import { status as statusCommand } from '../../node/cli/commands.ts'
import type { EdgewardNode } from '../../node/node.ts'
import {
  AUDIT_PROOF_PROTOCOL,
  auditTopic,
  decodeProofRequest,
  encodeAuditMessage,
  encodeProofResponse,
  openTreeHead,
  signTreeHead,
} from '../../protocols/audit/heads.ts'
import { seenHead } from '../support/audit.ts'
import { grantTo, HOUR, Peers, spaceWith } from '../support/peers.ts'
import { until, waitFor } from '../support/wait.ts'

const HOLDER = { headIntervalMs: 200 }
const READER = { headIntervalMs: 200, proofRetryMs: 200, proofTries: 3 }

type ProofMode = 'refuse' | 'ignore' | 'answer'

/**
 * Replace G's proof handler with one that refuses (resets the stream), ignores (reads the
 * request and never answers, until the requester gives up) or answers as G's own does, as
 * `mode()` says at the time of each request.
 */
async function proofHandler(g: EdgewardNode, mode: () => ProofMode): Promise<{ requests: number }> {
  const seen = { requests: 0 }
  await g.libp2p.unhandle(AUDIT_PROOF_PROTOCOL)
  await g.libp2p.handle(AUDIT_PROOF_PROTOCOL, async (stream: Stream) => {
    seen.requests++
    const m = mode()
    if (m === 'refuse') return void stream.abort(new Error('this key holder answers no proof request'))
    const lp = lpStream(stream)
    const req = decodeProofRequest((await lp.read()).subarray())
    if (m === 'ignore') {
      await new Promise(resolve => stream.addEventListener('close', resolve, { once: true }))
      return
    }
    if (req.kind !== 'consistency') throw new Error('the reader asks only for consistency proofs')
    await lp.write(encodeProofResponse(await g.audit!.consistencyProof(req.from, req.to)))
    await stream.close()
  })
  return seen
}

/** A log the status shows as unverifiable. */
type ShownUnverifiable = NonNullable<AuditStatus['unverifiable']>[number]

const statusOf = (r: EdgewardNode) =>
  new ApiServer(r, 'unused').status() as {
    audit: { equivocations: unknown[]; unverifiable?: ShownUnverifiable[] }
  }

/** The logs R's status shows as unverifiable. */
const shown = (r: EdgewardNode) => statusOf(r).audit.unverifiable ?? []

/** The `edgeward_audit_log_unverifiable` sample for `log` in R's Prometheus text, if any. */
function gaugeOf(prometheus: string, log: string): string | undefined {
  return prometheus.split('\n').find(l => l.startsWith(`edgeward_audit_log_unverifiable{log="${log}"} `))
}

describe('a key holder whose tree heads cannot be checked', { timeout: 120_000 }, () => {
  const peers = new Peers()
  const apis: ApiServer[] = []

  before(async () => {
    await peers.init('audit-unverifiable')
  })

  after(async () => {
    await Promise.all(apis.map(a => a.close()))
    await peers.stopAll()
  })

  /** R's local API as the CLI finds it (DIR/node.json and DIR/api-token), for `status` and `/metrics`. */
  async function apiOf(r: EdgewardNode, dir: string): Promise<{ url: string; token: string }> {
    const token = await ensureApiToken(dir)
    const api = new ApiServer(r, token)
    apis.push(api)
    const url = await api.listen(0)
    const info = { peerId: r.identity.peerId, did: r.identity.principal.did, addresses: [], api: url, pid: process.pid }
    await writeFile(join(dir, 'node.json'), JSON.stringify(info))
    return { url, token }
  }

  async function metricsOf(api: { url: string; token: string }): Promise<string> {
    const res = await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${api.token}` } })
    assert.equal(res.status, 200)
    return res.text()
  }

  /** `edgeward status` as the CLI prints it, text and --json. */
  async function cliStatus(dir: string, json: boolean): Promise<string> {
    const out: string[] = []
    await statusCommand(dir, { json, out: l => void out.push(l), err: () => undefined })
    return out.join('\n')
  }

  it('gossips a forked head and refuses every proof: unverifiable after the tries, the heads kept across a restart', async () => {
    const g = await peers.node('g-refuse', HOLDER)
    const rDir = await peers.identity('r-refuse')
    let r = await peers.start(rDir, { ...READER, bootstrap: g.addresses() })
    const space = await spaceWith(g, [r], 'refuses')
    const now = Date.now()
    await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    await until('two grant entries', () => g.audit!.size === 2)
    await until('R to accept a head of size 2', () => r.audit!.seenHead(g.identity.peerId)?.body.size === 2)
    const genuine = r.audit!.seenHead(g.identity.peerId)!

    const handled = await proofHandler(g, () => 'refuse')
    // a head of size 4 under G's key, sent by G, that no proof links to the one R accepted
    const otherRoot = rootFromLeafHashes([1, 2, 3, 4].map(() => leafHash(randomBytes(8))))
    const forked = signTreeHead(g.identity.principal, g.identity.peerId, 4, otherRoot, Date.now())
    await g.libp2p.services.pubsub.publish(auditTopic(space), encodeAuditMessage({ t: 'head', head: forked.bytes }))

    await until('R’s status to show G’s log as unverifiable', () => shown(r).length > 0, 20_000)
    assert.ok(handled.requests >= READER.proofTries, `R asked ${handled.requests} times`)
    const [u] = r.audit!.unverifiable()
    assert.equal(u.log, g.identity.peerId)
    assert.ok(u.tries >= READER.proofTries)
    assert.ok(bytesEqual(u.accepted, genuine.bytes), 'the head R had accepted is kept')
    assert.ok(bytesEqual(u.unchecked, forked.bytes), 'the head no proof linked to it is kept')
    assert.equal(openTreeHead(u.unchecked).issuer, g.identity.principal.did, "the kept head carries G's signature")
    assert.deepEqual(
      shown(r).map(s => [s.log, s.acceptedSize, s.uncheckedSize]),
      [[g.identity.peerId, 2, 4]],
    )
    assert.deepEqual(statusOf(r).audit.equivocations, [], 'refusing is not proof of a fork')
    assert.equal((await seenHead(r, g.identity.peerId))?.size, 2, 'R accepts nothing it could not check')

    // what an operator sees: the CLI's status (text and --json) and the Prometheus metrics
    const api = await apiOf(r, rDir)
    assert.equal(
      gaugeOf(await metricsOf(api), g.identity.peerId),
      `edgeward_audit_log_unverifiable{log="${g.identity.peerId}"} 1`,
    )
    assert.match(await metricsOf(api), /^# TYPE edgeward_audit_log_unverifiable gauge$/m)
    const text = await cliStatus(rDir, false)
    assert.match(
      text,
      new RegExp(
        `^ {2}unverifiable log ${g.identity.peerId}: no consistency proof from size 2 to 4 since \\S+Z, \\d+ tries \\(last: .+\\)$`,
        'm',
      ),
    )
    const json = JSON.parse(await cliStatus(rDir, true)) as { audit: { unverifiable: ShownUnverifiable[] } }
    assert.deepEqual(
      json.audit.unverifiable.map(s => [s.log, s.acceptedSize, s.uncheckedSize]),
      [[g.identity.peerId, 2, 4]],
    )

    // the evidence is on disk: a restarted reader still shows it, with the same heads
    await peers.stop(r)
    r = await peers.start(rDir, READER)
    const [kept] = r.audit!.unverifiable()
    assert.equal(kept?.log, g.identity.peerId, 'still unverifiable after a restart')
    assert.ok(bytesEqual(kept.accepted, genuine.bytes) && bytesEqual(kept.unchecked, forked.bytes))
    assert.equal(kept.since, u.since)
    assert.equal(r.metrics.total('edgeward_audit_log_unverifiable', `log="${g.identity.peerId}"`), 1)

    // a second head of size 4 with another root needs no proof: the kept head becomes evidence of equivocation
    await until('R to be back on G’s audit topic', () =>
      g.libp2p.services.pubsub.getSubscribers(auditTopic(space)).some(p => p.toString() === r.identity.peerId),
    )
    const otherFork = signTreeHead(
      g.identity.principal,
      g.identity.peerId,
      4,
      otherRoot.map(x => x ^ 1),
      Date.now(),
    )
    await g.libp2p.services.pubsub.publish(auditTopic(space), encodeAuditMessage({ t: 'head', head: otherFork.bytes }))
    await until('R to record the equivocation', () => r.audit!.equivocations().length > 0)
    const [ev] = r.audit!.equivocations()
    assert.equal(ev.reason, 'two heads of size 4 with different roots')
    assert.ok(bytesEqual(ev.a, forked.bytes) && bytesEqual(ev.b, otherFork.bytes))
    // proven forked: no longer merely unverifiable
    await waitFor('R to drop the kept heads, now evidence', async () =>
      (await r.store.audit.get(`u!${g.identity.peerId}`)) === undefined ? true : undefined,
    )
    assert.deepEqual(shown(r), [])
    assert.equal(r.metrics.total('edgeward_audit_log_unverifiable', `log="${g.identity.peerId}"`), 0)
  })

  it('ignores proof requests while its log grows: unverifiable, then verified again once it answers', async () => {
    const g = await peers.node('g-ignore', HOLDER)
    const r = await peers.node('r-ignore', { ...READER, proofTries: 2, bootstrap: g.addresses() })
    const space = await spaceWith(g, [r], 'ignores')
    const now = Date.now()
    await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    await until('R to accept a head of size 1', () => r.audit!.seenHead(g.identity.peerId)?.body.size === 1)
    // an honest log is checked without a failure
    await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    await until('R to accept a head of size 2', () => r.audit!.seenHead(g.identity.peerId)?.body.size === 2)
    assert.equal(r.metrics.total('edgeward_audit_proof_failures_total'), 0)
    assert.deepEqual(shown(r), [])

    let mode: ProofMode = 'ignore'
    const handled = await proofHandler(g, () => mode)
    await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    await until('a third grant entry', () => g.audit!.size === 3)
    // each ignored request ends at the requester's 10 s time-out
    await until('R’s status to show G’s log as unverifiable', () => shown(r).length > 0, 45_000)
    const [u] = r.audit!.unverifiable()
    assert.equal(u.log, g.identity.peerId)
    assert.equal(openTreeHead(u.accepted).body.size, 2)
    assert.equal(openTreeHead(u.unchecked).body.size, 3)
    assert.ok(handled.requests >= 2)
    assert.equal(r.metrics.total('edgeward_audit_log_unverifiable', `log="${g.identity.peerId}"`), 1)
    assert.equal((await seenHead(r, g.identity.peerId))?.size, 2)

    mode = 'answer'
    await until('R to verify G’s log again', () => shown(r).length === 0, 30_000)
    assert.equal((await seenHead(r, g.identity.peerId))?.size, 3, 'the head is accepted once its proof came')
    assert.deepEqual(statusOf(r).audit.unverifiable, [], 'status says so')
    assert.deepEqual(statusOf(r).audit.equivocations, [])
    assert.equal(r.metrics.total('edgeward_audit_log_unverifiable', `log="${g.identity.peerId}"`), 0)
    await waitFor('R to drop the heads it kept against an honest log', async () =>
      (await r.store.audit.get(`u!${g.identity.peerId}`)) === undefined ? true : undefined,
    )
  })
})
