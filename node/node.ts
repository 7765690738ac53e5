/**
 * An edgeward peer: identity, store, libp2p and the services, started and stopped as one.
 * Every gateway, desktop client and custodian runs this same node.
 */

import { join } from 'node:path'
import type { PeerInfo } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { decodeCanonical, encodeCanonical } from '../crypto/encoding.ts'
import { UsageError } from './errors.ts'
import { type Identity, loadIdentity } from './identity.ts'
import { Metrics } from './metrics.ts'
import { createNetwork, type EdgewardLibp2p, type NetworkOptions } from './network.ts'
import { relayAddresses, type TraversalOptions, type TraversalStatus } from './relay.ts'
import { AuditService, type AuditServiceOptions } from './services/audit.ts'
import type { NodeComponents } from './services/components.ts'
import { ContactsService } from './services/contacts.ts'
import { CustodyService } from './services/custody/index.ts'
import { DataService, type DataServiceOptions } from './services/data/index.ts'
import { RecordStore } from './services/data/record-store.ts'
import { FetchService, type FetchServiceOptions } from './services/fetch.ts'
import { InboxService } from './services/inbox.ts'
import { InvitesService } from './services/invites.ts'
import { ObjectsService } from './services/objects.ts'
import { PolicyService, type PolicyServiceOptions } from './services/policy.ts'
import { RequestsService } from './services/requests.ts'
import { openStore, type Store } from './store.ts'

const log = logger('edgeward:node')

/** Why a dial failed, in one line: libp2p's own reason, or the first of an AggregateError's. */
function dialFailure(err: Error): string {
  const inner = err instanceof AggregateError && err.errors.length > 0 ? (err.errors[0] as Error) : undefined
  const message = err.name === 'TimeoutError' || err.name === 'AbortError' ? 'no answer within 3 s' : err.message
  return (inner === undefined ? message : `${message}: ${inner.message}`).split('\n')[0]
}

export interface NodeOptions
  extends PolicyServiceOptions,
    DataServiceOptions,
    AuditServiceOptions,
    FetchServiceOptions {
  /** keep an audit log of key releases (default true; off only to measure what it costs) */
  audit?: boolean
  dataDir: string
  passphrase?: string
  listen?: string[]
  bootstrap?: string[]
  /** the network and the store, when not the defaults (TCP; LevelDB in DATA/db): the simulator's hooks */
  network?: Omit<NetworkOptions, 'privateKey' | 'listen'>
  store?: () => Promise<Store>
  /** serving as a relay, the relays to reserve a slot on, hole punching (relay.ts; default: none of the first two) */
  traversal?: TraversalOptions
  /** how often to redial known peers that are not connected (default 2 s) */
  redialIntervalMs?: number
  now?: () => number
}

export class EdgewardNode {
  readonly identity: Identity
  readonly store: Store
  readonly libp2p: EdgewardLibp2p
  readonly metrics: Metrics
  /** the node's clock: every policy decision and every record it signs uses it */
  readonly now: () => number
  readonly policy: PolicyService
  readonly data: DataService
  readonly audit: AuditService | undefined
  readonly requests: RequestsService
  readonly fetch: FetchService
  /** files and messages, as streams of chunks */
  readonly objects: ObjectsService
  /** what is shared with this node's person, across spaces */
  readonly inbox: InboxService
  /** the names this person gives people */
  readonly contacts: ContactsService
  /** invites made here, and joining spaces by invite */
  readonly invites: InvitesService
  /** custodian of others' keys, dealer of this node's, and the reader's way to keys when the key holder is away */
  readonly custody: CustodyService
  private readonly bootstrap: string[]
  /**
   * The bootstrap addresses that could not be dialled when the node started, and why: the
   * CLI says so (the node keeps redialling them every `redialIntervalMs`).
   */
  unreachableBootstrap: { address: string; reason: string }[] = []
  private readonly redialIntervalMs: number
  private redialTimer: NodeJS.Timeout | undefined
  private redialing: Promise<void> | undefined

  private constructor(
    c: NodeComponents,
    services: {
      policy: PolicyService
      data: DataService
      audit: AuditService | undefined
      fetch: FetchService
      custody: CustodyService
    },
    opts: NodeOptions,
  ) {
    const { policy, data, audit } = services
    this.audit = audit
    this.custody = services.custody
    this.requests = new RequestsService(c, policy)
    this.objects = new ObjectsService(
      c,
      { policy, data, requests: this.requests, audit },
      { viewDir: join(opts.dataDir, 'view') },
    )
    this.contacts = new ContactsService(c)
    this.inbox = new InboxService({
      me: c.identity.principal.did,
      now: c.now,
      policy,
      requests: this.requests,
      objects: this.objects,
      nameOf: did => this.contacts.nameOf(did),
    })
    this.fetch = services.fetch
    this.invites = new InvitesService(c, {
      policy,
      joinSpace: space => this.joinSpace(space),
      addresses: () => this.addresses(),
      contacts: this.contacts,
    })
    this.identity = c.identity
    this.store = c.store
    this.libp2p = c.libp2p
    this.metrics = c.metrics
    this.now = c.now
    this.policy = policy
    this.data = data
    this.bootstrap = opts.bootstrap ?? []
    this.redialIntervalMs = opts.redialIntervalMs ?? 2000
  }

  static async create(opts: NodeOptions): Promise<EdgewardNode> {
    for (const a of opts.bootstrap ?? []) {
      try {
        multiaddr(a)
      } catch (err) {
        throw new UsageError(`--bootstrap ${a} is not a multiaddr (${(err as Error).message})`)
      }
    }
    relayAddresses(opts.traversal?.relayVia ?? [])
    const identity = await loadIdentity(opts.dataDir, opts.passphrase)
    const store = await (opts.store ?? (() => openStore(join(opts.dataDir, 'db'))))()
    try {
      const libp2p = await createNetwork({
        ...opts.network,
        privateKey: identity.peerKey,
        listen: opts.listen,
        ...(opts.traversal === undefined ? {} : { traversal: opts.traversal }),
      })
      const c: NodeComponents = { identity, store, libp2p, metrics: new Metrics(), now: opts.now ?? Date.now }
      const policy = new PolicyService(c, opts)
      const audit = opts.audit === false ? undefined : new AuditService(c, policy, opts)
      // the stored ciphertext is shared: the data service stores and reads it, the fetch
      // service serves it, fetches what is missing into it and applies retention to it
      const records = new RecordStore(c)
      const fetch = new FetchService(c, { policy, records }, opts)
      // a read first fetches what this node lacks of the stream
      const backfill = (space: string, stream: string, form: string) => fetch.backfill(space, stream, form)
      const custody = new CustodyService(c, { policy, audit }, opts)
      const data = new DataService(c, { policy, audit, records, backfill, custody }, opts)
      return new EdgewardNode(c, { policy, data, audit, fetch, custody }, opts)
    } catch (err) {
      await store.close()
      throw err
    }
  }

  async start(): Promise<void> {
    // before libp2p starts: mDNS asks the LAN as it starts, and the first answers come at once
    this.libp2p.services.mdns?.addEventListener('peer', evt => this.dialLanPeer(evt.detail))
    await this.libp2p.start()
    // one at a time, in this order (stop() has its own)
    const services = [
      this.policy,
      this.audit,
      this.data,
      this.custody,
      this.requests,
      this.objects,
      this.inbox,
      this.fetch,
      this.contacts,
      this.invites,
    ]
    for (const service of services) await service?.start()
    this.libp2p.addEventListener('peer:identify', evt => {
      const { peerId, listenAddrs } = evt.detail
      if (listenAddrs.length === 0) return
      this.store.peers
        .put(peerId.toString(), encodeCanonical(listenAddrs.map(a => a.toString())))
        .catch((err: Error) => log('could not remember peer %s: %s', peerId, err.message))
    })
    this.unreachableBootstrap = await this.redial()
    this.custody.connectAll()
    this.redialTimer = setInterval(() => {
      // one redial at a time; stop() waits for the one in flight before closing the store
      this.redialing ??= this.redial()
        .then(() => undefined)
        .catch(err => log('redial failed: %s', (err as Error).message))
        .finally(() => {
          this.redialing = undefined
        })
    }, this.redialIntervalMs)
    this.redialTimer.unref()
  }

  /**
   * Dial bootstrap peers and every peer we knew before, that is not connected now. Returns
   * the bootstrap addresses that failed, with the reason.
   */
  private async redial(): Promise<{ address: string; reason: string }[]> {
    const connected = new Set(this.libp2p.getPeers().map(p => p.toString()))
    const targets: { addrs: string[]; bootstrap: boolean }[] = this.bootstrap.map(a => ({
      addrs: [a],
      bootstrap: true,
    }))
    for await (const [id, v] of this.store.peers.iterator()) {
      // with its peer id: a known peer's address now held by another node is not that peer
      if (!connected.has(id) && id !== this.identity.peerId)
        targets.push({
          addrs: (decodeCanonical(v, 64 * 1024) as string[]).map(a =>
            a.endsWith(`/p2p/${id}`) ? a : `${a}/p2p/${id}`,
          ),
          bootstrap: false,
        })
    }
    const failed: { address: string; reason: string }[] = []
    await Promise.all(
      targets.map(async ({ addrs, bootstrap }) => {
        let reason = 'no address'
        for (const a of addrs) {
          try {
            const ma = multiaddr(a)
            const id = ma.getComponents().find(c => c.name === 'p2p')?.value
            if (id !== undefined && connected.has(id)) return
            await this.libp2p.dial(ma, { signal: AbortSignal.timeout(3000) })
            return
          } catch (err) {
            reason = dialFailure(err as Error)
            log('dial %s failed: %s', a, reason)
          }
        }
        if (bootstrap) failed.push({ address: addrs[0], reason })
      }),
    )
    return failed
  }

  /**
   * Dial a peer mDNS found on the LAN, unless connected already (it answers every query); once
   * connected, identify gives its addresses and the peers sublevel keeps them for redial.
   */
  private dialLanPeer(peer: PeerInfo): void {
    const id = peer.id.toString()
    if (id === this.identity.peerId || this.libp2p.getConnections(peer.id).length > 0) return
    log('found %s on the LAN at %s', id, peer.multiaddrs.join(' '))
    this.libp2p
      .dial(
        peer.multiaddrs.map(a => a.encapsulate(`/p2p/${id}`)),
        { signal: AbortSignal.timeout(3000) },
      )
      .then(
        () => log('connected to %s, found on the LAN', id),
        (err: Error) => log('dial %s found on the LAN failed: %s', id, dialFailure(err)),
      )
  }

  /** Join a space: catch up its policy, receive its readings. */
  async joinSpace(space: string): Promise<void> {
    await this.policy.joinSpace(space)
    this.follow(space)
  }

  async createSpace(name: string): Promise<string> {
    const genesis = await this.policy.createSpace(name)
    this.follow(genesis.id)
    return genesis.id
  }

  /** Every service that follows a space, told of one this node created or joined (at start, each takes the stored ones). */
  private follow(space: string): void {
    this.data.subscribe(space)
    this.audit?.subscribe(space)
    this.requests.subscribe(space)
    this.fetch.provide(space)
  }

  /**
   * The addresses others can dial, each ending in /p2p/<peer>: the interfaces' addresses of
   * what the node listens on (never 0.0.0.0 or ::) and those its peers observed, loopback last.
   */
  addresses(): string[] {
    const all = this.libp2p.getMultiaddrs()
    const isLoopback = (a: Multiaddr) =>
      a
        .getComponents()
        .some(c => (c.name === 'ip4' && c.value?.startsWith('127.')) || (c.name === 'ip6' && c.value === '::1'))
    return [...all.filter(a => !isLoopback(a)), ...all.filter(isLoopback)].map(a => a.toString())
  }

  /** Relay reservations and reachability, when this node traverses NAT (undefined otherwise: the simulator's). */
  traversal(): TraversalStatus | undefined {
    return this.libp2p.services.traversal?.status()
  }

  connectedPeers(): string[] {
    return this.libp2p.getPeers().map(p => p.toString())
  }

  async stop(): Promise<void> {
    clearInterval(this.redialTimer)
    await this.redialing
    const services = [
      this.inbox,
      this.invites,
      this.objects,
      this.data,
      this.custody,
      this.fetch,
      this.policy,
      this.audit,
    ]
    for (const service of services) await service?.stop()
    await this.libp2p.stop()
    await this.store.close()
  }
}
