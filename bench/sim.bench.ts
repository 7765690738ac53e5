/**
 * The simulator's figures: real peers over the memory transport in one process (sim/).
 * 1. revocation propagation, p50 and p99 over the peers, at N = 50 and 100 with 0 ms and 20 ms
 *    links (random graph of degree 6, peers dial only along its links and to the owner's
 *    gateway), against a plain gossipsub message of the same size from the same owner in the
 *    same network right after each revocation: three rounds (three subjects) per network;
 * 2. time for every peer to hold the same policy after a partition heals (half the peers cut
 *    off, ten changes written on both sides by the owner and an admin), with the node's
 *    default catch-up interval and with a 2 s one; and with 1 000 changes at N = 50;
 * 3. churn at N = 40 (39 readers, half online at a time, a join or a leave every second on average,
 *    45 s of one reading every 500 ms, 20 ms links): delivery to the readers online, and time
 *    from a reader's start to its first decrypted reading (p50, p99 over the joins).
 * Quick mode: N = 8, one round, 0 ms links; churn for 6 s.
 */
import { SimNetwork } from '../sim/network.ts'
import { runChurn } from '../sim/scenarios/churn.ts'
import { runPartitionHeal } from '../sim/scenarios/partition-heal.ts'
import { runRevoke } from '../sim/scenarios/revoke.ts'
import { meanMax } from '../sim/stats.ts'
import { type Figure, figure, round, type SuiteOptions, versus } from './harness.ts'

const progress = (line: string) => process.stderr.write(`[sim] ${line}\n`)

async function network(peers: number, latencyMs: number, seed: number, syncIntervalMs?: number): Promise<SimNetwork> {
  const t0 = performance.now()
  const net = await SimNetwork.create({
    peers,
    topology: { kind: 'random', degree: 6 },
    link: { latencyMs },
    store: 'memory',
    seed,
    ...(syncIntervalMs === undefined ? {} : { node: { syncIntervalMs } }),
  })
  // memory per peer is left to `npm run sim` (a fresh process): here the networks share one heap
  progress(`${peers} peers, ${latencyMs} ms links: set up in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return net
}

async function revocation(peers: number, latencyMs: number, rounds: number): Promise<Figure[]> {
  const net = await network(peers, latencyMs, 1)
  try {
    const result = await runRevoke(net, { rounds })
    const r = result.rounds
    const hops = meanMax(r.flatMap(x => x.revocationHops))
    const note = [
      `${rounds} rounds (subjects), each a p50/p99 over ${peers - 1} peers`,
      `gossip hops from the owner mean ${hops.mean}, max ${hops.max}`,
      `owner connected to ${r.map(x => x.ownerConnections).join('/')} peers, mean ${round(r[0].meanConnections, 1)}`,
      `one peer validates the revocation in ${r.map(x => x.validationMs).join('/')} ms (alone): in one process the peers pay it one after another`,
      `subject's keys dropped after ${r.map(x => round(x.keysDroppedMs ?? Number.NaN, 0)).join('/')} ms`,
    ].join('; ')
    const label = `N=${peers}, ${latencyMs} ms links`
    return [
      versus(
        `revocation propagation p50, ${label}`,
        'ms',
        r.map(x => x.revocation.p50),
        'plain gossip p50, same network',
        r.map(x => x.baselineSummary.p50),
      ),
      {
        ...versus(
          `revocation propagation p99, ${label}`,
          'ms',
          r.map(x => x.revocation.p99),
          'plain gossip p99, same network',
          r.map(x => x.baselineSummary.p99),
        ),
        note,
      },
    ]
  } finally {
    await net.stop()
  }
}

async function partition(
  peers: number,
  latencyMs: number,
  syncIntervalMs: number | undefined,
  changes = 10,
): Promise<Figure> {
  const net = await network(peers, latencyMs, 2, syncIntervalMs)
  try {
    const r = await runPartitionHeal(net, { changes })
    if (r.convergedMs === undefined) throw new Error(`N=${peers}: the network did not converge after the heal`)
    if (r.disagreeingPeers > 0) throw new Error(`N=${peers}: ${r.disagreeingPeers} peers disagree after the heal`)
    const interval = syncIntervalMs === undefined ? 'default catch-up (30 s)' : `${syncIntervalMs / 1000} s catch-up`
    return figure(
      `time to converge after a partition heals, N=${peers}, ${latencyMs} ms links, ${interval}${changes === 10 ? '' : `, ${changes} changes during the partition`}`,
      'ms',
      [r.convergedMs],
      {
        note: `one run; heal call (redialling ${net.topology.links.filter(([a, b]) => r.sides[a] !== r.sides[b]).length} cut links) ${round(r.healMs, 0)} ms; per peer p50 ${r.summary.p50} ms, p90 ${r.summary.p90} ms; ${r.written[0]} + ${r.written[1]} changes on the two sides; ${r.isolatedWhilePartitioned} peers cut off from their side's writer; all ${peers} peers agree on ${r.gridQuestions} access questions`,
      },
    )
  } finally {
    await net.stop()
  }
}

async function churn(peers: number, latencyMs: number, durationMs: number, churnRate: number): Promise<Figure[]> {
  const net = await network(peers, latencyMs, 3)
  try {
    const r = await runChurn(net, { durationMs, churnRate })
    const failed = r.joins.filter(j => j.firstReadingMs === undefined).length
    if (failed > 0) throw new Error(`N=${peers}: ${failed} joining readers decrypted nothing`)
    const median = (xs: (number | undefined)[]) => {
      const got = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b)
      return got.length === 0 ? Number.NaN : round(got[Math.floor((got.length - 1) / 2)], 0)
    }
    const label = `N=${peers}, ${latencyMs} ms links, ${churnRate} joins or leaves/s for ${durationMs / 1000} s`
    const f = r.firstReading
    const phases = `medians from the node's start: running and linked ${median(r.joins.map(j => j.startedMs))} ms, policy with its grant ${median(r.joins.map(j => j.policyMs))} ms, backfill done ${median(r.joins.map(j => j.backfillMs))} ms, first reading ${median(r.joins.map(j => j.firstReadingMs))} ms`
    return [
      figure(`churn: readings delivered to the readers online, ${label}`, '%', [round(r.delivery.ratio * 100, 1)], {
        note: `one run; ${r.delivery.delivered} of ${r.delivery.eligible} reader × reading pairs over ${r.sessions.length} online sessions, ${r.delivery.live} live from gossip, the rest by the joining read's backfill; ${r.published} readings; ${r.events.joins} joins, ${r.events.leaves} leaves`,
      }),
      figure(`churn: time to first decrypted reading p50, ${label}`, 'ms', [f.all.p50], {
        note: `one run, ${f.all.count} joins (${f.newcomer.count} newcomers granted on joining: p50 ${f.newcomer.p50} ms; ${f.returning.count} returning with an empty store: p50 ${f.returning.p50} ms); ${phases}`,
      }),
      figure(`churn: time to first decrypted reading p99, ${label}`, 'ms', [f.all.p99], {
        note: `max ${f.all.max} ms`,
      }),
    ]
  } finally {
    await net.stop()
  }
}

export default async function simSuite({ quick }: SuiteOptions): Promise<Figure[]> {
  const figures: Figure[] = []
  if (quick) {
    figures.push(...(await revocation(8, 0, 1)))
    figures.push(await partition(8, 0, 2000))
    figures.push(await partition(8, 0, undefined, 100))
    figures.push(...(await churn(8, 0, 6000, 1)))
    return figures
  }
  for (const peers of [50, 100]) {
    for (const latencyMs of [0, 20]) figures.push(...(await revocation(peers, latencyMs, 3)))
  }
  for (const peers of [50, 100]) {
    for (const interval of [undefined, 2000]) figures.push(await partition(peers, 20, interval))
  }
  figures.push(await partition(50, 20, undefined, 1000))
  figures.push(...(await churn(40, 20, 45_000, 1)))
  return figures
}
