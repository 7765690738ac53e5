/**
 * The network's inbound limits: libp2p refuses inbound connections from one host past 5 a
 * second, which every peer of a loopback network (the simulator's TCP mode) hits at once; a
 * host on the allow list is not limited.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { createNetwork, type EdgewardLibp2p } from '../../node/network.ts'

const DIALERS = 12

describe('network: inbound connection limits', { timeout: 60_000 }, () => {
  const started: EdgewardLibp2p[] = []
  const start = async (allow?: string[]) => {
    const p = await createNetwork({ privateKey: await generateKeyPair('Ed25519'), allow })
    started.push(p)
    await p.start()
    return p
  }
  /** DIALERS fresh peers dial `target` at once; how many got a connection that stayed open. */
  const dialAtOnce = async (target: EdgewardLibp2p): Promise<number> => {
    const dialers = await Promise.all(Array.from({ length: DIALERS }, () => start()))
    const addr = multiaddr(target.getMultiaddrs()[0].toString())
    await Promise.allSettled(dialers.map(d => d.dial(addr)))
    // a refused connection is closed by the listener as soon as it is accepted
    await new Promise(resolve => setTimeout(resolve, 500))
    return dialers.filter(d => d.getConnections(target.peerId).length > 0).length
  }

  after(async () => {
    await Promise.allSettled(started.map(p => p.stop()))
  })

  it('refuses some of many connections from one host in a second by default', async () => {
    const connected = await dialAtOnce(await start())
    assert.ok(connected < DIALERS, `${connected} of ${DIALERS} connected`)
  })

  it('accepts them all from a host on the allow list', async () => {
    assert.equal(await dialAtOnce(await start(['/ip4/127.0.0.1'])), DIALERS)
  })
})
