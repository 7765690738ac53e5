/**
 * A node's address survives a restart, and its peers come back to it there with no bootstrap
 * address: real `edgeward start` processes on 127.0.0.1 without mDNS. A listens where its
 * configuration says (127.0.0.1 at the port `init` chose); B, on a new port at every start,
 * meets A once by --bootstrap. Both stop; B starts again first (A is down: its redial fails),
 * then A, again at its port, with no bootstrap. A knows B only at B's old port, so the
 * connection that follows is B's redial of A at A's unchanged address; and A's restart with B
 * up reconnects too.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { readConfig, writeConfig } from '../../node/config.ts'
import { initData, suiteRunningPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

/** Whether `a` lists `b` among its connected peers (through its local API). */
async function isConnectedTo(a: LocalPeer, b: LocalPeer): Promise<boolean> {
  const status = await (await a.api()).call<{ peers: string[] }>('GET', '/v1/status')
  return status.peers.includes(b.info.peerId)
}

async function bothConnected(a: LocalPeer, b: LocalPeer): Promise<void> {
  await waitFor(`${a.name} and ${b.name} to be connected`, async () =>
    (await isConnectedTo(a, b)) && (await isConnectedTo(b, a)) ? true : undefined,
  )
}

describe('a restarted node keeps its address, and its peers reconnect to it', () => {
  const peers = suiteRunningPeers('restart')
  const start = async (name: string, opts: Parameters<typeof startPeer>[2] = {}) =>
    peers.add(await startPeer(name, join(peers.root, name), opts))
  const { stop } = peers

  it('keeps its port; its peer redials it there, with no bootstrap flag on either side', async () => {
    await initData(join(peers.root, 'a'))
    await initData(join(peers.root, 'b'))
    // A on loopback at the port init chose, by its configuration (no --listen)
    const config = (await readConfig(join(peers.root, 'a')))!
    await writeConfig(join(peers.root, 'a'), { ...config, listen: [`/ip4/127.0.0.1/tcp/${config.port}`] })
    const a = await start('a', { listen: [] })
    const address = `/ip4/127.0.0.1/tcp/${config.port}/p2p/${a.info.peerId}`
    assert.deepEqual(a.info.addresses, [address])
    const b = await start('b', { bootstrap: [address] })
    await bothConnected(a, b)

    await stop(b)
    await stop(a)
    // B first, on a new port: it cannot reach A, which is down, and A will not know where B is
    const b2 = await start('b')
    assert.notDeepEqual(b2.info.addresses, b.info.addresses, 'B moved')
    const a2 = await start('a', { listen: [] })
    assert.deepEqual(a2.info.addresses, [address], 'A is back at the same address')
    await bothConnected(a2, b2)

    // and A restarted while B runs: both redial, and meet again
    await stop(a2)
    await waitFor('B to see A gone', async () => ((await isConnectedTo(b2, a2)) ? undefined : true))
    const a3 = await start('a', { listen: [] })
    assert.deepEqual(a3.info.addresses, [address])
    await bothConnected(a3, b2)
  })
})
