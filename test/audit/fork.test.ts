/**
 * Equivocation, with real nodes in one process: a gateway G and two readers that watch its
 * log. (a) G signs two heads of one size with different roots; (b) G's log is rewritten on
 * disk (a real fork, same prefix length and more) and G restarts: no consistency proof
 * links the head the readers accepted to the new one. Both readers keep the evidence (in
 * LevelDB: it survives a restart), count it, and show it in the status. Heads that G did
 * not sign, or that do not come from G, are refused and are no evidence against it.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { bytesEqual, encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { leafHash, MerkleFrontier, rootFromLeafHashes } from '../../crypto/merkle.ts'
import { ApiServer } from '../../node/api.ts'
import type { EdgewardNode } from '../../node/node.ts'
import type { EvidenceRecord } from '../../node/services/audit.ts'
import { DURABLE, openStore, pad } from '../../node/store.ts'
import { encodeEntry } from '../../protocols/audit/entries.ts'
import { auditTopic, encodeAuditMessage, openTreeHead, signTreeHead } from '../../protocols/audit/heads.ts'
import { fakeId, newPrincipal } from '../protocols/fixtures.ts'
import { logOf, seenHead } from '../support/audit.ts'
import { grantTo, HOUR, spaceWith, suitePeers } from '../support/peers.ts'
import { until, waitFor } from '../support/wait.ts'

const OPTS = { headIntervalMs: 200 }

/** Wait until every watcher accepted a head of `log` of `size`; returns what they accepted. */
async function accepted(watchers: EdgewardNode[], log: EdgewardNode, size: number) {
  const heads = []
  for (const w of watchers) {
    heads.push(
      await waitFor(`a reader to accept a head of size ${size}`, async () => {
        const h = await seenHead(w, log.identity.peerId)
        return h?.size === size ? h : undefined
      }),
    )
  }
  return heads
}

function evidenceAgainst(w: EdgewardNode, log: EdgewardNode): EvidenceRecord[] {
  return w.audit!.equivocations().filter(e => e.log === log.identity.peerId)
}

const equivocationsCounted = (w: EdgewardNode, log: EdgewardNode) =>
  w.metrics.total('edgeward_audit_equivocations_total', `log="${log.identity.peerId}"`)

const statusOf = (w: EdgewardNode) =>
  new ApiServer(w, 'unused').status() as { audit: { equivocations: { log: string; reason: string }[] } }

describe('equivocation by a key holder', { timeout: 60_000 }, () => {
  const peers = suitePeers('audit-fork')

  it('two heads of one size with different roots: both readers keep, count and show the evidence', async () => {
    const g = await peers.node('g-same', OPTS)
    const r1 = await peers.node('r1-same', { ...OPTS, bootstrap: g.addresses() })
    const r2 = await peers.node('r2-same', { ...OPTS, bootstrap: g.addresses() })
    const readers = [r1, r2]
    const space = await spaceWith(g, readers, 'same-size')
    const now = Date.now()
    for (const r of readers) await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    await until('two grant entries', () => g.audit!.size === 2)
    const [genuine] = await accepted(readers, g, 2)
    const topic = auditTopic(space)
    const publish = (head: Uint8Array) =>
      g.libp2p.services.pubsub.publish(topic, encodeAuditMessage({ t: 'head', head }))
    const otherRoot = rootFromLeafHashes([leafHash(randomBytes(8)), leafHash(randomBytes(8))])

    // no evidence from a head another key signed, even sent by G itself, nor from one G did not send
    const refusedBefore = readers.map(r => r.metrics.total('edgeward_audit_heads_refused_total'))
    const impostor = newPrincipal()
    await publish(signTreeHead(impostor, g.identity.peerId, 2, otherRoot, Date.now()).bytes)
    const relayed = signTreeHead(g.identity.principal, g.identity.peerId, 2, otherRoot, Date.now())
    await r1.libp2p.dial(multiaddr(r2.addresses()[0]))
    await until('r1 to see r2 on the audit topic', () =>
      r1.libp2p.services.pubsub.getSubscribers(topic).some(p => p.toString() === r2.identity.peerId),
    )
    await r1.libp2p.services.pubsub.publish(topic, encodeAuditMessage({ t: 'head', head: relayed.bytes }))
    await until('both readers to refuse the head signed by another key', () =>
      readers.every(
        (r, i) =>
          r.metrics.total('edgeward_audit_heads_refused_total', 'not-a-log-of-the-space') >= 1 &&
          r.metrics.total('edgeward_audit_heads_refused_total') > refusedBefore[i],
      ),
    )
    await until(
      'r2 to refuse the head that r1 sent in G’s name',
      () => r2.metrics.total('edgeward_audit_heads_refused_total', 'not-from-the-log') >= 1,
    )
    for (const r of readers) assert.deepEqual(evidenceAgainst(r, g), [], 'a forgery is no evidence')

    // G's own key, G's own connection: a second head of size 2 with another root
    const t0 = Date.now()
    const forged = signTreeHead(g.identity.principal, g.identity.peerId, 2, otherRoot, Date.now())
    await publish(forged.bytes)
    for (const r of readers) {
      await until('the reader to record the equivocation', () => evidenceAgainst(r, g).length > 0)
      const [ev] = evidenceAgainst(r, g)
      assert.match(ev.reason, /two heads of size 2 with different roots/)
      assert.ok(ev.seenAt >= t0)
      const pair = [openTreeHead(ev.a), openTreeHead(ev.b)]
      for (const h of pair) {
        assert.equal(h.issuer, g.identity.principal.did, "both heads carry G's signature")
        assert.equal(h.body.log, g.identity.peerId)
        assert.equal(h.body.size, 2)
      }
      const roots = pair.map(h => h.body.root)
      assert.ok(
        roots.some(x => bytesEqual(x, genuine.root)) && roots.some(x => bytesEqual(x, otherRoot)),
        'the evidence is the genuine head and the forged one',
      )
      await until('the equivocation to be counted', () => equivocationsCounted(r, g) === 1)
      const shown = statusOf(r).audit.equivocations
      assert.deepEqual(
        shown.map(e => [e.log, e.reason]),
        [[g.identity.peerId, ev.reason]],
      )
      const seen = (await seenHead(r, g.identity.peerId))!
      assert.ok(bytesEqual(seen.root, genuine.root), 'the reader keeps the head it accepted first')
    }
    assert.deepEqual(statusOf(g).audit.equivocations, [], 'G does not accuse itself')
    // the genuine head keeps coming every 200 ms and the readers gossip the evidence to each
    // other: the pair is still kept and counted once
    const heard = readers.map(() => 0)
    const listeners = readers.map((r, i) => {
      const l = (evt: CustomEvent<{ topic: string }>) => {
        if (evt.detail.topic === topic) heard[i]++
      }
      r.libp2p.services.pubsub.addEventListener('message', l as never)
      return l
    })
    try {
      await until('each reader to hear three more audit messages', () => heard.every(h => h >= 3))
    } finally {
      for (const [i, r] of readers.entries())
        r.libp2p.services.pubsub.removeEventListener('message', listeners[i] as never)
    }
    for (const r of readers) {
      await r.audit!.check(openTreeHead(forged.bytes))
      assert.equal(evidenceAgainst(r, g).length, 1)
      assert.equal(equivocationsCounted(r, g), 1)
    }
  })

  it('a forked log: no valid consistency proof from the accepted head; the evidence survives a reader restart', async () => {
    const gDir = await peers.identity('g-fork')
    let g = await peers.start(gDir, OPTS)
    const r1Dir = await peers.identity('r1-fork')
    let r1 = await peers.start(r1Dir, { ...OPTS, bootstrap: g.addresses() })
    const r2 = await peers.node('r2-fork', { ...OPTS, bootstrap: g.addresses() })
    const space = await spaceWith(g, [r1, r2], 'fork')
    const now = Date.now()
    for (const r of [r1, r2, r1]) await grantTo(g, space, r.identity.principal.did, { nbf: now, exp: now + HOUR })
    const n = 3
    await until('three grant entries', () => g.audit!.size === n)
    const [old] = await accepted([r1, r2], g, n)
    const original = await logOf(g)
    await peers.stop(g)

    // rewrite G's log on disk: n other entries, and two more (so the new head is larger)
    const forkedEntries = Array.from({ length: n + 2 }, (_, i) =>
      encodeEntry({
        t: 'grant',
        ts: now + 1000 * i,
        space,
        grant: fakeId('0123456789abcdef'[i]),
        subject: newPrincipal().did,
        streams: ['*'],
        nbf: now,
        exp: now + HOUR,
      }),
    )
    const store = await openStore(join(gDir, 'db'))
    try {
      await store.audit.clear({ gt: 'e!', lt: 'e!~' })
      await store.audit.clear({ gt: 'n!', lt: 'n!~' })
      const batch = store.audit.batch()
      let frontier = MerkleFrontier.empty()
      for (const [i, bytes] of forkedEntries.entries()) {
        batch.put(`e!${pad(i)}`, bytes)
        const next = frontier.append(leafHash(bytes))
        for (const node of next.completed) batch.put(`n!${pad(node.level)}!${pad(node.index)}`, node.hash)
        frontier = next.frontier
      }
      batch.put('meta', encodeCanonical({ size: frontier.size, frontier: frontier.hashes }))
      batch.del('head')
      await batch.write(DURABLE)
    } finally {
      await store.close()
    }

    g = await peers.start(gDir, OPTS)
    assert.equal(g.audit!.size, n + 2)
    assert.equal(g.audit!.latestHead(), undefined)
    const rewritten = await logOf(g)
    assert.ok(!bytesEqual(rewritten[0].bytes, original[0].bytes), 'the log really was rewritten')
    const forkedHead = (await g.audit!.publishHead())!
    assert.equal(forkedHead.body.size, n + 2)

    const reason = `no valid consistency proof from size ${n} to ${n + 2}`
    for (const r of [r1, r2]) {
      await waitFor(
        'the reader to record the fork',
        async () => (evidenceAgainst(r, g).some(e => e.reason === reason) ? true : undefined),
        20_000,
      )
      const [ev] = evidenceAgainst(r, g)
      assert.equal(ev.reason, reason)
      const [a, b] = [openTreeHead(ev.a), openTreeHead(ev.b)]
      assert.equal(a.body.size, n)
      assert.ok(bytesEqual(a.body.root, old.root), 'the older head is the one the reader had accepted')
      assert.equal(b.body.size, n + 2)
      assert.ok(bytesEqual(b.body.root, forkedHead.body.root), 'the newer head is the forked one')
      assert.equal(b.issuer, g.identity.principal.did)
      await until('the fork to be counted', () => equivocationsCounted(r, g) === 1)
      assert.deepEqual(
        statusOf(r).audit.equivocations.map(e => e.reason),
        [reason],
      )
      assert.equal((await seenHead(r, g.identity.peerId))?.size, n, 'the reader does not accept the forked head')
    }

    const before = evidenceAgainst(r1, g)
    await peers.stop(r1)
    r1 = await peers.start(r1Dir, OPTS)
    const kept = evidenceAgainst(r1, g)
    assert.equal(kept.length, 1, 'the evidence is still there after a restart')
    assert.equal(kept[0].reason, before[0].reason)
    assert.equal(kept[0].seenAt, before[0].seenAt)
    assert.ok(bytesEqual(kept[0].a, before[0].a) && bytesEqual(kept[0].b, before[0].b))
    assert.deepEqual(
      statusOf(r1).audit.equivocations.map(e => [e.log, e.reason]),
      [[g.identity.peerId, reason]],
    )
  })
})
