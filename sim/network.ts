/**
 * A simulated network: N real edgeward peers (the same EdgewardNode, real libp2p, gossipsub
 * and LevelDB code) in one process, linked over the memory transport.
 *
 * - Topology: a seeded random graph or sites (sim/topology.ts); each link is dialled once at
 *   the start. By default peers may dial only along those links, and anyone may dial the
 *   public peers (the owner's gateway, which readers ask for keys and witnesses for proofs);
 *   with `strictTopology: false` the nodes dial whoever they find (the DHT connects most
 *   peers to most others). The connection counts at measurement time are reported.
 * - Links: a latency per pair of peers (sim/link.ts, with its approximations).
 * - Partitions: a connection gater on every peer refuses dials and handshakes between peers
 *   on different sides, and existing connections across the cut are aborted (a cable pulled,
 *   not a polite close). Healing removes the gate and redials the topology's links across it.
 * - Crash and restart: a crash stops one node; a restart creates it again from the same data
 *   directory and store. With stores on disk its state (spaces, policy, keys, audit log)
 *   survives; with stores in memory a restart begins empty, as a wiped device would.
 * - Memory: process.memoryUsage() is sampled as peers are added, for memory per peer.
 * - Background work: see SIMULATION_DEFAULTS, what each peer does less often than a real node.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { GossipsubOpts } from '@libp2p/gossipsub'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import { NodeStateError } from '../node/errors.ts'
import { createIdentity } from '../node/identity.ts'
import { EdgewardNode, type NodeOptions } from '../node/node.ts'
import { openMemoryStore } from '../node/store.ts'
import { LinkModel, type LinkSpec, memoryWithLatency } from './link.ts'
import { linkRule, neighbours, seededTopology, type Topology, type TopologySpec } from './topology.ts'

const log = logger('edgeward:sim')

export type StoreKind = 'memory' | 'disk'

/**
 * What every simulated peer does less often than a real node, unless the options say
 * otherwise. Idle, a peer with the node's defaults cost about 0.3% of a core (100 peers: 30%
 * of the simulator's one core before anything happens), mostly in timers whose job a
 * simulation does not need:
 * - libp2p's connection monitor pings every connection every 10 s (a new stream each time, in
 *   both directions) to find links that died silently; in-memory links do not die silently (a
 *   crash closes them, a partition aborts them): no pings.
 * - the node redials known, unconnected peers every 2 s, reading its peer list from the store;
 *   the simulator redials what a heal or a restart needs itself: every 30 s.
 * - a key holder republishes its audit log's head every 5 s even when it has not changed, and
 *   every peer verifies each copy: every 30 s (a new head is still published on the next tick;
 *   the scenarios that test witnesses publish heads themselves).
 * With these, an idle peer costs about a quarter as much (see README, simulator).
 */
export const SIMULATION_DEFAULTS = {
  pingIntervalMs: 0,
  node: { redialIntervalMs: 30_000, headIntervalMs: 30_000 },
} as const

export interface SimNetworkOptions {
  peers: number
  topology: TopologySpec
  link: LinkSpec
  /** where each peer keeps its state: an in-memory LevelDB, or LevelDB in its temp data directory */
  store: StoreKind
  seed: number
  /** options for every node (intervals, lease length, audit, ...) over SIMULATION_DEFAULTS.node */
  node?: Omit<NodeOptions, 'dataDir' | 'listen' | 'network' | 'store' | 'bootstrap'>
  /** gossipsub options over the node's defaults */
  gossip?: Partial<GossipsubOpts>
  /** how often libp2p pings each connection (default SIMULATION_DEFAULTS: never; 0: never) */
  pingIntervalMs?: number
  /** how many peers are created, started or dialled at once (default 8) */
  concurrency?: number
  /**
   * May peers dial only along the topology's links (default true)? Real edge devices cannot
   * reach every other device; without this, the DHT connects most peers to most others and
   * the chosen degree means little. Links to and from `public` peers are always allowed.
   */
  strictTopology?: boolean
  /** peers every peer may dial, like a gateway with a public address (default [0]: the owner's gateway) */
  public?: number[]
  /** called as setup progresses: phase, done, total */
  onProgress?: (phase: string, done: number, total: number) => void
}

export interface SimPeer {
  readonly index: number
  readonly name: string
  readonly dataDir: string
  readonly site: number
  peerId: string
  /** the principal's did:key */
  principal: string
  /** undefined while the peer is crashed */
  node: EdgewardNode | undefined
}

export interface MemorySample {
  /** peers running when sampled */
  peers: number
  phase: string
  rssBytes: number
  heapUsedBytes: number
  externalBytes: number
  arrayBuffersBytes: number
}

/** Growth of RSS and heap from the first sample (before any peer) to the latest, per peer then running. */
export function memoryGrowthPerPeer(memory: readonly MemorySample[]): { rssBytes: number; heapUsedBytes: number } {
  const first = memory[0]
  const last = memory[memory.length - 1]
  const n = Math.max(1, last.peers)
  return {
    rssBytes: Math.round((last.rssBytes - first.rssBytes) / n),
    heapUsedBytes: Math.round((last.heapUsedBytes - first.heapUsedBytes) / n),
  }
}

/** What a connection cut by a partition is aborted with. */
export class PartitionedError extends Error {
  static override name = 'PartitionedError'

  constructor(message = 'partitioned by the simulator') {
    super(message)
    this.name = 'PartitionedError'
  }
}

/** Many real edgeward peers in one process over the memory transport, with a link model, partitions, crashes and restarts. */
export class SimNetwork {
  readonly peers: SimPeer[]
  readonly topology: Topology
  readonly links: LinkModel
  readonly root: string
  /** the seed of everything random in the run that is ours */
  get seed(): number {
    return this.opts.seed
  }
  /** May a and b be connected at all (ignoring partitions)? */
  readonly mayLink: (a: number, b: number) => boolean
  /** process memory as the network grew; the first sample is before any peer */
  readonly memory: MemorySample[] = []
  private readonly opts: SimNetworkOptions
  private readonly prefix: string
  private readonly neighbours: number[][]
  private readonly byPeerId = new Map<string, number>()
  /** memory address -> peer */
  private readonly byAddress = new Map<string, number>()
  /** the side of each peer while partitioned */
  private side: number[] | undefined
  /** connections a partition cut, as [dialler, listener], redialled by the heal */
  private readonly cutConnections: [number, number][] = []
  private dialFailures = 0

  private constructor(opts: SimNetworkOptions, root: string) {
    this.opts = opts
    this.root = root
    this.topology = seededTopology(opts)
    this.neighbours = neighbours(opts.peers, this.topology.links)
    this.links = new LinkModel(opts.link, this.topology.site)
    this.mayLink = linkRule(this.topology, opts.public ?? [0], opts.strictTopology !== false)
    // memory addresses are process-wide: the temp dir's unique suffix keeps networks apart
    this.prefix = `sim${root.slice(-6)}`
    this.peers = Array.from({ length: opts.peers }, (_, index) => ({
      index,
      name: `p${index}`,
      dataDir: join(root, `p${index}`),
      site: this.topology.site[index],
      peerId: '',
      principal: '',
      node: undefined,
    }))
    for (const p of this.peers) this.byAddress.set(this.listenAddress(p.index), p.index)
  }

  /** Create every peer's identity and node, start them, and dial the topology's links. */
  static create(opts: SimNetworkOptions): Promise<SimNetwork> {
    return setUpInTempDir(
      root => new SimNetwork(opts, root),
      net => net.setUp(),
    )
  }

  private progress(phase: string, done: number, total: number): void {
    this.opts.onProgress?.(phase, done, total)
  }

  private get concurrency(): number {
    return this.opts.concurrency ?? 8
  }

  private async setUp(): Promise<void> {
    const n = this.peers.length
    this.sampleMemory('empty')
    let done = 0
    await forEachLimit(this.peers, this.concurrency, async p => {
      const identity = await createIdentity(p.dataDir, { now: Date.now() })
      p.peerId = identity.peerId
      p.principal = identity.principal.did
      this.byPeerId.set(p.peerId, p.index)
      this.progress('identities', ++done, n)
    })
    done = 0
    const checkpoints = new Set([Math.ceil(n / 4), Math.ceil(n / 2), Math.ceil((3 * n) / 4), n])
    await forEachLimit(this.peers, this.concurrency, async p => {
      await this.startPeer(p.index)
      done++
      if (checkpoints.has(done)) this.sampleMemory('started')
      this.progress('peers', done, n)
    })
    done = 0
    await forEachLimit(this.topology.links, this.concurrency, async ([a, b]) => {
      await this.dial(a, b)
      this.progress('links', ++done, this.topology.links.length)
    })
    this.sampleMemory('linked')
  }

  /** The memory address peer i listens on. */
  listenAddress(i: number): string {
    return `/memory/${this.prefix}-p${i}`
  }

  /** The full address of peer i, with its peer id. */
  addressOf(i: number): string {
    return `${this.listenAddress(i)}/p2p/${this.peers[i].peerId}`
  }

  /** The index of a peer by its peer id. */
  indexOf(peer: PeerId | string): number | undefined {
    return this.byPeerId.get(peer.toString())
  }

  /** Are two peers on different sides of the current partition? */
  isCut(a: number, b: number): boolean {
    return this.side !== undefined && this.side[a] !== this.side[b]
  }

  private gaterFor(me: number): ConnectionGater {
    const denied = (other: number | undefined) =>
      other !== undefined && (this.isCut(me, other) || !this.mayLink(me, other))
    const deny = (peer: PeerId) => denied(this.indexOf(peer))
    return {
      denyDialPeer: deny,
      denyInboundEncryptedConnection: deny,
      denyOutboundEncryptedConnection: deny,
      // addresses without a peer id (as a node redials them after a restart) name the peer by address
      denyDialMultiaddr: ma => denied(this.byAddress.get(ma.decapsulateCode(CODE_P2P).toString())),
    }
  }

  private async startPeer(i: number): Promise<EdgewardNode> {
    const p = this.peers[i]
    const latencyTo = (peer: string) => {
      const other = this.indexOf(peer)
      return other === undefined ? undefined : this.links.latencyOf(i, other)
    }
    const lossTo = (peer: string) => {
      const other = this.indexOf(peer)
      return other === undefined ? 0 : this.links.lossOf(i, other)
    }
    const node = await EdgewardNode.create({
      ...SIMULATION_DEFAULTS.node,
      ...this.opts.node,
      dataDir: p.dataDir,
      listen: [this.listenAddress(i)],
      network: {
        transports: [memoryWithLatency(latencyTo, this.links.jitterMs, this.seed * 7919 + i, lossTo)],
        connectionGater: this.gaterFor(i),
        ...(this.opts.gossip === undefined ? {} : { gossip: this.opts.gossip }),
        pingIntervalMs: this.opts.pingIntervalMs ?? SIMULATION_DEFAULTS.pingIntervalMs,
      },
      ...(this.opts.store === 'memory' ? { store: openMemoryStore } : {}),
    })
    try {
      await node.start()
    } catch (err) {
      await node.stop().catch(() => undefined)
      throw err
    }
    p.node = node
    return node
  }

  /** The running node of peer i; throws while it is crashed. */
  node(i: number): EdgewardNode {
    const node = this.peers[i].node
    if (node === undefined) throw new NodeStateError(`peer ${i} is not running`)
    return node
  }

  /** Every running peer. */
  running(): SimPeer[] {
    return this.peers.filter(p => p.node !== undefined)
  }

  neighboursOf(i: number): number[] {
    return this.neighbours[i]
  }

  /** Dial from a to b (a few attempts); false when it did not connect. */
  async dial(a: number, b: number): Promise<boolean> {
    const from = this.peers[a].node
    if (from === undefined || this.peers[b].node === undefined || this.isCut(a, b)) return false
    const ma = multiaddr(this.addressOf(b))
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await from.libp2p.dial(ma, { signal: AbortSignal.timeout(30_000) })
        return true
      } catch (err) {
        log('dial %d -> %d failed: %s', a, b, (err as Error).message)
      }
    }
    this.dialFailures++
    return false
  }

  /** Dials of topology links that failed after every attempt (setup, heal, restart). */
  get failedDials(): number {
    return this.dialFailures
  }

  /**
   * Split the network: `sideOf(i)` names each peer's side. Dials and handshakes across sides
   * are refused from now on, and connections across them are aborted.
   */
  partition(sideOf: (i: number) => number): void {
    this.side = this.peers.map(p => sideOf(p.index))
    for (const p of this.running()) {
      for (const conn of p.node!.libp2p.getConnections()) {
        const other = this.indexOf(conn.remotePeer)
        if (other === undefined || !this.isCut(p.index, other)) continue
        // remembered for the heal: connections off the topology (to the owner, found by the DHT) count too
        if (conn.direction === 'outbound') this.cutConnections.push([p.index, other])
        conn.abort(new PartitionedError())
      }
    }
  }

  /**
   * Remove the partition and redial what it cut: the topology's links across it and every
   * other connection that crossed it (a real node's redial loop would reconnect those; the
   * simulated peers redial rarely, see SIMULATION_DEFAULTS).
   */
  async heal(): Promise<void> {
    const side = this.side
    this.side = undefined
    if (side === undefined) return
    const pairs = new Map<string, [number, number]>()
    for (const [a, b] of this.topology.links) if (side[a] !== side[b]) pairs.set(`${a}-${b}`, [a, b])
    for (const [a, b] of this.cutConnections.splice(0)) {
      if (!pairs.has(`${a}-${b}`) && !pairs.has(`${b}-${a}`)) pairs.set(`${a}-${b}`, [a, b])
    }
    await forEachLimit([...pairs.values()], this.concurrency, ([a, b]) => this.dial(a, b))
  }

  /** Stop peer i (its store is closed; on disk, its state stays). */
  async crash(i: number): Promise<void> {
    const node = this.node(i)
    this.peers[i].node = undefined
    await node.stop()
  }

  /** Create peer i again from its data directory, start it, and redial its topology links. */
  async restart(i: number): Promise<EdgewardNode> {
    if (this.peers[i].node !== undefined) throw new NodeStateError(`peer ${i} is running`)
    const node = await this.startPeer(i)
    await forEachLimit(this.neighbours[i], this.concurrency, j => this.dial(i, j))
    return node
  }

  /** Connections each running peer has now (to distinct peers). */
  degrees(): number[] {
    return this.running().map(p => p.node!.connectedPeers().length)
  }

  /** Sample process memory (after a full garbage collection when node runs with --expose-gc). */
  sampleMemory(phase: string): MemorySample {
    ;(globalThis as { gc?: () => void }).gc?.()
    const m = process.memoryUsage()
    const s = {
      peers: this.running().length,
      phase,
      rssBytes: m.rss,
      heapUsedBytes: m.heapUsed,
      externalBytes: m.external,
      arrayBuffersBytes: m.arrayBuffers,
    }
    this.memory.push(s)
    return s
  }

  /** Growth of RSS and heap from the empty network to the latest sample, per running peer. */
  memoryPerPeer(): { rssBytes: number; heapUsedBytes: number } {
    return memoryGrowthPerPeer(this.memory)
  }

  /** Stop every running peer and remove the network's temp directory. */
  async stop(): Promise<void> {
    const running = this.running()
    let done = 0
    const failures: string[] = []
    await forEachLimit(running, this.concurrency * 4, async p => {
      const node = p.node!
      p.node = undefined
      try {
        await node.stop()
      } catch (err) {
        failures.push(`${p.name}: ${(err as Error).message}`)
      }
      this.progress('stopping', ++done, running.length)
    })
    await rm(this.root, { recursive: true, force: true })
    if (failures.length > 0) throw new NodeStateError(`peers failed to stop: ${failures.join('; ')}`)
  }
}

/**
 * A network built on a fresh temp dir and set up; if setting up fails, what started is
 * stopped and the setup's failure is the one thrown (not a failure to stop what half started).
 */
export async function setUpInTempDir<N extends { stop(): Promise<unknown> }>(
  build: (root: string) => N,
  setUp: (net: N) => Promise<void>,
): Promise<N> {
  const net = build(await mkdtemp(join(tmpdir(), 'edgeward-sim-')))
  try {
    await setUp(net)
  } catch (err) {
    await net.stop().catch(() => undefined)
    throw err
  }
  return net
}

/** Run `fn` over `items` with at most `limit` running at once. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>) {
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]
      await fn(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
