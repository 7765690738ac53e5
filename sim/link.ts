/**
 * The link model: a one-way latency for every pair of peers, with jitter, carried over
 * libp2p's memory transport (`@libp2p/memory`).
 *
 * Why not the memory transport's own `latency` option: it is one value per transport
 * instance, applied by the listening side to both directions of every connection, and it
 * delays buffers one after another (`await delay()` in the read loop), so a message that
 * yamux and noise write as three buffers arrives after three times the latency (a ping over
 * a "100 ms" link measured 600 ms). Instead, each peer's memory transport runs without
 * latency, and every connection it makes or accepts has its receiving side wrapped: each
 * buffer is handed to libp2p `latency ± jitter` ms after it arrived, in order (a buffer never
 * overtakes the one before it), pipelined like a wire rather than serialised. The latency is
 * chosen per pair from the peers' ids, so a connection gets its pair's latency whoever dials.
 *
 * Loss, as TCP shows it: libp2p runs over a reliable byte stream, so a lost packet is not a
 * lost message but a late one. With a loss rate p, each buffer is lost with probability p and
 * arrives one retransmission timeout later (`retransmitDelayMs`: Linux's minimum RTO of 200 ms,
 * or twice the link's round trip when that is longer), and, the link being FIFO, so does
 * everything queued behind it (head-of-line blocking). A buffer is what the sender wrote in
 * one go, often more than one packet: the model is per write, not per segment.
 *
 * What is not modelled: bandwidth, congestion control, per-connection queueing beyond FIFO
 * order, and CPU time (every peer shares one event loop, so at large N validation work on one
 * core adds to every hop). Jitter is drawn per buffer, never reordering a connection's bytes.
 */
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { type MemoryTransportComponents, memory } from '@libp2p/memory'
import type { Multiaddr } from '@multiformats/multiaddr'
import { mulberry32, type Random } from './random.ts'

export interface LinkSpec {
  /** one-way latency of every link (of links inside a site, with sites), ms */
  latencyMs: number
  /** one-way latency of links between sites, ms (default: latencyMs) */
  interSiteLatencyMs?: number
  /** each buffer's latency is drawn uniformly from [latency − jitter, latency + jitter] (default 0) */
  jitterMs?: number
  /** probability that a buffer is lost and retransmitted, on links inside a site (default 0) */
  lossRate?: number
  /** the same on links between sites (default: lossRate) */
  interSiteLossRate?: number
}

/** Linux's minimum retransmission timeout */
export const MIN_RTO_MS = 200

/** How much later a lost buffer arrives over a link of this one-way latency. */
export function retransmitDelayMs(latencyMs: number): number {
  return Math.max(MIN_RTO_MS, 4 * latencyMs)
}

/** The latency, jitter and loss of each link between simulated peers, seeded. */
export class LinkModel {
  readonly latencyMs: number
  readonly interSiteLatencyMs: number
  readonly jitterMs: number
  readonly lossRate: number
  readonly interSiteLossRate: number
  private readonly site: number[]

  constructor(spec: LinkSpec, site: number[]) {
    this.latencyMs = spec.latencyMs
    this.interSiteLatencyMs = spec.interSiteLatencyMs ?? spec.latencyMs
    this.jitterMs = Math.min(spec.jitterMs ?? 0, this.latencyMs, this.interSiteLatencyMs)
    this.lossRate = spec.lossRate ?? 0
    this.interSiteLossRate = spec.interSiteLossRate ?? this.lossRate
    for (const r of [this.lossRate, this.interSiteLossRate]) {
      if (!(r >= 0 && r < 1)) throw new RangeError(`a loss rate is at least 0 and below 1, got ${r}`)
    }
    this.site = site
  }

  /** The one-way base latency between two peers, ms. */
  latencyOf(a: number, b: number): number {
    return this.site[a] === this.site[b] ? this.latencyMs : this.interSiteLatencyMs
  }

  /** The probability that a buffer between two peers is lost (and retransmitted). */
  lossOf(a: number, b: number): number {
    return this.site[a] === this.site[b] ? this.lossRate : this.interSiteLossRate
  }

  get isInstant(): boolean {
    return this.latencyMs === 0 && this.interSiteLatencyMs === 0
  }
}

/** The peer id in a multiaddr's `/p2p/` part. */
export function peerIdIn(ma: Multiaddr): string | undefined {
  return ma.getComponents().find(c => c.name === 'p2p')?.value
}

/**
 * A memory transport whose connections deliver what they receive after the latency of the
 * link to the remote peer (`latencyTo` returns undefined for an unknown peer: no delay), with
 * the link's loss rate (`lossTo`, default none). `seed` seeds the jitter and the losses.
 */
export function memoryWithLatency(
  latencyTo: (remotePeer: string) => number | undefined,
  jitterMs: number,
  seed: number,
  lossTo: (remotePeer: string) => number = () => 0,
): (components: MemoryTransportComponents) => Transport {
  const make = memory()
  const random = mulberry32(seed)
  return components => {
    const t = make(components)
    const delayed = (upgrader: Upgrader): Upgrader => {
      const wrapped = Object.create(upgrader) as Upgrader
      const delay = (maConn: MultiaddrConnection) => {
        const remote = peerIdIn(maConn.remoteAddr)
        const latency = remote === undefined ? undefined : latencyTo(remote)
        const loss = remote === undefined || latency === undefined ? 0 : lossTo(remote)
        if (latency !== undefined && (latency > 0 || jitterMs > 0 || loss > 0)) {
          delayReceiving(maConn, { latencyMs: latency, jitterMs, lossRate: loss }, random)
        }
        return maConn
      }
      wrapped.upgradeInbound = ((maConn: MultiaddrConnection, opts: never) =>
        upgrader.upgradeInbound(delay(maConn), opts)) as Upgrader['upgradeInbound']
      wrapped.upgradeOutbound = ((maConn: MultiaddrConnection, opts: never) =>
        upgrader.upgradeOutbound(delay(maConn), opts)) as Upgrader['upgradeOutbound']
      return wrapped
    }
    const dial = t.dial.bind(t)
    const createListener = t.createListener.bind(t)
    t.dial = (ma, options) => dial(ma, { ...options, upgrader: delayed(options.upgrader) })
    t.createListener = options => createListener({ ...options, upgrader: delayed(options.upgrader) })
    return t
  }
}

interface InFlight {
  at: number
  deliver: () => void
}

/**
 * Hand every buffer (and the end of the connection) to libp2p `latency ± jitter` ms after it
 * arrived (a retransmission timeout more when it is lost), never before the one that arrived
 * earlier.
 */
function delayReceiving(
  maConn: MultiaddrConnection,
  link: { latencyMs: number; jitterMs: number; lossRate: number },
  random: Random,
): void {
  const { latencyMs, jitterMs, lossRate } = link
  const rto = retransmitDelayMs(latencyMs)
  const conn = maConn as MultiaddrConnection & {
    onData(data: unknown): void
    onTransportClosed(err?: Error): void
  }
  const onData = conn.onData.bind(conn)
  const onTransportClosed = conn.onTransportClosed.bind(conn)
  const queue: InFlight[] = []
  let last = 0
  let scheduled = false
  const schedule = (ms: number) => {
    scheduled = true
    setTimeout(flush, Math.max(0, ms))
  }
  const flush = () => {
    scheduled = false
    const now = performance.now()
    while (queue.length > 0 && queue[0].at <= now) queue.shift()!.deliver()
    if (queue.length > 0) schedule(queue[0].at - now)
  }
  const enqueue = (deliver: () => void) => {
    const jitter = jitterMs === 0 ? 0 : (2 * random() - 1) * jitterMs
    const lost = lossRate > 0 && random() < lossRate
    last = Math.max(last, performance.now() + Math.max(0, latencyMs + jitter) + (lost ? rto : 0))
    queue.push({ at: last, deliver })
    if (!scheduled) schedule(last - performance.now())
  }
  conn.onData = data => enqueue(() => onData(data))
  conn.onTransportClosed = err => enqueue(() => onTransportClosed(err))
}
