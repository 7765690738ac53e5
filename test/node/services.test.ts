/**
 * The node's services with real peers in one process, over TCP on 127.0.0.1: policy
 * catch-up after a restart and after a partition, the key holder's checks on
 * `/edgeward/keys/1.0.0` talked to directly (by the reader's device and by a bare libp2p
 * peer), gossiped readings from a peer that holds no keys, the reader's key cache
 * (revocations, leases), and stopping a node while its background work runs.
 * Faults are injected through libp2p's public API only: a connection gate for the
 * partition, a topic validator that loses one gossip message.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import type { EdgewardLibp2p } from '../../node/network.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { openStore, pad } from '../../node/store.ts'
import type { KeyRequest, KeyResponse } from '../../protocols/access/messages.ts'
import { decryptReadings, encodeEncryptedReading, encodeReadingsMessage } from '../../protocols/data/reading.ts'
import { createGrant } from '../../protocols/policy/records.ts'
import { readingsTopic } from '../../protocols/sync/messages.ts'
import { askKeys, keyRequest, openRelease, stranger } from '../support/keys.ts'
import {
  cut,
  grantTo,
  HOUR,
  headsOf,
  losePolicyGossip,
  publish,
  revoke,
  STREAM,
  spaceWith,
  suitePeers,
} from '../support/peers.ts'
import { until } from '../support/wait.ts'

const sorted = (xs: Iterable<string>): string[] => [...xs].sort()
const sameHeads = (a: EdgewardNode, b: EdgewardNode, space: string): boolean =>
  a.policy.document(space).hasGenesis && headsOf(a, space).join() === headsOf(b, space).join()

/** Cut `isolated` off from `others` (see `cut`), until it has no connection left. */
async function partition(isolated: EdgewardNode, others: EdgewardNode[]): Promise<{ refused(): number; heal(): void }> {
  const c = await cut([isolated], others)
  await until('the partition to take hold', () => isolated.connectedPeers().length === 0)
  return c
}

describe('node services over TCP loopback', { timeout: 60_000 }, () => {
  const peers = suitePeers()
  let gateway: EdgewardNode
  let reader: EdgewardNode

  before(async () => {
    gateway = await peers.node('gateway')
    reader = await peers.node('reader', { bootstrap: gateway.addresses() })
    assert.ok(reader.connectedPeers().includes(gateway.identity.peerId))
  })

  it('catches up on the policy changes a reader missed while it was stopped', async () => {
    const dir = await peers.identity('restarted')
    let late = await peers.start(dir, { bootstrap: gateway.addresses() })
    const space = await spaceWith(gateway, [late], 'catch-up')
    const joinedHeads = headsOf(late, space)
    await peers.stop(late)

    const now = Date.now()
    const subject = reader.identity.principal.did
    const g1 = await grantTo(gateway, space, subject, { nbf: now, exp: now + HOUR })
    const g2 = await grantTo(gateway, space, late.identity.principal.did, { nbf: now, exp: now + 2 * HOUR })
    await revoke(gateway, space, { grant: g1.id })
    await revoke(gateway, space, { subject })
    assert.notDeepEqual(headsOf(gateway, space), joinedHeads)

    const t0 = performance.now()
    late = await peers.start(dir, { bootstrap: gateway.addresses() })
    await until('the restarted reader to converge', () => sameHeads(late, gateway, space))
    console.log(`# policy catch-up after a restart: ${(performance.now() - t0).toFixed(0)} ms (start to same heads)`)

    const mine = late.policy.document(space).state
    const theirs = gateway.policy.document(space).state
    assert.deepEqual(sorted(mine.grants.keys()), sorted([g1.id, g2.id]))
    assert.deepEqual(sorted(mine.grants.keys()), sorted(theirs.grants.keys()))
    assert.deepEqual(sorted(mine.revocations.keys()), sorted(theirs.revocations.keys()))
    assert.equal(mine.revocations.size, 2)
    assert.equal(late.policy.refusals(), 0, 'nothing the gateway sent was refused')
  })

  it('heals a partition: a cut-off reader converges with the others once reconnected', async () => {
    const g = await peers.node('p-gateway')
    const r1 = await peers.node('p-r1', { bootstrap: g.addresses() })
    const r2 = await peers.node('p-r2', { bootstrap: g.addresses(), redialIntervalMs: 500 })
    const space = await spaceWith(g, [r1, r2], 'partition')
    const now = Date.now()
    await grantTo(g, space, r1.identity.principal.did, { nbf: now, exp: now + HOUR })
    await until('everyone to have the first grant', () => sameHeads(r1, g, space) && sameHeads(r2, g, space))

    const cut = await partition(r2, [g, r1])
    const during = [
      await grantTo(g, space, r2.identity.principal.did, { nbf: now, exp: now + HOUR }),
      await grantTo(g, space, r1.identity.principal.did, { nbf: now, exp: now + 3 * HOUR }),
    ]
    await revoke(g, space, { grant: during[1].id })
    await until('r1, on the same side, to receive the changes', () => sameHeads(r1, g, space))
    await until('r2 to try to reconnect, and be refused', () => cut.refused() > 0)
    assert.equal(sameHeads(r2, g, space), false, 'r2 missed them while cut off')
    assert.equal(r2.policy.document(space).state.grants.has(during[0].id), false)
    assert.equal(r2.connectedPeers().length, 0, 'and was still cut off')

    // heal: nothing but the nodes' own redialling brings r2 back
    const t0 = performance.now()
    const refused = cut.refused()
    cut.heal()
    await until('r2 to converge after the partition heals', () => sameHeads(r2, g, space) && sameHeads(r1, g, space))
    console.log(
      `# policy catch-up after a partition: ${(performance.now() - t0).toFixed(0)} ms from heal to same heads` +
        ` (${refused} connections refused during the partition)`,
    )

    // gossip flows again after the heal
    const last = await grantTo(g, space, r2.identity.principal.did, { nbf: now, exp: now + 2 * HOUR })
    await until('all three to have the same heads', () => sameHeads(r1, g, space) && sameHeads(r2, g, space))
    for (const n of [g, r1, r2]) {
      const state = n.policy.document(space).state
      assert.equal(state.grants.size, 4)
      assert.ok(state.grants.has(last.id))
      assert.equal(state.revocations.size, 1)
    }
    for (const n of [g, r1, r2]) await peers.stop(n)
  })

  describe('key release, talked to on the wire', () => {
    let space: string
    let attacker: EdgewardLibp2p
    let grantId: string
    const values = [20.5, 21, 21.5]

    before(async () => {
      space = await spaceWith(gateway, [reader], 'keys')
      await publish(gateway, [reader], space, STREAM, values)
      const now = Date.now()
      grantId = (await grantTo(gateway, space, reader.identity.principal.did, { nbf: now - 1000, exp: now + HOUR })).id
      await until('the reader to know its grant', () => reader.policy.document(space).state.grants.has(grantId))
      attacker = await peers.attacker()
      await attacker.dial(multiaddr(gateway.addresses()[0]))
    })

    /** A key request signed by the reader's principal, carrying the reader's device certificate. */
    const readerRequest = (fields: Partial<Omit<KeyRequest, 't' | 'iss'>> = {}) =>
      keyRequest(reader, { space, stream: STREAM, grant: grantId, ...fields })

    const ask = (from: EdgewardLibp2p, body: Uint8Array) => askKeys(from, gateway.identity.peerId, body)

    const assertRefused = (res: KeyResponse, code: string) => {
      assert.equal(res.ok, false, `expected a refusal with ${code}`)
      if (!res.ok) assert.equal(res.code, code, res.reason)
    }

    it('refuses what is not a valid, fresh request from the device it names, and counts each refusal', async () => {
      const refusalsBefore = gateway.metrics.total('edgeward_key_refusals_total')
      const releasesBefore = gateway.metrics.total('edgeward_key_releases_total')
      let refusals = 0

      // (i) the reader's certificate and signature, over the attacker's connection
      assertRefused(await ask(attacker, readerRequest().bytes), 'wrong-device')
      refusals++

      // (ii) the same valid bytes twice from the reader's own device
      const valid = readerRequest()
      const first = await ask(reader.libp2p, valid.bytes)
      assert.equal(first.ok, true, first.ok ? '' : `${first.code}: ${first.reason}`)
      assertRefused(await ask(reader.libp2p, valid.bytes), 'replay')
      refusals++

      // (iii) a request made 10 minutes ago, never sent before
      assertRefused(await ask(reader.libp2p, readerRequest({ ts: Date.now() - 10 * 60 * 1000 }).bytes), 'replay')
      refusals++
      // ... or 10 minutes ahead
      assertRefused(await ask(reader.libp2p, readerRequest({ ts: Date.now() + 10 * 60 * 1000 }).bytes), 'replay')
      refusals++

      // (iv) garbage
      assertRefused(await ask(reader.libp2p, randomBytes(200)), 'malformed')
      refusals++
      assertRefused(await ask(attacker, randomBytes(64)), 'malformed')
      refusals++

      // (v) an allowed request for an epoch that does not exist
      assertRefused(await ask(reader.libp2p, readerRequest({ epochs: [0, 7] }).bytes), 'unknown-epoch')
      refusals++

      // (vi) a grant that has expired
      const now = Date.now()
      const expired = await grantTo(
        gateway,
        space,
        reader.identity.principal.did,
        { nbf: now - 2 * HOUR, exp: now - HOUR },
        { iat: now - 2 * HOUR },
      )
      assertRefused(await ask(reader.libp2p, readerRequest({ grant: expired.id }).bytes), 'expired')
      refusals++

      // and: a stream the space does not have
      assertRefused(await ask(reader.libp2p, readerRequest({ stream: 'humidity' }).bytes), 'unknown-stream')
      refusals++

      // and: the attacker as a principal of its own, with a certificate for its own peer, and no grant
      const intruder = stranger(attacker.peerId.toString())
      const intruderRequest = (grant?: string) => keyRequest(intruder, { space, stream: STREAM, grant }).bytes
      assertRefused(await ask(attacker, intruderRequest()), 'no-grant')
      refusals++
      assertRefused(await ask(attacker, intruderRequest(grantId)), 'wrong-subject')
      refusals++

      assert.equal(gateway.metrics.total('edgeward_key_refusals_total') - refusalsBefore, refusals)
      assert.equal(gateway.metrics.total('edgeward_key_releases_total') - releasesBefore, 1, 'one release only')
    })

    it("releases keys that open only with the reader's sealing key for that request, and decrypt its readings", async () => {
      const req = readerRequest()
      const res = await ask(reader.libp2p, req.bytes)
      assert.equal(res.ok, true, res.ok ? '' : `${res.code}: ${res.reason}`)
      if (!res.ok) return
      assert.equal(res.grant, grantId)
      assert.ok(res.lease > Date.now() && res.lease <= Date.now() + 15 * 60 * 1000, 'a lease of at most 15 minutes')

      const keys = await openRelease(reader, res, req.bytes)
      assert.deepEqual(
        keys.map(k => k.epoch),
        [0],
      )
      const stored = await reader.data.storedReadings(space, STREAM)
      assert.deepEqual(
        stored.flatMap(r => decryptReadings(keys[0].key, r)).map(r => r.value),
        values,
      )

      // the sealed box is bound to its request and to the device's key
      await assert.rejects(
        openRelease(reader, res, readerRequest().bytes),
        (err: Error) => err.name === 'DecryptionError',
      )
      await assert.rejects(openRelease(gateway, res, req.bytes), (err: Error) => err.name === 'DecryptionError')
    })

    it('refuses gossiped readings from a peer that holds no keys, and stores nothing from it', async () => {
      const stored = await reader.data.storedReadings(space, STREAM)
      const refusedBefore = reader.metrics.total('edgeward_readings_refused_total', 'not-from-a-key-holder')
      const gossipBefore = reader.metrics.total('edgeward_readings_stored_total', 'gossip')

      const topic = readingsTopic(space)
      const intruder = await peers.attacker()
      intruder.services.pubsub.subscribe(topic)
      await intruder.dial(multiaddr(reader.addresses()[0]))
      await until('the intruder to see the reader on the readings topic', () =>
        intruder.services.pubsub.getSubscribers(topic).some(p => p.toString() === reader.identity.peerId),
      )
      // well-formed, at the place of a real reading (seq 0), encrypted under a key of the intruder's
      const forged = encodeEncryptedReading({
        space,
        stream: STREAM,
        form: 'raw',
        epoch: 0,
        seq: 0,
        ct: randomBytes(64),
      })
      await intruder.services.pubsub.publish(topic, encodeReadingsMessage([forged]))
      await until(
        'the reader to refuse the forged reading',
        () => reader.metrics.total('edgeward_readings_refused_total', 'not-from-a-key-holder') > refusedBefore,
      )
      const after = await reader.data.storedReadings(space, STREAM)
      assert.equal(after.length, stored.length)
      assert.deepEqual(after, stored, 'the stored ciphertext is unchanged')
      assert.equal(reader.metrics.total('edgeward_readings_stored_total', 'gossip'), gossipBefore)
      assert.deepEqual(
        (await reader.data.read(space, STREAM)).map(r => r.value),
        values,
      )
    })
  })

  it('drops cached keys on a subject revocation, refuses reads, and reads again with a newer grant', async () => {
    const space = await spaceWith(gateway, [reader], 'cache')
    await publish(gateway, [reader], space, STREAM, [1, 2])
    const subject = reader.identity.principal.did
    const now = Date.now()
    const g = await grantTo(gateway, space, subject, { nbf: now - 1000, exp: now + HOUR })
    await until('the reader to know its grant', () => reader.policy.document(space).state.grants.has(g.id))
    const cachedBefore = reader.data.cachedKeyCount()
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [1, 2],
    )
    assert.ok(reader.data.cachedKeyCount() > cachedBefore, 'the read cached a key')

    const droppedBefore = reader.metrics.total('edgeward_keys_dropped_total', 'revocation')
    const rv = await revoke(gateway, space, { subject })
    await until('the reader to drop its keys', () => reader.data.cachedKeyCount() === cachedBefore)
    assert.ok(reader.metrics.total('edgeward_keys_dropped_total', 'revocation') > droppedBefore)
    await assert.rejects(reader.data.read(space, STREAM), (err: Error & { code?: string }) => {
      assert.equal(err.name, 'AccessRefusedError')
      assert.equal(err.code, 'subject-revoked', err.message)
      return true
    })
    assert.equal(reader.data.cachedKeyCount(), cachedBefore)

    // a subject revocation ends only grants issued at or before it
    const t = Math.max(Date.now(), rv.body.iat + 1)
    const renewed = await grantTo(gateway, space, subject, { nbf: t - 1000, exp: t + HOUR }, { iat: t })
    await until('the reader to know the new grant', () => reader.policy.document(space).state.grants.has(renewed.id))
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [1, 2],
    )
    assert.ok(reader.data.cachedKeyCount() > cachedBefore)
  })

  it('drops cached keys on a device revocation, and the key holder refuses that device', async () => {
    const space = await spaceWith(gateway, [reader], 'device')
    await publish(gateway, [reader], space, STREAM, [4])
    const now = Date.now()
    await grantTo(gateway, space, reader.identity.principal.did, { nbf: now - 1000, exp: now + HOUR })
    const cachedBefore = reader.data.cachedKeyCount()
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [4],
    )
    assert.equal(reader.data.cachedKeyCount(), cachedBefore + 1)
    await revoke(gateway, space, { device: reader.identity.peerId })
    await until('the reader to drop its key', () => reader.data.cachedKeyCount() === cachedBefore)
    await assert.rejects(reader.data.read(space, STREAM), (err: Error & { code?: string }) => {
      assert.equal(err.name, 'AccessRefusedError')
      assert.equal(err.code, 'device-revoked', err.message)
      return true
    })
  })

  it('reads with a raw grant when it also holds an active grant that covers only another form', async () => {
    const space = await spaceWith(gateway, [reader], 'forms')
    await publish(gateway, [reader], space, STREAM, [3])
    const subject = reader.identity.principal.did
    const now = Date.now()
    const fields = { space, sub: subject, streams: [STREAM], nbf: now - 1000, exp: now + HOUR }
    // both grants active; the aggregate-only one sorts first, as it would for about half of all grant pairs
    let aggregate = createGrant(gateway.identity.principal, { ...fields, forms: ['aggregate:1h'] }, now)
    let raw = createGrant(gateway.identity.principal, { ...fields, forms: ['raw'] }, now)
    while (aggregate.id > raw.id) {
      aggregate = createGrant(gateway.identity.principal, { ...fields, forms: ['aggregate:1h'] }, now)
      raw = createGrant(gateway.identity.principal, { ...fields, forms: ['raw'] }, now)
    }
    await gateway.policy.write(space, [
      { kind: 'grant', record: aggregate },
      { kind: 'grant', record: raw },
    ])
    await until('the reader to know both grants', () => reader.policy.document(space).state.grants.size === 2)
    const decision = gateway.policy
      .document(space)
      .state.evaluateAccess({ subject, device: reader.identity.device, stream: STREAM, form: 'raw' }, Date.now())
    assert.equal(decision.allowed, true, 'the policy lets the reader read the raw form')

    const values = await reader.data.read(space, STREAM).then(
      rs => rs.map(r => r.value),
      (err: Error & { code?: string }) => `refused: ${err.name} ${err.code}: ${err.message}`,
    )
    assert.deepEqual(values, [3])
  })

  it('drops cached keys when a subject revocation arrives before the grant they were released under', async () => {
    // this reader only learns of policy changes by gossip during the test (no periodic catch-up)
    const late = await peers.node('late-grant', { bootstrap: gateway.addresses(), syncIntervalMs: HOUR })
    const space = await spaceWith(gateway, [late], 'revocation-first')
    await publish(gateway, [late], space, STREAM, [9])

    // the gossip message carrying the grant is lost on its way to this reader
    const gossip = losePolicyGossip(late, space)
    const now = Date.now()
    const g = await grantTo(gateway, space, late.identity.principal.did, { nbf: now - 1000, exp: now + HOUR })
    await until('the grant to be lost', () => gossip.lost() > 0)
    gossip.restore()
    assert.equal(late.policy.document(space).state.grants.has(g.id), false)

    // the key holder, which knows the grant, releases the key
    assert.deepEqual(
      (await late.data.read(space, STREAM)).map(r => r.value),
      [9],
    )
    assert.equal(late.data.cachedKeyCount(), 1)

    // gossip delivers a revocation in a few ms on loopback (the other revocation tests wait far less)
    await revoke(gateway, space, { subject: late.identity.principal.did })
    await until(
      'the reader to drop the key released under the revoked grant',
      () => late.data.cachedKeyCount() === 0,
      3_000,
    )
    await assert.rejects(late.data.read(space, STREAM), (err: Error) => err.name === 'AccessRefusedError')
  })
})

describe('leases', { timeout: 30_000 }, () => {
  const peers = suitePeers()
  const LEASE_MS = 60_000
  // both nodes run on this clock, which the test may hold at a moment: the lease ends when the
  // test moves the clock there, however slow the machine
  let held: number | undefined
  const now = () => held ?? Date.now()

  it('drops keys at lease end, and asks the key holder again on the next read', async () => {
    const gateway = await peers.node('lease-gateway', { leaseMaxMs: LEASE_MS, now })
    const reader = await peers.node('lease-reader', { bootstrap: gateway.addresses(), now })
    const space = await spaceWith(gateway, [reader], 'leases')
    await publish(gateway, [reader], space, STREAM, [7])
    const t = now()
    await grantTo(gateway, space, reader.identity.principal.did, { nbf: t - 1000, exp: t + HOUR }, { iat: t })

    const releases = () => gateway.metrics.total('edgeward_key_releases_total')
    const leaseEnds = () => reader.metrics.total('edgeward_keys_dropped_total', 'lease-end')
    assert.equal(releases(), 0)
    const t0 = now()
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [7],
    )
    assert.equal(releases(), 1)
    const epoch = (await reader.data.storedReadings(space, STREAM))[0].epoch
    const lease = reader.data.cachedLease(space, STREAM, 'raw', epoch)!.lease
    // the key holder released at or after t0, by the shared clock, with its lease max
    assert.ok(lease >= t0 + LEASE_MS && lease <= now() + LEASE_MS, 'the lease is the key holder’s lease max')

    // within the lease, up to its last millisecond: the key is cached and a read uses it
    assert.equal(reader.data.cachedKeyCount(), 1, 'the key is cached during its lease')
    held = lease - 1
    assert.equal(reader.data.cachedKeyCount(), 1, 'the key is cached until the lease ends')
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [7],
    )
    assert.equal(releases(), 1, 'a read within the lease uses the cached key')
    assert.equal(leaseEnds(), 0)

    // the lease ends: the reader's own sweep drops the key, without a read to prompt it
    held = lease
    await until('the lease to end', () => leaseEnds() === 1)
    assert.equal(reader.data.cachedKeyCount(), 0)

    const before = releases()
    held = lease + 1
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [7],
    )
    assert.equal(releases(), before + 1, 'the next read asks the key holder again')
    assert.equal(reader.data.cachedKeyCount(), 1)
  })
})

describe('stopping', { timeout: 30_000 }, () => {
  const peers = suitePeers()

  it('stops cleanly while it is redialling the peers it knew', async () => {
    const dir = await peers.identity('many-peers')
    // a node that has met many peers: every redial walks this list in the store
    const store = await openStore(join(dir, 'db'))
    const batch = store.db.batch()
    for (let i = 0; i < 20_000; i++) {
      batch.put(`peer-${pad(i)}`, encodeCanonical([]), { sublevel: store.peers } as never)
    }
    await batch.write()
    await store.close()

    const rejections: unknown[] = []
    const onRejection = (reason: unknown) => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    try {
      const node = await peers.start(dir, { redialIntervalMs: 20 })
      // follow the walks over the known peers that the redial timer starts (each takes ~100 ms)
      const peerStore = node.store.peers
      const iterator = peerStore.iterator.bind(peerStore)
      let walks = 0
      let walking = 0
      peerStore.iterator = ((...args: Parameters<typeof iterator>) => {
        walks++
        walking++
        const inner = iterator(...args)
        return (async function* () {
          try {
            yield* inner
          } finally {
            walking--
          }
        })()
      }) as unknown as typeof peerStore.iterator
      await until('redials to be under way', () => walks >= 2)
      await peers.stop(node)
      await until('every walk to end', () => walking === 0)
      // a rejection nobody handles is reported once the microtasks of this turn have run
      await new Promise(resolve => setImmediate(resolve))
    } finally {
      process.off('unhandledRejection', onRejection)
    }
    assert.deepEqual(
      rejections.map(r => `${(r as Error).name}: ${(r as Error).message}`),
      [],
      'stopping leaves no failing background work',
    )
  })
})
