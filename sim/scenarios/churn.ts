/**
 * Churn. The owner's gateway creates a space and publishes one reading every
 * `publishEveryMs` while readers come and go: at seeded random times (a Poisson process of
 * `churnRate` events per second) a seeded random reader toggles, an online reader leaves (its
 * node stops) and an offline one joins (its node starts again from its data directory,
 * redials its topology links, joins the space and reads). Half the readers, chosen by the
 * seed, are online and granted at the start; the others are newcomers: the owner grants each
 * one when it first joins (as it would approve its access request). A reader that returns
 * already has its grant.
 *
 * Measured:
 * - delivery: for each online session of a reader, the readings published while it was
 *   online (from its node's start until `graceMs` before it left, so that what is still in
 *   flight when it leaves is not counted) against those of them it decrypted before leaving,
 *   live from gossip or by its first read on joining (which backfills what it missed); over
 *   time, by when each reading was published;
 * - for every join during the churn: time from starting the node to a decrypted reading,
 *   split into starting and linking the node, having the space's policy with its grant, and
 *   the first read (backfill, key request, decryption).
 * With stores in memory (the default) a reader that returns begins empty, as a wiped device
 * would: it catches up the policy and backfills the stream again; with --disk it keeps both.
 * A joining reader that still lacks its grant after a second asks its peers to catch up once a
 * second (the node's own periodic catch-up is 30 s); every such wait is inside the times.
 */
import type { EdgewardNode } from '../../node/node.ts'
import type { EncryptedReading } from '../../protocols/data/reading.ts'
import { createGrant } from '../../protocols/policy/records.ts'
import { forEachLimit, type SimNetwork } from '../network.ts'
import { mulberry32, randomInt, sample } from '../random.ts'
import { cdf, type Summary, summarize } from '../stats.ts'
import { sleep, waitUntil } from '../wait.ts'
import { type Progress, readWithRetries, STREAM, setUpSpace } from './space.ts'

const RAW = 'raw'

export interface ChurnOptions {
  /** the peer whose gateway owns the space and publishes (default 0) */
  owner?: number
  /** how many peers read (default every peer but the owner); the others stay online and only relay */
  readers?: number
  /** reader joins and leaves per second over the whole network (default 0.5) */
  churnRate?: number
  /** how long the gateway publishes while readers churn (default 60 s) */
  durationMs?: number
  /** one reading every this many ms (default 500) */
  publishEveryMs?: number
  /** readings published less than this before a reader left are not counted for it (default 1000) */
  graceMs?: number
  /** width of a bucket of the delivery-over-time chart (default: the duration / 12, at least 1 s) */
  bucketMs?: number
  /** how long to wait for any one step (default 120 s) */
  deadlineMs?: number
  onProgress?: Progress
}

export interface JoinRecord {
  reader: number
  /** a newcomer gets its grant when it joins; a returning reader has one already */
  kind: 'newcomer' | 'returning'
  /** ms after the churn started */
  atMs: number
  /** ms from starting the reader's node until it was running and linked */
  startedMs: number | undefined
  /** ... until its policy had the space, the stream and its grant */
  policyMs: number | undefined
  /** ... until it had fetched the readings it missed from its peers (backfill) */
  backfillMs: number | undefined
  /** ... until its first read returned a decrypted reading (the key request included) */
  firstReadingMs: number | undefined
  /** readings that first read decrypted */
  firstReadCount: number
  error?: string
}

export interface SessionRecord {
  reader: number
  /** ms after the churn started: when the reader's node started (or the churn, for the first online), and when it left */
  fromMs: number
  toMs: number
  /** readings published while it was online (up to graceMs before it left) */
  eligible: number
  /** of those, decrypted before it left */
  delivered: number
  /** of those, decrypted as they arrived by gossip (the rest by a read, with backfill) */
  live: number
}

export interface ChurnResult {
  scenario: 'churn'
  space: string
  owner: number
  readers: number[]
  setupMs: number
  durationMs: number
  churnRate: number
  publishEveryMs: number
  graceMs: number
  bucketMs: number
  /** readings published during the churn */
  published: number
  /** churn events that happened, and those skipped because the chosen reader was still joining or leaving */
  events: { joins: number; leaves: number; skipped: number }
  joins: JoinRecord[]
  sessions: SessionRecord[]
  delivery: { eligible: number; delivered: number; live: number; ratio: number }
  /** per bucket of publishing time: delivery ratio over the readers online, and the fraction of readers online */
  timeline: { tMs: number; ratio: number | undefined; online: number }[]
  firstReading: { all: Summary; newcomer: Summary; returning: Summary }
  firstReadingCdf: { newcomer: [number, number][]; returning: [number, number][] }
  /** live readings a reader failed to decrypt (a refusal or an error): expected 0 */
  decryptFailures: number
  lastDecryptFailure?: string
}

interface Session {
  from: number
  to: number | undefined
  /** seq -> how it was decrypted */
  decrypted: Map<number, 'live' | 'read'>
  pending: EncryptedReading[]
  ready: boolean
  draining: Promise<void>
  /** decrypt what is pending (once ready), one batch at a time */
  drain: () => void
  detach: () => void
}

interface Reader {
  index: number
  status: 'offline' | 'joining' | 'online' | 'leaving'
  granted: boolean
  session: Session | undefined
}

export async function runChurn(net: SimNetwork, opts: ChurnOptions = {}): Promise<ChurnResult> {
  const ownerIndex = opts.owner ?? 0
  const deadlineMs = opts.deadlineMs ?? 120_000
  const durationMs = opts.durationMs ?? 60_000
  const churnRate = opts.churnRate ?? 0.5
  const publishEveryMs = opts.publishEveryMs ?? 500
  const graceMs = opts.graceMs ?? 1000
  const bucketMs = opts.bucketMs ?? Math.max(1000, Math.round(durationMs / 12))
  const random = mulberry32(net.seed ^ 0xc4a2)
  const others = net.running().flatMap(p => (p.index === ownerIndex ? [] : [p.index]))
  const readerCount = Math.min(opts.readers ?? others.length, others.length)
  if (readerCount < 1) throw new Error('churn needs at least one reader')
  const readerIndexes = sample(random, others, readerCount).sort((a, b) => a - b)
  const initiallyOnline = new Set(sample(random, readerIndexes, Math.ceil(readerCount / 2)))
  const readers = new Map<number, Reader>(
    readerIndexes.map(i => [i, { index: i, status: 'offline', granted: false, session: undefined }]),
  )

  const t0 = performance.now()
  // newcomers have never seen the space: they are offline before it exists
  for (const r of readers.values()) if (!initiallyOnline.has(r.index)) await net.crash(r.index)
  // a peer whose links all led to newcomers dials the owner's gateway, as it would its bootstrap address
  await forEachLimit(cutOffFrom(net, ownerIndex), 8, i => net.dial(i, ownerIndex))
  const space = await setUpSpace(net, { owner: ownerIndex, readings: 3, deadlineMs, onProgress: opts.onProgress })
  const owner = net.node(ownerIndex)
  const grantFor = (i: number) => {
    const now = Date.now()
    return createGrant(
      owner.identity.principal,
      { space, sub: net.peers[i].principal, streams: [STREAM], forms: [RAW], nbf: now - 60_000, exp: now + 86_400_000 },
      now,
    )
  }
  // a change carries at most 16 records
  const first = [...initiallyOnline]
  for (let k = 0; k < first.length; k += 16) {
    const outcome = await owner.policy.write(
      space,
      first.slice(k, k + 16).map(i => ({ kind: 'grant' as const, record: grantFor(i) })),
    )
    if (outcome.status !== 'applied') throw new Error(`the first grants were not applied: ${outcome.status}`)
  }
  let done = 0
  await Promise.all(
    first.map(async i => {
      const node = net.node(i)
      await waitForGrant(node, space, deadlineMs)
      await readWithRetries(() => node.data.read(space, STREAM), 500)
      const r = readers.get(i)!
      r.granted = true
      r.status = 'online'
      opts.onProgress?.('first readers read', ++done, first.length)
    }),
  )
  const setupMs = performance.now() - t0
  net.sampleMemory('space joined')

  // ---- the churn ----
  const published: { seq: number; at: number; online: number }[] = []
  const joins: JoinRecord[] = []
  const sessions: SessionRecord[] = []
  const events = { joins: 0, leaves: 0, skipped: 0 }
  let decryptFailures = 0
  let lastDecryptFailure: string | undefined
  const start = performance.now()
  const rel = (t: number) => Math.round((t - start) * 10) / 10

  const openSession = (r: Reader, node: EdgewardNode, from: number): Session => {
    const s: Session = {
      from,
      to: undefined,
      decrypted: new Map(),
      pending: [],
      ready: false,
      draining: Promise.resolve(),
      drain: () => undefined,
      detach: () => undefined,
    }
    s.drain = () => {
      s.draining = s.draining.then(async () => {
        if (!s.ready || s.pending.length === 0) return
        const batch = s.pending.filter(x => !s.decrypted.has(x.seq))
        s.pending = []
        if (batch.length === 0) return
        try {
          for (const d of await node.data.decryptAll(space, STREAM, batch))
            if (!s.decrypted.has(d.seq)) s.decrypted.set(d.seq, 'live')
        } catch (err) {
          // counted, and left undelivered: the reading was not readable when it arrived
          decryptFailures += batch.length
          lastDecryptFailure = `${(err as Error).name}: ${(err as Error).message}`
        }
      })
    }
    s.detach = node.data.onReading(x => {
      if (x.space !== space || x.stream !== STREAM || x.form !== RAW || s.to !== undefined) return
      s.pending.push(x)
      s.drain()
    })
    r.session = s
    return s
  }

  /** each closed session with the seqs it decrypted, for delivery over time */
  const closed: { from: number; to: number; seqs: Set<number> }[] = []
  const closeSession = async (r: Reader, to: number): Promise<void> => {
    const s = r.session
    if (s === undefined) return
    s.to = to
    s.detach()
    await s.draining
    let eligible = 0
    let delivered = 0
    let live = 0
    for (const p of published) {
      if (p.at < s.from || p.at > to - graceMs) continue
      eligible++
      const how = s.decrypted.get(p.seq)
      if (how === undefined) continue
      delivered++
      if (how === 'live') live++
    }
    sessions.push({ reader: r.index, fromMs: rel(s.from), toMs: rel(to), eligible, delivered, live })
    closed.push({ from: s.from, to, seqs: new Set(s.decrypted.keys()) })
    r.session = undefined
  }

  // the first online readers' sessions begin with the churn
  for (const r of readers.values()) {
    if (r.status !== 'online') continue
    const s = openSession(r, net.node(r.index), start)
    s.ready = true
  }

  const join = async (r: Reader): Promise<void> => {
    r.status = 'joining'
    const kind = r.granted ? 'returning' : 'newcomer'
    const began = performance.now()
    const record: JoinRecord = {
      reader: r.index,
      kind,
      atMs: rel(began),
      startedMs: undefined,
      policyMs: undefined,
      backfillMs: undefined,
      firstReadingMs: undefined,
      firstReadCount: 0,
    }
    joins.push(record)
    try {
      const node = net.peers[r.index].node ?? (await net.restart(r.index))
      // no neighbour is up: it dials the owner's gateway, as it would its bootstrap address
      if (node.connectedPeers().length === 0) await net.dial(r.index, ownerIndex)
      record.startedMs = performance.now() - began
      const s = openSession(r, node, began)
      if (!r.granted) {
        const outcome = await owner.policy.write(space, [{ kind: 'grant', record: grantFor(r.index) }])
        if (outcome.status !== 'applied') throw new Error(`the grant was not applied: ${outcome.status}`)
        r.granted = true
      }
      await node.joinSpace(space)
      await waitForGrant(node, space, deadlineMs)
      record.policyMs = performance.now() - began
      // the read's first step, its backfill, timed as the fetch service tells of it
      const stopTiming = node.fetch.onBackfill((s, stream) => {
        if (s === space && stream === STREAM) record.backfillMs ??= performance.now() - began
      })
      let got: Awaited<ReturnType<typeof node.data.read>>
      try {
        got = await readWithRetries(() => node.data.read(space, STREAM), 500)
      } finally {
        stopTiming()
      }
      for (const d of got) if (!s.decrypted.has(d.seq)) s.decrypted.set(d.seq, 'read')
      record.firstReadCount = got.length
      if (got.length > 0) record.firstReadingMs = performance.now() - began
      s.ready = true
      s.drain()
    } catch (err) {
      record.error = (err as Error).message
    }
    r.status = 'online'
  }

  const leave = async (r: Reader): Promise<void> => {
    r.status = 'leaving'
    await closeSession(r, performance.now())
    await net.crash(r.index)
    r.status = 'offline'
  }

  const inFlight = new Set<Promise<void>>()
  const track = (p: Promise<void>) => {
    const t = p.finally(() => inFlight.delete(t))
    inFlight.add(t)
  }
  let publishing = true
  const publisher = (async () => {
    for (let k = 0; publishing; k++) {
      const next = start + k * publishEveryMs
      const wait = next - performance.now()
      if (wait > 0) await sleep(wait)
      if (!publishing) break
      const [seq] = await owner.data.publish(space, STREAM, [{ ts: Date.now(), value: 20 + (k % 100) / 10 }])
      const online = [...readers.values()].filter(r => net.peers[r.index].node !== undefined).length
      published.push({ seq, at: performance.now(), online })
    }
  })()

  // the schedule is fixed by the seed: exponential gaps, a uniformly chosen reader each time
  const schedule: { at: number; reader: number }[] = []
  for (let t = 0; ; ) {
    t += (-Math.log(1 - random()) / churnRate) * 1000
    if (t >= durationMs) break
    schedule.push({ at: t, reader: readerIndexes[randomInt(random, readerIndexes.length)] })
  }
  for (const e of schedule) {
    const wait = start + e.at - performance.now()
    if (wait > 0) await sleep(wait)
    opts.onProgress?.('churn', Math.round(e.at / 1000), Math.round(durationMs / 1000))
    const r = readers.get(e.reader)!
    if (r.status === 'offline') {
      events.joins++
      track(join(r))
    } else if (r.status === 'online') {
      events.leaves++
      track(leave(r))
    } else events.skipped++
  }
  const rest = start + durationMs - performance.now()
  if (rest > 0) await sleep(rest)
  opts.onProgress?.('churn', Math.round(durationMs / 1000), Math.round(durationMs / 1000))
  publishing = false
  await publisher
  while (inFlight.size > 0) await Promise.all(inFlight)
  // what is still in flight gets its grace, then every open session ends
  await sleep(graceMs)
  for (const r of readers.values()) await closeSession(r, performance.now())

  const eligible = sessions.reduce((a, s) => a + s.eligible, 0)
  const delivered = sessions.reduce((a, s) => a + s.delivered, 0)
  const live = sessions.reduce((a, s) => a + s.live, 0)
  const timeline: ChurnResult['timeline'] = []
  for (let b = 0; b * bucketMs < durationMs; b++) {
    const inBucket = published.filter(p => p.at - start >= b * bucketMs && p.at - start < (b + 1) * bucketMs)
    let e = 0
    let d = 0
    for (const p of inBucket) {
      for (const c of closed) {
        if (p.at < c.from || p.at > c.to - graceMs) continue
        e++
        if (c.seqs.has(p.seq)) d++
      }
    }
    timeline.push({
      tMs: (b + 0.5) * bucketMs,
      ratio: e === 0 ? undefined : d / e,
      online: inBucket.length === 0 ? 0 : inBucket.reduce((a, p) => a + p.online, 0) / inBucket.length / readerCount,
    })
  }
  const measured = joins.map(j => j.firstReadingMs)
  return {
    scenario: 'churn',
    space,
    owner: ownerIndex,
    readers: readerIndexes,
    setupMs,
    durationMs,
    churnRate,
    publishEveryMs,
    graceMs,
    bucketMs,
    published: published.length,
    events,
    joins,
    sessions,
    delivery: { eligible, delivered, live, ratio: eligible === 0 ? Number.NaN : delivered / eligible },
    timeline,
    firstReading: {
      all: summarize(measured),
      newcomer: summarize(joins.filter(j => j.kind === 'newcomer').map(j => j.firstReadingMs)),
      returning: summarize(joins.filter(j => j.kind === 'returning').map(j => j.firstReadingMs)),
    },
    firstReadingCdf: {
      newcomer: cdf(joins.filter(j => j.kind === 'newcomer').map(j => j.firstReadingMs)),
      returning: cdf(joins.filter(j => j.kind === 'returning').map(j => j.firstReadingMs)),
    },
    decryptFailures,
    ...(lastDecryptFailure === undefined ? {} : { lastDecryptFailure }),
  }
}

/**
 * Until the node has the space's genesis, the stream and an active grant of its own; after a
 * second without them it asks its connected peers to catch up, once a second.
 */
async function waitForGrant(node: EdgewardNode, space: string, deadlineMs: number): Promise<void> {
  const me = node.identity.principal.did
  let lastSync = performance.now()
  let syncing: Promise<void> | undefined
  await waitUntil(
    'the reader to hold the space, the stream and its grant',
    () => {
      const doc = node.policy.document(space)
      if (doc.hasGenesis && doc.state.streams.has(STREAM)) {
        const state = doc.state
        if (state.grantsOf(me).some(g => state.grantProblem(g, Date.now()) === undefined)) return true
      }
      if (syncing === undefined && performance.now() - lastSync > 1000) {
        lastSync = performance.now()
        // a catch-up that fails (a peer went away) is tried again a second later
        syncing = node.policy
          .syncAll()
          .catch(() => undefined)
          .finally(() => {
            syncing = undefined
          })
      }
      return false
    },
    deadlineMs,
    20,
  )
  await syncing
}

/** Running peers with no path of running topology links to `root`. */
function cutOffFrom(net: SimNetwork, root: number): number[] {
  const reached = new Set([root])
  const queue = [root]
  while (queue.length > 0) {
    for (const j of net.neighboursOf(queue.shift()!)) {
      if (reached.has(j) || net.peers[j].node === undefined) continue
      reached.add(j)
      queue.push(j)
    }
  }
  return net.running().flatMap(p => (reached.has(p.index) ? [] : [p.index]))
}
