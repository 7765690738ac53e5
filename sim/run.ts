/**
 * `npm run sim -- --scenario revoke|partition-heal|churn|adversary|custody --peers N --degree D --latency MS --seed S
 * [--disk] --out DIR`: builds a simulated network, runs the scenario, and writes
 * DIR/results.json and DIR/report.html. Progress goes to stderr on one redrawn line; the
 * summary to stdout. Exit codes: 0 every check held, 1 a check failed or the run failed,
 * 2 bad usage.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { UsageError } from '../node/errors.ts'
import { SimNetwork } from './network.ts'
import { ProcNetwork, runRevokeProcs } from './procs.ts'
import { checksOf, machine, type RunParams, type RunRecord, renderHtml, summaryLinesOf } from './report.ts'
import { runAdversary } from './scenarios/adversary.ts'
import { runChurn } from './scenarios/churn.ts'
import { custodyPublicPeers, runCustody } from './scenarios/custody.ts'
import { runPartitionHeal } from './scenarios/partition-heal.ts'
import { runRevoke } from './scenarios/revoke.ts'
import { meanMax } from './stats.ts'
import type { TopologySpec } from './topology.ts'

const USAGE = `usage: npm run sim -- --scenario revoke|partition-heal|churn|adversary|custody [options]
  --peers N            peers in the network (default 20)
  --topology KIND      random | sites (default random)
  --degree D           links per peer (inside a site, with sites) (default 6)
  --sites K            sites, with --topology sites (default 4)
  --bridges B          links between each pair of sites (default 2)
  --latency MS         one-way latency of each link (inside a site) (default 0)
  --inter-latency MS   one-way latency between sites (default: --latency)
  --jitter MS          per-buffer jitter around the latency (default 0)
  --loss P             probability that a link loses a buffer (inside a site), 0 <= P < 1: it then
                       arrives a retransmission timeout late, as over TCP (default 0)
  --inter-loss P       the same between sites (default: --loss)
  --seed S             seed for everything random that is ours (default 1)
  --disk               keep each peer's store on disk in a temp dir (default: in memory; custody: always on disk)
  --open-dials         let nodes dial any peer (default: only along the topology's links and to the owner;
                       custody: and to the custodians)
  --rounds R           revoke: grant-read-revoke rounds; custody: cycles of custodian crashes and partitions (default 1)
  --changes K          partition-heal: policy changes written while partitioned (default 10)
  --readers R          churn: peers that read and come and go (default every peer but the owner);
                       custody: readers (default every peer but the owner and the custodians)
  --churn-rate E       churn: reader joins and leaves per second, over the network (default 0.5)
  --duration S         churn: seconds the gateway publishes while readers churn (default 60)
  --publish-every MS   churn: one reading every MS (default 500)
  --spam K             adversary: junk messages on each of the space's four topics (default 50)
  --custodians N       custody: custodians, peers 1..N (default 5)
  --threshold K        custody: shares needed to make a key (default 3)
  --sync-interval MS   the nodes' periodic policy catch-up (default: the node's, 30 s)
  --procs K            revoke: run the peers in K processes, over TCP on 127.0.0.1 (default 1: one process, memory transport)
  --deadline S         how long to wait for any one step (default 300)
  --out DIR            where to write results.json and report.html (default sim-out)`

function parse(): { params: RunParams; out: string; deadlineMs: number; procs: number } {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string' },
      peers: { type: 'string', default: '20' },
      topology: { type: 'string', default: 'random' },
      degree: { type: 'string', default: '6' },
      sites: { type: 'string', default: '4' },
      bridges: { type: 'string', default: '2' },
      latency: { type: 'string', default: '0' },
      'inter-latency': { type: 'string' },
      jitter: { type: 'string', default: '0' },
      loss: { type: 'string', default: '0' },
      'inter-loss': { type: 'string' },
      seed: { type: 'string', default: '1' },
      disk: { type: 'boolean', default: false },
      'open-dials': { type: 'boolean', default: false },
      rounds: { type: 'string', default: '1' },
      changes: { type: 'string', default: '10' },
      readers: { type: 'string' },
      'churn-rate': { type: 'string', default: '0.5' },
      duration: { type: 'string', default: '60' },
      'publish-every': { type: 'string', default: '500' },
      spam: { type: 'string', default: '50' },
      custodians: { type: 'string', default: '5' },
      threshold: { type: 'string', default: '3' },
      'sync-interval': { type: 'string' },
      procs: { type: 'string', default: '1' },
      deadline: { type: 'string', default: '300' },
      out: { type: 'string', default: 'sim-out' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v)
    if (v === undefined || !Number.isInteger(n) || n < min)
      throw new UsageError(`--${name} must be an integer >= ${min}`)
    return n
  }
  const scenario = values.scenario
  if (
    scenario !== 'revoke' &&
    scenario !== 'partition-heal' &&
    scenario !== 'churn' &&
    scenario !== 'adversary' &&
    scenario !== 'custody'
  ) {
    throw new UsageError('--scenario must be revoke, partition-heal, churn, adversary or custody')
  }
  const churnRate = Number(values['churn-rate'])
  if (!(churnRate > 0)) throw new UsageError('--churn-rate must be a number > 0')
  const peers = num('peers', values.peers, 2)
  const degree = num('degree', values.degree, 1)
  let topology: TopologySpec
  if (values.topology === 'random') topology = { kind: 'random', degree }
  else if (values.topology === 'sites') {
    topology = {
      kind: 'sites',
      sites: num('sites', values.sites, 1),
      degree,
      bridges: num('bridges', values.bridges, 1),
    }
  } else throw new UsageError('--topology must be random or sites')
  const rate = (name: string, v: string | undefined): number => {
    const n = Number(v)
    if (v === undefined || v.trim() === '' || !(n >= 0 && n < 1))
      throw new UsageError(`--${name} must be a number from 0 to below 1`)
    return n
  }
  const custodians = num('custodians', values.custodians, 2)
  const threshold = num('threshold', values.threshold, 2)
  if (scenario === 'custody' && (threshold > custodians || custodians > 16 || peers < custodians + 3)) {
    throw new UsageError('custody needs 2 <= --threshold <= --custodians <= 16 and --peers >= custodians + 3')
  }
  const latencyMs = num('latency', values.latency, 0)
  const procs = num('procs', values.procs, 1)
  const lossy = Number(values.loss) > 0 || values['inter-loss'] !== undefined
  if (procs > 1 && (values.scenario !== 'revoke' || latencyMs > 0 || values['inter-latency'] !== undefined || lossy)) {
    throw new UsageError('--procs runs the revoke scenario, over TCP loopback (no --latency or --loss)')
  }
  return {
    params: {
      scenario,
      peers,
      topology,
      link: {
        latencyMs,
        interSiteLatencyMs:
          values['inter-latency'] === undefined ? latencyMs : num('inter-latency', values['inter-latency'], 0),
        jitterMs: num('jitter', values.jitter, 0),
        lossRate: rate('loss', values.loss),
        interSiteLossRate:
          values['inter-loss'] === undefined ? rate('loss', values.loss) : rate('inter-loss', values['inter-loss']),
      },
      // a crashed custodian must come back with its deals, and the owner with its keys
      store: values.disk || scenario === 'custody' ? 'disk' : 'memory',
      strictTopology: !values['open-dials'],
      seed: num('seed', values.seed, 0),
      rounds: num('rounds', values.rounds, 1),
      changes: num('changes', values.changes, 1),
      readers: values.readers === undefined ? undefined : num('readers', values.readers, 1),
      churnRate,
      durationMs: num('duration', values.duration, 1) * 1000,
      publishEveryMs: num('publish-every', values['publish-every'], 10),
      spam: num('spam', values.spam, 1),
      custodians,
      threshold,
      syncIntervalMs:
        values['sync-interval'] === undefined ? undefined : num('sync-interval', values['sync-interval'], 100),
    },
    out: resolve(values.out),
    deadlineMs: num('deadline', values.deadline, 1) * 1000,
    procs,
  }
}

/** One line on stderr, redrawn in place with \r: `[#####-----]  50% phase 5/10  12.3 s`. */
class ProgressBar {
  private phase = ''
  private last = 0
  private readonly started = performance.now()
  private readonly tty = process.stderr.isTTY === true

  update(phase: string, done: number, total: number): void {
    const now = performance.now()
    const finished = done >= total
    if (phase === this.phase && !finished && now - this.last < (this.tty ? 100 : 2000)) return
    if (phase !== this.phase && this.phase !== '') process.stderr.write('\n')
    this.phase = phase
    this.last = now
    const width = 30
    const filled = total === 0 ? width : Math.round((done / total) * width)
    const pct = total === 0 ? 100 : Math.floor((done / total) * 100)
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${phase} ${done}/${total}  ${((now - this.started) / 1000).toFixed(1)} s`
    process.stderr.write(`\r${line.padEnd(100)}`)
  }

  end(): void {
    if (this.phase !== '') process.stderr.write('\n')
    this.phase = ''
  }
}

// a library's background failure (a dial nobody waits for) must not end a run: it is counted and reported
let backgroundFailures = 0
process.on('unhandledRejection', err => {
  backgroundFailures++
  if (process.env.DEBUG !== undefined)
    process.stderr.write(`\nbackground failure: ${(err as Error)?.stack ?? String(err)}\n`)
})

/** Set on SIGINT/SIGTERM: the handler stops the network and exits; the scenario's failure must not exit first. */
let interrupted = false

/** Run the scenario `params` names on `net` (across processes: the revocation scenario). */
async function runScenario(
  net: SimNetwork | ProcNetwork,
  params: RunParams,
  deadlineMs: number,
  onProgress: (phase: string, done: number, total: number) => void,
) {
  if (net instanceof ProcNetwork) return runRevokeProcs(net, { rounds: params.rounds, deadlineMs, onProgress })
  switch (params.scenario) {
    case 'revoke':
      return runRevoke(net, { rounds: params.rounds, deadlineMs, onProgress })
    case 'partition-heal':
      return runPartitionHeal(net, { changes: params.changes, deadlineMs, onProgress })
    case 'churn':
      return runChurn(net, {
        readers: params.readers,
        churnRate: params.churnRate,
        durationMs: params.durationMs,
        publishEveryMs: params.publishEveryMs,
        deadlineMs,
        onProgress,
      })
    case 'custody':
      return runCustody(net, {
        custodians: params.custodians,
        threshold: params.threshold,
        readers: params.readers,
        cycles: params.rounds,
        deadlineMs,
        onProgress,
      })
    default:
      return runAdversary(net, { spam: params.spam, deadlineMs, onProgress })
  }
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse()
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`)
    return 2
  }
  const { params, out, deadlineMs, procs } = parsed
  const bar = new ProgressBar()
  const onProgress = (phase: string, done: number, total: number) => bar.update(phase, done, total)
  const started = performance.now()
  const options = {
    peers: params.peers,
    topology: params.topology,
    link: params.link,
    store: params.store,
    seed: params.seed,
    strictTopology: params.strictTopology,
    // readers ask the custodians themselves
    ...(params.scenario === 'custody' ? { public: custodyPublicPeers(params.custodians) } : {}),
    ...(params.syncIntervalMs === undefined ? {} : { node: { syncIntervalMs: params.syncIntervalMs } }),
    onProgress,
  }
  const net = procs > 1 ? await ProcNetwork.create({ ...options, procs }) : await SimNetwork.create(options)
  const networkMs = performance.now() - started
  const onSignal = () => {
    if (interrupted) return
    interrupted = true
    process.stderr.write('\ninterrupted: stopping every peer\n')
    net.stop().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let record: RunRecord
  try {
    const result = await runScenario(net, params, deadlineMs, onProgress)
    const degrees = await net.degrees()
    record = {
      generated: new Date().toISOString(),
      command: `npm run sim -- ${process.argv.slice(2).join(' ')}`,
      params,
      machine: machine(),
      setup: {
        networkMs,
        links: net.topology.links.length,
        failedDials: net.failedDials,
        memory: net.memory,
        memoryPerPeer: net.memoryPerPeer(),
        connections: {
          mean: degrees.reduce((a, b) => a + b, 0) / Math.max(1, degrees.length),
          min: Math.min(...degrees),
          max: Math.max(...degrees),
        },
      },
      result,
      checks: checksOf(result),
      totalMs: 0,
    }
  } finally {
    if (!interrupted) await net.stop()
    bar.end()
  }
  record.totalMs = performance.now() - started
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'results.json'), `${JSON.stringify(record, null, 2)}\n`)
  await writeFile(join(out, 'report.html'), renderHtml(record))
  process.stdout.write(summaryOf(record))
  if (backgroundFailures > 0)
    process.stdout.write(`${backgroundFailures} background failures in libraries during the run\n`)
  process.stdout.write(`wrote ${join(out, 'results.json')} and ${join(out, 'report.html')}\n`)
  return record.checks.every(c => c.ok) ? 0 : 1
}

function summaryOf(run: RunRecord): string {
  const lines = [
    `${run.params.scenario}: ${run.params.peers} peers, set up in ${(run.setup.networkMs / 1000).toFixed(1)} s`,
  ]
  const mem = run.setup.memoryPerPeer
  lines.push(
    `memory per peer: ${(mem.rssBytes / 2 ** 20).toFixed(1)} MiB RSS, ${(mem.heapUsedBytes / 2 ** 20).toFixed(1)} MiB heap`,
  )
  const r = run.result
  if (r.scenario === 'revoke') {
    for (const [i, round] of r.rounds.entries()) {
      const s = round.revocation
      const b = round.baselineSummary
      lines.push(
        `round ${i + 1}: revocation p50 ${s.p50} ms, p90 ${s.p90}, p99 ${s.p99}, max ${s.max}; plain gossip p50 ${b.p50} ms, p99 ${b.p99}; subject's keys dropped after ${round.keysDroppedMs?.toFixed(1) ?? '—'} ms`,
      )
      const rh = meanMax(round.revocationHops)
      const bh = meanMax(round.baselineHops)
      lines.push(
        `  hops (mean/max) revocation ${rh.mean}/${rh.max}, baseline ${bh.mean}/${bh.max}; owner connections ${round.ownerConnections}, mean ${round.meanConnections.toFixed(1)}; mesh policy ${round.meanMesh.policy.toFixed(1)}, baseline ${round.meanMesh.baseline.toFixed(1)}; one peer validates the revocation in ${round.validationMs} ms`,
      )
    }
  } else if (r.scenario === 'partition-heal') {
    lines.push(
      `converged ${r.convergedMs === undefined ? 'never' : `after ${r.convergedMs.toFixed(0)} ms`} (heal call ${r.healMs.toFixed(0)} ms); ${r.disagreeingPeers} peers disagree on ${r.gridQuestions} access questions`,
    )
  } else lines.push(...summaryLinesOf(r))
  for (const c of run.checks) lines.push(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`)
  return `${lines.join('\n')}\n`
}

main().then(
  code => process.exit(code),
  err => {
    if (interrupted) return
    process.stderr.write(`\nsim failed: ${(err as Error).message}\n`)
    if (process.env.DEBUG !== undefined) process.stderr.write(`${(err as Error).stack}\n`)
    process.exit(1)
  },
)
