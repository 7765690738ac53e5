/**
 * What a simulator run leaves behind: results.json (everything measured, with the parameters
 * and the machine) and report.html (one self-contained file: tables and inline SVG charts).
 */
import os from 'node:os'
import { barChart, escapeXml, type LineChart, lineChart } from './chart.ts'
import type { LinkSpec } from './link.ts'
import type { MemorySample, StoreKind } from './network.ts'
import type { AdversaryResult } from './scenarios/adversary.ts'
import type { ChurnResult } from './scenarios/churn.ts'
import type { CustodyResult } from './scenarios/custody.ts'
import type { PartitionHealResult } from './scenarios/partition-heal.ts'
import type { RevokeResult } from './scenarios/revoke.ts'
import { meanMax, type Summary } from './stats.ts'
import type { TopologySpec } from './topology.ts'

export interface RunParams {
  scenario: 'revoke' | 'partition-heal' | 'churn' | 'adversary' | 'custody'
  peers: number
  topology: TopologySpec
  link: LinkSpec
  store: StoreKind
  /** may peers dial only along the topology's links (and to the owner)? */
  strictTopology: boolean
  seed: number
  rounds: number
  changes: number
  /** churn: reader peers (undefined: every peer but the owner) */
  readers: number | undefined
  /** churn: reader joins and leaves per second */
  churnRate: number
  /** churn: how long the gateway publishes while readers churn, ms */
  durationMs: number
  /** churn: ms between two readings */
  publishEveryMs: number
  /** adversary: junk messages per topic */
  spam: number
  /** custody: custodians (n) and the shares needed (k) */
  custodians: number
  threshold: number
  /** the nodes' periodic policy catch-up, ms (undefined: the node's default) */
  syncIntervalMs: number | undefined
}

export type ScenarioResult = RevokeResult | PartitionHealResult | ChurnResult | AdversaryResult | CustodyResult

export interface Check {
  name: string
  ok: boolean
  detail: string
}

export interface RunRecord {
  generated: string
  command: string
  params: RunParams
  machine: Record<string, string | number>
  setup: {
    /** ms to create, start and link every peer */
    networkMs: number
    links: number
    failedDials: number
    memory: MemorySample[]
    memoryPerPeer: { rssBytes: number; heapUsedBytes: number }
    /** distinct peers each peer was connected to at the end of the run */
    connections: { mean: number; min: number; max: number }
  }
  result: ScenarioResult
  checks: Check[]
  /** ms for the whole run, setup and teardown included */
  totalMs: number
}

export const APPROXIMATIONS = [
  'Latency is per pair of peers (inside a site, or between sites) and applied to each buffer a connection receives, in order, pipelined like a wire; jitter is drawn per buffer without reordering. Loss (--loss) is modelled as TCP shows it: a lost buffer arrives a retransmission timeout late (200 ms, or twice the round trip), and everything behind it on that connection waits. Bandwidth is not modelled.',
  "Every peer runs in one Node.js process on one event loop (with --procs K, in K processes sharing this machine's cores, linked over TCP on 127.0.0.1 with no latency, loss or partition modelled): CPU work (signature checks, Automerge, noise) is not parallel as it would be on separate devices, so at large N it adds to every hop, for the policy change and the baseline alike.",
  "With --procs, every peer is 127.0.0.1: libp2p's inbound connection rate limit per host and gossipsub's IP colocation penalty are lifted for that address, as they would not apply to peers on separate hosts.",
  'With 0 ms links a gossip message and every copy forwarded are delivered at once, so every peer validates it in one burst before any of them finishes storing it: the times then show that burst (about N times one validation), not a spread over hops; links of a few ms spread the work over time the way a network does.',
  "The topology is the set of links dialled at the start. By default a connection gater refuses every other dial except to and from the owner's gateway (as if it alone had a public address): readers still dial it for keys and witnesses for audit proofs, as in production, so it ends up connected to most peers and its own messages reach them in one hop (gossipsub flood publish). With --open-dials the DHT connects most peers to most others. The connection counts measured are reported.",
  'A crash is a clean stop of the node (its store is closed); with stores in memory a restart begins empty.',
  "Churn: a reader that leaves stops its node cleanly (no half-open connections); one that joins starts its node, redials its topology links (the owner's gateway when none is up) and is granted by the scenario at once, as if its access request were approved the moment it was filed.",
  "Custody: a misbehaving custodian is our node with its decision replaced (it releases what it would refuse, under the subject's grant); a read through the custodians is the reader's fallback when no key holder answers, called directly for every epoch published, and checked by decrypting one record of each epoch. Every store is on disk, so a crashed owner or custodian comes back with its keys, deals and audit log.",
  'Adversaries run our node and send what our code would never send (hand-made Automerge changes, junk, replays, forged tree heads) through the same libp2p connections; they do not attack libp2p itself (no eclipse, no Sybil identities, no flooding below gossipsub).',
  "Seeded: topology, sides of a partition, subjects, jitter, the churn schedule, adversary roles and junk. Not seeded: peer keys, nonces, gossipsub's choices, timing.",
]

/** The machine a run ran on (CPU, cores, memory, Node), for the report. */
export function machine(): Record<string, string | number> {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  }
}

/** The invariants a run is expected to hold; run.ts exits 1 when one fails. */
export function checksOf(result: ScenarioResult): Check[] {
  if (result.scenario === 'churn') return churnChecks(result)
  if (result.scenario === 'adversary') return adversaryChecks(result)
  if (result.scenario === 'custody') return custodyChecks(result)
  if (result.scenario === 'revoke') {
    return result.rounds.flatMap((r, i) => {
      const round = result.rounds.length > 1 ? ` (round ${i + 1})` : ''
      return [
        {
          name: `every peer applied the revocation${round}`,
          ok: r.revocation.missing === 0 && r.inState === r.revocation.count + 1,
          detail: `${r.revocation.count} applied, ${r.revocation.missing} missing; ${r.inState} peers (the owner too) hold it in their policy state`,
        },
        {
          name: `the revoked subject dropped its keys${round}`,
          ok: r.keysDroppedMs !== undefined,
          detail: r.keysDroppedMs === undefined ? 'keys still cached' : `after ${r.keysDroppedMs.toFixed(1)} ms`,
        },
        {
          name: `no key released to the subject after the revocation${round}`,
          ok: r.releasesAfterRevocation === 0,
          detail: `${r.releasesAfterRevocation} releases after it in the key holder's audit log`,
        },
        {
          name: `every read after the subject saw the revocation was refused${round}`,
          ok: r.readsAfterSeenNotRefused === 0 && r.reads.some(a => a.afterSeen),
          detail: `${r.reads.filter(a => a.afterSeen).length} reads after, ${r.readsAfterSeenNotRefused} not refused`,
        },
      ]
    })
  }
  return [
    {
      name: 'no change crossed the partition',
      ok: result.crossedBeforeHeal === 0,
      detail: `${result.crossedBeforeHeal} peers had a change from the other side`,
    },
    {
      name: 'every peer converged after the heal',
      ok: result.convergedMs !== undefined,
      detail:
        result.convergedMs === undefined ? 'not before the deadline' : `after ${result.convergedMs.toFixed(0)} ms`,
    },
    {
      name: 'every peer gives the same access answers',
      ok: result.disagreeingPeers === 0,
      detail: `${result.gridQuestions} questions, ${result.disagreeingPeers} peers disagree with the owner`,
    },
  ]
}

/** Below this share of readings delivered to the readers online, a churn run fails its check. */
export const MIN_DELIVERY_RATIO = 0.95

function churnChecks(r: ChurnResult): Check[] {
  const failed = r.joins.filter(j => j.firstReadingMs === undefined)
  return [
    {
      name: 'every reader that joined decrypted a reading',
      ok: r.joins.length > 0 && failed.length === 0,
      detail: `${r.joins.length - failed.length} of ${r.joins.length} joins (${r.joins.filter(j => j.kind === 'newcomer').length} newcomers)${failed[0]?.error === undefined ? '' : `; first failure: ${failed[0].error}`}`,
    },
    {
      name: `readers online decrypted at least ${MIN_DELIVERY_RATIO * 100}% of what was published meanwhile`,
      ok: r.delivery.eligible > 0 && r.delivery.ratio >= MIN_DELIVERY_RATIO,
      detail: `${r.delivery.delivered} of ${r.delivery.eligible} (${pct(r.delivery.ratio)}), ${r.delivery.live} of them live from gossip, over ${r.sessions.length} online sessions`,
    },
    {
      name: 'every live reading decrypted',
      ok: r.decryptFailures === 0,
      detail: `${r.decryptFailures} failures${r.lastDecryptFailure === undefined ? '' : `; last: ${r.lastDecryptFailure}`}`,
    },
  ]
}

function adversaryChecks(r: AdversaryResult): Check[] {
  const checks = r.attacks.flatMap(a => {
    const counted = Object.values(a.counted).reduce((x, y) => x + y, 0)
    return [
      {
        name: `${a.name}: every attempt refused and counted`,
        ok: a.attempted > 0 && a.refused === a.attempted && counted >= a.attempted,
        detail: `${a.refused} of ${a.attempted} refused; counted ${counted} times by ${a.recipients} honest peers (${countedText(a.counted)})`,
      },
      {
        name: `${a.name}: no invariant violated`,
        ok: a.violations.length === 0,
        detail: a.violations.length === 0 ? '0 violations' : a.violations.join('; '),
      },
    ]
  })
  checks.push(
    {
      name: 'no key released that should not have been',
      ok: r.releaseViolations.length === 0,
      detail: `${r.releasesChecked} releases in the key holder's audit log; ${r.releaseViolations.length === 0 ? '0 violations' : r.releaseViolations.join('; ')}`,
    },
    {
      name: 'after the spam, a reading still reaches every honest peer',
      ok: r.afterSpam.reached === r.afterSpam.expected,
      detail: `${r.afterSpam.reached} of ${r.afterSpam.expected}`,
    },
  )
  return checks
}

function custodyChecks(r: CustodyResult): Check[] {
  const n = r.custodians.length
  return [
    {
      name: `a granted reader reads every epoch whenever ${r.k} custodians are reachable`,
      ok: r.liveness.expected > 0 && r.liveness.succeeded === r.liveness.expected,
      detail: `${r.liveness.succeeded} of ${r.liveness.expected} reads (${pct(r.liveness.ratio)})${firstFailure(r)}`,
    },
    {
      name: `no read with fewer than ${r.k} custodians reachable got a key`,
      ok: r.belowThreshold.withKey === 0,
      detail: `${r.belowThreshold.reads} such reads, ${r.belowThreshold.withKey} with a key`,
    },
    {
      name: `no key reached the revoked reader once the revocation was at ${n - r.k + 1} custodians that follow the policy`,
      ok: r.safety.reads > 0 && r.safety.violations === 0,
      detail: `${r.safety.reads} reads by p${r.revoked} after, ${r.safety.violations} violations (${r.safety.readsBefore} reads got every key before the revocation; p${r.misbehaving} ignored the policy and released ${r.misbehavingReleases} shares to it)`,
    },
    {
      name: 'no reader combined a wrong key',
      ok: r.wrongKeys === 0,
      detail: `${r.wrongKeys} keys that did not decrypt their epoch`,
    },
    {
      name: "every release a reader used is in its custodian's audit log",
      ok: r.audit.missing === 0,
      detail: `${r.audit.reads} reads with keys, ${r.audit.used} releases used, ${r.audit.missing} missing`,
    },
  ]
}

function firstFailure(r: CustodyResult): string {
  const failed = r.rounds
    .flatMap(round => round.reads.map(x => ({ round: round.name, x })))
    .find(({ x }) => !x.revoked && x.reachable >= r.k && !(x.keys === x.epochs && x.wrongKeys === 0))
  return failed === undefined
    ? ''
    : `; first failure (${failed.round}, p${failed.x.reader}): ${failed.x.detail ?? failed.x.outcome}`
}

function countedText(counted: Record<string, number>): string {
  const parts = Object.entries(counted).map(([k, v]) => `${k.replace(/^edgeward_|_total$/g, '')} ${v}`)
  return parts.length === 0 ? 'no counter moved' : parts.join(', ')
}

const pct = (x: number) => (Number.isNaN(x) ? '—' : `${(x * 100).toFixed(1)}%`)

/** The summary lines `npm run sim` prints for the churn, adversary and custody scenarios. */
export function summaryLinesOf(r: ChurnResult | AdversaryResult | CustodyResult): string[] {
  if (r.scenario === 'custody') {
    const l = r.latency
    return [
      `${r.readers.length} readers, ${r.custodians.length} custodians (k = ${r.k}), ${r.epochs.length} epochs; ${r.rounds.length} rounds`,
      ...r.rounds.map(
        (x, i) =>
          `round ${i + 1} ${x.name}: ${x.succeeded} of ${x.expected} expected reads got every key (${x.reads.length} reads)`,
      ),
      `read through the custodians: p50 ${l.p50} ms, p99 ${l.p99}, max ${l.max} (${l.count} reads)`,
      `deals: ${r.deals.dealt} keys dealt, ${r.deals.acknowledged} acknowledgements to the owner, ${r.deals.passedOn} passed on between custodians; held at the end ${r.deals.held.join(' / ')}`,
    ]
  }
  if (r.scenario === 'churn') {
    const f = r.firstReading
    return [
      `${r.readers.length} readers, ${r.published} readings in ${r.durationMs / 1000} s, ${r.events.joins} joins and ${r.events.leaves} leaves (${r.events.skipped} events skipped: the reader was busy joining or leaving)`,
      `delivery ${pct(r.delivery.ratio)} (${r.delivery.delivered} of ${r.delivery.eligible}, ${r.delivery.live} live from gossip)`,
      `time to first decrypted reading: p50 ${f.all.p50} ms, p90 ${f.all.p90}, p99 ${f.all.p99}, max ${f.all.max} (newcomers p50 ${f.newcomer.p50}, returning p50 ${f.returning.p50})`,
    ]
  }
  return r.attacks.map(
    a =>
      `${a.name}: ${a.attempted} attempted, ${a.refused} refused, ${a.violations.length} violations (${countedText(a.counted)})`,
  )
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`
const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '—' : `${n.toFixed(1)} ms`)

function table(header: string[], rows: (string | number)[][]): string {
  const th = header.map(h => `<th>${escapeXml(h)}</th>`).join('')
  const trs = rows.map(r => `<tr>${r.map(c => `<td>${escapeXml(String(c))}</td>`).join('')}</tr>`).join('\n')
  return `<table><thead><tr>${th}</tr></thead><tbody>${trs}</tbody></table>`
}

function describeTopology(p: RunParams): string {
  const t = p.topology
  return t.kind === 'random'
    ? `random graph, degree ${t.degree}`
    : `${t.sites} sites, degree ${t.degree} inside a site, ${t.bridges} links between each pair of sites`
}

function describeLinks(p: RunParams): string {
  const l = p.link
  const inter = l.interSiteLatencyMs !== undefined && l.interSiteLatencyMs !== l.latencyMs
  const loss = l.lossRate ?? 0
  const interLoss = l.interSiteLossRate ?? loss
  const losses =
    loss === 0 && interLoss === 0
      ? ''
      : `; loss ${loss * 100}%${interLoss !== loss ? ` (${interLoss * 100}% between sites)` : ''} of buffers, retransmitted`
  return `${l.latencyMs} ms${inter ? ` (${l.interSiteLatencyMs} ms between sites)` : ''}${l.jitterMs ? ` ± ${l.jitterMs} ms` : ''} one way${losses}`
}

function hops(xs: (number | undefined)[]): string {
  const h = meanMax(xs)
  return `${h.mean} / ${h.max}`
}

/** A chart of fractions (of peers, of joins) from 0 to 1, whose curves rise: the legend goes bottom right. */
function fractionChart(c: Omit<LineChart, 'yMax' | 'legend'>): string {
  return lineChart({ ...c, yMax: 1, legend: 'bottom-right' })
}

function revokeSection(r: RevokeResult): string {
  return r.rounds
    .map((round, i) => {
      const stats = (s: typeof round.revocation) => [s.p50, s.p90, s.p99, s.max].map(v => ms(v))
      const chart = fractionChart({
        title: `Revocation propagation${r.rounds.length > 1 ? `, round ${i + 1}` : ''}: fraction of peers (CDF)`,
        xLabel: 'ms after the revoke call (baseline: after publishing)',
        yLabel: 'fraction of peers',
        series: [
          { name: 'revocation applied', color: '#c0392b', points: round.revocationCdf, step: true },
          { name: `plain gossip, ${round.messageBytes} B`, color: '#2c7fb8', points: round.baselineCdf, step: true },
        ],
        markers:
          round.keysDroppedMs === undefined
            ? []
            : [{ x: round.keysDroppedMs, label: 'subject dropped its keys', color: '#27ae60' }],
      })
      return `<h3>Round ${i + 1}: subject p${round.subject}</h3>
${table(
  ['', 'p50', 'p90', 'p99', 'max', 'peers', 'missing'],
  [
    ['revocation applied', ...stats(round.revocation), round.revocation.count, round.revocation.missing],
    [
      `plain gossip baseline (${round.messageBytes} B)`,
      ...stats(round.baselineSummary),
      round.baselineSummary.count,
      round.baselineSummary.missing,
    ],
  ],
)}
<p>Steps (ms): ${escapeXml(
        Object.entries(round.stepsMs)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      )}.</p>
<p>Subject's cached keys dropped after ${ms(round.keysDroppedMs)}; its first refused read ended after
${ms(round.firstRefusalMs)}. Reads by the subject during the run: ${round.reads.length}
(${round.reads.filter(a => a.afterSeen).length} after it saw the revocation, ${round.readsAfterSeenNotRefused} of those not refused).
Key releases to the subject after the revocation in the key holder's audit log: ${round.releasesAfterRevocation}.
Connections when revoking: the owner ${round.ownerConnections}, mean ${round.meanConnections.toFixed(1)}; gossip mesh peers
(mean): policy topic ${round.meanMesh.policy.toFixed(1)}, baseline topic ${round.meanMesh.baseline.toFixed(1)}. Gossip hops from the
owner (mean / max): revocation ${hops(round.revocationHops)}, baseline ${hops(round.baselineHops)}.
One peer applies the revocation's change envelope in ${ms(round.validationMs)} (measured alone); in this one process the peers
pay that one after another, which on separate devices they would not.</p>
${chart}`
    })
    .join('\n')
}

function partitionSection(r: PartitionHealResult): string {
  const chart = fractionChart({
    title: 'Convergence after the heal: fraction of peers at the final policy heads',
    xLabel: 'ms after the heal call',
    yLabel: 'fraction of peers',
    series: [{ name: 'peers converged', color: '#8e44ad', points: r.timeline, step: true }],
    markers: [{ x: r.healMs, label: 'links redialled', color: '#7f8c8d' }],
  })
  const side1 = r.sides.filter(s => s === 1).length
  return `${table(
    ['', 'value'],
    [
      ['sides', `${r.sides.length - side1} peers (owner's side) / ${side1} peers`],
      ["peers cut off from their side's writer while partitioned", r.isolatedWhilePartitioned],
      ['admin (delegation to the other side)', r.admin === undefined ? 'none' : `p${r.admin}`],
      ['changes written while partitioned', `${r.written[0]} (owner's side) + ${r.written[1]} (other side)`],
      ['heal call (redialling the cut links)', ms(r.healMs)],
      ['all peers identical heads after', ms(r.convergedMs)],
      [
        'per peer p50 / p90 / p99 / max',
        [r.summary.p50, r.summary.p90, r.summary.p99, r.summary.max].map(ms).join(' / '),
      ],
      ['access grid', `${r.gridQuestions} questions; ${r.disagreeingPeers} peers disagree`],
    ],
  )}
${chart}`
}

function median(xs: (number | undefined)[]): number | undefined {
  const got = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b)
  return got.length === 0 ? undefined : got[Math.floor((got.length - 1) / 2)]
}

function churnSection(r: ChurnResult): string {
  const ratio = fractionChart({
    title: 'Delivery to the readers online, by when a reading was published',
    xLabel: 'ms after the churn started',
    yLabel: 'fraction',
    series: [
      {
        name: 'delivery ratio',
        color: '#2c7fb8',
        points: r.timeline.flatMap(b => (b.ratio === undefined ? [] : [[b.tMs, b.ratio] as [number, number]])),
      },
      { name: 'readers online', color: '#7f8c8d', points: r.timeline.map(b => [b.tMs, b.online] as [number, number]) },
    ],
  })
  const first = fractionChart({
    title: 'Time to first decrypted reading after joining (CDF)',
    xLabel: "ms from starting the reader's node",
    yLabel: 'fraction of joins',
    series: [
      { name: 'newcomers', color: '#c0392b', points: r.firstReadingCdf.newcomer, step: true },
      { name: 'returning', color: '#27ae60', points: r.firstReadingCdf.returning, step: true },
    ],
  })
  const row = (name: string, s: Summary) => [name, ...[s.p50, s.p90, s.p99, s.max].map(v => ms(v)), s.count, s.missing]
  const phases = (kind: 'newcomer' | 'returning') => {
    const js = r.joins.filter(j => j.kind === kind)
    return [
      kind === 'newcomer' ? 'newcomers' : 'returning',
      ...[
        js.map(j => j.startedMs),
        js.map(j => j.policyMs),
        js.map(j => j.backfillMs),
        js.map(j => j.firstReadingMs),
      ].map(xs => ms(median(xs))),
    ]
  }
  return `${table(
    ['', 'value'],
    [
      ['readers', `${r.readers.length} (half online at the start)`],
      ['churn', `${r.churnRate} joins or leaves per second for ${r.durationMs / 1000} s`],
      ['events', `${r.events.joins} joins, ${r.events.leaves} leaves, ${r.events.skipped} skipped (reader busy)`],
      ['readings published', `${r.published}, one every ${r.publishEveryMs} ms`],
      [
        'delivery to readers online',
        `${pct(r.delivery.ratio)}: ${r.delivery.delivered} of ${r.delivery.eligible} reader × reading pairs, ${r.delivery.live} live from gossip, the rest by a read with backfill (readings published less than ${r.graceMs} ms before a reader left are not counted)`,
      ],
      ['live readings that failed to decrypt', r.decryptFailures],
    ],
  )}
${ratio}
<h3>Time to first decrypted reading</h3>
${table(['joins', 'p50', 'p90', 'p99', 'max', 'joins', 'failed'], [row('all', r.firstReading.all), row('newcomers', r.firstReading.newcomer), row('returning', r.firstReading.returning)])}
<p>Medians of each phase, ms from starting the node (cumulative):</p>
${table(['', 'node running and linked', 'policy with its grant', 'backfill done', 'first reading decrypted'], [phases('newcomer'), phases('returning')])}
${first}`
}

function adversarySection(r: AdversaryResult): string {
  const chart = barChart({
    title: 'Attacks: attempted and refused',
    xLabel: 'messages or requests (log scale)',
    log: true,
    categories: r.attacks.map(a => a.name),
    series: [
      { name: 'attempted', color: '#c0392b', values: r.attacks.map(a => a.attempted) },
      { name: 'refused', color: '#27ae60', values: r.attacks.map(a => a.refused) },
      { name: 'invariant violations', color: '#2c3e50', values: r.attacks.map(a => a.violations.length) },
    ],
  })
  const roles = r.roles
  return `<p>Adversaries: forger p${roles.forger} (granted, then revoked), admin p${roles.admin} (the owner delegated to it),
spammer p${roles.spammer}, rogue key holder p${roles.rogue} (owner of its own space, witnessed by ${r.witnesses.map(w => `p${w}`).join(', ')});
honest reader p${roles.honestReader}.</p>
${table(
  ['attack', 'by', 'attempted', 'refused', 'why refused', 'counted by honest peers', 'peers reached', 'violations'],
  r.attacks.map(a => [
    `${a.name}: ${a.what}`,
    a.by.map(i => `p${i}`).join(', '),
    a.attempted,
    a.refused,
    a.reasons.join('; '),
    countedText(a.counted),
    a.recipients,
    a.violations.length === 0 ? 0 : a.violations.join('; '),
  ]),
)}
${chart}
<p>Key releases in the key holder's audit log: ${r.releasesChecked}, of which should not have happened: ${r.releaseViolations.length}.
After the spam a new reading reached ${r.afterSpam.reached} of ${r.afterSpam.expected} honest peers.
Steps (ms): ${escapeXml(
    Object.entries(r.stepsMs)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
  )}.</p>`
}

function custodySection(r: CustodyResult): string {
  const rate = barChart({
    title: 'Reads through the custodians, per round',
    xLabel: 'reads',
    categories: r.rounds.map((x, i) => `${i + 1} ${x.name}`),
    series: [
      {
        name: `expected (granted, ${r.k} custodians reachable)`,
        color: '#7f8c8d',
        values: r.rounds.map(x => x.expected),
      },
      { name: 'got every key', color: '#27ae60', values: r.rounds.map(x => x.succeeded) },
      {
        name: 'revoked reader got a key',
        color: '#c0392b',
        values: r.rounds.map(x => x.reads.filter(y => y.revoked && y.keys > 0).length),
      },
    ],
  })
  const latency = fractionChart({
    title: 'Time to read every epoch through the custodians (CDF)',
    xLabel: 'ms',
    yLabel: 'fraction of reads',
    series: [{ name: 'reads that got every key', color: '#2c7fb8', points: r.latencyCdf, step: true }],
  })
  const l = r.latency
  const n = r.custodians.length
  return `<p>Owner p${r.owner}; custodians ${r.custodians.map(c => `p${c}`).join(', ')} (k = ${r.k} of ${n}); readers
${r.readers.map(c => `p${c}`).join(', ')}; p${r.revoked} is revoked in the round "revoked"; p${r.misbehaving} ignores the policy from
the round "misbehaving" on. Epochs published: ${r.epochs.join(', ')}.</p>
${table(
  ['round', 'what', 'down', 'cut off', 'reads', 'expected', 'got every key', 'success', 'revoked reader'],
  r.rounds.map((x, i) => {
    const rv = x.reads.filter(y => y.revoked)
    return [
      `${i + 1} ${x.name}`,
      x.what,
      x.down.map(c => `p${c}`).join(' ') || '—',
      x.cutOff.map(c => `p${c}`).join(' ') || '—',
      x.reads.length,
      x.expected,
      x.succeeded,
      x.expected === 0 ? '—' : pct(x.succeeded / x.expected),
      rv.length === 0
        ? '—'
        : `${rv.length} reads, ${rv.filter(y => y.keys > 0).length} with a key (revocation at ${Math.min(...rv.map(y => y.revocationReached ?? 0))} of ${n - 1} policy-following custodians)`,
    ]
  }),
)}
${rate}
${table(
  ['', 'value'],
  [
    [
      'liveness: reads with k custodians reachable that got every key',
      `${r.liveness.succeeded} of ${r.liveness.expected} (${pct(r.liveness.ratio)})`,
    ],
    ['reads with fewer than k reachable that got a key', `${r.belowThreshold.withKey} of ${r.belowThreshold.reads}`],
    [
      `revoked reader's reads once the revocation was at ${n - r.k + 1} policy-following custodians that got a key`,
      `${r.safety.violations} of ${r.safety.reads} (it read every epoch ${r.safety.readsBefore} times before the revocation)`,
    ],
    ['shares the misbehaving custodian released to the revoked reader', r.misbehavingReleases],
    ['keys combined that did not decrypt their epoch', r.wrongKeys],
    [
      "releases used that are missing from the custodians' audit logs",
      `${r.audit.missing} of ${r.audit.used} (${r.audit.reads} reads)`,
    ],
    ['read through the custodians p50 / p99 / max', [l.p50, l.p99, l.max].map(ms).join(' / ')],
    [
      'deals',
      `${r.deals.dealt} keys dealt; ${r.deals.acknowledged} acknowledgements to the owner (of ${r.deals.dealt * n}); ${r.deals.passedOn} passed on between custodians; held by each custodian at the end: ${r.deals.held.join(' / ')}`,
    ],
  ],
)}
${latency}
<p>Steps (ms): ${escapeXml(
    Object.entries(r.stepsMs)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
  )}.</p>`
}

function resultSection(res: ScenarioResult): string {
  if (res.scenario === 'revoke') return revokeSection(res)
  if (res.scenario === 'custody') return custodySection(res)
  if (res.scenario === 'partition-heal') return partitionSection(res)
  if (res.scenario === 'churn') return churnSection(res)
  return adversarySection(res)
}

/** A run's self-contained report.html, with its checks and SVG charts. */
export function renderHtml(run: RunRecord): string {
  const p = run.params
  const res = run.result
  const memoryChart = lineChart({
    title: 'Process memory as peers were added',
    xLabel: 'peers running',
    yLabel: 'MiB',
    series: [
      {
        name: 'RSS',
        color: '#d35400',
        points: run.setup.memory.map(s => [s.peers, s.rssBytes / 2 ** 20] as [number, number]),
      },
      {
        name: 'JS heap used',
        color: '#16a085',
        points: run.setup.memory.map(s => [s.peers, s.heapUsedBytes / 2 ** 20] as [number, number]),
      },
    ],
    height: 280,
  })
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>edgeward simulation: ${escapeXml(p.scenario)}, ${p.peers} peers</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 860px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
th { background: #f4f4f4; } .ok { color: #1e8449; } .fail { color: #c0392b; font-weight: 600; } code { background: #f4f4f4; padding: 1px 4px; }
svg { max-width: 100%; height: auto; display: block; margin: 1em 0; }
</style></head><body>
<h1>edgeward simulation: ${escapeXml(p.scenario)}</h1>
<p><code>${escapeXml(run.command)}</code><br>${escapeXml(run.generated)} on ${escapeXml(String(run.machine.cpu))},
${run.machine.cores} cores, ${run.machine.memoryGiB} GiB, Node ${escapeXml(String(run.machine.node))}; ${(run.totalMs / 1000).toFixed(1)} s in all.</p>
<h2>Checks</h2>
<ul>${run.checks.map(c => `<li class="${c.ok ? 'ok' : 'fail'}">${c.ok ? '✓' : '✗'} ${escapeXml(c.name)}: ${escapeXml(c.detail)}</li>`).join('')}</ul>
<h2>Network</h2>
${table(
  ['', 'value'],
  [
    ['peers', p.peers],
    ['topology', describeTopology(p)],
    ['links dialled at the start', `${run.setup.links} (${run.setup.failedDials} failed)`],
    [
      'other dials',
      p.strictTopology
        ? `refused, except to and from the owner's gateway${p.scenario === 'custody' ? ' and the custodians' : ''}`
        : 'allowed (the DHT dials whoever it finds)',
    ],
    [
      'connections per peer at the end (mean / min / max)',
      `${run.setup.connections.mean.toFixed(1)} / ${run.setup.connections.min} / ${run.setup.connections.max}`,
    ],
    ['link latency', describeLinks(p)],
    ['stores', p.store === 'disk' ? 'LevelDB on disk (temp dirs)' : 'in memory'],
    ['policy catch-up interval', p.syncIntervalMs === undefined ? 'node default' : `${p.syncIntervalMs} ms`],
    ['seed', p.seed],
    ['network set up in', `${(run.setup.networkMs / 1000).toFixed(1)} s`],
    [
      'memory per peer (RSS / heap)',
      `${mb(run.setup.memoryPerPeer.rssBytes)} / ${mb(run.setup.memoryPerPeer.heapUsedBytes)}`,
    ],
  ],
)}
<h2>Results</h2>
${resultSection(res)}
<h2>Memory</h2>
${memoryChart}
${table(
  ['phase', 'peers', 'RSS', 'heap used', 'external'],
  run.setup.memory.map(s => [s.phase, s.peers, mb(s.rssBytes), mb(s.heapUsedBytes), mb(s.externalBytes)]),
)}
<h2>Approximations</h2>
<ul>${APPROXIMATIONS.map(a => `<li>${escapeXml(a)}</li>`).join('')}</ul>
</body></html>
`
}
