/**
 * libp2p assembly: TCP, Noise, Yamux, identify, ping, a private Kad-DHT under our own
 * protocol prefix, and gossipsub with signed messages; over TCP, also what reaches peers behind
 * NAT (relay.ts: circuit relay v2, AutoNAT, DCUtR, identify push). Options are documented
 * defaults; the simulator and tests pass their own transports and addresses.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type GossipSub, type GossipsubOpts, gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerDiscovery, PrivateKey } from '@libp2p/interface'
import { type KadDHT, kadDHT } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { DHT_PROTOCOL } from '../protocols/sync/messages.ts'
import { type Reservations, type TraversalOptions, traversalParts } from './relay.ts'

export type EdgewardLibp2p = Libp2p<{
  pubsub: GossipSub
  dht: KadDHT
  identify: unknown
  ping: unknown
  /** present when `mdns` is set: its `peer` events are the peers found on the LAN */
  mdns?: PeerDiscovery
  /** relays and reachability (relay.ts); absent from a network that does not traverse NAT */
  traversal?: Reservations
}>

/** The mDNS service name of edgeward peers: only they answer it, not every libp2p node on the LAN. */
export const MDNS_SERVICE_TAG = '_edgeward._udp.local'

export interface NetworkOptions {
  privateKey: PrivateKey
  /** multiaddrs to listen on; default one random TCP port on 127.0.0.1 */
  listen?: string[]
  /** transports; default TCP (the simulator passes the memory transport) */
  transports?: Libp2pOptions['transports']
  /** decides which connections may be made (the simulator uses it for partitions) */
  connectionGater?: Libp2pOptions['connectionGater']
  /** gossipsub options over our defaults */
  gossip?: Partial<GossipsubOpts>
  /**
   * how often each connection is pinged to detect a dead peer (default libp2p's 10 s; 0: never,
   * for the simulator, whose in-memory links never die silently: a crash closes them)
   */
  pingIntervalMs?: number
  /**
   * hosts whose inbound connections are never limited (libp2p's connectionManager.allow, as
   * multiaddrs such as `/ip4/127.0.0.1`). By default libp2p refuses inbound connections from
   * one host past 5 a second; the simulator's TCP mode, whose peers are all 127.0.0.1, allows it
   */
  allow?: string[]
  /**
   * find peers on the LAN by multicast DNS, asking every `intervalMs` (default 10 s); default
   * off (the node's CLI turns it on; tests and the simulator must not find each other)
   */
  mdns?: { intervalMs?: number }
  /**
   * relaying, reservations, AutoNAT and hole punching (relay.ts). On by default with the default
   * transport (TCP); a caller that passes its own transports (the simulator's memory transport,
   * whose addresses are not IP addresses) gets them only by asking; `false`: none
   */
  traversal?: TraversalOptions | false
}

/** Create the node's libp2p from `opts`: its transports, Noise, Yamux, the private DHT and gossipsub. */
export async function createNetwork(opts: NetworkOptions): Promise<EdgewardLibp2p> {
  const traversal =
    opts.traversal === false || (opts.traversal === undefined && opts.transports !== undefined)
      ? undefined
      : traversalParts(opts.traversal ?? {})
  return (await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [...(opts.transports ?? [tcp()]), ...(traversal?.transports ?? [])],
    ...(opts.connectionGater === undefined ? {} : { connectionGater: opts.connectionGater }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: 300, ...(opts.allow === undefined ? {} : { allow: opts.allow }) },
    // libp2p's ping handler can miss a FIN that arrives before it starts reading (the DHT pings
    // every new contact at once), leaving the pinger's stream open; the monitor's next ping on
    // that connection then fails with TooManyOutboundProtocolStreamsError. Aborting the whole
    // connection for that (the default) tore down healthy links every 10 s in the simulator.
    connectionMonitor:
      opts.pingIntervalMs === 0
        ? { enabled: false }
        : {
            abortConnectionOnPingFailure: false,
            ...(opts.pingIntervalMs === undefined ? {} : { pingInterval: opts.pingIntervalMs }),
          },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: false,
        // a private network: keep loopback and LAN addresses
        peerInfoMapper: info => info,
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // a validator may run asynchronously; reject invalid messages before forwarding them
        asyncValidation: false,
        maxInboundDataLength: 1024 * 1024,
        ...opts.gossip,
      }),
      ...(opts.mdns === undefined
        ? {}
        : { mdns: mdns({ serviceTag: MDNS_SERVICE_TAG, interval: opts.mdns.intervalMs ?? 10_000 }) }),
      ...traversal?.services,
    },
  })) as unknown as EdgewardLibp2p
}
