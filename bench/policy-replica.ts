/**
 * A policy replica in a process of its own, for bench/policy.bench.ts: what a peer that holds
 * nothing else does when it catches up on a space and then follows its gossip. The benchmark
 * writes the owner's envelopes and a plan to a directory; this process reads them, applies them
 * and prints its timings as JSON on stdout (progress on stderr).
 *
 * `node bench/policy-replica.ts DIR`, with DIR/plan.json (a ReplicaPlan) and DIR/envelopes.bin
 * (each envelope after its length, 4 bytes big-endian).
 * - `replica`: a fresh PolicyDocument applies the first `head` envelopes one at a time with
 *   applyEnvelope (a document near empty), the rest of the first `history` in pages of
 *   MAX_SYNC_PAGE with applyEnvelopes (as catch-up does), then every later envelope one at a
 *   time again, on top of the whole history (as gossip delivers them);
 * - `automerge`: the same changes without signatures or policy, to a bare Automerge document
 *   (its backend, as PolicyDocument keeps), of the first `history` envelopes: the first tenth one at a time, the middle in one
 *   call, the last tenth one at a time; then Automerge.save, and the whole history again in one
 *   call to a fresh document.
 * Every phase also counts the full (mark-compact) garbage collections that ran during it.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import * as Automerge from '@automerge/automerge'
import { decodeCanonical } from '../crypto/encoding.ts'
import { MAX_ENVELOPE_BYTES, PolicyDocument } from '../protocols/policy/document.ts'
import { MAX_SYNC_PAGE } from '../protocols/sync/messages.ts'

export interface ReplicaPlan {
  mode: 'replica' | 'automerge'
  space: string
  /** envelopes applied one at a time first (replica) */
  head: number
  /** envelopes of the history: those after `head` and before this index are applied in pages */
  history: number
  /** what progress lines start with */
  label: string
}

/** Per-call wall-clock and on-thread CPU time, ms. */
export interface Timings {
  wall: number[]
  cpu: number[]
}

export interface ReplicaResult {
  head: Timings
  /** one entry per page */
  pages: Timings & { size: number[] }
  tail: Timings
  /** full garbage collections during each phase, and their time in ms */
  gc: Record<'head' | 'pages' | 'tail', { count: number; ms: number }>
  grants: number
  revocations: number
  heads: string[]
  rssMiB: number
  heapMiB: number
}

export interface AutomergeResult {
  first: Timings
  last: Timings
  /** bytes of Automerge.save after the first tenth, and at the end */
  earlySave: number
  save: number
  saveMs: number
  /** the whole history in one applyChanges call to a fresh document */
  rebuildMs: number
  changeBytes: number
  gc: Record<'first' | 'last', { count: number; ms: number }>
}

/** The envelopes as the benchmark writes them: each after its length. */
export function encodeEnvelopes(envelopes: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(envelopes.reduce((n, e) => n + 4 + e.byteLength, 0))
  const view = new DataView(out.buffer)
  let at = 0
  for (const e of envelopes) {
    view.setUint32(at, e.byteLength)
    out.set(e, at + 4)
    at += 4 + e.byteLength
  }
  return out
}

function decodeEnvelopes(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: Uint8Array[] = []
  for (let at = 0; at < bytes.byteLength; ) {
    const n = view.getUint32(at)
    out.push(bytes.slice(at + 4, at + 4 + n))
    at += 4 + n
  }
  return out
}

export const timings = (): Timings => ({ wall: [], cpu: [] })

export function cpuNow(): number {
  const u = process.threadCpuUsage()
  return (u.user + u.system) / 1000
}

export function timed<T>(into: Timings, fn: () => T): T {
  const c = cpuNow()
  const t = performance.now()
  const out = fn()
  into.wall.push(performance.now() - t)
  into.cpu.push(cpuNow() - c)
  return out
}

/** Full collections since the last call (the observer hears of them once the event loop turns). */
let majors = { count: 0, ms: 0 }
function watchCollections(): void {
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        majors.count++
        majors.ms += e.duration
      }
    }
  }).observe({ entryTypes: ['gc'] })
}
async function collections(): Promise<{ count: number; ms: number }> {
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setTimeout(resolve, 10))
  const out = { count: majors.count, ms: Math.round(majors.ms) }
  majors = { count: 0, ms: 0 }
  return out
}

async function replica(plan: ReplicaPlan, envelopes: Uint8Array[]): Promise<ReplicaResult> {
  const progress = (line: string) => process.stderr.write(`[policy] ${plan.label}: ${line}\n`)
  // warm up the verification and Automerge code paths on a throwaway copy of the first changes,
  // so that the first changes measured are not the ones that compile them
  const warm = new PolicyDocument(plan.space)
  for (const env of envelopes.slice(0, plan.head)) warm.applyEnvelope(env)
  const document = new PolicyDocument(plan.space)
  const apply = (into: Timings, env: Uint8Array, i: number) => {
    const outcome = timed(into, () => document.applyEnvelope(env))
    if (outcome.status !== 'applied') throw new Error(`envelope ${i} was not applied: ${outcome.status}`)
  }
  await collections()
  const head = timings()
  for (let i = 0; i < plan.head; i++) apply(head, envelopes[i], i)
  const headGc = await collections()
  progress(`applied the first ${plan.head} envelopes one at a time`)
  const pages = { ...timings(), size: [] as number[] }
  const t0 = performance.now()
  for (let i = plan.head; i < plan.history; i += MAX_SYNC_PAGE) {
    const page = envelopes.slice(i, Math.min(plan.history, i + MAX_SYNC_PAGE))
    const { outcomes } = timed(pages, () => document.applyEnvelopes(page))
    if (outcomes.some(o => o.status !== 'applied')) throw new Error(`page at ${i} was not applied whole`)
    pages.size.push(page.length)
    if (pages.size.length % 4 === 0 || i + page.length >= plan.history) {
      progress(
        `applied ${i + page.length}/${plan.history} in pages (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      )
    }
  }
  const pagesGc = await collections()
  const tail = timings()
  for (let i = plan.history; i < envelopes.length; i++) apply(tail, envelopes[i], i)
  const tailGc = await collections()
  progress(`applied the last ${envelopes.length - plan.history} envelopes one at a time`)
  const memory = process.memoryUsage()
  return {
    head,
    pages,
    tail,
    gc: { head: headGc, pages: pagesGc, tail: tailGc },
    grants: document.state.grants.size,
    revocations: document.state.revocations.size,
    heads: document.heads(),
    rssMiB: Math.round(memory.rss / 2 ** 20),
    heapMiB: Math.round(memory.heapUsed / 2 ** 20),
  }
}

async function automerge(plan: ReplicaPlan, envelopes: Uint8Array[]): Promise<AutomergeResult> {
  // the change bytes openEnvelope would return; the benchmark's replica verifies every signature
  const changes = envelopes.slice(0, plan.history).map(e => {
    const outer = decodeCanonical(e, MAX_ENVELOPE_BYTES) as { body: Uint8Array }
    return (decodeCanonical(outer.body, MAX_ENVELOPE_BYTES) as { change: Uint8Array }).change
  })
  const tenth = Math.floor((changes.length - 1) / 10)
  Automerge.getBackend(Automerge.init()).applyChanges(changes.slice(0, 1 + tenth))
  const backend = Automerge.getBackend(Automerge.init())
  await collections()
  const first = timings()
  for (const change of changes.slice(0, 1 + tenth)) timed(first, () => backend.applyChanges([change]))
  const firstGc = await collections()
  const earlySave = backend.save().byteLength
  backend.applyChanges(changes.slice(1 + tenth, changes.length - tenth))
  await collections()
  const last = timings()
  for (const change of changes.slice(changes.length - tenth)) timed(last, () => backend.applyChanges([change]))
  const lastGc = await collections()
  let t0 = performance.now()
  const save = backend.save().byteLength
  const saveMs = performance.now() - t0
  t0 = performance.now()
  const rebuilt = Automerge.getBackend(Automerge.init())
  rebuilt.applyChanges(changes)
  const rebuildMs = performance.now() - t0
  if (rebuilt.save().byteLength !== save) throw new Error('the rebuilt documents differ')
  process.stderr.write(`[policy] ${plan.label}: Automerge alone done\n`)
  return {
    first,
    last,
    earlySave,
    save,
    saveMs,
    rebuildMs,
    changeBytes: changes.reduce((n, c) => n + c.byteLength, 0),
    gc: { first: firstGc, last: lastGc },
  }
}

if (import.meta.main) {
  watchCollections()
  const dir = process.argv[2]
  const plan = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')) as ReplicaPlan
  const envelopes = decodeEnvelopes(readFileSync(join(dir, 'envelopes.bin')))
  const result = plan.mode === 'replica' ? await replica(plan, envelopes) : await automerge(plan, envelopes)
  process.stdout.write(JSON.stringify(result))
}
