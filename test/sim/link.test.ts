/**
 * The simulator's link model on two bare libp2p nodes over the memory transport: a loss rate
 * makes buffers late by a retransmission timeout (TCP's view of a lost packet), never lost or
 * reordered. Lower bounds only: a loaded machine can only add.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { LinkModel, MIN_RTO_MS, memoryWithLatency, retransmitDelayMs } from '../../sim/link.ts'

const ECHO = '/edgeward-sim/echo/1.0.0'
let next = 0

async function pair(link: { latencyMs: number; lossRate: number }): Promise<[Libp2p, Libp2p]> {
  const nodes: Libp2p[] = []
  for (let i = 0; i < 2; i++) {
    nodes.push(
      await createLibp2p({
        addresses: { listen: [`/memory/link-test-${process.pid}-${next++}`] },
        transports: [
          memoryWithLatency(
            () => link.latencyMs,
            0,
            42 + i,
            () => link.lossRate,
          ),
        ],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
      }),
    )
  }
  await nodes[1].handle(ECHO, async stream => {
    const lp = lpStream(stream)
    for (;;) {
      const m = await lp.read().catch(() => undefined)
      if (m === undefined) break
      await lp.write(m)
    }
    await stream.close()
  })
  return [nodes[0], nodes[1]]
}

/** Round trips of `count` echoes, in order, on one stream. */
async function echoes(a: Libp2p, b: Libp2p, count: number): Promise<{ rtts: number[]; got: number[] }> {
  const stream = await a.dialProtocol(b.getMultiaddrs()[0], ECHO)
  const lp = lpStream(stream)
  const rtts: number[] = []
  const got: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    await lp.write(new Uint8Array([i]))
    got.push((await lp.read()).subarray()[0])
    rtts.push(performance.now() - t0)
  }
  await stream.close()
  return { rtts, got }
}

describe('link model: loss', { timeout: 120_000 }, () => {
  it('the retransmission delay is Linux’s minimum RTO, or twice the round trip on slow links', () => {
    assert.equal(retransmitDelayMs(0), MIN_RTO_MS)
    assert.equal(retransmitDelayMs(20), MIN_RTO_MS)
    assert.equal(retransmitDelayMs(100), 400)
  })

  it('loss rates are per site pair, and out-of-range rates are refused', () => {
    const m = new LinkModel({ latencyMs: 1, lossRate: 0.01, interSiteLossRate: 0.2 }, [0, 0, 1])
    assert.equal(m.lossOf(0, 1), 0.01)
    assert.equal(m.lossOf(1, 2), 0.2)
    assert.equal(new LinkModel({ latencyMs: 1, lossRate: 0.05 }, [0, 1]).lossOf(0, 1), 0.05, 'inter-site defaults')
    assert.throws(() => new LinkModel({ latencyMs: 1, lossRate: 1 }, [0]), RangeError)
    assert.throws(() => new LinkModel({ latencyMs: 1, lossRate: -0.1 }, [0]), RangeError)
  })

  it('at a loss rate near 1 every echo is a retransmission timeout late both ways, yet all arrive in order', async () => {
    const [a, b] = await pair({ latencyMs: 0, lossRate: 0.999 })
    try {
      const { rtts, got } = await echoes(a, b, 3)
      assert.deepEqual(got, [0, 1, 2], 'nothing lost, nothing reordered')
      for (const rtt of rtts) assert.ok(rtt >= 2 * MIN_RTO_MS, `round trip ${rtt.toFixed(1)} ms`)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })
})
