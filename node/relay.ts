/**
 * Reaching peers behind NAT: which libp2p machinery a node runs, with what limits, and what
 * it tells the status about it. Nothing here moves data; libp2p's own services do:
 *
 * - circuit relay v2 (`@libp2p/circuit-relay-v2`): every node can dial and be dialled through
 *   a relay; a node started with `--relay` also serves as one, within RELAY_LIMITS.
 * - reservations: this node reserves a slot on each relay it is told of (`--relay-via`) and,
 *   while it has none of those, on one connected peer that advertises the hop protocol. Its
 *   /p2p-circuit address then appears in its addresses (status, invites). A refusal is a state
 *   the status shows, never an exception: `relay refused the reservation`, `relay at its limit`.
 * - AutoNAT v2 (`@libp2p/autonat-v2`): peers dial this node back to tell whether it is reachable.
 *   libp2p's identify ignores the TCP addresses peers observe (the source port of an outgoing
 *   TCP connection is not the listening one: Node.js cannot reuse the listening port), so the
 *   address a peer on a public IP saw is offered as a candidate with this node's listening port
 *   (`addPublicAddressMapping`, as a UPnP mapping would be); AutoNAT confirms it or not.
 * - DCUtR (`@libp2p/dcutr`): a relayed connection is upgraded to a direct one when either side
 *   has a confirmed public address (after which the relayed one is closed).
 * - identify push: peers learn of a new address (a reservation, a confirmed mapping) at once.
 *
 * Assumes: libp2p's components as its services receive them (a service reads the transport
 * manager and the address manager the way dcutr and autonat do).
 */
import { autoNATv2 } from '@libp2p/autonat-v2'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identifyPush } from '@libp2p/identify'
import type {
  ComponentLogger,
  Connection,
  IdentifyResult,
  Libp2pEvents,
  Listener,
  Logger,
  PeerId,
  Startable,
  Transport,
  TypedEventTarget,
} from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { getNetConfig, isPrivate } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { UsageError } from './errors.ts'

/** Whether `ma` goes through a relay (has a /p2p-circuit part). */
export function isRelayed(ma: Multiaddr): boolean {
  return ma.getComponents().some(c => c.name === 'p2p-circuit')
}

/** Whether `ma` is a plain TCP address: /ip4|ip6/…/tcp/… (and at most its /p2p). */
function isTcp(ma: Multiaddr): boolean {
  const names = ma.getComponents().map(c => c.name)
  return (names[0] === 'ip4' || names[0] === 'ip6') && names[1] === 'tcp' && names.slice(2).every(n => n === 'p2p')
}

/** The hop protocol a relay serves (circuit relay v2). */
export const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

/**
 * What a relay started with `--relay` grants: at most `reservations` peers hold a slot at once
 * (a slot lasts `reservationTtlMs` and is renewed by its holder before it ends); each relayed
 * connection carries at most `dataBytes` in both directions together and lasts at most
 * `durationMs`, after which the relay resets it (the peers dial again, or have moved to a
 * direct connection long before). Key requests, policy catch-up, invites and fetches are a
 * few KiB each, so a relayed connection carries thousands of them.
 */
export const RELAY_LIMITS = {
  reservations: 128,
  reservationTtlMs: 60 * 60_000,
  durationMs: 10 * 60_000,
  dataBytes: 16 * 1024 * 1024,
} as const

/** What this node does about NAT: serve as a relay, and which relays to reserve a slot on. */
export interface TraversalOptions {
  /** serve as a relay (gateways, custodians, servers with a public address) */
  relay?: boolean
  /** the most reservations this relay holds at once (default RELAY_LIMITS.reservations) */
  relayReservations?: number
  /** relays to reserve a slot on, each a multiaddr ending in /p2p/<relay peer id> */
  relayVia?: string[]
  /** whether to take part in hole punching (DCUtR) and in AutoNAT (default true; off only to measure a relayed connection) */
  holePunch?: boolean
}

/** Check the `--relay-via` addresses: each a multiaddr that names its peer (UsageError otherwise). */
export function relayAddresses(list: string[]): Multiaddr[] {
  return list.map(text => {
    let ma: Multiaddr
    try {
      ma = multiaddr(text)
    } catch (err) {
      throw new UsageError(`--relay-via ${text} is not a multiaddr (${(err as Error).message.split('\n')[0]})`)
    }
    const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
    if (id === undefined || isRelayed(ma))
      throw new UsageError(`--relay-via ${text} must be a relay's address ending in /p2p/<peer id>`)
    return ma
  })
}

/** The libp2p transports and services of `opts`: add them to createLibp2p's. */
export function traversalParts(opts: TraversalOptions): {
  transports: ReturnType<typeof circuitRelayTransport>[]
  services: Record<string, (components: any) => unknown>
} {
  const services: Record<string, (components: any) => unknown> = {
    identifyPush: identifyPush(),
    traversal: (components: ReservationComponents) => new Reservations(components, opts),
  }
  if (opts.holePunch !== false) {
    services.autoNAT = autoNATv2()
    services.dcutr = dcutr()
    services.publicMapping = (components: PublicMappingComponents) => new PublicMapping(components)
  }
  if (opts.relay === true) {
    services.relay = circuitRelayServer({
      reservations: {
        maxReservations: opts.relayReservations ?? RELAY_LIMITS.reservations,
        reservationTtl: RELAY_LIMITS.reservationTtlMs,
        applyDefaultLimit: true,
        defaultDurationLimit: RELAY_LIMITS.durationMs,
        defaultDataLimit: BigInt(RELAY_LIMITS.dataBytes),
      },
    })
  }
  return { transports: [circuitRelayTransport({ reservationCompletionTimeout: 5000 })], services }
}

/** One relay this node holds, or tried to hold, a slot on. */
export interface ReservationView {
  /** the relay's address as given (or as this node is connected to it, for one it found) */
  relay: string
  /** configured with --relay-via, or a connected peer that advertises the hop protocol */
  source: 'configured' | 'discovered'
  state: 'reserving' | 'reserved' | 'refused' | 'unreachable'
  /** when the slot ends (ms since the epoch; renewed before then while connected) */
  expiresAt?: number
  /** the address peers dial to reach this node through the relay */
  address?: string
  /** why there is no slot, in words */
  reason?: string
  /** when the last attempt was made (ms since the epoch) */
  since: number
}

/** What this node knows of its reachability: its confirmed public addresses and the candidates AutoNAT has not confirmed. */
export interface ReachabilityView {
  public: string[]
  unconfirmed: string[]
}

/** One open connection: to whom, at which address, and whether through a relay (a DCUtR upgrade replaces it with a direct one). */
export interface ConnectionView {
  peer: string
  address: string
  relayed: boolean
  direction: 'inbound' | 'outbound'
}

/** The relay, AutoNAT and hole punching state a status shows. */
export interface TraversalStatus {
  relay: boolean
  reservations: ReservationView[]
  reachability: ReachabilityView
  connections: ConnectionView[]
}

/** Why a reservation attempt failed, in words; `refused` for the relay's answers, `unreachable` for the rest. */
export function reservationFailure(err: Error): { state: 'refused' | 'unreachable'; reason: string } {
  const m = /status ([A-Z_]+)/.exec(err.message)
  switch (m?.[1]) {
    case 'RESERVATION_REFUSED':
    case 'RESOURCE_LIMIT_EXCEEDED':
      // a js-libp2p relay refuses only when full; go-libp2p's mostly for its per-peer and per-IP limits
      return { state: 'refused', reason: 'relay at its limit' }
    case 'PERMISSION_DENIED':
      return { state: 'refused', reason: 'relay refused the reservation' }
    case undefined:
      break
    default:
      return { state: 'refused', reason: `relay refused the reservation (${m?.[1]})` }
  }
  if (err.name === 'UnsupportedProtocolError' || /protocol selection failed|previously invalid/i.test(err.message))
    return { state: 'refused', reason: 'relay refused the reservation: the peer is not a relay' }
  const line = (err.name === 'TimeoutError' || err.name === 'AbortError' ? 'no answer within 5 s' : err.message)
    .split('\n')
    .map(l => l.trim())
    .filter(l => l !== '')
    .pop()
  return { state: 'unreachable', reason: `relay unreachable: ${line ?? err.name}` }
}

interface ReservationComponents {
  peerId: PeerId
  transportManager: {
    listen(addrs: Multiaddr[]): Promise<void>
    getListeners(): Listener[]
    dialTransportForMultiaddr(ma: Multiaddr): Transport | undefined
  }
  registrar: {
    register(protocol: string, topology: { onConnect?: (peer: PeerId, conn: Connection) => void }): Promise<string>
    unregister(id: string): void
  }
  addressManager: { getAddressesWithMetadata(): { multiaddr: Multiaddr; verified: boolean }[] }
  connectionManager: { getConnections(): Connection[] }
  logger: ComponentLogger
}

/** The circuit transport's reservation store: how long a slot lasts (a public field of libp2p's transport, not of its interface). */
interface ReservationLookup {
  reservationStore?: { getReservation(peer: PeerId): { expire: bigint } | undefined }
}

interface Target {
  view: ReservationView
  /** the /p2p-circuit address this node listens on through the relay */
  listenAddr: Multiaddr
  relayPeer: string
  listener?: Listener
  nextTry: number
  failures: number
}

/** how often reservations are checked and failed ones tried again (backing off to RETRY_MAX_MS) */
const CHECK_MS = 2000
const RETRY_MAX_MS = 60_000

/**
 * Holds slots on relays: one listener of the circuit transport per relay, tried again with a
 * backoff while it has no slot (libp2p renews a slot it holds, and drops it with the connection).
 */
export class Reservations implements Startable {
  private readonly c: ReservationComponents
  private readonly log: Logger
  private readonly targets = new Map<string, Target>()
  private readonly maxDiscovered = 1
  private readonly relayServer: boolean
  private timer: NodeJS.Timeout | undefined
  private topology: string | undefined
  private checking: Promise<void> | undefined
  private started = false

  constructor(components: ReservationComponents, opts: TraversalOptions) {
    this.c = components
    this.log = components.logger.forComponent('edgeward:relay')
    this.relayServer = opts.relay === true
    for (const ma of relayAddresses(opts.relayVia ?? [])) this.add(ma, 'configured')
  }

  private add(relay: Multiaddr, source: ReservationView['source']): void {
    const key = relay.toString()
    if (this.targets.has(key)) return
    const relayPeer = relay.getComponents().findLast(c => c.name === 'p2p')?.value ?? ''
    this.targets.set(key, {
      view: { relay: key, source, state: 'reserving', since: Date.now() },
      listenAddr: relay.encapsulate('/p2p-circuit'),
      relayPeer,
      nextTry: 0,
      failures: 0,
    })
  }

  async start(): Promise<void> {
    this.started = true
    // a connected peer that speaks the hop protocol is a relay this node may use
    this.topology = await this.c.registrar.register(HOP_PROTOCOL, {
      onConnect: (peer, conn) => this.discovered(peer, conn),
    })
  }

  afterStart(): void {
    this.check()
    this.timer = setInterval(() => this.check(), CHECK_MS)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.started = false
    clearInterval(this.timer)
    if (this.topology !== undefined) this.c.registrar.unregister(this.topology)
    await this.checking
  }

  /** The reservations with their states, and what AutoNAT confirmed: for the status. */
  status(): TraversalStatus {
    return {
      relay: this.relayServer,
      reservations: [...this.targets.values()].map(t => ({ ...t.view })),
      reachability: reachabilityOf(this.c.addressManager.getAddressesWithMetadata()),
      connections: this.c.connectionManager
        .getConnections()
        .filter(c => c.status === 'open')
        .map(c => ({
          peer: c.remotePeer.toString(),
          address: c.remoteAddr.toString(),
          relayed: c.limits !== undefined || isRelayed(c.remoteAddr),
          direction: c.direction,
        })),
    }
  }

  private discovered(peer: PeerId, conn: Connection): void {
    if (this.relayServer || conn.limits !== undefined || isRelayed(conn.remoteAddr)) return
    const id = peer.toString()
    const targets = [...this.targets.values()]
    if (targets.some(t => t.relayPeer === id)) return
    // only while no relay this node was told of holds a slot, and at most maxDiscovered of them
    if (targets.some(t => t.view.source === 'configured' && t.view.state === 'reserved')) return
    if (targets.filter(t => t.view.source === 'discovered').length >= this.maxDiscovered) return
    const addr = conn.remoteAddr.getComponents().some(c => c.name === 'p2p')
      ? conn.remoteAddr
      : conn.remoteAddr.encapsulate(`/p2p/${id}`)
    this.add(addr, 'discovered')
    this.check()
  }

  /** One pass at a time over the relays: renew what was lost, try again what failed once its backoff ends. */
  private check(): void {
    if (!this.started || this.checking !== undefined) return
    this.checking = this.tryAll()
      .catch(err => this.log.error('reservation check failed: %s', (err as Error).message))
      .finally(() => {
        this.checking = undefined
      })
  }

  private async tryAll(): Promise<void> {
    for (const t of this.targets.values()) {
      if (!this.started) return
      const addrs = t.listener?.getAddrs() ?? []
      if (t.view.state === 'reserved') {
        if (addrs.length > 0) {
          t.view.expiresAt = this.expiryOf(t) ?? t.view.expiresAt
          continue
        }
        // libp2p dropped the slot with the connection to the relay
        t.view = { ...t.view, state: 'reserving', since: Date.now(), reason: 'the connection to the relay closed' }
        t.nextTry = 0
      }
      if (Date.now() < t.nextTry) continue
      await this.reserve(t)
    }
  }

  private async reserve(t: Target): Promise<void> {
    t.view.since = Date.now()
    try {
      if (t.listener === undefined) {
        // the transport manager keeps the listener (its addresses are this node's), even when
        // the first listen fails; later attempts reuse it
        const before = new Set(this.c.transportManager.getListeners())
        try {
          await this.c.transportManager.listen([t.listenAddr])
        } finally {
          t.listener = this.c.transportManager.getListeners().find(l => !before.has(l))
        }
      } else {
        await t.listener.listen(t.listenAddr)
      }
      const address = t.listener?.getAddrs()[0]
      t.failures = 0
      t.view = {
        relay: t.view.relay,
        source: t.view.source,
        state: 'reserved',
        since: Date.now(),
        ...(address === undefined ? {} : { address: address.toString() }),
      }
      const expiresAt = this.expiryOf(t)
      if (expiresAt !== undefined) t.view.expiresAt = expiresAt
      this.log('reserved a slot on %s', t.view.relay)
    } catch (err) {
      const failure = reservationFailure(err as Error)
      t.failures++
      t.nextTry = Date.now() + Math.min(RETRY_MAX_MS, CHECK_MS * 2 ** Math.min(t.failures, 5))
      t.view = { relay: t.view.relay, source: t.view.source, since: Date.now(), ...failure }
      this.log('no slot on %s: %s', t.view.relay, failure.reason)
    }
  }

  private expiryOf(t: Target): number | undefined {
    const transport = this.c.transportManager.dialTransportForMultiaddr(t.listenAddr) as
      | (Transport & ReservationLookup)
      | undefined
    const r = transport?.reservationStore?.getReservation(peerIdFromString(t.relayPeer))
    return r === undefined ? undefined : Number(r.expire) * 1000
  }
}

interface PublicMappingComponents {
  addressManager: {
    addPublicAddressMapping(internalIp: string, internalPort: number, externalIp: string, externalPort?: number): void
    getAddressesWithMetadata(): { multiaddr: Multiaddr; verified: boolean; type: string }[]
  }
  transportManager: { getAddrs(): Multiaddr[] }
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/**
 * Offers AutoNAT a public address to confirm: the IP a peer on a public address saw this node
 * come from, with the port this node listens on (what a NAT with a fixed port mapping, or a
 * router's port forward, makes reachable). Unconfirmed candidates are never announced.
 */
class PublicMapping implements Startable {
  private readonly c: PublicMappingComponents
  private readonly log: Logger
  private readonly mapped = new Set<string>()
  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>) => this.observed(evt.detail)

  constructor(components: PublicMappingComponents) {
    this.c = components
    this.log = components.logger.forComponent('edgeward:relay:mapping')
  }

  start(): void {
    this.c.events.addEventListener('peer:identify', this.onIdentify)
  }

  stop(): void {
    this.c.events.removeEventListener('peer:identify', this.onIdentify)
  }

  private observed(result: IdentifyResult): void {
    const seen = result.observedAddr
    if (seen === undefined || !isTcp(seen) || isPrivate(seen)) return
    // only what a peer with a public address saw: a peer behind the same NAT sees the LAN address
    if (isPrivate(result.connection.remoteAddr) || isRelayed(result.connection.remoteAddr)) return
    const external = getNetConfig(seen)
    if (external.type !== 'ip4') return
    for (const local of this.c.transportManager.getAddrs()) {
      if (!isTcp(local)) continue
      const o = getNetConfig(local)
      if (o.type !== 'ip4' || o.port === undefined || o.host.startsWith('127.')) continue
      const key = `${o.host}:${o.port}>${external.host}`
      if (this.mapped.has(key)) continue
      this.mapped.add(key)
      this.log('offering %s:%d (seen by %p) for AutoNAT to confirm', external.host, o.port, result.peerId)
      this.c.addressManager.addPublicAddressMapping(o.host, o.port, external.host, o.port)
    }
  }
}

/** What this node knows of its reachability, from its address manager's view (confirmed, or not yet). */
export function reachabilityOf(addresses: { multiaddr: Multiaddr; verified: boolean }[]): ReachabilityView {
  const out: ReachabilityView = { public: [], unconfirmed: [] }
  for (const a of addresses) {
    if (isRelayed(a.multiaddr) || isPrivate(a.multiaddr)) continue
    ;(a.verified ? out.public : out.unconfirmed).push(a.multiaddr.toString())
  }
  return out
}
