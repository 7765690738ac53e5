/**
 * Custody: keys while the owner is offline. Peer 0's gateway owns a space and names peers 1..n
 * its custodians with a threshold k; the next R peers are readers, each granted the stream.
 * The owner publishes readings over several short epochs, and every key is dealt k-of-n and
 * acknowledged by every custodian. Then, in rounds, with the readers reading through the
 * custodians after each step:
 * 1. the owner crashes, and stays down;
 * 2. per cycle (`cycles`): n − k custodians crash; one more (k − 1 left); they all come back;
 *    a partition cuts n − k custodians off from everyone else; it heals;
 * 3. one custodian starts ignoring the policy: it releases its share to whoever asks (its
 *    gate's decision is replaced, as a modified node would);
 * 4. the owner comes back briefly: the network is split so that only max(n − k + 1, k)
 *    custodians that follow the policy are with it, the misbehaving custodian and one reader R'
 *    on the other side; the owner revokes R', publishes into the epoch the revocation opened,
 *    waits until k custodians acknowledged its deals, and goes down again;
 * 5. the partition heals and the custodians pass the new deals on to each other.
 *
 * A read here is what a reader does when no key holder answers: it asks every custodian at
 * once (node.custody.reader.keys, the data service's fallback) for the keys of every epoch
 * published, combines k shares per epoch, and the scenario decrypts one record of each epoch,
 * kept from when the owner published it, with the key it got.
 *
 * Checked:
 * - liveness: every read by a granted reader with at least k custodians reachable (running,
 *   and on its side of any partition) got every epoch's key;
 * - the threshold: no read with fewer than k custodians reachable got a key;
 * - safety: R' got no key once the revocation had reached n − k + 1 of the custodians that
 *   follow the policy (the misbehaving one releases whatever it knows, so it does not count);
 * - no key combined that fails to decrypt its epoch's record;
 * - every read that got keys is in the audit logs of k custodians (the same signed request,
 *   released by each of them): no share was used that its custodian did not log.
 * Measured: the time of each read through the custodians, the success rate per round, and
 * the deals made, acknowledged to the owner, and passed on between custodians.
 *
 * Needs stores on disk: a crashed owner or custodian must come back with its keys, deals and
 * audit log (with stores in memory it would come back empty).
 */
import type { Connection } from '@libp2p/interface'
import { AccessRefusedError, UnreachableError } from '../../node/errors.ts'
import type { EdgewardNode } from '../../node/node.ts'
import type { CustodyStatus } from '../../node/services/custody/index.ts'
import type { Admitted, Refused } from '../../node/services/request-gate.ts'
import type { OpenedKeyRequest } from '../../protocols/access/messages.ts'
import { requestHash } from '../../protocols/audit/entries.ts'
import { decryptReadings, type EncryptedReading } from '../../protocols/data/reading.ts'
import { createGrant } from '../../protocols/policy/records.ts'
import { ScenarioError } from '../errors.ts'
import type { SimNetwork } from '../network.ts'
import { mulberry32, type Random, sample, shuffled } from '../random.ts'
import { cdf, type Summary, summarize } from '../stats.ts'
import { sleep, stepTimer, unlessDeadline, waitUntil } from '../wait.ts'
import { type Progress, setUpSpace } from './space.ts'

/** The stream the owner publishes in this scenario (its own short epochs, raw form only). */
export const CUSTODY_STREAM = 'flow'
const RAW = 'raw'
const HOUR = 3_600_000

/** What the custody scenario is run with. */
export interface CustodyOptions {
  /** custodians, peers 1..n (default 5) */
  custodians?: number
  /** shares needed to make a key (default 3) */
  threshold?: number
  /** readers, the peers after the custodians (default every other peer) */
  readers?: number
  /** epochs the owner publishes before it goes down (default 4) */
  epochs?: number
  /** length of an epoch, ms (default 1000, the shortest a stream may have) */
  epochMs?: number
  /** cycles of custodian crashes and partitions before the revocation (default 1) */
  cycles?: number
  /** reads by each reader after each step (default 2) */
  readsPerRound?: number
  /** how long to wait for any one step (default 120 s) */
  deadlineMs?: number
  onProgress?: Progress
}

/** The peers every peer may dial in this scenario: the owner's gateway and the custodians (readers ask them directly). */
export function custodyPublicPeers(custodians: number): number[] {
  return Array.from({ length: custodians + 1 }, (_, i) => i)
}

/** One read through the custodians. */
export interface CustodyRead {
  reader: number
  /** had the owner revoked this reader when it read? */
  revoked: boolean
  /** custodians running and on the reader's side of any partition */
  reachable: number
  /** custodians that follow the policy and hold the revocation (for the revoked reader) */
  revocationReached?: number
  outcome: 'read' | 'refused' | 'unreachable' | 'error'
  /** epochs asked for, keys combined, keys that did not decrypt their epoch's record */
  epochs: number
  keys: number
  wrongKeys: number
  ms: number
  /** wall-clock bounds, to find the read in the custodians' audit logs */
  startedAt: number
  endedAt: number
  /** custodians whose audit log holds this read's request as a release (filled in at the end) */
  logged?: number
  detail?: string
}

/** One step of the run and the reads after it. */
export interface CustodyRound {
  name: string
  what: string
  /** custodians down, and cut off from the readers' side, when reading */
  down: number[]
  cutOff: number[]
  reads: CustodyRead[]
  /** reads by granted readers with at least k custodians reachable, and those that got every key */
  expected: number
  succeeded: number
}

export interface CustodyResult {
  scenario: 'custody'
  space: string
  owner: number
  custodians: number[]
  k: number
  readers: number[]
  /** the reader the owner revokes */
  revoked: number
  /** the custodian that ignores the policy */
  misbehaving: number
  /** epochs published (in the order published) */
  epochs: number[]
  setupMs: number
  rounds: CustodyRound[]
  liveness: { expected: number; succeeded: number; ratio: number }
  /** reads with fewer than k custodians reachable, and those that got a key (must be 0) */
  belowThreshold: { reads: number; withKey: number }
  /** the revoked reader's reads once the revocation reached n − k + 1 policy-following custodians, and those that got a key (must be 0) */
  safety: { reads: number; violations: number; readsBefore: number }
  /** keys combined that did not decrypt their epoch's record (must be 0) */
  wrongKeys: number
  /** reads that got keys, and the releases they used (k each) missing from the custodians' audit logs (must be 0) */
  audit: { reads: number; used: number; missing: number }
  /** shares the misbehaving custodian released to the revoked reader after the revocation */
  misbehavingReleases: number
  /** ms of the reads that got every key */
  latency: Summary
  latencyCdf: [number, number][]
  /** keys the owner dealt, acknowledgements it got (of dealt × n), deals the custodians passed on, deals each custodian holds at the end */
  deals: { dealt: number; acknowledged: number; passedOn: number; held: number[] }
  stepsMs: Record<string, number>
}

type Admit = (req: OpenedKeyRequest, conn: Connection) => Promise<Admitted | Refused>

/**
 * Make the custodian on `node` release to whoever asks: its gate's decision is replaced by
 * one that admits what the real one refuses (under the request's grant, or any grant of the
 * subject), as a modified node would. The refusal is still counted and logged first.
 */
export function ignorePolicy(node: EdgewardNode): void {
  const gate = (node.custody as unknown as { custodian: { gate: { admit: Admit } } }).custodian.gate
  const admit = gate.admit.bind(gate)
  gate.admit = async (req, conn) => {
    const real = await admit(req, conn)
    if (real.ok) return real
    const r = req.request
    const state = node.policy.document(r.body.space).state
    const grant =
      (r.body.grant === undefined ? undefined : state.grants.get(r.body.grant)) ?? state.grantsOf(r.issuer)[0]
    if (grant === undefined) return real
    const now = node.now()
    return {
      ok: true,
      request: req,
      permit: { allowed: true, grant, until: now + HOUR },
      state,
      counts: new Map(),
      lastRelease: false,
      lease: now + 60_000,
      now,
      reqHash: requestHash(r.bytes),
      refuse: async (code, reason) => ({ ok: false, code, reason }),
    }
  }
}

/** Run the custody scenario on a started network whose stores are on disk; see the module comment. */
export async function runCustody(net: SimNetwork, opts: CustodyOptions = {}): Promise<CustodyResult> {
  const n = opts.custodians ?? 5
  const k = opts.threshold ?? 3
  const deadlineMs = opts.deadlineMs ?? 120_000
  const epochMs = opts.epochMs ?? 1000
  const cycles = opts.cycles ?? 1
  const readsPerRound = opts.readsPerRound ?? 2
  const available = net.peers.length - 1 - n
  const readerCount = Math.min(opts.readers ?? available, available)
  if (k < 2 || k > n || n > 16) throw new ScenarioError('custody needs 2 <= k <= n <= 16')
  if (readerCount < 2)
    throw new ScenarioError(`custody needs ${n + 3} peers or more: an owner, ${n} custodians, 2 readers`)
  const random: Random = mulberry32(net.seed ^ 0xc057)
  const ownerIndex = 0
  const custodians = Array.from({ length: n }, (_, i) => i + 1)
  const readers = Array.from({ length: readerCount }, (_, i) => n + 1 + i)
  const [revoked] = sample(random, readers, 1)
  const [misbehaving] = sample(random, custodians, 1)
  const honest = custodians.filter(c => c !== misbehaving)
  const { stepsMs, step } = stepTimer(name => opts.onProgress?.(name, 1, 1))

  // ---- setup: the space, the custodian set, the grants, epochs dealt and acknowledged ----
  const t0 = performance.now()
  const space = await setUpSpace(net, { owner: ownerIndex, readings: 1, deadlineMs, onProgress: opts.onProgress })
  let owner = net.node(ownerIndex)
  const named = await Promise.all(custodians.map(c => owner.custody.describe(net.peers[c].peerId)))
  const { record: set } = await owner.policy.setCustodians(space, named, k)
  const now = Date.now()
  const grants = new Map<number, string>()
  const records = readers.map(r => {
    const g = createGrant(
      owner.identity.principal,
      {
        space,
        sub: net.peers[r].principal,
        streams: [CUSTODY_STREAM],
        forms: [RAW],
        nbf: now - 60_000,
        exp: now + HOUR,
      },
      now,
    )
    grants.set(r, g.id)
    return { kind: 'grant' as const, record: g }
  })
  for (let i = 0; i < records.length; i += 16) {
    const outcome = await owner.policy.write(space, records.slice(i, i + 16))
    if (outcome.status !== 'applied') throw new ScenarioError(`the grants were not applied: ${outcome.status}`)
  }
  await owner.data.createStream(space, CUSTODY_STREAM, { epochMs, forms: [] })
  await until(
    net,
    [...custodians, ...readers],
    'the custodian set and the grants everywhere',
    node => {
      const state = node.policy.document(space).state
      return state.custodianSet?.id === set.id && [...grants.values()].every(g => state.grants.has(g))
    },
    deadlineMs,
  )
  step('space, custodians and grants')
  const samples = new Map<number, EncryptedReading>()
  const epochs: number[] = []
  const keepSamples = async () => {
    for (const r of await owner.data.storedReadings(space, CUSTODY_STREAM)) {
      if (samples.has(r.epoch)) continue
      samples.set(r.epoch, r)
      epochs.push(r.epoch)
    }
  }
  /** Keep a sample of each epoch published so far, then wait until the owner's deals of them are `settled`. */
  const untilDealt = async (what: string, settled: (status: CustodyStatus) => boolean) => {
    await keepSamples()
    await waitUntil(what, async () => settled(await owner.custody.status()), deadlineMs, 50)
  }
  for (let e = 0; e < (opts.epochs ?? 4); e++) {
    if (e > 0) await sleep(epochMs + 10)
    const ts = Date.now()
    await owner.data.publish(space, CUSTODY_STREAM, [
      { ts, value: e },
      { ts: ts + 1, value: e + 0.5 },
    ])
    opts.onProgress?.('epochs published', e + 1, opts.epochs ?? 4)
  }
  await untilDealt('every custodian to acknowledge every deal', s => s.unacknowledged === 0)
  step('epochs dealt and acknowledged')
  const setupMs = performance.now() - t0

  // ---- counters that outlive a crash: read before each node stops ----
  const deals = { dealt: 0, acknowledged: 0, passedOn: 0 }
  const crashOwner = async () => {
    deals.dealt += owner.metrics.total('edgeward_custody_deals_total')
    deals.acknowledged += owner.metrics.total('edgeward_custody_deals_acknowledged_total')
    await net.crash(ownerIndex)
  }
  const down = new Set<number>()
  let misbehavingOn = false
  const crashCustodian = async (c: number) => {
    deals.passedOn += net.node(c).metrics.total('edgeward_custody_deals_passed_on_total')
    down.add(c)
    await net.crash(c)
  }
  const restartCustodian = async (c: number) => {
    const node = await net.restart(c)
    down.delete(c)
    if (c === misbehaving && misbehavingOn) ignorePolicy(node)
  }
  let cut = new Set<number>()
  const partition = (side1: number[]) => {
    cut = new Set(side1)
    net.partition(i => (cut.has(i) ? 1 : 0))
  }
  const heal = async () => {
    cut = new Set()
    await net.heal()
  }

  // the revocation, once written; which policy-following custodians have been seen holding it
  let revocation: { id: string; at: number } | undefined
  const knowing = new Set<number>()
  const revocationReached = () => {
    if (revocation === undefined) return 0
    for (const c of honest) {
      const node = net.peers[c].node
      if (node?.policy.document(space).state.revocations.has(revocation.id)) knowing.add(c)
    }
    return knowing.size
  }

  const readOnce = async (r: number): Promise<CustodyRead> => {
    const reachable = custodians.filter(c => net.peers[c].node !== undefined && !net.isCut(r, c)).length
    const isRevoked = r === revoked && revocation !== undefined
    const read: CustodyRead = {
      reader: r,
      revoked: isRevoked,
      reachable,
      ...(isRevoked ? { revocationReached: revocationReached() } : {}),
      outcome: 'read',
      epochs: epochs.length,
      keys: 0,
      wrongKeys: 0,
      ms: 0,
      startedAt: Date.now(),
      endedAt: 0,
    }
    const t = performance.now()
    try {
      const got = await net.node(r).custody.reader.keys(space, CUSTODY_STREAM, RAW, [...epochs], grants.get(r))
      read.ms = performance.now() - t
      for (const e of epochs) {
        const key = got.keys.get(e)
        if (key === undefined) continue
        read.keys++
        try {
          decryptReadings(key, samples.get(e)!)
        } catch (err) {
          read.wrongKeys++
          read.detail = `epoch ${e}: ${(err as Error).message}`
        }
      }
      if (read.keys < epochs.length) read.detail ??= `${epochs.length - read.keys} epochs without a key`
    } catch (err) {
      read.ms = performance.now() - t
      const name = (err as Error).name
      read.outcome =
        name === AccessRefusedError.name ? 'refused' : name === UnreachableError.name ? 'unreachable' : 'error'
      read.detail = (err as Error).message
    }
    read.endedAt = Date.now()
    return read
  }

  const rounds: CustodyRound[] = []
  const readRound = async (name: string, what: string) => {
    const reads: CustodyRead[] = []
    for (let i = 0; i < readsPerRound; i++) for (const r of readers) reads.push(await readOnce(r))
    const expectedReads = reads.filter(x => !x.revoked && x.reachable >= k)
    rounds.push({
      name,
      what,
      down: [...down].sort((a, b) => a - b),
      cutOff: custodians.filter(c => cut.has(c)),
      reads,
      expected: expectedReads.length,
      succeeded: expectedReads.filter(succeeded).length,
    })
    step(name)
    opts.onProgress?.(`round ${rounds.length}: ${name}`, 1, 1)
  }

  // ---- the rounds ----
  await crashOwner()
  await readRound('owner down', 'the owner crashed and stays down; every custodian up')
  for (let cycle = 1; cycle <= cycles; cycle++) {
    const c = cycles > 1 ? ` (cycle ${cycle})` : ''
    const order = shuffled(random, custodians)
    for (const x of order.slice(0, n - k)) await crashCustodian(x)
    await readRound(`custodians down${c}`, `${n - k} custodians crashed: k = ${k} left`)
    await crashCustodian(order[n - k])
    await readRound(`below threshold${c}`, `one more crashed: ${k - 1} left, fewer than k`)
    await Promise.all(order.slice(0, n - k + 1).map(restartCustodian))
    await readRound(`custodians back${c}`, 'every crashed custodian restarted from its disk')
    partition(sample(random, custodians, n - k))
    await readRound(`partition${c}`, `${n - k} custodians cut off from everyone else`)
    await heal()
    await readRound(`healed${c}`, 'the partition healed')
  }
  misbehavingOn = true
  ignorePolicy(net.node(misbehaving))
  await readRound('misbehaving', `custodian p${misbehaving} releases to whoever asks`)

  // the owner back briefly: only policy-following custodians with it, the misbehaving one with the reader it revokes
  owner = await net.restart(ownerIndex)
  if (!owner.policy.document(space).hasGenesis) {
    throw new ScenarioError('the owner came back without its space: the custody scenario needs stores on disk')
  }
  step('owner back')
  const withOwner = shuffled(random, honest).slice(0, Math.max(n - k + 1, k))
  partition([revoked, ...custodians.filter(c => !withOwner.includes(c))])
  const { record: rv } = await owner.policy.revoke(space, { grant: grants.get(revoked)! })
  revocation = { id: rv.id, at: Date.now() }
  await until(
    net,
    withOwner,
    'the revocation at the custodians with the owner',
    node => node.policy.document(space).state.revocations.has(rv.id),
    deadlineMs,
  )
  step('revocation at the custodians with the owner')
  await owner.data.publish(space, CUSTODY_STREAM, [{ ts: Date.now(), value: 99 }])
  await untilDealt('k custodians to acknowledge every new deal', s => s.belowThreshold === 0)
  step('next epoch dealt to k custodians')
  await crashOwner()
  await readRound(
    'revoked',
    `the owner came back, revoked p${revoked} with ${withOwner.length} custodians, dealt the next epoch and went down again; p${revoked} cut off with the other custodians`,
  )
  await heal()
  const dealt = deals.dealt
  await waitUntil(
    'every custodian to hold every deal',
    async () => {
      const held = await Promise.all(custodians.map(async c => (await net.node(c).custody.status()).held))
      return held.every(h => h >= dealt)
    },
    deadlineMs,
    100,
  ).catch(unlessDeadline)
  await readRound('after', 'the partition healed and the custodians passed the new deals on; the owner still down')

  // ---- what the custodians' audit logs hold ----
  const releases = await releasesLogged(net, custodians, space)
  let auditReads = 0
  let missing = 0
  for (const round of rounds) {
    for (const read of round.reads) {
      if (read.keys === 0) continue
      auditReads++
      read.logged = loggedBy(releases, net.peers[read.reader].principal, read)
      missing += Math.max(0, k - read.logged)
    }
  }
  const revokedDid = net.peers[revoked].principal
  const misbehavingReleases = releases.filter(
    x => x.custodian === misbehaving && x.subject === revokedDid && x.ts >= revocation.at,
  ).length
  for (const c of custodians) deals.passedOn += net.node(c).metrics.total('edgeward_custody_deals_passed_on_total')
  const held = await Promise.all(custodians.map(async c => (await net.node(c).custody.status()).held))
  step('audit logs checked')

  const all = rounds.flatMap(r => r.reads)
  const granted = all.filter(x => !x.revoked)
  const expected = granted.filter(x => x.reachable >= k)
  const good = expected.filter(succeeded)
  const below = all.filter(x => x.reachable < k)
  const safe = all.filter(x => x.revoked && (x.revocationReached ?? 0) >= n - k + 1)
  const latencies = all.filter(succeeded).map(x => x.ms)
  return {
    scenario: 'custody',
    space,
    owner: ownerIndex,
    custodians,
    k,
    readers,
    revoked,
    misbehaving,
    epochs,
    setupMs,
    rounds,
    liveness: { expected: expected.length, succeeded: good.length, ratio: good.length / Math.max(1, expected.length) },
    belowThreshold: { reads: below.length, withKey: below.filter(x => x.keys > 0).length },
    safety: {
      reads: safe.length,
      violations: safe.filter(x => x.keys > 0).length,
      readsBefore: all.filter(x => x.reader === revoked && !x.revoked && succeeded(x)).length,
    },
    wrongKeys: all.reduce((a, x) => a + x.wrongKeys, 0),
    audit: { reads: auditReads, used: auditReads * k, missing },
    misbehavingReleases,
    latency: summarize(latencies),
    latencyCdf: cdf(latencies),
    deals: { ...deals, held },
    stepsMs,
  }
}

/** A read that got a key for every epoch, each of which decrypted its record. */
function succeeded(x: CustodyRead): boolean {
  return x.keys === x.epochs && x.wrongKeys === 0
}

interface LoggedRelease {
  custodian: number
  subject: string
  ts: number
  epochs: number[]
  reqHash: string
}

/** Every release of the scenario's stream in the custodians' audit logs. */
async function releasesLogged(net: SimNetwork, custodians: number[], space: string): Promise<LoggedRelease[]> {
  const out: LoggedRelease[] = []
  for (const c of custodians) {
    const audit = net.node(c).audit
    if (audit === undefined) throw new ScenarioError(`custodian p${c} keeps no audit log`)
    for (const { entry } of await audit.streamEntries(space, CUSTODY_STREAM)) {
      if (entry.t !== 'release') continue
      out.push({
        custodian: c,
        subject: entry.subject,
        ts: entry.ts,
        epochs: entry.epochs,
        reqHash: Buffer.from(entry.reqHash).toString('hex'),
      })
    }
  }
  return out
}

/**
 * How many custodians logged a release of this read's request covering every epoch it asked
 * for: its signed request is one per read, so its releases share a request hash, made while it ran.
 */
function loggedBy(releases: LoggedRelease[], subject: string, read: CustodyRead): number {
  const byRequest = new Map<string, Set<number>>()
  for (const x of releases) {
    if (x.subject !== subject || x.ts < read.startedAt || x.ts > read.endedAt || x.epochs.length < read.epochs) continue
    const got = byRequest.get(x.reqHash) ?? new Set()
    got.add(x.custodian)
    byRequest.set(x.reqHash, got)
  }
  return Math.max(0, ...[...byRequest.values()].map(s => s.size))
}

/**
 * Until `holds(node)` on each of `peers` (running); one still lacking it after 2 s is asked to
 * catch up with its peers, once every 2 s (setup and steps only: nothing measured goes through here).
 */
async function until(
  net: SimNetwork,
  peers: number[],
  what: string,
  holds: (node: EdgewardNode) => boolean,
  deadlineMs: number,
): Promise<void> {
  const started = performance.now()
  let nudged = started
  await waitUntil(
    what,
    async () => {
      const behind = peers.filter(i => net.peers[i].node !== undefined && !holds(net.node(i)))
      if (behind.length === 0) return true
      if (performance.now() - nudged > 2000) {
        nudged = performance.now()
        // a catch-up that fails (a peer went away) is tried again on a later poll
        await Promise.all(
          behind.map(i =>
            net
              .node(i)
              .policy.syncAll()
              .catch(() => undefined),
          ),
        )
      }
      return false
    },
    deadlineMs,
    20,
  )
}
