/**
 * Real nodes in one process (LevelDB + libp2p over TCP loopback) for the tests and the bench:
 * `Peers` makes them in a temp dir, and `stopAll` stops every node and bare libp2p peer it
 * started, removes the dir, and fails if a peer failed to stop or a TCP handle is left. Beside
 * it, the steps the suites repeat: a space its readers joined, a grant, a revocation, a publish
 * that reached the readers, a cut of the network in two, and policy gossip lost to a node.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { LOOPBACK_LISTEN } from '../../node/cli/local-network.ts'
import { createIdentity } from '../../node/identity.ts'
import { createNetwork, type EdgewardLibp2p } from '../../node/network.ts'
import { EdgewardNode, type NodeOptions } from '../../node/node.ts'
import { readingCount } from '../../protocols/data/reading.ts'
import {
  createGrant,
  createRevocation,
  type GrantFields,
  type RevocationTarget,
} from '../../protocols/policy/records.ts'
import { policyTopic } from '../../protocols/sync/messages.ts'
import { until, waitFor } from './wait.ts'

/** mulberry32: a small seeded PRNG, so runs are reproducible (the simulator's). */
export { mulberry32 as rng } from '../../sim/random.ts'

export const STREAM = 'temperature'
export const HOUR = 3600 * 1000

/** Every node and bare libp2p peer a suite starts, and its temp dir; `stopAll` ends them all. */
export class Peers {
  root = ''
  private readonly running = new Set<EdgewardNode>()
  private readonly raw = new Set<EdgewardLibp2p>()
  /** set by `stopAll`: a test body that outlives its test (a timeout) may start no more nodes */
  private closed = false

  async init(prefix = 'test'): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), `edgeward-${prefix}-`))
  }

  /** The path of `name` inside the suite's temp dir. */
  dir(name: string): string {
    return join(this.root, name)
  }

  /** A new identity in its own data directory; returns the directory. */
  async identity(name: string): Promise<string> {
    const dir = this.dir(name)
    await createIdentity(dir, { now: Date.now() })
    return dir
  }

  /**
   * Create and start a node on a data directory (with an identity already there): on loopback
   * (LOOPBACK_LISTEN) unless `opts.listen` says otherwise, and without mDNS unless asked.
   */
  async start(dataDir: string, opts: Omit<NodeOptions, 'dataDir'> = {}): Promise<EdgewardNode> {
    if (this.closed) throw new Error('the suite has ended: no more nodes')
    const node = await EdgewardNode.create({ dataDir, listen: LOOPBACK_LISTEN, ...opts })
    this.running.add(node)
    await node.start()
    if (this.closed) {
      this.running.delete(node)
      await node.stop()
      throw new Error('the suite ended while a node was starting')
    }
    return node
  }

  /** A started node with a new identity named `name`. */
  async node(name: string, opts: Omit<NodeOptions, 'dataDir'> = {}): Promise<EdgewardNode> {
    return this.start(await this.identity(name), opts)
  }

  /** Stop one node (to restart it on its data directory, or to take it away). */
  async stop(node: EdgewardNode): Promise<void> {
    this.running.delete(node)
    await node.stop()
  }

  /** A bare libp2p peer with a fresh key: no identity, no certificate, no services of ours. */
  async attacker(): Promise<EdgewardLibp2p> {
    const p = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), listen: LOOPBACK_LISTEN })
    this.raw.add(p)
    await p.start()
    return p
  }

  /** Stop everything, remove the temp dir; fail if a peer failed to stop or TCP is left open. */
  async stopAll(): Promise<void> {
    this.closed = true
    const stopped = await Promise.allSettled([
      ...[...this.running].map(n => n.stop()),
      ...[...this.raw].map(p => p.stop()),
    ])
    this.running.clear()
    this.raw.clear()
    if (this.root !== '') await rm(this.root, { recursive: true, force: true, maxRetries: 3 })
    const failures = stopped.flatMap(r => (r.status === 'rejected' ? [String(r.reason)] : []))
    assert.deepEqual(failures, [], 'every peer stops without an error')
    const tcp = process.getActiveResourcesInfo().filter(r => r.startsWith('TCP'))
    assert.deepEqual(tcp, [], 'every TCP listener and connection is closed')
  }
}

/** Run `fn` with a new `Peers` (its temp dir made), and stop all it started when `fn` ends, however it ends. */
export async function withPeers<T>(fn: (peers: Peers) => Promise<T>): Promise<T> {
  const peers = new Peers()
  await peers.init()
  try {
    return await fn(peers)
  } finally {
    await peers.stopAll()
  }
}

/**
 * The `Peers` of the enclosing suite: its temp dir (named with `prefix`) is made before the
 * suite's own `before` hooks run, and `stopAll` ends it after its tests.
 */
export function suitePeers(prefix?: string): Peers {
  const peers = new Peers()
  before(() => peers.init(prefix))
  after(() => peers.stopAll())
  return peers
}

/** Gateway creates a space, readers join it and receive its genesis. */
export async function spaceWith(gateway: EdgewardNode, readers: EdgewardNode[], name: string): Promise<string> {
  const space = await gateway.createSpace(name)
  await joinSpace(readers, space, name)
  return space
}

/** Readers join `space` (called `name` in what a failed wait says) and receive its genesis. */
export async function joinSpace(readers: EdgewardNode[], space: string, name = space): Promise<void> {
  for (const r of readers) await r.joinSpace(space)
  await until(`readers to receive the genesis of ${name}`, () =>
    readers.every(r => r.policy.document(space).hasGenesis),
  )
}

/** Wait until every one of `nodes` knows the grant `id` of `space`. */
export function waitForGrant(nodes: EdgewardNode[], space: string, id: string): Promise<true> {
  return waitFor(`grant ${id} to reach every node waited for`, async () =>
    nodes.every(n => n.policy.document(space).state.grants.has(id)) ? true : undefined,
  )
}

/** What a grant may say beside its space, subject and window; `iat` is when it is issued (now by default). */
export type GrantOptions = Partial<Omit<GrantFields, 'space' | 'sub' | 'nbf' | 'exp'>> & { iat?: number }

/**
 * The owner (or an admin) grants `subject` readings of `streams` (STREAM by default) in
 * `window`, in `forms` (raw by default), with any other field of a grant (a data window,
 * a release limit…); it applies.
 */
export async function grantTo(
  owner: EdgewardNode,
  space: string,
  subject: string,
  window: { nbf: number; exp: number },
  { streams = [STREAM], forms = ['raw'], iat = Date.now(), ...more }: GrantOptions = {},
) {
  const g = createGrant(owner.identity.principal, { space, sub: subject, streams, forms, ...more, ...window }, iat)
  const outcome = await owner.policy.write(space, [{ kind: 'grant', record: g }])
  assert.equal(outcome.status, 'applied')
  return g
}

/** The owner revokes `target`; it applies. */
export async function revoke(owner: EdgewardNode, space: string, target: RevocationTarget) {
  const rv = createRevocation(owner.identity.principal, space, target, Date.now(), 'test')
  const outcome = await owner.policy.write(space, [{ kind: 'revocation', record: rv }])
  assert.equal(outcome.status, 'applied')
  return rv
}

/** Gateway publishes readings on `stream`; waits until every reader stored their ciphertext. */
export async function publish(
  gateway: EdgewardNode,
  readers: EdgewardNode[],
  space: string,
  stream: string,
  values: number[],
): Promise<void> {
  const before = await Promise.all(readers.map(async r => readingCount(await r.data.storedReadings(space, stream))))
  const t = Date.now()
  await gateway.data.publish(
    space,
    stream,
    values.map((value, i) => ({ ts: t + i, value })),
  )
  await waitFor(`readers to store the ciphertext published on ${stream}`, async () => {
    for (const [i, r] of readers.entries()) {
      if (readingCount(await r.data.storedReadings(space, stream)) < before[i] + values.length) return undefined
      if (!r.policy.document(space).state.streams.has(stream)) return undefined
    }
    return true
  })
}

/**
 * Cut the network in two: close every connection across the cut, and abort each new one as
 * it opens (libp2p redials peers the DHT tags keep-alive, and so do our nodes) until `heal()`.
 */
export async function cut(sideA: EdgewardNode[], sideB: EdgewardNode[]): Promise<{ refused(): number; heal(): void }> {
  let refused = 0
  const gates: Array<() => void> = []
  const ids = (side: EdgewardNode[]) => new Set(side.map(n => n.identity.peerId))
  const gate = (node: EdgewardNode, across: Set<string>) => {
    const onOpen = (evt: CustomEvent<Connection>) => {
      if (!across.has(evt.detail.remotePeer.toString())) return
      refused++
      evt.detail.abort(new Error('partitioned'))
    }
    node.libp2p.addEventListener('connection:open', onOpen)
    gates.push(() => node.libp2p.removeEventListener('connection:open', onOpen))
  }
  for (const a of sideA) gate(a, ids(sideB))
  for (const b of sideB) gate(b, ids(sideA))
  for (const a of sideA) {
    for (const b of sideB) {
      await a.libp2p.hangUp(peerIdFromString(b.identity.peerId))
      await b.libp2p.hangUp(peerIdFromString(a.identity.peerId))
    }
  }
  const isolated = (side: EdgewardNode[], other: Set<string>) =>
    side.every(n => n.connectedPeers().every(p => !other.has(p)))
  await until('the cut to take hold', () => isolated(sideA, ids(sideB)) && isolated(sideB, ids(sideA)))
  return {
    refused: () => refused,
    heal: () => {
      for (const ungate of gates) ungate()
    },
  }
}

/**
 * The policy gossip of `space` is lost on its way to `node` (its topic validator ignores every
 * message) until `restore()`; `lost()` counts the messages lost.
 */
export function losePolicyGossip(node: EdgewardNode, space: string): { lost(): number; restore(): void } {
  const pubsub = node.libp2p.services.pubsub
  const topic = policyTopic(space)
  const validate = pubsub.topicValidators.get(topic)!
  let lost = 0
  pubsub.topicValidators.set(topic, async () => {
    lost++
    return TopicValidatorResult.Ignore
  })
  return {
    lost: () => lost,
    restore: () => {
      pubsub.topicValidators.set(topic, validate)
    },
  }
}

/** The sorted heads of a node's policy document of `space`. */
export function headsOf(n: EdgewardNode, space: string): string[] {
  return [...n.policy.document(space).heads()].sort()
}
