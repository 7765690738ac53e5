/**
 * Custody on real nodes in one process (LevelDB, libp2p over TCP on 127.0.0.1): the owner
 * names three custodians with a threshold of two; the keys of what it publishes are dealt to
 * them and acknowledged; with the owner stopped a granted reader still reads, from two shares;
 * a custodian that ignores the policy cannot alone give a revoked reader a key; a custodian
 * that lacks the policy changes a request names catches up with the reader first, and refuses
 * naming what it lacks when it cannot; an epoch rotated on revocation is dealt afresh.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes } from '../../crypto/hash.ts'
import { AccessRefusedError } from '../../node/errors.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { request } from '../../node/services/stream-io.ts'
import { requestHash } from '../../protocols/audit/entries.ts'
import {
  CUSTODY_RELEASE_PROTOCOL,
  decodeCustodyReleaseResponse,
  MAX_CUSTODY_RESPONSE_BYTES,
} from '../../protocols/custody/messages.ts'
import { custodySuite } from '../support/custody.ts'
import { keyRequest } from '../support/keys.ts'
import { cut, grantTo, HOUR, publish, revoke, STREAM } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const counter = (n: EdgewardNode, name: string) => n.metrics.total(name)

describe('custody: keys while the owner is offline', { timeout: 120_000 }, () => {
  const s = custodySuite('custody')

  it('names three custodians with their keys and principals; k = 2 of 3', async () => {
    await s.setUp()
    const set = s.reader.policy.document(s.space).state.custodianSet!
    assert.equal(set.body.k, 2)
    assert.deepEqual(
      set.body.custodians.map(c => [c.peer, c.did]),
      s.custodians.map(c => [c.identity.peerId, c.identity.principal.did]),
    )
  })

  it('deals the key of what the owner publishes to every custodian, which acknowledge it', async () => {
    await s.grantReader()
    await publish(s.owner, [s.reader, ...s.custodians], s.space, STREAM, [1, 2, 3])
    await s.dealt(1)
    assert.ok(counter(s.owner, 'edgeward_custody_deals_total') >= 1)
    assert.equal(
      counter(s.owner, 'edgeward_custody_deals_acknowledged_total'),
      3 * counter(s.owner, 'edgeward_custody_deals_total'),
    )
  })

  it('with the owner stopped, the reader reads from two custodians’ shares, each release in that custodian’s audit log', async () => {
    await s.peers.stop(s.owner)
    const read = await s.reader.data.read(s.space, STREAM)
    assert.deepEqual(
      read.map(r => r.value),
      [1, 2, 3],
    )
    assert.equal(counter(s.reader, 'edgeward_custody_keys_combined_total'), 1)
    const released = s.custodians.map(c => counter(c, 'edgeward_custody_releases_total'))
    assert.ok(released.reduce((a, b) => a + b, 0) >= 2, `releases ${released}`)
    for (const [i, c] of s.custodians.entries()) {
      if (released[i] === 0) continue
      const entries = await c.audit!.streamEntries(s.space, STREAM)
      assert.ok(
        entries.some(e => e.entry.t === 'release' && e.entry.subject === s.reader.identity.principal.did),
        `custodian ${i} logged the release`,
      )
    }
  })

  it('refuses, naming what it lacks, a request for policy changes no peer can give it; catches up with that peer once a while', async () => {
    const r = s.reader
    const custodian = s.custodians[0]
    const before = custodian.metrics.total('edgeward_custody_catchups_total', 'heads')
    for (let i = 0; i < 3; i++) {
      const req = keyRequest(r, {
        space: s.space,
        stream: STREAM,
        heads: [Buffer.from(randomBytes(32)).toString('hex')],
      })
      const raw = await request(
        r.libp2p,
        peerIdFromString(custodian.identity.peerId),
        CUSTODY_RELEASE_PROTOCOL,
        req.bytes,
        MAX_CUSTODY_RESPONSE_BYTES,
      )
      const res = decodeCustodyReleaseResponse(raw)
      assert.equal(res.ok, false)
      if (!res.ok) {
        assert.equal(res.code, 'stale-policy')
        assert.match(res.reason, /lacks 1 of the policy changes/)
      }
    }
    assert.equal(
      custodian.metrics.total('edgeward_custody_catchups_total', 'heads') - before,
      1,
      'one catch-up, not three',
    )
  })
})

describe('custody: no custodian alone', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-alone')

  it('a custodian that ignores the policy cannot alone give a revoked reader the key', async () => {
    await s.setUp()
    const g = await s.grantReader()
    await publish(s.owner, [s.reader, ...s.custodians], s.space, STREAM, [7])
    await s.dealt(1)
    const rv = await revoke(s.owner, s.space, { grant: g.id })
    await waitFor('the custodians to know the revocation', async () =>
      s.custodians.every(c => c.policy.document(s.space).state.revocations.has(rv.id)) ? true : undefined,
    )
    // the revocation rotated the stream's epoch: what is published now is under a key dealt after it
    await publish(s.owner, [s.reader, ...s.custodians], s.space, STREAM, [8])
    await s.dealt(2)
    const fresh = await (s.custodians[1].custody as any).store.held(s.space, STREAM, 'raw', 1)
    assert.ok(fresh.deal.body.iat >= rv.body.iat, 'the new epoch was dealt after the revocation')
    // the first custodian is modified: it admits every request, whatever the policy says
    const modified = s.custodians[0]
    const gate = (modified.custody as any).custodian.gate
    const admit = gate.admit.bind(gate)
    gate.admit = async (req: any, conn: any) => {
      const real = await admit(req, conn)
      if (real.ok) return real
      const state = modified.policy.document(s.space).state
      return {
        ok: true,
        request: req,
        permit: { allowed: true, grant: state.grants.get(g.id), until: Date.now() + HOUR },
        state,
        counts: new Map(),
        lastRelease: false,
        lease: Date.now() + 60_000,
        now: Date.now(),
        reqHash: requestHash(req.request.bytes),
        refuse: real.refuse,
      }
    }
    await s.peers.stop(s.owner)
    await assert.rejects(s.reader.data.read(s.space, STREAM), (err: Error) => {
      assert.equal(err.name, AccessRefusedError.name)
      assert.equal((err as AccessRefusedError).code, 'revoked')
      // two refusals leave fewer than k who could answer: the reader stops there
      assert.match(err.message, /of 3 custodians answered, 2 refused/)
      return true
    })
    await waitFor('the modified custodian to release its share', async () =>
      counter(modified, 'edgeward_custody_releases_total') === 1 ? true : undefined,
    )
    assert.equal(counter(s.reader, 'edgeward_custody_keys_combined_total'), 0, 'one share made no key')
  })
})

describe('custody: a custodian behind the reader catches up first', { timeout: 120_000 }, () => {
  // no catch-up on a timer during the test: only a connection or a request makes them catch up
  const s = custodySuite('custody-behind', { syncIntervalMs: 600_000 })

  it('custodians cut off while the reader was granted catch up before they decide, then release', async () => {
    await s.setUp()
    await s.owner.data.publish(s.space, STREAM, [{ ts: Date.now(), value: 42 }])
    await s.dealt(1)
    await waitFor('the reader to store the reading', async () =>
      (await s.reader.data.storedReadings(s.space, STREAM)).length > 0 ? true : undefined,
    )
    const apart = await cut([s.owner, s.reader], s.custodians)
    const now = Date.now()
    const g = await grantTo(s.owner, s.space, s.reader.identity.principal.did, { nbf: now - 1000, exp: now + HOUR })
    await waitFor('the reader to know the grant', async () =>
      s.reader.policy.document(s.space).state.grants.has(g.id) ? true : undefined,
    )
    await s.peers.stop(s.owner)
    assert.ok(
      s.custodians.every(c => !c.policy.document(s.space).state.grants.has(g.id)),
      'no custodian knows the grant',
    )
    apart.heal()
    const read = await s.reader.data.read(s.space, STREAM)
    assert.deepEqual(
      read.map(r => r.value),
      [42],
    )
    const released = s.custodians.filter(c => c.metrics.total('edgeward_custody_releases_total') > 0)
    assert.ok(released.length >= 2)
    for (const c of released) assert.ok(c.policy.document(s.space).state.grants.has(g.id), 'it caught up first')
  })
})

describe('custody: a dealer knows which keys only it can give out yet', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-below')

  it('with two of three custodians down, a new key is below the threshold until they acknowledge it', async () => {
    await s.setUp()
    await s.peers.stop(s.custodians[1])
    await s.peers.stop(s.custodians[2])
    await s.owner.data.publish(s.space, STREAM, [{ ts: Date.now(), value: 5 }])
    // one key per form of the stream (raw and hashed)
    const dealt = () => s.owner.metrics.total('edgeward_custody_deals_total')
    // the one custodian up acknowledges (its answer counted at the owner a moment after it stored it)
    await waitFor('the one custodian up to acknowledge every key', async () => {
      const held = (await s.custodians[0].custody.status()).held
      const status = await s.owner.custody.status()
      return dealt() > 0 && held === dealt() && status.unacknowledged === 2 * dealt() ? true : undefined
    })
    assert.equal(
      (await s.owner.custody.status()).belowThreshold,
      dealt(),
      'one acknowledgement of the two needed, for each key',
    )
  })
})

describe('custody: a custodian that restarts', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-restart')

  // The node's custodians were dialled by peer id before the node had loaded the addresses it
  // knew: the lookup held the node's own dial of its bootstrap peer, which then failed at start.
  // Three restarts: libp2p takes at most five connections a second from one host, and every
  // peer here is 127.0.0.1.
  it('is connected to its bootstrap peer once started (3 restarts, a new port each)', async () => {
    await s.setUp()
    const [first] = s.custodians
    for (let i = 1; i <= 3; i++) {
      await s.peers.stop(s.custodians[2])
      const back = await s.peers.start(s.peers.dir('c3'), { bootstrap: first.addresses() })
      s.custodians[2] = back
      assert.deepEqual(back.unreachableBootstrap, [], `restart ${i}: the bootstrap peer not reached`)
      assert.ok(back.connectedPeers().includes(first.identity.peerId), `restart ${i}: not connected to it`)
    }
  })
})

describe('custody: a custodian that was offline gets its shares from the others', { timeout: 120_000 }, () => {
  const s = custodySuite('custody-late')

  it('down while the owner dealt, and the owner gone when it returns: the other custodians pass the deals on', async () => {
    await s.setUp()
    const late = s.custodians[2]
    await s.peers.stop(late)
    await s.owner.data.publish(s.space, STREAM, [{ ts: Date.now(), value: 6 }])
    const dealt = s.owner.metrics.total('edgeward_custody_deals_total')
    await waitFor('the two custodians up to hold the deals', async () => {
      const held = await Promise.all(s.custodians.slice(0, 2).map(async c => (await c.custody.status()).held))
      return dealt > 0 && held.every(h => h === dealt) ? true : undefined
    })
    assert.equal((await s.owner.custody.status()).belowThreshold, 0, 'k custodians have every key: the owner may go')
    await s.peers.stop(s.owner)
    const back = await s.peers.start(s.peers.dir('c3'), { bootstrap: s.custodians[0].addresses() })
    await waitFor('the returning custodian to hold every deal', async () =>
      (await back.custody.status()).held === dealt ? true : undefined,
    )
    const passedOn = s.custodians.slice(0, 2).map(c => c.metrics.total('edgeward_custody_deals_passed_on_total'))
    assert.ok(
      passedOn.some(n => n > 0),
      'passed on by another custodian',
    )
  })
})
