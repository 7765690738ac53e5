/**
 * What the scenarios share: the owner's gateway creates a space and a stream, every other
 * peer joins it, and the gossip meshes form before anything is measured. Also the plain
 * gossip baseline: a message on a topic of its own, with no validator of ours, timed the
 * same way as a policy change.
 */
import { randomBytes } from 'node:crypto'
import type { GossipsubMessage, Message } from '@libp2p/gossipsub'
import { AccessRefusedError } from '../../node/errors.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { policyTopic } from '../../protocols/sync/messages.ts'
import { forEachLimit, type SimNetwork } from '../network.ts'
import { sleep, unlessDeadline, waitUntil } from '../wait.ts'

/** The stream every scenario's gateway publishes. */
export const STREAM = 'temperature'
/** The plain gossip topic the baseline is timed on (no validator of ours). */
export const BASELINE_TOPIC = '/edgeward-sim/baseline/1.0.0'

/** Told how far a phase of a run has got. */
export type Progress = (phase: string, done: number, total: number) => void

/** The heads of a node's policy document for a space, as one comparable string. */
export function headsKey(node: EdgewardNode, space: string): string {
  const doc = node.policy.document(space)
  return doc.hasGenesis ? [...doc.heads()].sort().join(',') : ''
}

/**
 * Until `lacks(node)` is false on every running peer. Gossip gets there first; a peer still
 * behind after `graceMs` is asked to catch up with its neighbours now (at most 16 at a time,
 * instead of waiting for its periodic catch-up), and redials its topology links if it has
 * no connection left. Setup only: nothing measured goes through here.
 */
export async function catchUp(
  net: SimNetwork,
  what: string,
  lacks: (node: EdgewardNode) => boolean,
  deadlineMs: number,
  onProgress?: Progress,
  graceMs = 2000,
): Promise<void> {
  const total = net.running().length
  const started = performance.now()
  const syncing = new Map<number, Promise<void>>()
  const lastSync = new Map<number, number>()
  try {
    await waitUntil(
      what,
      () => {
        const behind = net.running().filter(p => lacks(p.node!))
        onProgress?.(what, total - behind.length, total)
        if (behind.length === 0) return true
        const now = performance.now()
        if (now - started < graceMs) return false
        for (const p of behind) {
          if (syncing.size >= 16) break
          if (syncing.has(p.index) || now - (lastSync.get(p.index) ?? 0) < graceMs) continue
          lastSync.set(p.index, now)
          const node = p.node!
          const run = (async () => {
            if (node.connectedPeers().length === 0) {
              await forEachLimit(net.neighboursOf(p.index), 4, q => net.dial(p.index, q))
            }
            await node.policy.syncAll()
          })()
            // a catch-up that fails (a peer went away) is tried again on a later poll
            .catch(() => undefined)
            .finally(() => syncing.delete(p.index))
          syncing.set(p.index, run)
        }
        return false
      },
      deadlineMs,
      200,
    )
  } finally {
    await Promise.all(syncing.values())
  }
}

/**
 * The owner (peer `owner`) creates a space and publishes `readings` readings on STREAM; every
 * other running peer joins; returns once every peer has the genesis and the stream, and has
 * gossip mesh peers on the space's policy topic and on the baseline topic.
 */
export async function setUpSpace(
  net: SimNetwork,
  opts: { owner: number; readings: number; deadlineMs: number; onProgress?: Progress },
): Promise<string> {
  const owner = net.node(opts.owner)
  const space = await owner.createSpace('sim')
  const others = net.running().filter(p => p.index !== opts.owner)
  let joined = 0
  for (const p of net.running()) p.node!.libp2p.services.pubsub.subscribe(BASELINE_TOPIC)
  await forEachLimit(others, 16, async p => {
    await p.node!.joinSpace(space)
    opts.onProgress?.('joining', ++joined, others.length)
  })
  await catchUp(net, 'genesis everywhere', n => !n.policy.document(space).hasGenesis, opts.deadlineMs, opts.onProgress)
  const t = Date.now()
  await owner.data.publish(
    space,
    STREAM,
    Array.from({ length: opts.readings }, (_, i) => ({ ts: t + i, value: 20 + i / 10 })),
  )
  await catchUp(
    net,
    'stream everywhere',
    n => !n.policy.document(space).state.streams.has(STREAM),
    opts.deadlineMs,
    opts.onProgress,
  )
  await waitForMeshes(net, [policyTopic(space), BASELINE_TOPIC], opts.deadlineMs, opts.onProgress)
  return space
}

/** Until every running peer has at least one mesh peer on each topic. */
export async function waitForMeshes(
  net: SimNetwork,
  topics: string[],
  deadlineMs: number,
  onProgress?: Progress,
): Promise<void> {
  const total = net.running().length
  await waitUntil(
    'gossip meshes',
    () => {
      const ready = net.running().filter(p => topics.every(t => meshPeers(p.node!, t) > 0)).length
      onProgress?.('gossip meshes', ready, total)
      return ready === total
    },
    deadlineMs,
    100,
  )
}

/** Gossipsub's mesh for a topic: its class has the accessor, its exported interface does not. */
function meshPeers(node: EdgewardNode, topic: string): number {
  const pubsub = node.libp2p.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }
  return pubsub.getMeshPeers(topic).length
}

/**
 * Who first delivered which message of a topic to each running peer, from now until `stop()`:
 * the gossipsub source of each peer's first copy, to tell how many hops a message took.
 */
export class DeliveryTracker {
  private readonly seen = new Map<number, { source: string; data: Uint8Array }[]>()
  private readonly detach: (() => void)[] = []

  constructor(net: SimNetwork, topic: string) {
    for (const p of net.running()) {
      const pubsub = p.node!.libp2p.services.pubsub
      const list: { source: string; data: Uint8Array }[] = []
      this.seen.set(p.index, list)
      const onMessage = (evt: CustomEvent<GossipsubMessage>) => {
        if (evt.detail.msg.topic === topic) {
          list.push({ source: evt.detail.propagationSource.toString(), data: evt.detail.msg.data })
        }
      }
      pubsub.addEventListener('gossipsub:message', onMessage)
      this.detach.push(() => pubsub.removeEventListener('gossipsub:message', onMessage))
    }
  }

  stop(): void {
    for (const d of this.detach) d()
    this.detach.length = 0
  }

  /** Hops from `origin` to each peer along the first copies of `data` (undefined: not received). */
  hops(net: SimNetwork, origin: number, data: Uint8Array): (number | undefined)[] {
    const source = net.peers.map(p => {
      const first = this.seen.get(p.index)?.find(m => Buffer.compare(m.data, data) === 0)
      return first === undefined ? undefined : net.indexOf(first.source)
    })
    const hops: (number | undefined)[] = net.peers.map(() => undefined)
    hops[origin] = 0
    const depth = (i: number, guard: number): number | undefined => {
      if (hops[i] !== undefined) return hops[i]
      const s = source[i]
      if (s === undefined || guard > net.peers.length) return undefined
      const d = depth(s, guard + 1)
      hops[i] = d === undefined ? undefined : d + 1
      return hops[i]
    }
    for (const p of net.peers) depth(p.index, 0)
    return hops
  }
}

/** Mean number of gossip mesh peers per running peer on a topic. */
export function meanMesh(net: SimNetwork, topic: string): number {
  const running = net.running()
  return running.reduce((sum, p) => sum + meshPeers(p.node!, topic), 0) / Math.max(1, running.length)
}

/** When the baseline message reached each peer, and over how many hops. */
export interface BaselineTiming {
  /** per peer index: ms from publishing until the peer received it (undefined for the sender and the peers it never reached) */
  times: (number | undefined)[]
  hops: (number | undefined)[]
}

/**
 * Publish `size` random bytes on the baseline topic from `from`, and time its arrival at every
 * running peer (waiting up to the deadline).
 */
export async function timeBaseline(
  net: SimNetwork,
  from: number,
  size: number,
  deadlineMs: number,
): Promise<BaselineTiming> {
  const payload = randomBytes(size)
  const times: (number | undefined)[] = net.peers.map(() => undefined)
  let t0 = 0
  const detach: (() => void)[] = []
  for (const p of net.running()) {
    if (p.index === from) continue
    const pubsub = p.node!.libp2p.services.pubsub
    const onMessage = (evt: CustomEvent<Message>) => {
      const m = evt.detail
      if (m.topic === BASELINE_TOPIC && times[p.index] === undefined && Buffer.compare(m.data, payload) === 0) {
        times[p.index] = performance.now() - t0
      }
    }
    pubsub.addEventListener('message', onMessage)
    detach.push(() => pubsub.removeEventListener('message', onMessage))
  }
  const tracker = new DeliveryTracker(net, BASELINE_TOPIC)
  const expected = net.running().length - 1
  try {
    t0 = performance.now()
    await net.node(from).libp2p.services.pubsub.publish(BASELINE_TOPIC, payload)
    await waitUntil('the baseline message everywhere', () => countDefined(times) === expected, deadlineMs, 5).catch(
      unlessDeadline,
    )
  } finally {
    for (const d of detach) d()
    tracker.stop()
  }
  return { times, hops: tracker.hops(net, from, payload) }
}

/** How many entries are defined (peers that reached a point). */
export function countDefined(xs: readonly unknown[]): number {
  return xs.filter(x => x !== undefined).length
}

/** Let the network settle (heartbeats, audit heads, witnesses' proof requests) between measurements. */
export function settle(ms = 1000): Promise<void> {
  return sleep(ms)
}

/**
 * A setup read: a key holder too busy to answer in time is asked again, twice (after
 * `backoffMs`, then twice that); a refusal is final.
 */
export async function readWithRetries<T>(read: () => Promise<T>, backoffMs = 1000): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read()
    } catch (err) {
      if (attempt === 3 || (err as Error).name === AccessRefusedError.name) throw err
      await sleep(backoffMs * attempt)
    }
  }
}
