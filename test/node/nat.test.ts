/**
 * Peers behind NAT, as real `edgeward start` processes in Linux network namespaces
 * (support/netns.ts): a relay on the public network, a gateway (the key holder) behind one NAT,
 * a reader behind another. The gateway reserves a slot on the relay, so its invite carries its
 * /p2p-circuit address; the reader joins by that invite, is granted access by it, and reads the
 * readings, the key request and the fetch going through the relay. Behind endpoint-independent
 * NAT the connection is then upgraded to a direct one (DCUtR, once AutoNAT confirmed the mapped
 * address); behind symmetric NAT it stays relayed and reading still works. A relay at its limit
 * refuses a third reservation, which the refused node's status says (and it goes on running).
 *
 * Needs root, `ip` and `nft` (CI runs as root; test/setup.sh installs them): fails otherwise.
 */
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { waitFor } from '../../node/cli/local-network.ts'
import { decodeInvite, encodeInvite } from '../../protocols/invites.ts'
import { initData, jsonLines, stopPeers } from '../support/local-peers.ts'
import { createNatLab, type NatKind, type NatLab, type NsPeer, PUBLIC, startNsPeer } from '../support/netns.ts'

type Json = Record<string, any>
const PORT = 4001
const READINGS = 50

/** The lab, its relay, gateway and reader, and a space with readings the gateway published. */
function natSuite(nat: NatKind, relayReservations: number) {
  const s = {
    lab: undefined as NatLab | undefined,
    root: '',
    peers: [] as NsPeer[],
    relay: undefined as unknown as NsPeer,
    gateway: undefined as unknown as NsPeer,
    reader: undefined as unknown as NsPeer,
    relayAddr: '',
    space: '',
  }
  before(async () => {
    s.root = await mkdtemp(join(tmpdir(), `edgeward-nat-${nat}-`))
    s.lab = await createNatLab(nat)
    for (const n of ['relay', 'gateway', 'reader']) await initData(join(s.root, n))
    s.relay = await startNsPeer(s.lab.pub, 'relay', join(s.root, 'relay'), [
      '--listen',
      `/ip4/${PUBLIC.relay}/tcp/${PORT}`,
      '--relay',
      '--relay-max-reservations',
      String(relayReservations),
    ])
    s.peers.push(s.relay)
    s.relayAddr = `/ip4/${PUBLIC.relay}/tcp/${PORT}/p2p/${s.relay.info.peerId}`
    const behindNat = ['--listen', `/ip4/0.0.0.0/tcp/${PORT}`, '--relay-via', s.relayAddr]
    s.gateway = await startNsPeer(s.lab.b.host, 'gateway', join(s.root, 'gateway'), behindNat)
    s.peers.push(s.gateway)
    s.reader = await startNsPeer(s.lab.a.host, 'reader', join(s.root, 'reader'), behindNat)
    s.peers.push(s.reader)
  })
  after(async () => {
    // everything goes, whatever failed: processes first, then the namespaces they ran in
    await stopPeers(s.peers, s.root, async () => s.lab?.remove())
  })
  return s
}

const json = (r: { code: number; stdout: string; stderr: string }): Json => {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** Wait until `peer` holds a slot on the relay; its relayed address. */
async function reserved(peer: NsPeer): Promise<string> {
  return waitFor(
    `${peer.name}'s reservation on the relay`,
    async () => {
      const r = (await peer.status()).traversal.reservations.find((x: Json) => x.state === 'reserved')
      return r?.address as string | undefined
    },
    30_000,
    500,
  )
}

/**
 * The gateway and reader side of a suite: a space by invite across the relay, and the read.
 * With `relayedOnly`, the reader is given the code with the relayed address alone (behind
 * endpoint-independent NAT the gateway's mapped address is confirmed and in the code too, and
 * the reader would dial it directly: the relayed path and its upgrade are what is tested).
 */
function relayedRead(s: ReturnType<typeof natSuite>, relayedOnly: boolean): void {
  it('the gateway holds a slot on the relay: its status shows the reservation and its /p2p-circuit address', async () => {
    const address = await reserved(s.gateway)
    assert.match(address, new RegExp(`/p2p/${s.relay.info.peerId}/p2p-circuit`))
    const st = await s.gateway.status()
    const r = st.traversal.reservations[0]
    assert.equal(r.source, 'configured')
    assert.ok(r.expiresAt > Date.now(), 'the slot has an expiry in the future')
    assert.ok(
      st.addresses.some((a: string) => a.includes('/p2p-circuit/')),
      `addresses: ${st.addresses}`,
    )
  })

  it('the reader joins by an invite that carries the relayed address, and reads through the relay', async () => {
    const t = Date.now() - 60_000
    const input = Array.from({ length: READINGS }, (_, i) => JSON.stringify({ ts: t + i, value: i })).join('\n')
    s.space = json(await s.gateway.cli(['space', 'create', 'behind-nat', '--json'])).space
    json(await s.gateway.cli(['publish', s.space, 'temperature', '--json'], { input }))
    const code = json(await s.gateway.cli(['invite', s.space, '--stream', 'temperature', '--json'])).invite
    const carried = decodeInvite(code).addresses
    assert.ok(
      carried.some(a => a.includes('/p2p-circuit/')),
      `the invite carries the relayed address: ${carried}`,
    )
    const given = relayedOnly
      ? encodeInvite({ ...decodeInvite(code), addresses: carried.filter(a => a.includes('/p2p-circuit/')) })
      : code
    const joined = json(await s.reader.cli(['join', given, '--json']))
    assert.equal(joined.space, s.space)
    assert.ok(joined.grant !== undefined, 'the invite granted the stream')
    const read = await s.reader.cli(['read', s.space, 'temperature'])
    assert.equal(read.code, 0, read.stderr)
    assert.deepEqual(
      jsonLines(read.stdout).map(l => l.value),
      Array.from({ length: READINGS }, (_, i) => i),
    )
    const released = json(await s.gateway.cli(['status', '--json'])).counters.edgeward_key_releases_total
    assert.ok(released !== undefined, 'the gateway released the key to the reader')
  })
}

/** The reader's open connections to the gateway, from its status. */
async function connectionsToGateway(s: ReturnType<typeof natSuite>): Promise<Json[]> {
  const st = await s.reader.status()
  return st.traversal.connections.filter((c: Json) => c.peer === s.gateway.info.peerId)
}

describe('behind endpoint-independent NAT: relayed, then upgraded to a direct connection', { timeout: 240_000 }, () => {
  const s = natSuite('endpoint-independent', 16)
  it("AutoNAT confirms each peer's mapped address (a peer on the public network dialled it back)", async () => {
    for (const [peer, lan] of [
      [s.reader, s.lab!.a],
      [s.gateway, s.lab!.b],
    ] as const) {
      const pub = await waitFor(
        `${peer.name}'s confirmed public address`,
        async () => {
          const r = (await peer.status()).traversal.reachability.public as string[]
          return r.length > 0 ? r : undefined
        },
        30_000,
        500,
      )
      assert.deepEqual(pub, [`/ip4/${lan.publicIp}/tcp/${PORT}`])
    }
  })
  relayedRead(s, true)

  it('the relayed connection is upgraded to a direct one (DCUtR), and reading goes on over it', async () => {
    const direct = await waitFor(
      'a direct connection from the reader to the gateway',
      async () => {
        const conns = await connectionsToGateway(s)
        return conns.length > 0 && conns.every(c => !c.relayed) ? conns : undefined
      },
      60_000,
      500,
    )
    for (const c of direct) assert.doesNotMatch(c.address, /p2p-circuit/)
    assert.ok(
      direct.some(c => c.address.includes(s.lab!.b.publicIp)),
      `through the gateway's NAT: ${direct.map(c => c.address)}`,
    )
    const read = await s.reader.cli(['read', s.space, 'temperature'])
    assert.equal(read.code, 0, read.stderr)
    assert.equal(jsonLines(read.stdout).length, READINGS)
  })
})

describe('behind symmetric NAT: relayed it stays, and a relay at its limit is reported', { timeout: 240_000 }, () => {
  // two slots: the gateway's and the reader's; a third node is refused
  const s = natSuite('symmetric', 2)
  relayedRead(s, false)

  it('the connection stays relayed (no address AutoNAT could confirm), and reading still works', async () => {
    await reserved(s.reader)
    // give DCUtR the time it would take (it tries at once when the relayed connection opens)
    const conns = await waitFor(
      'the reader connected to the gateway',
      async () => {
        const c = await connectionsToGateway(s)
        return c.length > 0 ? c : undefined
      },
      20_000,
      500,
    )
    assert.ok(
      conns.every(c => c.relayed && c.address.includes('/p2p-circuit')),
      `only relayed: ${JSON.stringify(conns)}`,
    )
    const st = await s.reader.status()
    assert.deepEqual(st.traversal.reachability.public, [], 'nothing public was confirmed behind symmetric NAT')
    const read = await s.reader.cli(['read', s.space, 'temperature'])
    assert.equal(read.code, 0, read.stderr)
    assert.equal(jsonLines(read.stdout).length, READINGS)
  })

  it('a third node is refused a slot: its status says "relay at its limit", and it keeps running', async () => {
    const dir = join(s.root, 'late')
    await initData(dir)
    const late = await startNsPeer(s.lab!.a.host, 'late', dir, [
      '--listen',
      `/ip4/0.0.0.0/tcp/${PORT + 1}`,
      '--relay-via',
      s.relayAddr,
    ])
    s.peers.push(late)
    const refused = await waitFor(
      "the late node's refused reservation",
      async () => (await late.status()).traversal.reservations.find((r: Json) => r.state === 'refused'),
      30_000,
      500,
    )
    assert.equal(refused.reason, 'relay at its limit')
    const human = await late.cli(['status'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /refused \(relay at its limit\)/)
    assert.equal(late.process.exitCode, null, 'the refused node is still running')
  })
})
