/**
 * The control plane at scale: a space holding 100 000 grants (to n/5 subjects, over 8 streams,
 * with a few hundred revocations mixed in), built through the signed record and document paths.
 * 1. changes applied per second at 100 000 grants: the owner writes the grants with
 *    PolicyDocument.write, ten grants per change, and `edge` changes more on top (in this
 *    process, which also holds every signed record it writes); the envelopes go to a file, and a
 *    replica in a process of its own (bench/policy-replica.ts), as a peer that holds only this
 *    space would be, applies the first `edge` changes one at a time with applyEnvelope (a
 *    document near empty), the rest of the history in pages of MAX_SYNC_PAGE with
 *    applyEnvelopes (as catch-up and a restart do), then the `edge` changes written after the
 *    100 000 grants one at a time again (as gossip delivers them). All verify the envelope's and
 *    every record's signature. Whether the cost per change depends on the size of the document
 *    is reported as on-thread CPU time per change: at 100 000 grants against near the start,
 *    one by one; the last tenth of the pages against the first; the last tenth of the owner's
 *    writes against the first; and the same for Automerge alone (in a process of its own).
 *    The replica runs twice: as node runs it, and with V8's
 *    --external-memory-accounted-in-global-limit. Without that flag, every time Automerge's
 *    WebAssembly memory grows V8 counts the whole grown memory as newly allocated external
 *    memory, and past its 64 MiB allowance that starts a full collection of the JavaScript heap:
 *    once the document is large, nearly every growth does, so the cost of a change rises with
 *    the heap the process holds (its policy state, its envelopes), not with the document. The
 *    full collections counted in each phase are in the notes;
 * 2. access checks per second: PolicyState.evaluateAccess for the same random queries (allowed,
 *    no grant, stream or form not covered, revoked) on a 100 000-grant state and on a
 *    1 000-grant state built the same way, interleaved in the same run: evaluation is indexed
 *    by subject, so the ratio stays near 1 (a scan would make it near 0.01). These states are
 *    built by adding the signed records, decoded as a node decodes them, to a PolicyState
 *    directly (what PolicyDocument does once it has verified them); the same queries on the
 *    owner's document of pass 1 must give the same answers;
 * 3. stored size per grant: the envelopes of the 100 000 grants (what a node keeps in LevelDB)
 *    and Automerge.save of the document made of their changes, against the same after the first
 *    tenth.
 *
 * Setup signs the grants with node's native Ed25519 (byte-identical to signRecord, which uses
 * @noble/curves: checked at start), because noble would take minutes for 100 000 grants.
 */

import { spawn } from 'node:child_process'
import { createPrivateKey, generateKeyPairSync, type KeyObject, sign as nodeSign } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { base58 } from '@scure/base'
import { bytesEqual, decodeCanonical, encodeCanonical } from '../crypto/encoding.ts'
import { randomBytes } from '../crypto/hash.ts'
import {
  didFromPublicKey,
  generateSealingKeyPair,
  generateSigningKeyPair,
  type SigningKeyPair,
} from '../crypto/identity.ts'
import { type OpenedRecord, recordId, signRecord } from '../crypto/signed.ts'
import { type AppliedRecord, actorFor, MAX_ENVELOPE_BYTES, PolicyDocument } from '../protocols/policy/document.ts'
import {
  createDeviceCert,
  createGenesis,
  createRevocation,
  createStream,
  type DeviceCert,
  type Grant,
  openGrant,
  type SpaceGenesis,
  TAGS,
} from '../protocols/policy/records.ts'
import { type AccessQuery, PolicyState } from '../protocols/policy/state.ts'
import { MAX_SYNC_PAGE } from '../protocols/sync/messages.ts'
// deterministic (mulberry32): every run builds the same shapes and asks the same queries
import { mulberry32 as rng } from '../sim/random.ts'
import { type Figure, figure, percentile, round, type SuiteOptions, versus } from './harness.ts'
import {
  type AutomergeResult,
  encodeEnvelopes,
  type ReplicaPlan,
  type ReplicaResult,
  type Timings,
  timed,
  timings,
} from './policy-replica.ts'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const T0 = Date.UTC(2025, 0, 1)
/** when access is evaluated: inside every grant's window */
const NOW = T0 + 30 * DAY
const LINES = 4
const STREAMS = Array.from({ length: LINES }, (_, l) => [`line-${l + 1}.temp`, `line-${l + 1}.hum`]).flat()
const GRANTS_PER_CHANGE = 10
/** changes per CPU-time sample */
const BLOCK = 10
/** the subjects whose access is checked: identical grants in every space */
const POOL = 100
const POOL_GRANTS_EACH = 3
/** subjects with a device certificate but no grant */
const POOL_WITHOUT_GRANTS = 20
/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const utf8 = new TextEncoder()

type Signer = SigningKeyPair & { did: string; key: KeyObject }

const progress = (line: string) => process.stderr.write(`[policy] ${line}\n`)
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
const label = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n))
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

function newSigner(): Signer {
  const kp = generateSigningKeyPair()
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, kp.secretKey]), format: 'der', type: 'pkcs8' })
  return { ...kp, did: didFromPublicKey(kp.publicKey), key }
}

/** A subject's did:key (its secret key is never needed). */
function newSubject(): string {
  const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' })
  return didFromPublicKey(new Uint8Array(Buffer.from(jwk.x!, 'base64url')))
}

/** A peer id shaped like libp2p's Ed25519 ones ("12D3KooW…"). */
function newPeerId(): string {
  const mh = new Uint8Array(38)
  mh.set([0x00, 0x24, 0x08, 0x01, 0x12, 0x20], 0)
  mh.set(randomBytes(32), 6)
  return base58.encode(mh)
}

/** signRecord with node's native Ed25519: the same bytes (Ed25519 is deterministic), much faster. */
function signFast<T extends { iss: string }>(tag: string, body: T, signer: Signer): OpenedRecord<T> {
  const bodyBytes = encodeCanonical(body)
  const t = utf8.encode(tag)
  const message = new Uint8Array(t.length + 1 + bodyBytes.length)
  message.set(t, 0)
  message.set(bodyBytes, t.length + 1)
  const sig = new Uint8Array(nodeSign(null, message, signer.key))
  const bytes = encodeCanonical({ body: bodyBytes, sig })
  return { body, bodyBytes, bytes, sig, issuer: body.iss, id: recordId(tag, bodyBytes) }
}

function grantBody(owner: Signer, space: string, sub: string, r: () => number, iat: number): Grant {
  const s = STREAMS[Math.floor(r() * STREAMS.length)]
  return {
    t: 'grant',
    iss: owner.did,
    space,
    sub,
    // a stream, or the prefix of its line
    streams: r() < 0.25 ? [`${s.split('.')[0]}.*`] : [s],
    forms: r() < 0.5 ? ['raw'] : ['raw', 'hashed'],
    nbf: T0,
    exp: T0 + 365 * DAY,
    iat,
    nonce: randomBytes(16),
  }
}

/** The queried subjects, shared by every space so that the same queries meet the same grants. */
interface Pool {
  withGrants: string[]
  withoutGrants: string[]
  devices: Map<string, OpenedRecord<DeviceCert>>
}

function makePool(): Pool {
  const devices = new Map<string, OpenedRecord<DeviceCert>>()
  const make = () => {
    const p = newSigner()
    devices.set(p.did, createDeviceCert(p, newPeerId(), generateSealingKeyPair().publicKey, T0 - DAY, T0 + 365 * DAY))
    return p.did
  }
  return {
    withGrants: Array.from({ length: POOL }, make),
    withoutGrants: Array.from({ length: POOL_WITHOUT_GRANTS }, make),
    devices,
  }
}

interface Space {
  n: number
  genesis: OpenedRecord<SpaceGenesis>
  /** the records in changes as the owner writes them: the streams first, then ten grants each */
  changes: AppliedRecord[][]
  grants: number
  revocations: number
  subjects: number
  signMs: number
}

/**
 * A space of `n` grants: POOL × POOL_GRANTS_EACH to the pool (the same shapes in every space,
 * every tenth revoked by id, every twentieth pool subject revoked as a whole), the rest to
 * n/5 other subjects, with n/400 grant and n/2000 subject revocations among them; ten grants
 * per change, in random order, revocations riding in a change after their target's (a subject
 * revocation after its subject's last grant: it ends every grant written before it).
 */
function makeSpace(owner: Signer, n: number, pool: Pool): Space {
  const t0 = performance.now()
  const genesis = createGenesis(owner, `bench-${label(n)}`, [newPeerId()], T0)
  const space = genesis.id
  const poolRandom = rng(7)
  const random = rng(1000 + n)
  const grant = (sub: string, r: () => number, iat: number) =>
    signFast(TAGS.grant, grantBody(owner, space, sub, r, iat), owner)
  const poolGrants: OpenedRecord<Grant>[] = []
  for (const sub of pool.withGrants) {
    for (let k = 0; k < POOL_GRANTS_EACH; k++) poolGrants.push(grant(sub, poolRandom, T0 + poolGrants.length))
  }
  const poolRevoked = poolGrants.filter((_, i) => i % 10 === 3).map(g => g.id)
  const poolSubjectsRevoked = pool.withGrants.filter((_, i) => i % 20 === 7)

  const fillerCount = Math.max(0, n - poolGrants.length)
  const others = Array.from({ length: Math.max(1, Math.round(n / 5)) }, newSubject)
  const fillers: OpenedRecord<Grant>[] = []
  for (let i = 0; i < fillerCount; i++) {
    fillers.push(grant(others[Math.floor(random() * others.length)], random, T0 + HOUR + i))
  }
  const all = [...poolGrants, ...fillers]
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[all[i], all[j]] = [all[j], all[i]]
  }
  const changes: AppliedRecord[][] = []
  const changeOf = new Map<string, number>()
  for (let i = 0; i < all.length; i += GRANTS_PER_CHANGE) {
    const chunk = all.slice(i, i + GRANTS_PER_CHANGE)
    for (const g of chunk) changeOf.set(g.id, changes.length)
    changes.push(chunk.map(record => ({ kind: 'grant', record })))
  }
  /** Into a random change from `after` on (never before: a revocation ends what was written before it). */
  const place = (record: AppliedRecord, after: number) => {
    let c = after + Math.floor(random() * (changes.length - after))
    while (c < changes.length && changes[c].length >= 16) c++
    if (c === changes.length) c = after
    while (changes[c].length >= 16) c++
    changes[c].push(record)
  }
  /** the last change that holds a grant of each subject */
  const lastChangeOf = new Map<string, number>()
  for (const g of all) lastChangeOf.set(g.body.sub, Math.max(lastChangeOf.get(g.body.sub) ?? 0, changeOf.get(g.id)!))
  const revokeIat = T0 + 2 * HOUR
  let revocations = 0
  const grantTargets = [
    ...poolRevoked,
    ...Array.from({ length: Math.floor(n / 400) }, () => fillers[Math.floor(random() * fillers.length)].id),
  ]
  for (const id of new Set(grantTargets)) {
    place({ kind: 'revocation', record: createRevocation(owner, space, { grant: id }, revokeIat) }, changeOf.get(id)!)
    revocations++
  }
  const subjectTargets = [
    ...poolSubjectsRevoked,
    ...Array.from({ length: Math.floor(n / 2000) }, () => others[Math.floor(random() * others.length)]),
  ]
  for (const sub of new Set(subjectTargets)) {
    place(
      { kind: 'revocation', record: createRevocation(owner, space, { subject: sub }, revokeIat) },
      lastChangeOf.get(sub) ?? 0,
    )
    revocations++
  }
  const streams: AppliedRecord[] = STREAMS.map((name, i) => ({
    kind: 'stream',
    record: createStream(owner, space, name, HOUR, T0 + i),
  }))
  const signMs = performance.now() - t0
  progress(`${label(n)}: ${all.length} grants and ${revocations} revocations signed in ${seconds(signMs)}`)
  return {
    n,
    genesis,
    changes: [streams, ...changes],
    grants: all.length,
    revocations,
    subjects: others.length + pool.withGrants.length,
    signMs,
  }
}

const TAG_OF = { stream: TAGS.stream, grant: TAGS.grant, revocation: TAGS.revocation } as const

/**
 * A record as openSignedRecord returns it (bodies decoded from CBOR, so objects of the shapes a
 * node holds), without verifying the signature again.
 */
function decoded(r: AppliedRecord): AppliedRecord {
  if (r.kind !== 'stream' && r.kind !== 'grant' && r.kind !== 'revocation') throw new Error(`unexpected ${r.kind}`)
  const outer = decodeCanonical(r.record.bytes, MAX_ENVELOPE_BYTES) as { body: Uint8Array; sig: Uint8Array }
  const body = decodeCanonical(outer.body, MAX_ENVELOPE_BYTES) as { iss: string }
  const id = recordId(TAG_OF[r.kind], outer.body)
  if (id !== r.record.id) throw new Error('decoding changed a record')
  const record = { body, bodyBytes: outer.body, bytes: r.record.bytes, sig: outer.sig, issuer: body.iss, id }
  return { kind: r.kind, record } as AppliedRecord
}

/** The policy state of a space, built by adding its (decoded) records directly. */
function directState(s: Space): PolicyState {
  const state = new PolicyState(s.genesis)
  for (const r of s.changes.flat().map(decoded)) {
    const res =
      r.kind === 'stream'
        ? state.addStream(r.record)
        : r.kind === 'grant'
          ? state.addGrant(r.record)
          : r.kind === 'revocation'
            ? state.addRevocation(r.record)
            : undefined
    if (res?.added !== true) throw new Error(`record ${r.record.id} was not added`)
  }
  return state
}

function tick(what: string, i: number, total: number, t0: number): void {
  const step = Math.max(1, Math.floor(total / 10))
  if ((i + 1) % step === 0 || i + 1 === total) {
    progress(`${what} ${i + 1}/${total} changes (${seconds(performance.now() - t0)})`)
  }
}

/** The owner writes every change of the space; time per write. */
function write(owner: Signer, s: Space): { document: PolicyDocument; writeMs: Timings } {
  const { document } = PolicyDocument.create(owner, actorFor(owner.did, 'bench'), s.genesis, T0)
  const writeMs = timings()
  const t0 = performance.now()
  for (const [i, change] of s.changes.entries()) {
    const { outcome } = timed(writeMs, () => document.write(owner, change, T0 + 3 * HOUR))
    if (outcome.status !== 'applied' || outcome.records.length !== change.length) {
      throw new Error(`change ${i} was not applied whole: ${outcome.status}`)
    }
    tick(`${label(s.n)}: owner wrote`, i, s.changes.length, t0)
  }
  return { document, writeMs }
}

/** V8's flag that stops WebAssembly memory growth from starting full collections on its own (see the header). */
const GLOBAL_LIMIT_FLAG = '--external-memory-accounted-in-global-limit'

/** Run bench/policy-replica.ts in a process of its own on the envelopes in `dir`; its result. */
async function inChild<T>(dir: string, plan: ReplicaPlan, nodeFlags: string[] = []): Promise<T> {
  await writeFile(join(dir, 'plan.json'), JSON.stringify(plan))
  const child = spawn(process.execPath, [...nodeFlags, join(import.meta.dirname, 'policy-replica.ts'), dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const out: Buffer[] = []
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  if (code !== 0) throw new Error(`${plan.label}: the replica process ended with ${code ?? signal}`)
  return JSON.parse(Buffer.concat(out).toString('utf8')) as T
}

function queries(pool: Pool, count: number): AccessQuery[] {
  const random = rng(4242)
  return Array.from({ length: count }, () => {
    const group = random() < 0.9 ? pool.withGrants : pool.withoutGrants
    const subject = group[Math.floor(random() * group.length)]
    return {
      subject,
      device: pool.devices.get(subject)!,
      stream: STREAMS[Math.floor(random() * STREAMS.length)],
      form: random() < 0.8 ? 'raw' : 'hashed',
    }
  })
}

/** Outcome counts of a pass over the queries: allowed, or the refusal code. */
function outcomes(state: PolicyState, qs: AccessQuery[]): string {
  const counts = new Map<string, number>()
  for (const q of qs) {
    const d = state.evaluateAccess(q, NOW)
    const key = d.allowed ? 'allowed' : d.code
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
}

function checksPerSecond(state: PolicyState, qs: AccessQuery[]): number {
  let allowed = 0
  const t0 = performance.now()
  for (const q of qs) if (state.evaluateAccess(q, NOW).allowed) allowed++
  const s = (performance.now() - t0) / 1000
  if (allowed === 0) throw new Error('no query was allowed')
  return qs.length / s
}

/** signFast gives what signRecord gives, and what it gives opens as a grant. */
function checkSigner(owner: Signer): void {
  const body = grantBody(owner, 'ab'.repeat(32), newSubject(), rng(1), T0)
  const fast = signFast(TAGS.grant, body, owner)
  if (!bytesEqual(fast.bytes, signRecord(TAGS.grant, body, owner).bytes) || openGrant(fast.bytes).id !== fast.id) {
    throw new Error('native signing does not give the bytes signRecord gives')
  }
}

export default async function policy({ quick }: SuiteOptions): Promise<Figure[]> {
  /** grants in the states that access checks run against, and in the history written and replicated */
  const n = quick ? 2_000 : 100_000
  /** changes applied one at a time at each end of a replica's history: near empty, and on top of it */
  const edge = quick ? 20 : 200
  const small = 1_000
  const rounds = quick ? 1 : 11
  const perRound = 10_000
  const started = performance.now()

  const owner = newSigner()
  checkSigner(owner)
  const pool = makePool()

  // warm up the signing, verification and Automerge code paths on a small throwaway space
  const warm = makeSpace(owner, POOL * POOL_GRANTS_EACH, pool)
  write(owner, warm)

  // 1. changes applied per second through the signed document path: the owner writes n grants
  // and `edge` changes more, a replica in a process of its own applies them
  const docSpace = makeSpace(owner, n + edge * GRANTS_PER_CHANGE, pool)
  const D = label(n)
  const { document, writeMs } = write(owner, docSpace)
  progress(`${D}: owner wrote ${writeMs.wall.length} changes in ${seconds(sum(writeMs.wall))}`)
  const envelopes = document.allEnvelopes()
  /** the genesis, the streams and the changes of the first n grants */
  const history = envelopes.length - edge
  // write's timings start at the streams change (the genesis is made by create)
  const historyWriteMs = { wall: writeMs.wall.slice(0, history - 1), cpu: writeMs.cpu.slice(0, history - 1) }
  const historyGrants = sum(docSpace.changes.slice(0, history - 1).map(c => c.filter(r => r.kind === 'grant').length))
  if (historyGrants !== n) throw new Error(`the history holds ${historyGrants} grants`)

  const dir = await mkdtemp(join(tmpdir(), 'edgeward-policy-bench-'))
  let replica: ReplicaResult
  let flagged: ReplicaResult
  let alone: AutomergeResult
  try {
    await writeFile(join(dir, 'envelopes.bin'), encodeEnvelopes(envelopes))
    const plan = { space: docSpace.genesis.id, head: 2 + edge, history }
    replica = await inChild<ReplicaResult>(dir, { ...plan, mode: 'replica', label: `${D} replica` })
    flagged = await inChild<ReplicaResult>(
      dir,
      { ...plan, mode: 'replica', label: `${D} replica, ${GLOBAL_LIMIT_FLAG}` },
      [GLOBAL_LIMIT_FLAG],
    )
    alone = await inChild<AutomergeResult>(dir, { ...plan, mode: 'automerge', label: `${D} Automerge alone` })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  const ownerHeads = document.heads().sort().join()
  for (const r of [replica, flagged]) {
    if (r.heads.sort().join() !== ownerHeads) throw new Error("a replica's heads differ from the owner's")
    if (r.grants !== docSpace.grants || r.revocations !== docSpace.revocations) {
      throw new Error('a replica does not hold every grant and revocation')
    }
  }

  // 3. stored size: the envelopes as a node stores them, and the Automerge document they make
  const historyEnvelopes = envelopes.slice(0, history)
  const envelopeBytes = sum(historyEnvelopes.map(e => e.byteLength))
  const tenth = Math.floor((history - 1) / 10)
  // the document after the first tenth: the size per grant of a smaller space, for comparison
  const early = {
    grants: sum(docSpace.changes.slice(0, tenth).map(c => c.filter(r => r.kind === 'grant').length)),
    save: alone.earlySave,
    envelopes: sum(envelopes.slice(0, 1 + tenth).map(e => e.byteLength)),
  }
  const records = docSpace.changes.slice(0, history - 1).flat()
  const recordBytes = sum(records.map(r => r.record.bytes.byteLength))
  const grantBytes = sum(records.filter(r => r.kind === 'grant').map(r => r.record.bytes.byteLength))
  progress(
    `${D}: ${history} envelopes of ${envelopeBytes} bytes; Automerge.save ${alone.save} bytes; ` +
      `all changes applied in one call in ${seconds(alone.rebuildMs)}`,
  )

  // 2. access checks: the same queries on the large and the small state, rounds interleaved
  const bigSpace = makeSpace(owner, n, pool)
  const smallSpace = makeSpace(owner, small, pool)
  const t0 = performance.now()
  const bigState = directState(bigSpace)
  const smallState = directState(smallSpace)
  progress(`states of ${label(n)} and ${label(small)} grants indexed in ${seconds(performance.now() - t0)}`)
  const qs = queries(pool, perRound)
  const mix = outcomes(bigState, qs)
  // which refusal a reader is given depends on the order the grants were written in, which differs
  // from space to space: the allowed answers must not
  const allowedOnly = (state: PolicyState) =>
    outcomes(state, qs)
      .split(', ')
      .filter(x => x.startsWith('allowed '))[0]
  for (const [name, state] of [
    [label(small), smallState],
    [`the owner's document of ${D}`, document.state],
  ] as const) {
    if (allowedOnly(state) !== allowedOnly(bigState)) throw new Error(`the same queries gave other answers on ${name}`)
  }
  const states = [bigState, smallState, document.state]
  for (let i = 0; i < 3; i++) for (const state of states) checksPerSecond(state, qs)
  const rates = states.map((): number[] => [])
  for (let r = 0; r < rounds; r++) {
    // rotate the order, so that no state always runs first
    for (let k = 0; k < states.length; k++) {
      const i = (r + k) % states.length
      rates[i].push(checksPerSecond(states[i], qs))
    }
  }
  const [bigRates, smallRates, documentRates] = rates
  progress(
    `checks: ${round(percentile(bigRates, 50), 0)}/s at ${label(n)}, ${round(percentile(smallRates, 50), 0)}/s ` +
      `at ${label(small)}, ${round(percentile(documentRates, 50), 0)}/s on the owner's document`,
  )
  progress(`done in ${seconds(performance.now() - started)}`)

  const changeCount = history - 1
  const recordCount = records.length
  const shape =
    `${n} grants to ${docSpace.subjects} subjects over ${STREAMS.length} streams, ` +
    `${docSpace.revocations} revocations mixed in (with those of the ${edge} changes after them), ` +
    `${GRANTS_PER_CHANGE} grants per change (${changeCount} changes, ${recordCount} records with the streams)`
  const pass = (t: Timings) => `one pass, ${seconds(sum(t.wall))} (${seconds(sum(t.cpu))} CPU on the thread)`
  const perSecond = (count: number, t: Timings) => [count / (sum(t.wall) / 1000)]
  /**
   * On-thread CPU time per change, averaged over blocks of BLOCK consecutive changes (one change
   * is shorter than the clock's resolution), so the samples do not depend on what else the
   * machine runs; and changes per second of wall-clock time over the same blocks.
   */
  const blocks = (t: Timings) => {
    const cpu: number[] = []
    const rate: number[] = []
    for (let i = 0; i + BLOCK <= t.cpu.length; i += BLOCK) {
      cpu.push(sum(t.cpu.slice(i, i + BLOCK)) / BLOCK)
      rate.push(BLOCK / (sum(t.wall.slice(i, i + BLOCK)) / 1000))
    }
    return { cpu, rate }
  }
  const tenths = (t: Timings) => {
    const { cpu } = blocks(t)
    const k = Math.max(1, Math.floor(cpu.length / 10))
    return { last: cpu.slice(cpu.length - k), first: cpu.slice(0, k) }
  }
  const cpuNote = `on-thread CPU time per change, averaged over blocks of ${BLOCK} changes`
  const gcNote = (g: { count: number; ms: number }) => `${g.count} full collections, ${g.ms} ms`
  // the replica's first changes are the genesis and the streams, which carry no grants
  const near = (r: ReplicaResult) => blocks({ wall: r.head.wall.slice(2), cpu: r.head.cpu.slice(2) })
  const onTop = (r: ReplicaResult) => blocks(r.tail)
  const startName = `near the start (first ${edge} changes)`
  const oneByOne = (r: ReplicaResult, name: string, note: string) => {
    const f = versus(name, 'ms CPU/change', onTop(r).cpu, startName, near(r).cpu)
    f.note =
      `applyEnvelope, one at a time, of the ${edge} changes written after the ${D} grants, at a replica in a ` +
      `process of its own that applied the history before them (in pages), against the first ${edge} changes ` +
      `of the history applied the same way to an empty document; ${cpuNote}; ${note}; on top: ` +
      `${gcNote(r.gc.tail)}, near the start: ${gcNote(r.gc.head)}; the replica process ended at ` +
      `${r.rssMiB} MiB RSS, ${r.heapMiB} MiB JavaScript heap`
    return f
  }
  /** CPU time per change of each page, its last tenth of pages against the first */
  const pageTenths = (r: ReplicaResult) => {
    const perPage = r.pages.cpu.map((c, i) => c / r.pages.size[i])
    const k = Math.max(1, Math.floor(perPage.length / 10))
    return { last: perPage.slice(perPage.length - k), first: perPage.slice(0, k) }
  }
  const inPages = (r: ReplicaResult, name: string, note: string) => {
    const t = pageTenths(r)
    const f = versus(name, 'ms CPU/change', t.last, 'first 10%', t.first)
    const changes = sum(r.pages.size)
    f.note =
      `applyEnvelopes in pages of ${MAX_SYNC_PAGE}, CPU time per change of each page, the last tenth of the ` +
      `pages (document near ${D} grants) against the first; ${note}; ${changes} changes, ` +
      `${round(sum(r.pages.cpu) / changes, 2)} ms CPU per change over all pages; ${gcNote(r.gc.pages)}`
    return f
  }
  const flagNote =
    `node started with ${GLOBAL_LIMIT_FLAG}: growing Automerge's WebAssembly memory no longer starts a full ` +
    'collection of the JavaScript heap on its own'
  const checkFigure = versus(
    `access checks at ${label(n)} grants`,
    'checks/s',
    bigRates,
    `same checks at ${label(small)} grants`,
    smallRates,
  )
  checkFigure.note =
    `evaluateAccess without a named grant, ${perRound} random queries per round, ${rounds} round(s) interleaved; ` +
    `both states built the same way: the signed records, decoded as a node decodes them, added to a PolicyState ` +
    `(${bigSpace.grants} grants to ${bigSpace.subjects} subjects, ${bigSpace.revocations} revocations; ` +
    `${smallSpace.grants} to ${smallSpace.subjects}, ${smallSpace.revocations}); ` +
    `${POOL + POOL_WITHOUT_GRANTS} queried subjects with device certs, ${POOL_GRANTS_EACH} grants each ` +
    `(none for ${POOL_WITHOUT_GRANTS}); outcomes: ${mix}, the same allowed on both and on the owner's document of ${D}; ` +
    `${round(1e6 / percentile(bigRates, 50), 2)} µs per check`
  const perGrant = (bytes: number, grants: number) => round(bytes / grants, 1)
  const envelopeFigure = versus(
    `policy envelopes stored per grant, ${D} grants`,
    'bytes/grant',
    [envelopeBytes / n],
    `first tenth, ${early.grants} grants`,
    [early.envelopes / early.grants],
  )
  envelopeFigure.note =
    `${history} signed envelopes, ${envelopeBytes} bytes in all (what a node keeps in LevelDB), per ` +
    'grant, against the same for the first tenth of the history; the signed records alone are ' +
    `${perGrant(recordBytes, n)} bytes per grant (a signed grant ${perGrant(grantBytes, n)}), ` +
    `the raw Automerge changes ${perGrant(alone.changeBytes, n)}`
  const saveFigure = versus(
    `policy Automerge.save per grant, ${D} grants`,
    'bytes/grant',
    [alone.save / n],
    `first tenth, ${early.grants} grants`,
    [alone.earlySave / early.grants],
  )
  saveFigure.note =
    `Automerge.save of the document made of the ${history} changes: ${alone.save} bytes ` +
    `(save ${round(alone.saveMs, 0)} ms), against the document after the first tenth of them`
  const automergeFigure = versus(
    `Automerge.applyChanges alone per change, last 10% of ${D}`,
    'ms/change',
    alone.last.wall,
    'first 10%',
    // the first change is the genesis
    alone.first.wall.slice(1),
  )
  automergeFigure.note =
    'the same changes applied one at a time to a bare Automerge document in a process of its own (no ' +
    'signatures, no policy; no JavaScript copy of the document, as PolicyDocument keeps none), as ' +
    `applyEnvelope applies them, the middle of the history in one call; wall-clock time per change ` +
    `(${round(sum(alone.last.cpu) / alone.last.cpu.length, 2)} ms CPU per change over the last tenth, ` +
    `${round(sum(alone.first.cpu) / alone.first.cpu.length, 2)} over the first; full collections: ` +
    `${gcNote(alone.gc.last)} over the last tenth, ${gcNote(alone.gc.first)} over the first); all ${history} ` +
    `changes in one applyChanges call take ${seconds(alone.rebuildMs)}`
  const writeTenths = tenths(historyWriteMs)
  const writeFigure = versus(
    `policy write per change, last 10% of ${D}`,
    'ms CPU/change',
    writeTenths.last,
    'first 10%',
    writeTenths.first,
  )
  writeFigure.note =
    `PolicyDocument.write of 10 grants: the last tenth of the changes (document near ${D} grants) against ` +
    `the first tenth; ${cpuNote}; in the benchmark's own process, which also holds every signed record ` +
    `it writes (what the full collections that WebAssembly memory growth starts have to walk)`
  const replicaRate = versus(
    `policy apply one by one at a replica, at ${D} grants`,
    'changes/s',
    onTop(replica).rate,
    startName,
    near(replica).rate,
  )
  replicaRate.note =
    `the same changes as "policy apply per change at a replica, at ${D} grants", changes per second of ` +
    `wall-clock time over blocks of ${BLOCK} (${edge * GRANTS_PER_CHANGE} records in each set)`
  return [
    figure(`policy write at the owner, ${D} grants`, 'changes/s', perSecond(changeCount, historyWriteMs), {
      note:
        `PolicyDocument.write of pre-signed records: ${shape}; ${pass(historyWriteMs)}; write signs the ` +
        `envelope, then applies it as a replica would (verifies it and every record)`,
    }),
    figure(`policy write at the owner, ${D} grants`, 'records/s', perSecond(recordCount, historyWriteMs), {
      note: 'the same pass as changes/s',
    }),
    writeFigure,
    replicaRate,
    oneByOne(replica, `policy apply per change at a replica, at ${D} grants`, 'node as a peer runs it'),
    figure(
      `policy apply in pages at a fresh replica, ${D} grants`,
      'changes/s',
      perSecond(sum(replica.pages.size), replica.pages),
      {
        note:
          `applyEnvelopes of the history after its first ${edge} changes in pages of ${MAX_SYNC_PAGE} (what ` +
          `catch-up and a restart do), at a replica in a process of its own: every envelope and record ` +
          `verified and checked on its own, one Automerge call per run of changes; ${pass(replica.pages)}`,
      },
    ),
    inPages(replica, `policy apply in pages per change, last 10% of ${D}`, 'node as a peer runs it'),
    oneByOne(flagged, `policy apply per change at a replica, at ${D} grants, ${GLOBAL_LIMIT_FLAG}`, flagNote),
    inPages(flagged, `policy apply in pages per change, last 10% of ${D}, ${GLOBAL_LIMIT_FLAG}`, flagNote),
    automergeFigure,
    checkFigure,
    figure(`access checks on the owner's document of ${D} grants`, 'checks/s', documentRates, {
      note:
        `the same queries on the state the owner's PolicyDocument built (write applies each envelope as a ` +
        `replica would), in the same rounds; ${round(1e6 / percentile(documentRates, 50), 2)} µs per check`,
    }),
    envelopeFigure,
    saveFigure,
  ]
}
