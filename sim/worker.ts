/**
 * One worker process of a multi-process simulation (sim/procs.ts starts it with
 * child_process.fork): it runs a share of the network's peers, real edgeward nodes over TCP on
 * 127.0.0.1, each with its own LevelDB store (on disk, or in memory), and does what the
 * coordinator asks over the IPC channel, one request at a time per request id.
 *
 * Every time it reports is `performance.timeOrigin + performance.now()` (ms since the epoch,
 * sub-millisecond): processes on one machine share that clock, so the coordinator can take
 * differences of times taken in different workers.
 *
 * The worker builds the same seeded topology as the coordinator, and its connection gater
 * refuses dials off the topology (unless open dials) the way SimNetwork's does.
 */
import { join } from 'node:path'
import type { GossipsubOpts, Message } from '@libp2p/gossipsub'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { AccessRefusedError, NodeStateError } from '../node/errors.ts'
import { createIdentity } from '../node/identity.ts'
import { EdgewardNode, type NodeOptions } from '../node/node.ts'
import { openMemoryStore } from '../node/store.ts'
import { decodeEntry } from '../protocols/audit/entries.ts'
import { InvalidMessageError } from '../protocols/errors.ts'
import { forEachLimit, type StoreKind } from './network.ts'
import { revokesSubject, timeValidation } from './scenarios/revoke.ts'
import { BASELINE_TOPIC, STREAM } from './scenarios/space.ts'
import { linkRule, seededTopology, type TopologySpec } from './topology.ts'
import { sleep } from './wait.ts'

/** What the coordinator tells a worker at the start. */
export interface WorkerInit {
  /** the peers this worker runs */
  indices: number[]
  /** peers in the whole network */
  peers: number
  topology: TopologySpec
  seed: number
  strictTopology: boolean
  public: number[]
  store: StoreKind
  /** the network's temp directory; peer i keeps its data in ROOT/p<i> */
  root: string
  node?: Omit<NodeOptions, 'dataDir' | 'listen' | 'network' | 'store' | 'bootstrap'>
  gossip?: Partial<GossipsubOpts>
  pingIntervalMs?: number
  concurrency: number
}

/** A peer a worker started: its index, identities and address, for the coordinator's table. */
export interface StartedPeer {
  index: number
  peerId: string
  principal: string
  address: string
}

/** A worker process's memory, as process.memoryUsage() reports it. */
export interface WorkerMemory {
  rssBytes: number
  heapUsedBytes: number
  externalBytes: number
  arrayBuffersBytes: number
}

/** One read of the subject while the revocation spreads (times: ms since the epoch). */
export interface ReadRecord {
  startedAt: number
  endedAt: number
  afterSeen: boolean
  outcome: 'read' | 'refused' | 'error'
  detail?: string
}

/** Events a worker sends without being asked (times: ms since the epoch). */
export type WorkerEvent =
  | { event: 'revocation'; index: number; record: string; at: number; cachedKeys: number }
  | { event: 'baseline'; index: number; at: number }
  | { event: 'joined'; index: number }

/** Wall-clock time shared by the processes of one machine, ms, sub-millisecond. */
export const clock = (): number => performance.timeOrigin + performance.now()

class Worker {
  private init!: WorkerInit
  private readonly nodes = new Map<number, EdgewardNode>()
  private table: StartedPeer[] = []
  private readonly byPeerId = new Map<string, number>()
  private readonly byAddress = new Map<string, number>()
  /** set by start, from the topology */
  private mayLink: (a: number, b: number) => boolean = () => false
  private readonly watched = new Set<string>()
  private reading: { stop: boolean; records: ReadRecord[]; done: Promise<void> } | undefined
  private baselinePayload: Uint8Array | undefined

  async handle(op: string, args: Record<string, unknown>): Promise<unknown> {
    switch (op) {
      case 'start':
        return this.start(args as unknown as WorkerInit)
      case 'table':
        return this.setTable(args.peers as StartedPeer[])
      case 'dial':
        return this.dial(args.links as [number, number][])
      case 'memory':
        return memory()
      case 'createSpace':
        return this.node(args.index as number).createSpace('sim')
      case 'join':
        return this.join(args.space as string, args.owner as number)
      case 'behind':
        return this.behind(args.space as string, args.what as 'genesis' | 'stream')
      case 'sync':
        return this.sync(args.indices as number[])
      case 'publish':
        return this.publish(args.index as number, args.space as string, args.readings as number)
      case 'meshes':
        return this.meshes(args.topics as string[])
      case 'grant':
        return this.grant(args.owner as number, args.space as string, args.subject as string)
      case 'hasGrant':
        return this.node(args.index as number)
          .policy.document(args.space as string)
          .state.grants.has(args.grant as string)
      case 'firstRead':
        return this.firstRead(args.index as number, args.space as string)
      case 'startReads':
        return this.startReads(args.index as number, args.space as string, args.subject as string)
      case 'readsStatus':
        return this.reading?.records ?? []
      case 'stopReads':
        return this.stopReads()
      case 'writeRevocation':
        return this.writeRevocation(args.owner as number, args.space as string, args.subject as string)
      case 'inState':
        return this.count(n => n.policy.document(args.space as string).state.revocations.has(args.id as string))
      case 'cachedKeys':
        return this.node(args.index as number).data.cachedKeyCount()
      case 'releasesAfter':
        return this.releasesAfter(args.owner as number, args.subject as string, args.after as number)
      case 'envelope':
        return this.envelope(args.owner as number, args.space as string, args.hash as string)
      case 'listenBaseline':
        this.baselinePayload = args.payload as Uint8Array
        return undefined
      case 'publishBaseline':
        return this.publishBaseline(args.index as number)
      case 'degrees':
        return [...this.nodes].map(([index, n]) => [index, n.connectedPeers().length])
      case 'stop':
        return this.stop()
      default:
        throw new InvalidMessageError(`unknown operation ${op}`)
    }
  }

  private node(i: number): EdgewardNode {
    const n = this.nodes.get(i)
    if (n === undefined) throw new NodeStateError(`peer ${i} does not run in this worker`)
    return n
  }

  private count(pred: (n: EdgewardNode) => boolean): number {
    let k = 0
    for (const n of this.nodes.values()) if (pred(n)) k++
    return k
  }

  private gaterFor(me: number): ConnectionGater {
    // peers not in the table yet (while the network starts) are not refused
    const denied = (other: number | undefined) => other !== undefined && !this.mayLink(me, other)
    const deny = (peer: PeerId) => denied(this.byPeerId.get(peer.toString()))
    return {
      denyDialPeer: deny,
      denyInboundEncryptedConnection: deny,
      denyOutboundEncryptedConnection: deny,
      denyDialMultiaddr: ma => denied(this.byAddress.get(ma.toString().split('/p2p/')[0])),
    }
  }

  private async start(init: WorkerInit): Promise<{ peers: StartedPeer[]; empty: WorkerMemory; started: WorkerMemory }> {
    this.init = init
    const topology = seededTopology(init)
    this.mayLink = linkRule(topology, init.public, init.strictTopology)
    const empty = memory()
    const started: StartedPeer[] = []
    await forEachLimit(init.indices, init.concurrency, async index => {
      const dataDir = join(init.root, `p${index}`)
      const identity = await createIdentity(dataDir, { now: Date.now() })
      const node = await EdgewardNode.create({
        ...init.node,
        dataDir,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        network: {
          connectionGater: this.gaterFor(index),
          // every peer is 127.0.0.1: libp2p would refuse its connections past 5 a second
          allow: ['/ip4/127.0.0.1'],
          // gossipsub scores down peers that share an IP (past 10, quadratically): here all do, and
          // the owner, which every peer dials, would otherwise have no mesh peer at all
          gossip: {
            ...init.gossip,
            scoreParams: { ...init.gossip?.scoreParams, IPColocationFactorWhitelist: new Set(['127.0.0.1']) },
          },
          ...(init.pingIntervalMs === undefined ? {} : { pingIntervalMs: init.pingIntervalMs }),
        },
        ...(init.store === 'memory' ? { store: openMemoryStore } : {}),
      })
      try {
        await node.start()
      } catch (err) {
        await node.stop().catch(() => undefined)
        throw err
      }
      this.nodes.set(index, node)
      started.push({ index, peerId: identity.peerId, principal: identity.principal.did, address: node.addresses()[0] })
    })
    return { peers: started.sort((a, b) => a.index - b.index), empty, started: memory() }
  }

  private setTable(peers: StartedPeer[]): void {
    this.table = peers
    for (const p of peers) {
      this.byPeerId.set(p.peerId, p.index)
      this.byAddress.set(p.address.split('/p2p/')[0], p.index)
    }
  }

  /** Dial each link [a, b] whose a runs here (three attempts); returns the links that failed. */
  private async dial(links: [number, number][]): Promise<number> {
    let failed = 0
    const mine = links.filter(([a]) => this.nodes.has(a))
    await forEachLimit(mine, this.init.concurrency, async ([a, b]) => {
      const ma = multiaddr(`${this.table[b].address.split('/p2p/')[0]}/p2p/${this.table[b].peerId}`)
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await this.node(a).libp2p.dial(ma, { signal: AbortSignal.timeout(30_000) })
          return
        } catch {
          await sleep(100 * (attempt + 1))
        }
      }
      failed++
    })
    return failed
  }

  private async join(space: string, owner: number): Promise<void> {
    for (const [index, node] of this.nodes) {
      node.libp2p.services.pubsub.subscribe(BASELINE_TOPIC)
      node.libp2p.services.pubsub.addEventListener('message', (evt: CustomEvent<Message>) => {
        const m = evt.detail
        const payload = this.baselinePayload
        if (m.topic === BASELINE_TOPIC && payload !== undefined && Buffer.compare(m.data, payload) === 0) {
          send({ event: 'baseline', index, at: clock() })
        }
      })
    }
    await forEachLimit(
      [...this.nodes].filter(([i]) => i !== owner),
      16,
      async ([index, node]) => {
        await node.joinSpace(space)
        send({ event: 'joined', index })
      },
    )
    for (const [index, node] of this.nodes) {
      if (this.watched.has(`${index}`)) continue
      this.watched.add(`${index}`)
      node.policy.onRecords((s, records) => {
        if (s !== space) return
        const at = clock()
        for (const r of records) {
          if (r.kind === 'revocation') {
            // the data service's listener ran first and dropped what the revocation ends
            send({ event: 'revocation', index, record: r.record.id, at, cachedKeys: node.data.cachedKeyCount() })
          }
        }
      })
    }
  }

  private behind(space: string, what: 'genesis' | 'stream'): number[] {
    const out: number[] = []
    for (const [index, node] of this.nodes) {
      const doc = node.policy.document(space)
      if (what === 'genesis' ? !doc.hasGenesis : !doc.state.streams.has(STREAM)) out.push(index)
    }
    return out
  }

  /** Ask these peers to catch up with their neighbours now (a failed catch-up is asked again later). */
  private async sync(indices: number[]): Promise<void> {
    await Promise.all(
      indices.map(i =>
        this.node(i)
          .policy.syncAll()
          .catch(() => undefined),
      ),
    )
  }

  private async publish(index: number, space: string, readings: number): Promise<void> {
    const t = Date.now()
    await this.node(index).data.publish(
      space,
      STREAM,
      Array.from({ length: readings }, (_, i) => ({ ts: t + i, value: 20 + i / 10 })),
    )
  }

  /** Mesh peers per local peer, per topic. */
  private meshes(topics: string[]): [number, number[]][] {
    return [...this.nodes].map(([index, node]) => {
      const pubsub = node.libp2p.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }
      return [index, topics.map(t => pubsub.getMeshPeers(t).length)]
    })
  }

  private async grant(owner: number, space: string, subject: string): Promise<string> {
    const node = this.node(owner)
    const now = node.now()
    const { record } = await node.policy.grant(space, {
      sub: subject,
      streams: [STREAM],
      forms: ['raw'],
      nbf: now - 60_000,
      exp: now + 3_600_000,
    })
    return record.id
  }

  /**
   * The subject's first read is setup: a key holder too busy to answer in time is asked again,
   * and a subject that has no readings yet (gossip missed it) reads again once backfill could
   * fetch them; up to five tries.
   */
  private async firstRead(index: number, space: string): Promise<{ readings: number; cachedKeys: number }> {
    const node = this.node(index)
    for (let attempt = 1; ; attempt++) {
      try {
        const readings = await node.data.read(space, STREAM)
        const got = { readings: readings.length, cachedKeys: node.data.cachedKeyCount() }
        if ((got.readings > 0 && got.cachedKeys > 0) || attempt === 5) return got
      } catch (err) {
        if (attempt === 5 || (err as Error).name === AccessRefusedError.name) throw err
      }
      await sleep(1000 * attempt)
    }
  }

  /**
   * The subject reads again and again (5 ms apart) until stopped or refused three times after
   * it applied the revocation of `subject` (its own principal).
   */
  private startReads(index: number, space: string, subject: string): void {
    const node = this.node(index)
    let seen = false
    node.policy.onRecords((s, records) => {
      if (s === space && records.some(r => revokesSubject(r, subject))) seen = true
    })
    const state = { stop: false, records: [] as ReadRecord[], done: Promise.resolve() }
    state.done = (async () => {
      let refusedAfterSeen = 0
      while (!state.stop && refusedAfterSeen < 3) {
        const r: ReadRecord = { startedAt: clock(), endedAt: 0, afterSeen: seen, outcome: 'read' }
        try {
          await node.data.read(space, STREAM)
        } catch (err) {
          r.outcome = (err as Error).name === AccessRefusedError.name ? 'refused' : 'error'
          r.detail = (err as Error).message
        }
        r.endedAt = clock()
        state.records.push(r)
        if (r.afterSeen && r.outcome === 'refused') refusedAfterSeen++
        await sleep(5)
      }
    })()
    this.reading = state
  }

  private async stopReads(): Promise<ReadRecord[]> {
    const state = this.reading
    if (state === undefined) return []
    state.stop = true
    await state.done
    this.reading = undefined
    return state.records
  }

  /**
   * The owner revokes `subject`; returns when the revocation was asked for (it is signed,
   * written and gossiped from then on), its id and the hash of its change.
   */
  private async writeRevocation(
    owner: number,
    space: string,
    subject: string,
  ): Promise<{ startAt: number; revocation: string; hash: string }> {
    const startAt = clock()
    const { record, change } = await this.node(owner).policy.revoke(space, { subject })
    return { startAt, revocation: record.id, hash: change }
  }

  /** Key releases to `subject` in the owner's audit log dated after `after` (ms since the epoch). */
  private async releasesAfter(owner: number, subject: string, after: number): Promise<number> {
    const audit = this.node(owner).audit
    let n = 0
    for (let i = 0; i < (audit?.size ?? 0); i++) {
      const e = decodeEntry(await audit!.entry(i))
      if (e.t === 'release' && e.subject === subject && e.ts > after) n++
    }
    return n
  }

  /** The revocation's stored envelope: its size, and how long one peer takes to apply it alone. */
  private async envelope(
    owner: number,
    space: string,
    hash: string,
  ): Promise<{ messageBytes: number; validationMs: number }> {
    const node = this.node(owner)
    const envelope = await node.policy.storedChange(space, hash)
    if (envelope === undefined) return { messageBytes: 0, validationMs: Number.NaN }
    return { messageBytes: envelope.byteLength, validationMs: timeValidation(node.policy.document(space), envelope) }
  }

  private async publishBaseline(index: number): Promise<number> {
    const payload = this.baselinePayload
    if (payload === undefined) throw new NodeStateError('no baseline payload')
    const at = clock()
    await this.node(index).libp2p.services.pubsub.publish(BASELINE_TOPIC, payload)
    return at
  }

  private async stop(): Promise<{ failures: string[]; backgroundFailures: number }> {
    await this.stopReads()
    const failures: string[] = []
    await forEachLimit([...this.nodes], 32, async ([index, node]) => {
      this.nodes.delete(index)
      try {
        await node.stop()
      } catch (err) {
        failures.push(`p${index}: ${(err as Error).message}`)
      }
    })
    return { failures, backgroundFailures }
  }
}

let backgroundFailures = 0

function memory(): WorkerMemory {
  ;(globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers }
}

function send(msg: unknown): void {
  process.send?.(msg)
}

if (process.send !== undefined && process.argv[1]?.endsWith('worker.ts')) {
  const worker = new Worker()
  // a library's background failure (a dial nobody waits for) must not end the worker: counted
  process.on('unhandledRejection', () => {
    backgroundFailures++
  })
  process.on('message', (msg: { id: number; op: string; args: Record<string, unknown> }) => {
    worker.handle(msg.op, msg.args ?? {}).then(
      value => send({ id: msg.id, ok: true, value }),
      (err: Error) => send({ id: msg.id, ok: false, error: { name: err.name, message: err.message } }),
    )
  })
  // the coordinator went away: leave too
  process.on('disconnect', () => {
    void worker.handle('stop', {}).finally(() => process.exit(0))
  })
}
