/**
 * Partition and heal. The owner's gateway creates a space that every peer joins; the owner
 * delegates grant/revoke authority to an admin on the other side; the network is split in
 * two (by site with sites, else a seeded random half each, the owner on side 0 and the admin
 * on side 1); both sides write policy changes (grants, and revocations of their own earlier
 * grants) while cut off. Checked before healing: no change crossed the cut. Then the
 * partition heals, and measured from the heal call: when each peer reached the final policy
 * (the same document heads as every other peer), and whether every peer then gives the same
 * answer to every access question of a grid (subjects × streams × forms).
 */
import { UsageError } from '../../node/errors.ts'
import type { SimNetwork } from '../network.ts'
import { mulberry32, randomInt, shuffled } from '../random.ts'
import { cdf, type Summary, summarize } from '../stats.ts'
import { unlessDeadline, waitUntil } from '../wait.ts'
import { catchUp, headsKey, type Progress, STREAM, setUpSpace } from './space.ts'

/** What the partition-heal scenario is run with. */
export interface PartitionHealOptions {
  /** the peer whose gateway owns the space (default 0) */
  owner?: number
  /** policy changes written while partitioned, over both sides (default 10) */
  changes?: number
  /** delegate to an admin on the other side, who writes half the changes (default true) */
  admin?: boolean
  /** how long to wait for each step (default 120 s) */
  deadlineMs?: number
  onProgress?: Progress
}

/** What the partition-heal scenario measured and checked. */
export interface PartitionHealResult {
  scenario: 'partition-heal'
  space: string
  owner: number
  admin: number | undefined
  /** each peer's side while partitioned */
  sides: number[]
  /** changes written on each side while partitioned */
  written: [number, number]
  /** peers that had a change written on the other side before the heal: must be 0 */
  crossedBeforeHeal: number
  /** peers the cut left with no topology link (within their side) to their side's writer */
  isolatedWhilePartitioned: number
  /** ms the heal call took (removing the gate, redialling the links across it) */
  healMs: number
  /** ms from the heal call until every peer had the same heads, or undefined at the deadline */
  convergedMs: number | undefined
  /** per peer: ms from the heal call until it reached the final heads */
  reached: (number | undefined)[]
  summary: Summary
  /** fraction of peers at the final heads over time since the heal call */
  timeline: [number, number][]
  /** access questions asked of every peer, and peers whose answers differ from the owner's */
  gridQuestions: number
  disagreeingPeers: number
}

/** Run the partition-heal scenario on a started network: write on both sides while cut off, heal, measure convergence. */
export async function runPartitionHeal(net: SimNetwork, opts: PartitionHealOptions = {}): Promise<PartitionHealResult> {
  const ownerIndex = opts.owner ?? 0
  const deadlineMs = opts.deadlineMs ?? 120_000
  const total = opts.changes ?? 10
  const random = mulberry32(net.seed ^ 0xca7)
  const space = await setUpSpace(net, { owner: ownerIndex, readings: 3, deadlineMs, onProgress: opts.onProgress })
  net.sampleMemory('space joined')
  const owner = net.node(ownerIndex)
  const sides = sideOf(net, ownerIndex, random)
  const otherSide = net.running().filter(p => sides[p.index] === 1)
  if (otherSide.length === 0) throw new UsageError('the partition needs peers on both sides')

  let adminIndex: number | undefined
  if (opts.admin !== false) {
    // an admin with as many of its side around it as possible
    const components = otherSide.map(p => componentOf(net, p.index, sides))
    const largest = Math.max(...components.map(c => c.size))
    const candidates = otherSide.filter((_, i) => components[i].size === largest)
    adminIndex = candidates[randomInt(random, candidates.length)].index
    const now = owner.now()
    const { record: delegation } = await owner.policy.delegate(space, {
      admin: net.peers[adminIndex].principal,
      streams: ['*'],
      nbf: now - 60_000,
      exp: now + 86_400_000,
    })
    await catchUp(
      net,
      'the delegation everywhere',
      n => !n.policy.document(space).state.delegations.has(delegation.id),
      deadlineMs,
      opts.onProgress,
    )
  }

  net.partition(i => sides[i])
  const writers = adminIndex === undefined ? [ownerIndex] : [ownerIndex, adminIndex]
  const written: [number, number] = [0, 0]
  const ids: [Set<string>, Set<string>] = [new Set(), new Set()]
  for (let k = 0; k < total; k++) {
    const writerIndex = writers[k % writers.length]
    const writer = net.node(writerIndex)
    const side = sides[writerIndex]
    const mine = [...ids[side]]
    const now = writer.now()
    if (k >= 2 * writers.length && k % 3 === 2) {
      await writer.policy.revoke(space, { grant: mine[randomInt(random, mine.length)] })
    } else {
      const { record } = await writer.policy.grant(space, {
        sub: net.peers[randomInt(random, net.peers.length)].principal,
        streams: [STREAM],
        forms: ['raw'],
        nbf: now - 60_000,
        exp: now + 3_600_000,
      })
      ids[side].add(record.id)
    }
    written[side]++
    opts.onProgress?.('changes while partitioned', k + 1, total)
  }
  // the peers linked to a side's writer within the side get its changes before the heal, so the
  // heal measures only the heal; the others (islands the cut left with no link to the writer) wait
  const writerOf = [ownerIndex, adminIndex]
  const reachable = writerOf.map(w => (w === undefined ? new Set<number>() : componentOf(net, w, sides)))
  const isolated = net.running().filter(p => {
    const w = writerOf[sides[p.index]]
    return w !== undefined && !reachable[sides[p.index]].has(p.index)
  }).length
  await waitUntil(
    'each side to agree within itself',
    async () => {
      const reference = writerOf.map(w => (w === undefined ? undefined : headsKey(net.node(w), space)))
      const behind = net.running().filter(p => {
        const ref = reference[sides[p.index]]
        return ref !== undefined && reachable[sides[p.index]].has(p.index) && headsKey(p.node!, space) !== ref
      })
      if (behind.length === 0) return true
      await Promise.all(behind.map(p => p.node!.policy.syncAll()))
      return false
    },
    deadlineMs,
    200,
  )
  const crossedBeforeHeal = net.running().filter(p => {
    const grants = p.node!.policy.document(space).state.grants
    return [...ids[1 - sides[p.index]]].some(id => grants.has(id))
  }).length

  const keys = net.peers.map(p => (p.node === undefined ? '' : headsKey(p.node, space)))
  const reached: (number | undefined)[] = net.peers.map(() => undefined)
  const changedAt: number[] = net.peers.map(() => 0)
  const t0 = performance.now()
  const healing = net.heal().then(() => performance.now() - t0)
  let convergedMs: number | undefined
  await waitUntil(
    'every peer to reach the same heads',
    () => {
      const now = performance.now() - t0
      for (const p of net.running()) {
        const k = headsKey(p.node!, space)
        if (k !== keys[p.index]) {
          keys[p.index] = k
          changedAt[p.index] = now
        }
      }
      const running = net.running()
      const agreed = running.filter(p => keys[p.index] === keys[running[0].index]).length
      opts.onProgress?.('converging after the heal', agreed, running.length)
      if (agreed !== running.length) return false
      convergedMs = now
      return true
    },
    deadlineMs,
    20,
  ).catch(unlessDeadline)
  const healMs = await healing
  if (convergedMs !== undefined) for (const p of net.running()) reached[p.index] = changedAt[p.index]

  const grid = accessGrid(net, ownerIndex, space)
  const ownerAnswers = grid.answersOf(ownerIndex)
  const disagreeingPeers = net.running().filter(p => grid.answersOf(p.index) !== ownerAnswers).length
  const times = net.running().map(p => reached[p.index])
  return {
    scenario: 'partition-heal',
    space,
    owner: ownerIndex,
    admin: adminIndex,
    sides,
    written,
    crossedBeforeHeal,
    isolatedWhilePartitioned: isolated,
    healMs,
    convergedMs,
    reached,
    summary: summarize(times),
    timeline: cdf(times),
    gridQuestions: grid.questions,
    disagreeingPeers,
  }
}

/**
 * Side 0 or 1 for each peer, the owner on side 0: by site when there are sites (half the
 * sites each), else the half of the peers nearest the owner along the topology's links (a
 * breadth-first search in seeded random order), the way a cable cut splits a network.
 */
function sideOf(net: SimNetwork, owner: number, random: () => number): number[] {
  const sites = new Set(net.topology.site).size
  if (sites > 1) {
    const ownerSite = net.topology.site[owner]
    const order = [ownerSite, ...[...new Set(net.topology.site)].filter(s => s !== ownerSite)]
    const onSide0 = new Set(order.slice(0, Math.ceil(sites / 2)))
    return net.peers.map(p => (onSide0.has(p.site) ? 0 : 1))
  }
  const side0 = new Set([owner])
  const queue = [owner]
  const half = Math.ceil(net.peers.length / 2)
  while (queue.length > 0 && side0.size < half) {
    for (const q of shuffled(random, net.neighboursOf(queue.shift()!))) {
      if (side0.size < half && !side0.has(q)) {
        side0.add(q)
        queue.push(q)
      }
    }
  }
  return net.peers.map(p => (side0.has(p.index) ? 0 : 1))
}

/** The peers reachable from `start` along topology links without leaving its side. */
function componentOf(net: SimNetwork, start: number, sides: number[]): Set<number> {
  const seen = new Set([start])
  const queue = [start]
  while (queue.length > 0) {
    for (const q of net.neighboursOf(queue.shift()!)) {
      if (sides[q] === sides[start] && !seen.has(q)) {
        seen.add(q)
        queue.push(q)
      }
    }
  }
  return seen
}

/**
 * The access questions every peer is asked: up to 16 subjects (those with grants first) ×
 * two streams × two forms, evaluated at one instant; a peer's answers as one string.
 */
function accessGrid(
  net: SimNetwork,
  ownerIndex: number,
  space: string,
): { questions: number; answersOf: (peer: number) => string } {
  const owner = net.node(ownerIndex)
  const granted = new Set([...owner.policy.document(space).state.grants.values()].map(g => g.body.sub))
  const subjects = [...net.running()]
    .sort((a, b) => Number(granted.has(b.principal)) - Number(granted.has(a.principal)))
    .slice(0, 16)
  const now = Date.now()
  const questions = subjects.flatMap(s =>
    [STREAM, 'humidity'].flatMap(stream =>
      ['raw', 'hashed'].map(form => ({ subject: s.principal, device: s.node!.identity.device, stream, form })),
    ),
  )
  return {
    questions: questions.length,
    answersOf: peer => {
      const state = net.node(peer).policy.document(space).state
      return questions
        .map(q => {
          const d = state.evaluateAccess(q, now)
          return d.allowed ? `allow:${d.grant.id}` : `deny:${d.code}`
        })
        .join('|')
    },
  }
}
