/**
 * The control plane at scale: spaces holding many grants (to n/5 subjects, over 8 streams, with
 * a few hundred revocations mixed in), built through the signed record and document paths.
 * 1. changes applied per second at 10 000 grants: the owner writes the grants with
 *    PolicyDocument.write, ten grants per change; a fresh replica applies every envelope with
 *    applyEnvelope, one at a time (as gossip delivers them); another applies them with
 *    applyEnvelopes in pages of MAX_SYNC_PAGE (as catch-up and a restart do). All verify the
 *    envelope's and every record's signature. Whether the cost per change depends on the size
 *    of the document is reported as the CPU time per change in the last tenth of each pass
 *    against the first, next to the same for Automerge alone (the grants live in 256 shards,
 *    so a change only touches small maps);
 * 2. access checks per second: PolicyState.evaluateAccess for the same random queries (allowed,
 *    no grant, stream or form not covered, revoked) on a 100 000-grant state and on a
 *    1 000-grant state built the same way, interleaved in the same run: evaluation is indexed
 *    by subject, so the ratio stays near 1 (a scan would make it near 0.01). These states are
 *    built by adding the signed records, decoded as a node decodes them, to a PolicyState
 *    directly (what PolicyDocument does once it has verified them); the same queries on the
 *    replica of pass 1 must give the same answers;
 * 3. stored size per grant: all envelopes (what a node keeps in LevelDB) and Automerge.save of
 *    the document rebuilt from their changes, against the same after the first tenth.
 *
 * Setup signs the grants with node's native Ed25519 (byte-identical to signRecord, which uses
 * @noble/curves: checked at start), because noble would take minutes for 100 000 grants.
 */

import { createPrivateKey, generateKeyPairSync, type KeyObject, sign as nodeSign } from 'node:crypto'
import * as Automerge from '@automerge/automerge'
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
import { type Figure, figure, percentile, round, type SuiteOptions, versus } from './harness.ts'

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

/** This thread's CPU time, ms (its resolution is a scheduler tick: sum it over many calls). */
function cpuNow(): number {
  const u = process.threadCpuUsage()
  return (u.user + u.system) / 1000
}

/** Per-call wall-clock and on-thread CPU time, ms: CPU time is what the calls cost, whatever else runs on the machine. */
interface Timings {
  wall: number[]
  cpu: number[]
}
const timings = (): Timings => ({ wall: [], cpu: [] })
function timed<T>(into: Timings, fn: () => T): T {
  const c = cpuNow()
  const t = performance.now()
  const out = fn()
  into.wall.push(performance.now() - t)
  into.cpu.push(cpuNow() - c)
  return out
}

/** Deterministic PRNG (mulberry32), so every run builds the same shapes and asks the same queries. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

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
 * per change, in random order, revocations riding in a change after their target's.
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
  const place = (record: AppliedRecord, after: number) => {
    let c = after + Math.floor(random() * (changes.length - after))
    while (changes[c].length >= 16) c = (c + 1) % changes.length
    changes[c].push(record)
  }
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
    place({ kind: 'revocation', record: createRevocation(owner, space, { subject: sub }, revokeIat) }, 0)
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

/** A fresh replica applies every envelope, in the order the owner made them; time per envelope. */
function replicate(s: Space, envelopes: Uint8Array[]): { replica: PolicyDocument; applyMs: Timings } {
  const replica = new PolicyDocument(s.genesis.id)
  const applyMs = timings()
  const t0 = performance.now()
  for (const [i, env] of envelopes.entries()) {
    const outcome = timed(applyMs, () => replica.applyEnvelope(env))
    if (outcome.status !== 'applied') throw new Error(`envelope ${i} was not applied: ${outcome.status}`)
    tick(`${label(s.n)}: replica applied`, i, envelopes.length, t0)
  }
  if (replica.state.grants.size !== s.grants || replica.state.revocations.size !== s.revocations) {
    throw new Error('the replica does not hold every grant and revocation')
  }
  return { replica, applyMs }
}

/** A fresh replica applies the envelopes in pages, one applyEnvelopes call each, as catch-up does; time per page. */
function replicateInPages(s: Space, envelopes: Uint8Array[]): { replica: PolicyDocument; pageMs: Timings } {
  const replica = new PolicyDocument(s.genesis.id)
  const pageMs = timings()
  const t0 = performance.now()
  for (let i = 0; i < envelopes.length; i += MAX_SYNC_PAGE) {
    const page = envelopes.slice(i, i + MAX_SYNC_PAGE)
    const { outcomes } = timed(pageMs, () => replica.applyEnvelopes(page))
    if (outcomes.some(o => o.status !== 'applied')) throw new Error(`page at ${i} was not applied whole`)
    tick(`${label(s.n)}: replica applied in pages`, i + page.length - 1, envelopes.length, t0)
  }
  if (replica.state.grants.size !== s.grants || replica.state.revocations.size !== s.revocations) {
    throw new Error('the paged replica does not hold every grant and revocation')
  }
  return { replica, pageMs }
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
  /** grants in the states that access checks run against */
  const n = quick ? 2_000 : 100_000
  /**
   * grants written and replicated through PolicyDocument. At 100 000 the passes take far longer
   * than the suite's budget in this process (the cost per change rises well above what the same
   * code costs in a small process: not yet explained), so they run at 10 000
   */
  const docN = quick ? 2_000 : 10_000
  const small = 1_000
  const rounds = quick ? 1 : 11
  const perRound = 10_000
  const started = performance.now()

  const owner = newSigner()
  checkSigner(owner)
  const pool = makePool()

  // warm up the signing, verification and Automerge code paths on a small throwaway space
  const warm = makeSpace(owner, POOL * POOL_GRANTS_EACH, pool)
  replicate(warm, write(owner, warm).document.allEnvelopes())

  // 1. changes applied per second through the signed document path
  const docSpace = makeSpace(owner, docN, pool)
  const D = label(docN)
  const { document, writeMs } = write(owner, docSpace)
  progress(`${D}: owner wrote ${writeMs.wall.length} changes in ${seconds(sum(writeMs.wall))}`)
  const envelopes = document.allEnvelopes()
  const { replica, applyMs: allApplyMs } = replicate(docSpace, envelopes)
  // the genesis change comes first and carries no records
  const applyMs = { wall: allApplyMs.wall.slice(1), cpu: allApplyMs.cpu.slice(1) }
  progress(`${D}: replica applied ${allApplyMs.wall.length} envelopes in ${seconds(sum(allApplyMs.wall))}`)
  const { replica: paged, pageMs } = replicateInPages(docSpace, envelopes)
  progress(`${D}: replica applied ${envelopes.length} envelopes in pages in ${seconds(sum(pageMs.wall))}`)
  if (paged.heads().sort().join() !== replica.heads().sort().join()) throw new Error('the paged replica differs')

  // 3. stored size: the envelopes as a node stores them, and the Automerge document they make;
  // and Automerge alone, one change at a time as applyEnvelope applies them (to the document
  // without a JavaScript copy of it), over the first and the last tenth of the history (the
  // middle in one call)
  const envelopeBytes = sum(envelopes.map(e => e.byteLength))
  // the change bytes openEnvelope would return; the replica above has verified every signature
  const rawChanges = envelopes.map(e => {
    const outer = decodeCanonical(e, MAX_ENVELOPE_BYTES) as { body: Uint8Array }
    return (decodeCanonical(outer.body, MAX_ENVELOPE_BYTES) as { change: Uint8Array }).change
  })
  const changeBytes = sum(rawChanges.map(c => c.byteLength))
  const tenth = Math.floor((rawChanges.length - 1) / 10)
  const automergeMs = { first: timings(), last: timings() }
  const backend = Automerge.getBackend(Automerge.init())
  for (const change of rawChanges.slice(0, 1 + tenth)) timed(automergeMs.first, () => backend.applyChanges([change]))
  // the document after the first tenth: the size per grant of a smaller space, for comparison
  const early = {
    grants: sum(docSpace.changes.slice(0, tenth).map(c => c.filter(r => r.kind === 'grant').length)),
    save: backend.save().byteLength,
    envelopes: sum(envelopes.slice(0, 1 + tenth).map(e => e.byteLength)),
  }
  backend.applyChanges(rawChanges.slice(1 + tenth, rawChanges.length - tenth))
  for (const change of rawChanges.slice(rawChanges.length - tenth))
    timed(automergeMs.last, () => backend.applyChanges([change]))
  let t0 = performance.now()
  const saved = backend.save()
  const saveMs = performance.now() - t0
  t0 = performance.now()
  const rebuilt = Automerge.getBackend(Automerge.init())
  rebuilt.applyChanges(rawChanges)
  const rebuildMs = performance.now() - t0
  if (rebuilt.save().byteLength !== saved.byteLength) throw new Error('the rebuilt documents differ')
  const records = docSpace.changes.flat()
  const recordBytes = sum(records.map(r => r.record.bytes.byteLength))
  const grantBytes = sum(records.filter(r => r.kind === 'grant').map(r => r.record.bytes.byteLength))
  progress(
    `${D}: ${envelopes.length} envelopes of ${envelopeBytes} bytes; Automerge.save ${saved.byteLength} bytes; ` +
      `all changes applied in one call in ${seconds(rebuildMs)}`,
  )

  // 2. access checks: the same queries on the large and the small state, rounds interleaved
  const bigSpace = makeSpace(owner, n, pool)
  const smallSpace = makeSpace(owner, small, pool)
  t0 = performance.now()
  const bigState = directState(bigSpace)
  const smallState = directState(smallSpace)
  progress(`states of ${label(n)} and ${label(small)} grants indexed in ${seconds(performance.now() - t0)}`)
  const qs = queries(pool, perRound)
  const mix = outcomes(bigState, qs)
  for (const [name, state] of [
    [label(small), smallState],
    [`the replica of ${D}`, replica.state],
  ] as const) {
    if (outcomes(state, qs) !== mix) throw new Error(`the same queries gave other answers on ${name}`)
  }
  const states = [bigState, smallState, replica.state]
  for (let i = 0; i < 3; i++) for (const state of states) checksPerSecond(state, qs)
  const rates = states.map((): number[] => [])
  for (let r = 0; r < rounds; r++) {
    // rotate the order, so that no state always runs first
    for (let k = 0; k < states.length; k++) {
      const i = (r + k) % states.length
      rates[i].push(checksPerSecond(states[i], qs))
    }
  }
  const [bigRates, smallRates, replicaRates] = rates
  progress(
    `checks: ${round(percentile(bigRates, 50), 0)}/s at ${label(n)}, ${round(percentile(smallRates, 50), 0)}/s ` +
      `at ${label(small)}, ${round(percentile(replicaRates, 50), 0)}/s on the replica of ${D}`,
  )
  progress(`done in ${seconds(performance.now() - started)}`)

  const changeCount = docSpace.changes.length
  const recordCount = records.length
  const shape =
    `${docSpace.grants} grants to ${docSpace.subjects} subjects over ${STREAMS.length} streams, ` +
    `${docSpace.revocations} revocations mixed in, ${GRANTS_PER_CHANGE} grants per change ` +
    `(${changeCount} changes, ${recordCount} records with the streams)`
  const pass = (t: Timings) => `one pass, ${seconds(sum(t.wall))} (${seconds(sum(t.cpu))} CPU on the thread)`
  const perSecond = (count: number, t: Timings) => [count / (sum(t.wall) / 1000)]
  /**
   * The cost per change in the last tenth of a pass against the first: on-thread CPU time per
   * change, averaged over blocks of BLOCK consecutive changes (one change is shorter than the
   * clock's resolution), so the samples do not depend on what else the machine runs.
   */
  const tenths = (t: Timings) => {
    const blocks: number[] = []
    for (let i = 0; i + BLOCK <= t.cpu.length; i += BLOCK) blocks.push(sum(t.cpu.slice(i, i + BLOCK)) / BLOCK)
    const k = Math.max(1, Math.floor(blocks.length / 10))
    return { last: blocks.slice(blocks.length - k), first: blocks.slice(0, k) }
  }
  const perChange = (name: string, unit: string, t: { last: number[]; first: number[] }, note: string) => {
    const f = versus(`${name}, last 10% of ${D}`, unit, t.last, 'first 10%', t.first)
    f.note = note
    return f
  }
  const cpuNote = `on-thread CPU time per change, averaged over blocks of ${BLOCK} changes`
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
    `(none for ${POOL_WITHOUT_GRANTS}); outcomes, identical on both and on the replica of ${D}: ${mix}; ` +
    `${round(1e6 / percentile(bigRates, 50), 2)} µs per check`
  const perGrant = (bytes: number, grants: number) => round(bytes / grants, 1)
  const envelopeFigure = versus(
    `policy envelopes stored per grant, ${D} grants`,
    'bytes/grant',
    [envelopeBytes / docSpace.grants],
    `first tenth, ${early.grants} grants`,
    [early.envelopes / early.grants],
  )
  envelopeFigure.note =
    `${envelopes.length} signed envelopes, ${envelopeBytes} bytes in all (what a node keeps in LevelDB), per ` +
    'grant, against the same for the first tenth of the history; the signed records alone are ' +
    `${perGrant(recordBytes, docSpace.grants)} bytes per grant (a signed grant ${perGrant(grantBytes, docSpace.grants)}), ` +
    `the raw Automerge changes ${perGrant(changeBytes, docSpace.grants)}`
  const saveFigure = versus(
    `policy Automerge.save per grant, ${D} grants`,
    'bytes/grant',
    [saved.byteLength / docSpace.grants],
    `first tenth, ${early.grants} grants`,
    [early.save / early.grants],
  )
  saveFigure.note =
    `Automerge.save of the document rebuilt from the ${rawChanges.length} changes: ${saved.byteLength} bytes ` +
    `(save ${round(saveMs, 0)} ms), against the document after the first tenth of them`
  return [
    figure(`policy write at the owner, ${D} grants`, 'changes/s', perSecond(changeCount, writeMs), {
      note:
        `PolicyDocument.write of pre-signed records: ${shape}; ${pass(writeMs)}; write signs the envelope, ` +
        `then applies it as a replica would (verifies it and every record)`,
    }),
    figure(`policy write at the owner, ${D} grants`, 'records/s', perSecond(recordCount, writeMs), {
      note: 'the same pass as changes/s',
    }),
    perChange(
      'policy write per change',
      'ms CPU/change',
      tenths(writeMs),
      `PolicyDocument.write of 10 grants: the last tenth of the changes (document near ${D} grants) against ` +
        `the first tenth; ${cpuNote}`,
    ),
    figure(`policy apply at a fresh replica, ${D} grants`, 'changes/s', perSecond(changeCount, applyMs), {
      note:
        `applyEnvelope of every envelope from allEnvelopes(), in order: verifies the envelope and every record, ` +
        `checks authority, applies the change to Automerge and indexes the state; ${pass(applyMs)}`,
    }),
    figure(`policy apply at a fresh replica, ${D} grants`, 'records/s', perSecond(recordCount, applyMs), {
      note: 'the same pass as changes/s',
    }),
    figure(`policy apply in pages at a fresh replica, ${D} grants`, 'changes/s', perSecond(envelopes.length, pageMs), {
      note:
        `applyEnvelopes of the same envelopes in pages of ${MAX_SYNC_PAGE} (what catch-up and a restart do): ` +
        `every envelope and record verified and checked on its own, one Automerge call per run of changes; ` +
        `${pass(pageMs)}; ${round(sum(pageMs.cpu) / envelopes.length, 3)} ms CPU per change`,
    }),
    perChange(
      'policy apply per change',
      'ms CPU/change',
      tenths(applyMs),
      `applyEnvelope: the last tenth of the history against the first; ${cpuNote}`,
    ),
    perChange(
      'Automerge.applyChanges alone per change',
      'ms/change',
      // the first change is the genesis
      { last: automergeMs.last.wall, first: automergeMs.first.wall.slice(1) },
      'the same changes applied one at a time to a bare Automerge document (no signatures, no policy; ' +
        'no JavaScript copy of the document, as PolicyDocument keeps none), as applyEnvelope applies them; ' +
        `wall-clock time per change ` +
        `(${round(sum(automergeMs.last.cpu) / automergeMs.last.cpu.length, 2)} ms CPU per change over the last ` +
        `tenth, ${round(sum(automergeMs.first.cpu) / automergeMs.first.cpu.length, 2)} over the first); all ` +
        `${rawChanges.length} changes in one applyChanges call take ${seconds(rebuildMs)}`,
    ),
    checkFigure,
    figure(`access checks on the replica of ${D} grants`, 'checks/s', replicaRates, {
      note:
        `the same queries on the state the replica built through applyEnvelope, in the same rounds; ` +
        `${round(1e6 / percentile(replicaRates, 50), 2)} µs per check`,
    }),
    envelopeFigure,
    saveFigure,
  ]
}
