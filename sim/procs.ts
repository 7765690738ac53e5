/**
 * A simulated network split across worker processes: `--procs K` runs the N peers in K
 * child processes (sim/worker.ts), peer i in worker i mod K, each peer a real edgeward node
 * with its own LevelDB store, connected over TCP on 127.0.0.1 (inside a worker too). This
 * process is the coordinator: it builds the same seeded topology, tells each worker which
 * links to dial, drives the scenario over IPC and collects the same results as a run in one
 * process.
 *
 * Why: in one process every peer shares one event loop and one core, so at a few hundred
 * peers the CPU work of all of them, not the network, sets the times. Several processes use
 * every core of the machine, and a key holder's event loop is no longer shared with hundreds
 * of others.
 *
 * Times: each worker stamps events with `performance.timeOrigin + performance.now()`, a
 * wall clock that the processes of one machine share (to well under a millisecond of each
 * other, not exactly: each process reads the system clock once, at its start).
 * Not modelled here: link latency (TCP loopback is the link), partitions and crashes (the
 * scenarios that use them run in one process).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NodeStateError } from '../node/errors.ts'
import { policyTopic } from '../protocols/sync/messages.ts'
import { ScenarioError } from './errors.ts'
import {
  type MemorySample,
  memoryGrowthPerPeer,
  SIMULATION_DEFAULTS,
  type SimNetworkOptions,
  setUpInTempDir,
} from './network.ts'
import { mulberry32, sample } from './random.ts'
import {
  type ReadAttempt,
  type RevokeOptions,
  type RevokeResult,
  type RevokeRound,
  roundRecord,
} from './scenarios/revoke.ts'
import { BASELINE_TOPIC, countDefined } from './scenarios/space.ts'
import { seededTopology, type Topology } from './topology.ts'
import { sleep, stepTimer, unlessDeadline, waitUntil } from './wait.ts'
import type { ReadRecord, StartedPeer, WorkerEvent, WorkerInit, WorkerMemory } from './worker.ts'

export interface ProcNetworkOptions extends Omit<SimNetworkOptions, 'link'> {
  /** worker processes (each runs about peers / procs peers) */
  procs: number
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
}

/** A worker process that failed an operation (carrying the worker's error name) or exited. */
class WorkerError extends Error {
  static override name = 'WorkerError'

  constructor(message = 'the worker failed') {
    super(message)
    this.name = 'WorkerError'
  }
}

/** The coordinator's handle on one worker process. */
class WorkerHandle {
  private readonly child: ChildProcess
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private exited = false

  readonly index: number

  constructor(index: number, onEvent: (e: WorkerEvent) => void) {
    this.index = index
    const script = join(fileURLToPath(new URL('.', import.meta.url)), 'worker.ts')
    this.child = fork(script, [], {
      execPath: process.execPath,
      execArgv: ['--expose-gc'],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.child.on('message', (msg: { id?: number; ok?: boolean; value?: unknown; error?: Error } & WorkerEvent) => {
      if (msg.id === undefined) {
        onEvent(msg)
        return
      }
      const p = this.pending.get(msg.id)
      this.pending.delete(msg.id)
      if (msg.ok) p?.resolve(msg.value)
      else p?.reject(Object.assign(new WorkerError(msg.error?.message ?? 'failed'), { name: msg.error?.name }))
    })
    this.child.on('exit', code => {
      this.exited = true
      for (const p of this.pending.values()) p.reject(new WorkerError(`worker ${index} exited (${code})`))
      this.pending.clear()
    })
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exited) return Promise.reject(new WorkerError(`worker ${this.index} has exited`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ id, op, args })
    })
  }

  /** Ask the worker to stop its peers, then wait for it to exit. */
  async stop(): Promise<{ failures: string[]; backgroundFailures: number }> {
    if (this.exited) return { failures: [], backgroundFailures: 0 }
    const exited = new Promise<void>(resolve => this.child.once('exit', () => resolve()))
    const out = await this.call<{ failures: string[]; backgroundFailures: number }>('stop')
    this.child.disconnect()
    await exited
    return out
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL')
  }
}

/** A simulated network whose peers run in worker processes over TCP, driven over IPC (`--procs K`). */
export class ProcNetwork {
  readonly peers: (StartedPeer & { worker: number })[] = []
  readonly topology: Topology
  readonly root: string
  /** the seed of everything random in the run that is ours */
  get seed(): number {
    return this.opts.seed
  }
  /** every worker's memory summed, as the network grew; the first sample is before any peer */
  readonly memory: MemorySample[] = []
  /** library failures in the background, counted by the workers when they stop */
  backgroundFailures = 0
  private readonly opts: ProcNetworkOptions
  private readonly workers: WorkerHandle[]
  private readonly listeners = new Set<(e: WorkerEvent) => void>()
  private dialFailures = 0

  private constructor(opts: ProcNetworkOptions, root: string) {
    this.opts = opts
    this.root = root
    this.topology = seededTopology(opts)
    const k = Math.max(1, Math.min(opts.procs, opts.peers))
    this.workers = Array.from({ length: k }, (_, w) => new WorkerHandle(w, e => this.emit(e)))
  }

  /** Start the workers and their peers, and dial the topology's links. */
  static create(opts: ProcNetworkOptions): Promise<ProcNetwork> {
    return setUpInTempDir(
      root => new ProcNetwork(opts, root),
      net => net.setUp(),
    )
  }

  private emit(e: WorkerEvent): void {
    for (const l of this.listeners) l(e)
  }

  /** Listen to the workers' events until the returned function is called. */
  onEvent(fn: (e: WorkerEvent) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  workerOf(i: number): number {
    return i % this.workers.length
  }

  /** Ask the worker that runs peer i. */
  call<T>(i: number, op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.workers[this.workerOf(i)].call<T>(op, args)
  }

  /** Ask every worker. */
  all<T>(op: string, args: Record<string, unknown> = {}): Promise<T[]> {
    return Promise.all(this.workers.map(w => w.call<T>(op, args)))
  }

  private async setUp(): Promise<void> {
    const n = this.opts.peers
    const progress = this.opts.onProgress
    progress?.('peers', 0, n)
    const started = await Promise.all(
      this.workers.map(w => {
        const init: WorkerInit = {
          indices: Array.from({ length: n }, (_, i) => i).filter(i => this.workerOf(i) === w.index),
          peers: n,
          topology: this.opts.topology,
          seed: this.opts.seed,
          strictTopology: this.opts.strictTopology !== false,
          public: this.opts.public ?? [0],
          store: this.opts.store,
          root: this.root,
          node: { ...SIMULATION_DEFAULTS.node, ...this.opts.node },
          ...(this.opts.gossip === undefined ? {} : { gossip: this.opts.gossip }),
          pingIntervalMs: this.opts.pingIntervalMs ?? SIMULATION_DEFAULTS.pingIntervalMs,
          concurrency: this.opts.concurrency ?? 8,
        }
        return w.call<{ peers: StartedPeer[]; empty: WorkerMemory; started: WorkerMemory }>('start', { ...init })
      }),
    )
    this.pushMemory(
      0,
      'empty',
      started.map(s => s.empty),
    )
    this.pushMemory(
      n,
      'started',
      started.map(s => s.started),
    )
    for (const s of started) for (const p of s.peers) this.peers[p.index] = { ...p, worker: this.workerOf(p.index) }
    progress?.('peers', n, n)
    await this.all('table', { peers: this.peers.map(({ worker: _, ...p }) => p) })
    progress?.('links', 0, this.topology.links.length)
    const failed = await this.all<number>('dial', { links: this.topology.links })
    this.dialFailures += failed.reduce((a, b) => a + b, 0)
    progress?.('links', this.topology.links.length, this.topology.links.length)
    await this.sampleMemory('linked')
  }

  private pushMemory(peers: number, phase: string, ms: WorkerMemory[]): MemorySample {
    const sum = (f: (m: WorkerMemory) => number) => ms.reduce((a, m) => a + f(m), 0)
    const s: MemorySample = {
      peers,
      phase,
      rssBytes: sum(m => m.rssBytes),
      heapUsedBytes: sum(m => m.heapUsedBytes),
      externalBytes: sum(m => m.externalBytes),
      arrayBuffersBytes: sum(m => m.arrayBuffersBytes),
    }
    this.memory.push(s)
    return s
  }

  /** Every worker's memory (after a full garbage collection), summed. */
  async sampleMemory(phase: string): Promise<MemorySample> {
    return this.pushMemory(this.peers.length, phase, await this.all<WorkerMemory>('memory'))
  }

  /** Growth of the workers' RSS and heap from before any peer to the latest sample, per peer. */
  memoryPerPeer(): { rssBytes: number; heapUsedBytes: number } {
    return memoryGrowthPerPeer(this.memory)
  }

  get failedDials(): number {
    return this.dialFailures
  }

  /** Connections each peer has now (to distinct peers), by peer index. */
  async degrees(): Promise<number[]> {
    const out: number[] = []
    for (const list of await this.all<[number, number][]>('degrees')) for (const [i, d] of list) out[i] = d
    return out
  }

  /** Dial the topology's links of these peers again (those connected stay as they are). */
  async redialLinks(indices: number[]): Promise<void> {
    const mine = new Set(indices)
    const links = this.topology.links.flatMap(([a, b]): [number, number][] =>
      mine.has(a) ? [[a, b]] : mine.has(b) ? [[b, a]] : [],
    )
    await this.all('dial', { links })
  }

  /** Mesh peers per peer on each topic, by peer index. */
  async meshes(topics: string[]): Promise<number[][]> {
    const out: number[][] = []
    for (const list of await this.all<[number, number[]][]>('meshes', { topics })) for (const [i, m] of list) out[i] = m
    return out
  }

  /** Stop every worker's peers and the workers, and remove the network's temp directory. */
  async stop(): Promise<void> {
    const results = await Promise.allSettled(this.workers.map(w => w.stop()))
    const failures: string[] = []
    for (const [w, r] of results.entries()) {
      if (r.status === 'fulfilled') {
        failures.push(...r.value.failures)
        this.backgroundFailures += r.value.backgroundFailures
      } else {
        failures.push(`worker ${w}: ${(r.reason as Error).message}`)
        this.workers[w].kill()
      }
    }
    await rm(this.root, { recursive: true, force: true })
    if (failures.length > 0) throw new NodeStateError(`peers failed to stop: ${failures.join('; ')}`)
  }
}

/**
 * Until no peer lacks what `what` names. Peers still behind after 2 s are asked to catch up
 * with their neighbours now: each at most once at a time, at most 32 at once over the
 * network (asking again before an answer came would pile catch-ups onto a busy machine).
 */
async function catchUpAll(
  net: ProcNetwork,
  space: string,
  what: 'genesis' | 'stream',
  deadlineMs: number,
  onProgress?: RevokeOptions['onProgress'],
): Promise<void> {
  const n = net.peers.length
  const started = performance.now()
  const lastSync = new Map<number, number>()
  const syncing = new Map<number, Promise<unknown>>()
  const label = `${what} everywhere`
  try {
    await waitUntil(
      label,
      async () => {
        const behind = (await net.all<number[]>('behind', { space, what })).flat()
        onProgress?.(label, n - behind.length, n)
        if (behind.length === 0) return true
        const now = performance.now()
        if (now - started < 2000) return false
        const due = behind
          .filter(i => !syncing.has(i) && now - (lastSync.get(i) ?? 0) >= 2000)
          .slice(0, Math.max(0, 32 - syncing.size))
        for (const indices of groupBy(due, i => net.workerOf(i)).values()) {
          for (const i of indices) lastSync.set(i, now)
          // a catch-up that fails (a peer went away) is asked again on a later poll
          const run = net
            .call(indices[0], 'sync', { indices })
            .catch(() => undefined)
            .finally(() => {
              for (const i of indices) syncing.delete(i)
            })
          for (const i of indices) syncing.set(i, run)
        }
        return false
      },
      deadlineMs,
      200,
    )
  } finally {
    await Promise.all(syncing.values())
  }
}

function groupBy<T>(xs: T[], key: (x: T) => number): Map<number, T[]> {
  const out = new Map<number, T[]>()
  for (const x of xs) {
    const k = key(x)
    const list = out.get(k)
    if (list === undefined) out.set(k, [x])
    else list.push(x)
  }
  return out
}

/**
 * The revoke scenario (sim/scenarios/revoke.ts) across processes: the same steps, the same
 * measurements from the moment the owner's `policy.revoke` is called, the
 * same result. Gossip hop counts are not collected (empty).
 */
export async function runRevokeProcs(net: ProcNetwork, opts: RevokeOptions = {}): Promise<RevokeResult> {
  const ownerIndex = opts.owner ?? 0
  const deadlineMs = opts.deadlineMs ?? 120_000
  const n = net.peers.length
  const rounds = Math.min(opts.rounds ?? 1, n - 1)
  const onProgress = opts.onProgress
  const t0 = performance.now()

  // setup: the owner creates the space and the stream, everyone joins, meshes form
  const space = await net.call<string>(ownerIndex, 'createSpace', { index: ownerIndex })
  let joined = 0
  const stopCounting = net.onEvent(e => {
    if (e.event === 'joined') onProgress?.('joining', ++joined, n - 1)
  })
  await net.all('join', { space, owner: ownerIndex }).finally(stopCounting)
  await catchUpAll(net, space, 'genesis', deadlineMs, onProgress)
  await net.call(ownerIndex, 'publish', { index: ownerIndex, space, readings: opts.readings ?? 5 })
  await catchUpAll(net, space, 'stream', deadlineMs, onProgress)
  const topics = [policyTopic(space), BASELINE_TOPIC]
  // a peer without mesh peers after a while redials its topology links (as in one process);
  // when a few (at most 1%) still have none a minute after the rest, the run goes on without
  // them: their gossip comes through the mesh peers' gossip rounds instead, and it is measured
  let lastRedial = performance.now()
  let fewSince: number | undefined
  await waitUntil(
    'gossip meshes',
    async () => {
      const meshes = await net.meshes(topics)
      const lacking = net.peers.flatMap(p => (meshes[p.index]?.every(x => x > 0) ? [] : [p.index]))
      const few = lacking.length <= Math.floor(n / 100)
      const label =
        few && lacking.length > 0 ? `gossip meshes (none yet: ${lacking.map(i => `p${i}`).join(' ')})` : 'gossip meshes'
      onProgress?.(label, n - lacking.length, n)
      if (lacking.length === 0) return true
      const now = performance.now()
      fewSince = few ? (fewSince ?? now) : undefined
      if (fewSince !== undefined && now - fewSince > 60_000) return true
      if (now - lastRedial > 10_000) {
        lastRedial = now
        await net.redialLinks(lacking)
      }
      return false
    },
    deadlineMs,
    200,
  )
  const setupMs = performance.now() - t0
  await net.sampleMemory('space joined')

  // every revocation any peer applied, and every baseline message received, by peer
  const revocations = new Map<string, Map<number, { at: number; cachedKeys: number }>>()
  let baselineAt: (number | undefined)[] = []
  const detach = net.onEvent(e => {
    if (e.event === 'revocation') {
      const byPeer = revocations.get(e.record) ?? new Map<number, { at: number; cachedKeys: number }>()
      revocations.set(e.record, byPeer)
      if (!byPeer.has(e.index)) byPeer.set(e.index, { at: e.at, cachedKeys: e.cachedKeys })
    } else if (e.event === 'baseline' && baselineAt[e.index] === undefined) baselineAt[e.index] = e.at
  })

  const candidates = net.peers.flatMap(p => (p.index === ownerIndex ? [] : [p.index]))
  const subjects = sample(mulberry32(net.seed ^ 0x5eed), candidates, rounds)
  const out: RevokeRound[] = []
  try {
    for (const [r, subject] of subjects.entries()) {
      const phase = `round ${r + 1}/${rounds}`
      const { stepsMs, step } = stepTimer(name => onProgress?.(`${phase}: ${name}`, 1, 1))
      const subjectDid = net.peers[subject].principal
      const grant = await net.call<string>(ownerIndex, 'grant', { owner: ownerIndex, space, subject: subjectDid })
      await waitUntil(
        `${phase}: S receives its grant`,
        () => net.call<boolean>(subject, 'hasGrant', { index: subject, space, grant }),
        deadlineMs,
        20,
      )
      step('grant reached the subject')
      const first = await net.call<{ readings: number; cachedKeys: number }>(subject, 'firstRead', {
        index: subject,
        space,
      })
      if (first.readings === 0 || first.cachedKeys === 0) throw new ScenarioError(`${phase}: S read nothing`)
      step('subject read')
      await sleep(1000)
      step('settle')

      const degrees = await net.degrees()
      const meshes = await net.meshes(topics)
      const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
      await net.call(subject, 'startReads', { index: subject, space, subject: subjectDid })
      const {
        startAt,
        revocation: rv,
        hash,
      } = await net.call<{ startAt: number; revocation: string; hash: string }>(ownerIndex, 'writeRevocation', {
        owner: ownerIndex,
        space,
        subject: subjectDid,
      })
      const appliedOf = () => revocations.get(rv) ?? new Map<number, { at: number; cachedKeys: number }>()
      let keysDroppedMs: number | undefined
      await waitUntil(
        `${phase}: every peer applies the revocation`,
        async () => {
          const applied = appliedOf()
          onProgress?.(`${phase}: revocation`, applied.size, n)
          const s = applied.get(subject)
          if (keysDroppedMs === undefined && s !== undefined) {
            if (s.cachedKeys === 0) keysDroppedMs = s.at - startAt
            else if ((await net.call<number>(subject, 'cachedKeys', { index: subject })) === 0) {
              keysDroppedMs = performance.timeOrigin + performance.now() - startAt
            }
          }
          return applied.size === n && keysDroppedMs !== undefined
        },
        deadlineMs,
        5,
      ).catch(unlessDeadline)
      const appliedMap = appliedOf()
      const applied = net.peers.map(p => {
        const a = appliedMap.get(p.index)
        return a === undefined ? undefined : a.at - startAt
      })
      const inState = (await net.all<number>('inState', { space, id: rv })).reduce((a, b) => a + b, 0)
      step('revocation everywhere')
      await waitUntil(
        `${phase}: S is refused`,
        async () =>
          (await net.call<ReadRecord[]>(subject, 'readsStatus')).some(a => a.afterSeen && a.outcome === 'refused'),
        deadlineMs,
        20,
      ).catch(unlessDeadline)
      const records = await net.call<ReadRecord[]>(subject, 'stopReads')
      const reads: ReadAttempt[] = records.map(a => ({
        startedMs: a.startedAt - startAt,
        endedMs: a.endedAt - startAt,
        afterSeen: a.afterSeen,
        outcome: a.outcome,
        ...(a.detail === undefined ? {} : { detail: a.detail }),
      }))
      step('subject refused')

      const ownerAppliedAt = appliedMap.get(ownerIndex)?.at ?? Number.POSITIVE_INFINITY
      const releasesAfterRevocation = await net.call<number>(ownerIndex, 'releasesAfter', {
        owner: ownerIndex,
        subject: subjectDid,
        after: ownerAppliedAt,
      })
      const { messageBytes, validationMs } = await net.call<{ messageBytes: number; validationMs: number }>(
        ownerIndex,
        'envelope',
        { owner: ownerIndex, space, hash },
      )
      step('audit log checked')
      await sleep(1000)
      step('settle before the baseline')

      onProgress?.(`${phase}: baseline`, 0, 1)
      baselineAt = []
      await net.all('listenBaseline', { payload: new Uint8Array(randomBytes(Math.max(1, messageBytes))) })
      const sentAt = await net.call<number>(ownerIndex, 'publishBaseline', { index: ownerIndex })
      await waitUntil(
        'the baseline message everywhere',
        () => countDefined(baselineAt.filter((_, i) => i !== ownerIndex)) === n - 1,
        deadlineMs,
        5,
      ).catch(unlessDeadline)
      const baseline = net.peers.map(p => {
        const at = baselineAt[p.index]
        return p.index === ownerIndex || at === undefined ? undefined : at - sentAt
      })
      step('baseline')

      const record = {
        subject,
        subjectDid,
        messageBytes,
        applied,
        inState,
        keysDroppedMs,
        baseline,
        reads,
        releasesAfterRevocation,
        revocationHops: [],
        baselineHops: [],
        ownerConnections: degrees[ownerIndex] ?? 0,
        meanConnections: meanOf(degrees),
        meanMesh: { policy: meanOf(meshes.map(m => m[0])), baseline: meanOf(meshes.map(m => m[1])) },
        validationMs,
        stepsMs,
      }
      out.push(roundRecord(record, i => i !== ownerIndex))
      await sleep(1000)
    }
  } finally {
    detach()
  }
  return { scenario: 'revoke', space, owner: ownerIndex, setupMs, rounds: out }
}
