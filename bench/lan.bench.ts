/**
 * How long a node takes to find a peer on its LAN: two hosts (Linux network namespaces on one
 * Ethernet segment, test/support/lan.ts), A running with mDNS; on the other host, N times, a
 * new node B is started with no address given (mDNS on, listening on every interface at the
 * port `init` chose) and timed from its process start to its first connection to A. The
 * baseline, in the same run and the same namespaces: B started with A's LAN address as
 * --bootstrap and no mDNS. Reported: medians with min–max, p50 and p99 in the notes, and the
 * part after the node said it runs (what mDNS adds once the process is up; the bootstrap
 * peer is dialled before that line, so its figure is the floor: B's first API call).
 *
 * The timing runs inside B's namespace (its API listens on that namespace's loopback): this
 * file, run as `node bench/lan.bench.ts --probe …` with `ip netns exec`, starts B, polls its
 * API every 5 ms and prints the times as one JSON line. Needs root and `ip` (as the LAN tests).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { type LocalPeer, runCli, startPeer, waitFor } from '../node/cli/local-network.ts'
import { createLan } from '../test/support/lan.ts'
import { type Figure, percentile, type Suite, versus } from './harness.ts'

const run = promisify(execFile)

interface ProbeResult {
  /** from spawning B to B connected to A */
  startToPeerMs: number
  /** from B's "running" line (its API up) to B connected to A */
  runningToPeerMs: number
}

/** In B's namespace: start B on `dataDir` (mDNS, or `bootstrap`), time it until it is connected to `peerId`, stop it. */
async function probe(dataDir: string, peerId: string, bootstrap: string | undefined): Promise<ProbeResult> {
  const t0 = performance.now()
  const b = await startPeer('b', dataDir, {
    listen: [],
    mdns: bootstrap === undefined,
    bootstrap: bootstrap === undefined ? [] : [bootstrap],
  })
  const running = performance.now()
  try {
    const api = await b.api()
    const connected = await waitFor(
      'B to connect to A',
      async () => {
        const s = await api.call<{ peers: string[] }>('GET', '/v1/status')
        return s.peers.includes(peerId) ? performance.now() : undefined
      },
      30_000,
      5,
    )
    return { startToPeerMs: connected - t0, runningToPeerMs: connected - running }
  } finally {
    await b.stop()
  }
}

const lan: Suite = async ({ quick }) => {
  const runs = quick ? 1 : 10
  const net = await createLan(2)
  const root = await mkdtemp(join(tmpdir(), 'edgeward-bench-lan-'))
  let a: LocalPeer | undefined
  try {
    const init = async (name: string) => {
      const r = await runCli(['init', '--data', join(root, name)])
      if (r.code !== 0) throw new Error(`init ${name}: ${r.stderr}`)
      return join(root, name)
    }
    a = await startPeer('a', await init('a'), { listen: [], mdns: true, netns: net.hosts[0] })
    const aOnLan = a.info.addresses.find(x => x.startsWith(`/ip4/${net.ipv4(0)}/`))
    if (aOnLan === undefined) throw new Error(`A has no address on the LAN: ${a.info.addresses.join(' ')}`)
    const once = async (name: string, bootstrap?: string): Promise<ProbeResult> => {
      const args = [
        import.meta.filename,
        '--probe',
        await init(name),
        a!.info.peerId,
        ...(bootstrap ? [bootstrap] : []),
      ]
      const { stdout } = await run('ip', ['netns', 'exec', net.hosts[1], process.execPath, ...args], {
        timeout: 60_000,
      })
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as ProbeResult
    }
    const mdns: ProbeResult[] = []
    const boot: ProbeResult[] = []
    // alternate, so that a slow stretch of the machine weighs on both alike
    for (let i = 0; i < runs; i++) {
      mdns.push(await once(`mdns-${i}`))
      boot.push(await once(`boot-${i}`, aOnLan))
    }
    const start = (rs: ProbeResult[]) => rs.map(r => r.startToPeerMs)
    const after = (rs: ProbeResult[]) => rs.map(r => r.runningToPeerMs)
    const p = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms`
    const figures: Figure[] = [
      {
        ...versus(
          'start to first peer found by mDNS (LAN of 2 namespaces)',
          'ms',
          start(mdns),
          'with a --bootstrap address',
          start(boot),
        ),
        note: `process start to connected, ${runs} starts: mDNS ${p(start(mdns))}; bootstrap ${p(start(boot))}`,
      },
      {
        ...versus(
          '"running" to first peer found by mDNS',
          'ms',
          after(mdns),
          'with a --bootstrap address: the floor',
          after(boot),
        ),
        note: `after the node's running line, ${runs} starts: mDNS ${p(after(mdns))}; bootstrap ${p(after(boot))}`,
      },
    ]
    return figures
  } finally {
    await a?.stop()
    await net.remove()
    await rm(root, { recursive: true, force: true })
  }
}

export default lan

if (import.meta.main && process.argv[2] === '--probe') {
  const [dataDir, peerId, bootstrap] = process.argv.slice(3)
  process.stdout.write(`${JSON.stringify(await probe(dataDir, peerId, bootstrap))}\n`)
}
