/**
 * The simulated network with real peers: a partition stops traffic across the cut (gossip and
 * policy) until it heals, healing restores both, a crashed peer with its store on disk comes
 * back with its state, and link latency is really applied (as a lower bound only: a loaded
 * machine may be slower, never faster).
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { describe, it } from 'node:test'
import type { Message } from '@libp2p/gossipsub'
import { lpStream } from '@libp2p/utils'
import type { EdgewardNode } from '../../node/node.ts'
import { createGrant } from '../../protocols/policy/records.ts'
import type { SimNetwork } from '../../sim/network.ts'
import { catchUp, headsKey, STREAM, setUpSpace, waitForMeshes } from '../../sim/scenarios/space.ts'
import { waitUntil } from '../../sim/wait.ts'
import { type SimTestOptions, simNetworks } from '../support/sim.ts'

const DEADLINE_MS = 20_000
const TOPIC = '/edgeward-sim/test/1.0.0'

const created = simNetworks(net => assert.equal(existsSync(net.root), false, 'the network removed its temp directory'))
const network = (opts: Partial<SimTestOptions> & { peers: number }): Promise<SimNetwork> =>
  created({
    link: { latencyMs: 0 },
    seed: 11,
    node: { syncIntervalMs: 1000 },
    ...opts,
  })

/** Everything each peer received on TOPIC, by peer index. */
function listen(net: SimNetwork): string[][] {
  const got = net.peers.map(() => [] as string[])
  for (const p of net.running()) {
    const pubsub = p.node!.libp2p.services.pubsub
    pubsub.subscribe(TOPIC)
    pubsub.addEventListener('message', (evt: CustomEvent<Message>) => {
      if (evt.detail.topic === TOPIC) got[p.index].push(new TextDecoder().decode(evt.detail.data))
    })
  }
  return got
}

const grantFor = (owner: EdgewardNode, space: string, subject: string) => {
  const now = Date.now()
  return createGrant(
    owner.identity.principal,
    { space, sub: subject, streams: [STREAM], forms: ['raw'], nbf: now - 1000, exp: now + 3_600_000 },
    now,
  )
}

describe('simulated network', () => {
  it('a partition stops gossip and policy across the cut; healing restores both', async () => {
    const net = await network({ peers: 8 })
    const got = listen(net)
    const space = await setUpSpace(net, { owner: 0, readings: 1, deadlineMs: DEADLINE_MS })
    await waitForMeshes(net, [TOPIC], DEADLINE_MS)
    const side = (i: number) => (i < 4 ? 0 : 1)
    const owner = net.node(0)

    net.partition(side)
    for (const p of net.running()) {
      const across = p.node!.connectedPeers().filter(id => side(net.indexOf(id)!) !== side(p.index))
      assert.deepEqual(across, [], `p${p.index} keeps no connection across the cut`)
    }
    await owner.libp2p.services.pubsub.publish(TOPIC, new TextEncoder().encode('during'))
    const grant = grantFor(owner, space, net.peers[5].principal)
    await owner.policy.write(space, [{ kind: 'grant', record: grant }])
    await waitUntil('the owner side to receive', () => [1, 2, 3].every(i => got[i].includes('during')), DEADLINE_MS)
    await catchUp(
      net,
      'the grant on the owner side',
      n => {
        const i = net.indexOf(n.identity.peerId)!
        return side(i) === 0 && !n.policy.document(space).state.grants.has(grant.id)
      },
      DEADLINE_MS,
    )
    // Before saying nothing crossed, wait for what proves the far side was live and cut off:
    // gossip still flows on it (a message published there after 'during' reaches its peers),
    // each of its peers ran a few gossip heartbeats (when IHAVE gossip could have carried
    // 'during') and finished a policy catch-up (which could have fetched the grant)
    const far = [4, 5, 6, 7]
    const heartbeats = new Map(far.map(i => [i, 0]))
    const catchUps = new Map(far.map(i => [i, 0]))
    const restore: (() => void)[] = []
    for (const i of far) {
      const n = net.node(i)
      const onHeartbeat = () => heartbeats.set(i, heartbeats.get(i)! + 1)
      n.libp2p.services.pubsub.addEventListener('gossipsub:heartbeat', onHeartbeat)
      restore.push(() => n.libp2p.services.pubsub.removeEventListener('gossipsub:heartbeat', onHeartbeat))
      const syncWith = n.policy.syncWith.bind(n.policy)
      n.policy.syncWith = async peer => {
        const applied = await syncWith(peer)
        catchUps.set(i, catchUps.get(i)! + 1)
        return applied
      }
      restore.push(() => {
        n.policy.syncWith = syncWith
      })
    }
    try {
      await net.node(4).libp2p.services.pubsub.publish(TOPIC, new TextEncoder().encode('far'))
      await waitUntil(
        'the far side to gossip among itself',
        () => [5, 6, 7].every(i => got[i].includes('far')),
        DEADLINE_MS,
      )
      await waitUntil(
        'three gossip heartbeats and a policy catch-up on every peer of the far side',
        () => far.every(i => heartbeats.get(i)! >= 3 && catchUps.get(i)! >= 1),
        DEADLINE_MS,
      )
    } finally {
      for (const r of restore) r()
    }
    for (const i of far) {
      assert.ok(!got[i].includes('during'), `p${i} received nothing from across the cut`)
      assert.ok(
        !net.node(i).policy.document(space).state.grants.has(grant.id),
        `p${i} has no grant from across the cut`,
      )
    }
    const denied = await net
      .node(4)
      .libp2p.dial(net.peers[0].node!.libp2p.peerId, { signal: AbortSignal.timeout(5000) })
      .then(
        () => false,
        () => true,
      )
    assert.ok(denied, 'a dial across the cut is refused')

    await net.heal()
    await waitUntil(
      'every peer to have the grant',
      () => net.running().every(p => p.node!.policy.document(space).state.grants.has(grant.id)),
      DEADLINE_MS,
    )
    await waitUntil(
      'identical heads everywhere',
      () => new Set(net.running().map(p => headsKey(p.node!, space))).size === 1,
      DEADLINE_MS,
    )
    await waitForMeshes(net, [TOPIC], DEADLINE_MS)
    // one message a second until each peer across has one: the meshes across the healed cut
    // form over a few heartbeats, which a loaded machine stretches; what is checked is that
    // gossip flows again, not how soon
    let n = 0
    const publishing = setInterval(() => {
      owner.libp2p.services.pubsub.publish(TOPIC, new TextEncoder().encode(`after-${n++}`)).catch(() => {})
    }, 1000)
    try {
      await waitUntil(
        'the other side to receive gossip again',
        () => [4, 5, 6, 7].every(i => got[i].some(m => m.startsWith('after-'))),
        DEADLINE_MS,
      )
    } finally {
      clearInterval(publishing)
    }
  })

  it('a crashed peer with its store on disk restarts with its spaces and policy', async () => {
    const net = await network({ peers: 4, store: 'disk', seed: 12 })
    const space = await setUpSpace(net, { owner: 0, readings: 2, deadlineMs: DEADLINE_MS })
    const owner = net.node(0)
    const first = grantFor(owner, space, net.peers[2].principal)
    await owner.policy.write(space, [{ kind: 'grant', record: first }])
    await waitUntil(
      'p2 to have the grant',
      () => net.node(2).policy.document(space).state.grants.has(first.id),
      DEADLINE_MS,
    )
    const headsBefore = headsKey(net.node(2), space)
    const storedBefore = (await net.node(2).data.storedReadings(space, STREAM)).length
    assert.ok(storedBefore > 0)

    await net.crash(2)
    assert.equal(net.peers[2].node, undefined)
    const second = grantFor(owner, space, net.peers[3].principal)
    await owner.policy.write(space, [{ kind: 'grant', record: second }])

    // cut off while it restarts, so that what it has can only come from its disk
    net.partition(i => (i === 2 ? 1 : 0))
    const restarted = await net.restart(2)
    assert.deepEqual(restarted.connectedPeers(), [])
    assert.deepEqual(restarted.policy.spaces(), [space])
    assert.ok(restarted.policy.document(space).state.grants.has(first.id))
    assert.ok(restarted.policy.document(space).heads().length > 0)
    assert.equal((await restarted.data.storedReadings(space, STREAM)).length, storedBefore)
    assert.equal(restarted.identity.peerId, net.peers[2].peerId, 'the same identity')
    assert.ok(!restarted.policy.document(space).state.grants.has(second.id))
    // and it catches up on what it missed while down
    await net.heal()
    await waitUntil('p2 to catch up', () => restarted.policy.document(space).state.grants.has(second.id), DEADLINE_MS)
    assert.notEqual(headsKey(restarted, space), headsBefore)
  })

  it('a round trip over a 100 ms link takes at least 200 ms', async () => {
    const net = await network({ peers: 2, link: { latencyMs: 100 }, topology: { kind: 'random', degree: 1 } })
    const [a, b] = [net.node(0), net.node(1)]
    await b.libp2p.handle('/edgeward-sim/echo/1.0.0', async stream => {
      const lp = lpStream(stream)
      await lp.write(await lp.read())
      await stream.close()
    })
    const stream = await a.libp2p.dialProtocol(b.libp2p.peerId, '/edgeward-sim/echo/1.0.0')
    const lp = lpStream(stream)
    const t0 = performance.now()
    await lp.write(new Uint8Array([1, 2, 3]))
    const echoed = await lp.read()
    const rtt = performance.now() - t0
    await stream.close()
    assert.deepEqual(echoed.subarray(), new Uint8Array([1, 2, 3]))
    assert.ok(rtt >= 200, `round trip ${rtt.toFixed(1)} ms over two 100 ms crossings`)
  })

  it('simulated peers do not ping their connections unless asked to', async () => {
    // two networks started together: one pings every 100 ms, the other runs with the simulation's defaults
    const [pinging, quiet] = await Promise.all([
      network({ peers: 3, pingIntervalMs: 100, topology: { kind: 'random', degree: 2 } }),
      network({ peers: 3, topology: { kind: 'random', degree: 2 } }),
    ])
    const connections = (net: SimNetwork) => net.running().flatMap(p => p.node!.libp2p.getConnections())
    // libp2p's connection monitor records each connection's round trip time when it pings it
    await waitUntil(
      'every connection of the pinging network to have been pinged',
      () => connections(pinging).every(c => c.rtt !== undefined),
      DEADLINE_MS,
    )
    assert.ok(connections(quiet).length > 0)
    assert.deepEqual(
      connections(quiet).map(c => c.rtt),
      connections(quiet).map(() => undefined),
      'no connection of the network with the defaults was pinged in the same time',
    )
  })
})
