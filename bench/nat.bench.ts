/**
 * Through a relay against direct, on real networks behind NAT (test/support/netns.ts: a relay on
 * a public network, the gateway and the reader each behind an endpoint-independent NAT), in one
 * run and the same namespaces:
 * 1. key release round trip over the relayed connection, against the same over a direct one;
 * 2. readings fetched per second (the fetch protocol's backfill of a stream) relayed, against direct;
 * 3. how long a relayed connection lasts before DCUtR replaces it with a direct one (p50/p99).
 *
 * The relay and the gateway are `edgeward start` processes; the reader side runs in-process in
 * LAN A's namespace (this file, started again with `ip netns exec` as the driver), so that it
 * can time single key requests: one node that does no hole punching (its relayed connection
 * stays relayed until it dials the gateway's public address itself) and one that does.
 * Needs root, `ip` and `nft`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes } from '../crypto/hash.ts'
import { runNode } from '../node/cli/local-network.ts'
import { createIdentity } from '../node/identity.ts'
import { EdgewardNode } from '../node/node.ts'
import { isRelayed } from '../node/relay.ts'
import { request } from '../node/services/stream-io.ts'
import {
  createKeyRequest,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  MAX_KEY_RESPONSE_BYTES,
} from '../protocols/access/messages.ts'
import { decodeInvite, encodeInvite } from '../protocols/invites.ts'
import { initData } from '../test/support/local-peers.ts'
import { createNatLab, PUBLIC, startNsPeer } from '../test/support/netns.ts'
import { type Figure, figure, percentile, round, type SuiteOptions, versus } from './harness.ts'

const progress = (m: string) => process.stderr.write(`[bench:nat] ${m}\n`)
const PORT = 4001
const STREAM = 'temperature'

/** What the driver is told: where the gateway and the relay are, the space, the invite, the sizes. */
interface DriverJob {
  root: string
  relay: string
  gateway: string
  gatewayPublic: string
  space: string
  invite: string
  streams: string[]
  readings: number
  releases: number
  punches: number
}

interface DriverResult {
  relayedReleases: number[]
  directReleases: number[]
  relayedFetch: number[]
  directFetch: number[]
  punches: number[]
  /** relayed connections not upgraded within 10 s (tried again) */
  missedPunches: number
}

const json = (r: { code: number; stdout: string; stderr: string }): Record<string, any> => {
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${r.stderr.trim()}`)
  return JSON.parse(r.stdout)
}

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 50))
  }
}

/** The driver, in LAN A's namespace: an edgeward node that measures, and prints its samples as one JSON line. */
async function drive(job: DriverJob): Promise<DriverResult> {
  const gw = peerIdFromString(job.gateway)
  // until the direct phase, the reader keeps off the gateway's direct addresses: its DHT would
  // otherwise dial the gateway's confirmed public address as soon as identify gave it
  let directAllowed = false
  const offDirect = (ma: { toString(): string }, peer?: string) =>
    !directAllowed && (peer ?? ma.toString()).includes(job.gateway) && !isRelayed(multiaddr(ma.toString()))
  // the puncher's rounds each start relayed: it never dials the gateway directly (its DHT would),
  // and takes a direct connection from the gateway only during a round (DCUtR's upgrade), not
  // from the gateway's redial of a peer it lost
  let punching = false
  const gatewayDirect = (ma: { toString(): string }, peer?: string) =>
    (peer ?? ma.toString()).includes(job.gateway) && !isRelayed(multiaddr(ma.toString()))
  const nodeOn = async (name: string, port: number, holePunch: boolean) => {
    const dataDir = join(job.root, name)
    await createIdentity(dataDir, { now: Date.now() })
    const node = await EdgewardNode.create({
      dataDir,
      listen: [`/ip4/0.0.0.0/tcp/${port}`],
      traversal: { relayVia: [job.relay], holePunch },
      ...(holePunch
        ? {
            network: {
              connectionGater: {
                denyDialMultiaddr: async (ma: any) => gatewayDirect(ma),
                denyInboundEncryptedConnection: async (peer: any, conn: any) =>
                  !punching && gatewayDirect(conn.remoteAddr, peer.toString()),
              },
            },
          }
        : {
            network: {
              connectionGater: {
                denyDialMultiaddr: async (ma: any) => offDirect(ma),
                denyInboundEncryptedConnection: async (peer: any, conn: any) =>
                  offDirect(conn.remoteAddr, peer.toString()),
              },
            },
          }),
      // the measurement decides the connections: no redial of the gateway behind its back
      redialIntervalMs: 3_600_000,
      audit: false,
    })
    await node.start()
    return node
  }
  const reader = await nodeOn('reader', PORT, false)
  const puncher = await nodeOn('puncher', PORT + 1, true)
  try {
    // joined through the relay alone: the invite carries only the relayed address
    await reader.invites.join(job.invite)
    const connections = () => reader.libp2p.getConnections(gw).filter(c => c.status === 'open')
    const release = async (): Promise<number> => {
      const req = createKeyRequest(reader.identity.principal, {
        space: job.space,
        stream: STREAM,
        form: 'raw',
        epochs: [0],
        device: reader.identity.device.bytes,
        nonce: randomBytes(16),
        ts: Date.now(),
      })
      const t = performance.now()
      const res = decodeKeyResponse(await request(reader.libp2p, gw, KEYS_PROTOCOL, req.bytes, MAX_KEY_RESPONSE_BYTES))
      if (!res.ok) throw new Error(`key request refused: ${res.code}`)
      return performance.now() - t
    }
    const fetchAll = async (stream: string): Promise<number> => {
      const t = performance.now()
      const got = await reader.fetch.backfill(job.space, stream, 'raw')
      if (got === 0) throw new Error(`nothing fetched of ${stream}`)
      return job.readings / ((performance.now() - t) / 1000)
    }
    const measure = async (streams: string[]) => {
      await release()
      const releases: number[] = []
      for (let i = 0; i < job.releases; i++) releases.push(await release())
      const fetches: number[] = []
      for (const s of streams) fetches.push(await fetchAll(s))
      return { releases, fetches }
    }
    if (!connections().every(c => isRelayed(c.remoteAddr)))
      throw new Error('the reader reached the gateway directly: nothing relayed to measure')
    const half = Math.ceil(job.streams.length / 2)
    const relayed = await measure(job.streams.slice(0, half))
    if (!connections().every(c => isRelayed(c.remoteAddr))) throw new Error('the relayed connection was upgraded')
    // the same peers, now directly: the gateway's NAT maps its listening port
    directAllowed = true
    // the remote can close a dial through the NAT while it opens (seen under load); what is
    // measured is the connection, not the dial: dial again, within the deadline
    await until(
      'a direct connection to the gateway',
      async () => {
        try {
          await reader.libp2p.dial(multiaddr(job.gatewayPublic))
          return true
        } catch (err) {
          if ((err as Error).name !== 'ConnectionClosedError') throw err
          return undefined
        }
      },
      20_000,
    )
    const direct = await measure(job.streams.slice(half))
    // hole punching: the puncher's mapped address must be confirmed (AutoNAT) before DCUtR can use it
    await until('the puncher to be reachable', () =>
      (puncher.traversal()?.reachability.public.length ?? 0) > 0 ? true : undefined,
    )
    const circuit = multiaddr(`${job.relay}/p2p-circuit/p2p/${job.gateway}`)
    const punches: number[] = []
    // the gateway may dial the puncher directly on its own (its DHT knows the puncher's public
    // address): such a round measures nothing, and is done again
    let retries = 0
    let missed = 0
    while (punches.length < job.punches) {
      punching = false
      await puncher.libp2p.hangUp(gw)
      punching = true
      let onOpen: ((evt: CustomEvent<any>) => void) | undefined
      const upgraded = new Promise<number>(resolve => {
        onOpen = evt => {
          // a connection's timeline is in ms since the epoch: the direct one's open against the relayed one's
          if (evt.detail.remotePeer.equals(gw) && !isRelayed(evt.detail.remoteAddr)) resolve(evt.detail.timeline.open)
        }
        puncher.libp2p.addEventListener('connection:open', onOpen)
      })
      try {
        let conn: Awaited<ReturnType<typeof puncher.libp2p.dial>>
        try {
          conn = await puncher.libp2p.dial(circuit, { signal: AbortSignal.timeout(10_000) })
        } catch (err) {
          // the relay or the gateway reset the relayed dial: a round that measures nothing
          if (++retries > 3 * job.punches) throw err
          continue
        }
        const t0 = conn.timeline.open
        if (!isRelayed(conn.remoteAddr)) {
          if (++retries > 3 * job.punches) throw new Error('the puncher keeps reaching the gateway directly')
          continue
        }
        let timer: NodeJS.Timeout | undefined
        const t1 = await Promise.race([
          upgraded,
          new Promise<undefined>(resolve => {
            timer = setTimeout(() => resolve(undefined), 10_000)
          }),
        ])
        clearTimeout(timer)
        if (t1 !== undefined && t1 >= t0) punches.push(t1 - t0)
        else if (t1 !== undefined) retries++
        else if (++missed > job.punches) throw new Error(`${missed} relayed connections were not upgraded within 10 s`)
      } finally {
        puncher.libp2p.removeEventListener('connection:open', onOpen)
      }
    }
    return {
      relayedReleases: relayed.releases,
      directReleases: direct.releases,
      relayedFetch: relayed.fetches,
      directFetch: direct.fetches,
      punches,
      missedPunches: missed,
    }
  } finally {
    await puncher.stop()
    await reader.stop()
  }
}

/** Run the driver in namespace `ns`; its result. */
async function runDriver(ns: string, job: DriverJob): Promise<DriverResult> {
  const { code, stdout, stderr } = await runNode([import.meta.filename], {
    netns: ns,
    env: { EDGEWARD_NAT_BENCH_JOB: JSON.stringify(job) },
  })
  if (code !== 0) throw new Error(`driver exited ${code}: ${stderr}`)
  return JSON.parse(stdout) as DriverResult
}

export default async function nat(opts: SuiteOptions): Promise<Figure[]> {
  const sizes = opts.quick
    ? { readings: 200, streamCount: 2, releases: 10, punches: 2 }
    : { readings: 2000, streamCount: 10, releases: 200, punches: 20 }
  const root = await mkdtemp(join(tmpdir(), 'edgeward-bench-nat-'))
  const lab = await createNatLab('endpoint-independent')
  const peers: { stop: () => Promise<unknown> }[] = []
  try {
    for (const n of ['relay', 'gateway']) await initData(join(root, n))
    const relay = await startNsPeer(lab.pub, 'relay', join(root, 'relay'), [
      '--listen',
      `/ip4/${PUBLIC.relay}/tcp/${PORT}`,
      '--relay',
    ])
    peers.push(relay)
    const relayAddr = `/ip4/${PUBLIC.relay}/tcp/${PORT}/p2p/${relay.info.peerId}`
    const gateway = await startNsPeer(lab.b.host, 'gateway', join(root, 'gateway'), [
      '--listen',
      `/ip4/0.0.0.0/tcp/${PORT}`,
      '--relay-via',
      relayAddr,
    ])
    peers.push(gateway)
    progress('waiting for the gateway to be reserved and reachable ...')
    await until('the gateway reserved and confirmed', async () => {
      const t = (await gateway.status()).traversal
      return t.reservations.some((r: any) => r.state === 'reserved') && t.reachability.public.length > 0
        ? true
        : undefined
    })
    const space = json(await gateway.cli(['space', 'create', 'bench-nat', '--json'])).space as string
    const streams = Array.from({ length: sizes.streamCount }, (_, i) => `s${i}`)
    const t0 = Date.now() - 3_600_000
    for (const s of [STREAM, ...streams]) {
      const n = s === STREAM ? 1 : sizes.readings
      const input = Array.from({ length: n }, (_, i) => JSON.stringify({ ts: t0 + i, value: i })).join('\n')
      json(await gateway.cli(['publish', space, s, '--json'], { input }))
    }
    const code = json(
      await gateway.cli(['invite', space, '--json', ...[STREAM, ...streams].flatMap(s => ['--stream', s])]),
    ).invite as string
    const invite = decodeInvite(code)
    const relayedOnly = encodeInvite({
      ...invite,
      addresses: invite.addresses.filter(a => a.includes('/p2p-circuit/')),
    })
    progress('measuring from LAN A ...')
    const r = await runDriver(lab.a.host, {
      root: join(root, 'driver'),
      relay: relayAddr,
      gateway: gateway.info.peerId,
      gatewayPublic: `/ip4/${lab.b.publicIp}/tcp/${PORT}/p2p/${gateway.info.peerId}`,
      space,
      invite: relayedOnly,
      streams,
      readings: sizes.readings,
      releases: sizes.releases,
      punches: sizes.punches,
    })
    const rel = versus(
      'key release round trip, relayed',
      'ms',
      r.relayedReleases,
      'the same, direct (through both NATs)',
      r.directReleases,
    )
    rel.note = `relayed p50 ${round(percentile(r.relayedReleases, 50))} ms, p99 ${round(percentile(r.relayedReleases, 99))} ms; direct p50 ${round(percentile(r.directReleases, 50))} ms, p99 ${round(percentile(r.directReleases, 99))} ms; ${sizes.releases} requests each, one at a time, veth links with no added latency`
    const fetched = versus(
      'readings fetched per second, relayed',
      'readings/s',
      r.relayedFetch,
      'the same, direct',
      r.directFetch,
    )
    fetched.note = `a stream of ${sizes.readings} readings backfilled over the fetch protocol per run; ${r.relayedFetch.length} streams each way`
    const punch = figure('relayed connection to direct (DCUtR)', 'ms', r.punches, {
      note: `from the relayed connection open to the direct one open, behind endpoint-independent NAT with the listening port mapped; p50 ${round(percentile(r.punches, 50))} ms, p99 ${round(percentile(r.punches, 99))} ms over ${r.punches.length} upgrades (${r.missedPunches} more relayed connections were not upgraded within 10 s)`,
    })
    return [rel, fetched, punch]
  } finally {
    for (const p of peers.reverse()) await p.stop()
    await lab.remove()
    await rm(root, { recursive: true, force: true })
  }
}

// started again inside LAN A's namespace, as the driver
if (process.env.EDGEWARD_NAT_BENCH_JOB !== undefined) {
  const result = await drive(JSON.parse(process.env.EDGEWARD_NAT_BENCH_JOB) as DriverJob)
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}
