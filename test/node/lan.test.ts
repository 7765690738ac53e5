/**
 * Peers on a LAN find each other with no address typed: real `edgeward start` processes, each in
 * a Linux network namespace of its own on one Ethernet segment (test/support/lan.ts), listening
 * by default (every interface, IPv4 and IPv6, at the port `init` chose) with mDNS on. They
 * connect by mDNS alone; the one restarted with mDNS off keeps its port and reconnects to the
 * peer it found (the known peers are kept); on a host without IPv6 the node starts on IPv4 and
 * says so once. The namespaces are made and removed by the test, also when it fails; a machine
 * where they cannot be made (not root, no `ip`) fails the test and says why.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { readConfig } from '../../node/config.ts'
import { createLan, type Lan } from '../support/lan.ts'
import { initAndStart, initData, suiteRunningPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

/** The peers a peer is connected to, by its `status` (run in its namespace). */
async function connectedPeers(peer: LocalPeer): Promise<string[]> {
  const r = await peer.cli(['status', '--json'])
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout).peers
}

/** Wait until `a` and `b` are connected to each other. */
async function bothConnected(a: LocalPeer, b: LocalPeer, deadlineMs = 30_000): Promise<void> {
  await waitFor(
    `${a.name} and ${b.name} to be connected`,
    async () =>
      (await connectedPeers(a)).includes(b.info.peerId) && (await connectedPeers(b)).includes(a.info.peerId)
        ? true
        : undefined,
    deadlineMs,
    200,
  )
}

/** The TCP ports of a peer's addresses. */
const ports = (peer: LocalPeer) => new Set(peer.info.addresses.map(a => a.split('/tcp/')[1].split('/')[0]))

describe('peers on a LAN (Linux network namespaces)', () => {
  let lan: Lan | undefined
  const peers = suiteRunningPeers('lan', async () => lan?.remove())
  before(async () => {
    lan = await createLan(2)
  })
  const start = async (name: string, host: number, opts: { mdns: boolean; init?: boolean }) => {
    const dataDir = join(peers.root, name)
    const startOpts = { listen: [], mdns: opts.mdns, netns: lan!.hosts[host] }
    return peers.add(
      opts.init === false
        ? await startPeer(name, dataDir, startOpts)
        : (await initAndStart(name, dataDir, startOpts)).peer,
    )
  }
  const { stop } = peers

  it('two nodes find each other by mDNS with no address given, and keep each other', async () => {
    const a = await start('a', 0, { mdns: true })
    const b = await start('b', 1, { mdns: true })
    for (const [i, p] of [a, b].entries()) {
      const port = (await readConfig(p.dataDir))!.port
      assert.deepEqual(ports(p), new Set([String(port)]), `${p.name} listens at the port init chose`)
      assert.ok(
        p.info.addresses.some(x => x.startsWith(`/ip4/${lan!.ipv4(i)}/tcp/${port}/p2p/`)),
        `${p.name} gives its LAN address: ${p.info.addresses.join(' ')}`,
      )
      assert.ok(!p.info.addresses.some(x => x.startsWith('/ip4/0.0.0.0/') || x.startsWith('/ip6/::/')))
      assert.match(p.info.addresses.at(-1)!, /^\/ip[46]\/(127\.0\.0\.1|::1)\//, 'loopback last')
    }
    await bothConnected(a, b)

    // b, restarted without mDNS and without a bootstrap address, redials a from its known peers
    await stop(b)
    const b2 = await start('b', 1, { mdns: false, init: false })
    assert.deepEqual(ports(b2), ports(b), 'the restarted node keeps its port')
    assert.deepEqual(new Set(b2.info.addresses), new Set(b.info.addresses), 'and its addresses')
    await bothConnected(a, b2)
  })
})

describe('a host without IPv6', () => {
  let lan: Lan | undefined
  const peers = suiteRunningPeers('lan-v4', async () => lan?.remove())
  before(async () => {
    lan = await createLan(1, { ipv6: false })
  })

  it('the node starts on IPv4 alone and says so once', async () => {
    const dataDir = join(peers.root, 'v4')
    await initData(dataDir)
    const peer = peers.add(await startPeer('v4', dataDir, { listen: [], mdns: true, netns: lan!.hosts[0] }))
    assert.ok(peer.info.addresses.length > 0)
    assert.ok(
      peer.info.addresses.every(a => a.startsWith('/ip4/')),
      peer.info.addresses.join(' '),
    )
    const said = peer.stderr.split('\n').filter(l => /IPv6/.test(l))
    assert.deepEqual(said, ['warning: IPv6 is not available on this machine: listening on IPv4 only'])
  })
})
