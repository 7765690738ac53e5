/**
 * The audit plane of a node.
 *
 * As a key holder: an append-only RFC 9162 Merkle log in LevelDB of what this node did (key
 * releases with the requester's signed request, refusals, grants and revocations applied).
 * Appends are group-committed: every entry is in a synced batch, with the Merkle subtrees it
 * completes and its index keys, before `append` resolves, and key release waits for that. The
 * index (releases and refusals by space and stream, revocations by space) lets the history of
 * one object be read without a scan of the log; a log that grew without it (written before the
 * index existed) is indexed at start, up to a marker kept in the same batches. Signed tree heads go
 * out on the audit topic of every space this node holds, at an interval and after bursts.
 * Proofs are served on `/edgeward/audit-proof/1.0.0`.
 *
 * As a custodian: its log holds the releases of its shares; its heads go out on the audit topic
 * of every space it is a custodian of, and it answers the space's owner, and no one else, with
 * its entries that match a report's query on `/edgeward/audit/entries/1.0.0` (a page at a
 * time, each entry with an inclusion proof against a head signed for the request). A report
 * made on the owner's key holder asks every custodian of every set the space has had, and names
 * those that do not answer.
 *
 * As a witness: for every log of a space it belongs to (its key holders' and its custodians'),
 * the node keeps the latest head it accepted and checks each new head against it with a
 * consistency proof fetched from the log's holder. Two heads that cannot both be true are kept
 * as evidence, counted, published on the topic and shown in `status`. A head that no proof
 * links to the accepted one, because the holder refuses, does not answer or cannot be reached,
 * is kept and asked about again (at most once per `proofRetryMs`, and by a timer, backing off,
 * until it is settled); after `proofTries` failed requests in a row the log is unverifiable:
 * the two heads are kept on disk and the log is shown in `status` and in `/metrics` until a
 * valid proof links them (the log is verified again) or shows they cannot both be true
 * (equivocation). A holder that gossips a forked head and answers no proof request is so
 * reported rather than trusted.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { bytesEqual, decodeCanonical, encodeCanonical, toBase64url } from '../../crypto/encoding.ts'
import {
  consistencyProofFrom,
  inclusionProofFrom,
  leafHash,
  MerkleFrontier,
  verifyConsistency,
  verifyInclusion,
} from '../../crypto/merkle.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import {
  type CustodianLogSection,
  type CustodyReport,
  computeCustodyHoldings,
  shapes,
} from '../../protocols/audit/custody-report.ts'
import {
  type AuditEntry,
  decodeEntry,
  encodeEntry,
  type RefusalEntry,
  type ReleaseEntry,
  type RevocationEntry,
} from '../../protocols/audit/entries.ts'
import {
  AUDIT_ENTRIES_PROTOCOL,
  createEntriesRequest,
  decodeEntriesResponse,
  ENTRIES_PAGE_BYTES,
  ENTRIES_REQUEST_WINDOW_MS,
  type EntriesRequest,
  type EntriesResponse,
  encodeEntriesResponse,
  MAX_ENTRIES_PER_PAGE,
  MAX_ENTRIES_REQUEST_BYTES,
  MAX_ENTRIES_RESPONSE_BYTES,
  openEntriesRequest,
  type PagedEntry,
  queryOf,
} from '../../protocols/audit/entries-request.ts'
import {
  AUDIT_PROOF_PROTOCOL,
  auditTopic,
  decodeAuditMessage,
  decodeProofRequest,
  decodeProofResponse,
  encodeAuditMessage,
  encodeProofRequest,
  encodeProofResponse,
  MAX_PROOF_HASHES,
  openTreeHead,
  signTreeHead,
  type TreeHead,
} from '../../protocols/audit/heads.ts'
import { type AuditReport, buildReport, matchesQuery, type ReportQuery } from '../../protocols/audit/report.ts'
import type { AppliedRecord } from '../../protocols/policy/document.ts'
import { openDeviceCert } from '../../protocols/policy/records.ts'
import type { PolicyState } from '../../protocols/policy/state.ts'
import { NotFoundError } from '../errors.ts'
import type { Identity } from '../identity.ts'
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import { DURABLE, pad, type Store } from '../store.ts'
import type { PolicyService } from './policy.ts'
import { handle, request } from './stream-io.ts'

const log = logger('edgeward:audit')

/** What the audit service uses of a node; a node's components are one. */
export interface AuditComponents {
  /** gossip of tree heads on the audit topics, and the proof protocol both ways */
  libp2p: Pick<EdgewardLibp2p, 'services' | 'handle' | 'dialProtocol' | 'getConnections'>
  /** the `audit` sublevel, which only this service reads or writes (layout: `keys` below) */
  store: Pick<Store, 'audit'>
  /**
   * the keys that sign this node's tree heads and its requests for custodians' entries, the
   * peer id that names its log, and the device certificate that binds the two
   */
  identity: Pick<Identity, 'principal' | 'peerId' | 'device'>
  metrics: Metrics
  now: () => number
}

export interface AuditServiceOptions {
  /** how often to sign and publish a new head when the log has grown (default 5 s) */
  headIntervalMs?: number
  /** sign a head at once after this many new entries (default 100) */
  headBurst?: number
  /**
   * failed consistency proof requests in a row after which another key holder's log is shown as
   * unverifiable (default 3)
   */
  proofTries?: number
  /**
   * the least time between two proof requests for a head that could not be checked, and how
   * often it is asked about again while no head comes (default 10 s)
   */
  proofRetryMs?: number
}

/** the most pages of entries asked of one custodian for one report */
const MAX_ENTRIES_PAGES = 64

/** A head of another log that no consistency proof has linked to the head accepted before it. */
export interface UncheckedHead {
  log: string
  /** the head of the log this node had accepted (signed bytes) */
  accepted: Uint8Array
  /** the head no proof linked to it (signed bytes) */
  unchecked: Uint8Array
  /** failed proof requests in a row */
  tries: number
  /** when the first of them failed */
  since: number
  /** when the last one failed */
  lastTry: number
  /** why the last one failed */
  lastError: string
  /** `tries` reached the bound: the log is shown as unverifiable and this record is on disk */
  unverifiable: boolean
}

export interface EvidenceRecord {
  log: string
  reason: string
  a: Uint8Array
  b: Uint8Array
  seenAt: number
}

interface Pending {
  bytes: Uint8Array
  /** where the entry is indexed: key prefixes, each completed by the entry's padded index */
  indexedAt: string[]
  resolve: (index: number) => void
  reject: (err: Error) => void
}

/** An unverifiable log as `status` shows it: the sizes of the two heads kept. */
export interface UnverifiableLog extends UncheckedHead {
  acceptedSize: number
  uncheckedSize: number
}

/**
 * The key layout of the `audit` sublevel, built here and nowhere else:
 * - `meta`: { size, frontier } of this node's log; `head`: its latest signed tree head
 * - `e!<pad(index)>`: an entry; `n!<pad(level)>!<pad(index)>`: a completed Merkle subtree's hash
 * - the index, keys with an empty value: `is!<space>!<stream>!<pad(index)>` for a release or a
 *   refusal, `iv!<space>!<pad(index)>` for a revocation; `index` holds { size }: every entry
 *   below size is indexed. Space ids are hex and stream names never hold `!` or `~`, so one
 *   stream's keys are one range.
 * - of other logs: `seen!<log>` the latest head accepted, `x!<log>!<head id>!<head id>` the
 *   evidence of an equivocation, `u!<log>` an unverifiable log's UncheckedHead
 */
const keys = {
  meta: 'meta',
  head: 'head',
  entry: (index: number) => `e!${pad(index)}`,
  entries: { gt: 'e!', lt: 'e!~' },
  /** the index of the entry at `key` (a key of `entries`) */
  entryIndex: (key: string) => Number(key.slice(2)),
  node: (level: number, index: number) => `n!${pad(level)}!${pad(index)}`,
  streamIndexPrefix: (space: string, stream: string) => `is!${space}!${stream}!`,
  revocationIndexPrefix: (space: string) => `iv!${space}!`,
  /** the index key of the entry at `index` under `prefix` (one of the two above) */
  indexed: (prefix: string, index: number) => `${prefix}${pad(index)}`,
  indexMarker: 'index',
  indexRanges: [
    { gt: 'is!', lt: 'is!~' },
    { gt: 'iv!', lt: 'iv!~' },
  ],
  seen: (log: string) => `seen!${log}`,
  seenRange: { gt: 'seen!', lt: 'seen!~' },
  /** the log of a key of `seenRange` */
  seenLog: (key: string) => key.slice(5),
  evidence: (log: string, a: string, b: string) => `x!${log}!${a}!${b}`,
  evidenceRange: { gt: 'x!', lt: 'x!~' },
  unchecked: (log: string) => `u!${log}`,
  uncheckedRange: { gt: 'u!', lt: 'u!~' },
}
/** entries indexed per synced batch when indexing a log at start */
const INDEX_BUILD_BATCH = 4096
/** entries read per getMany when reading through the index */
const INDEX_READ_BATCH = 256
const EMPTY = new Uint8Array(0)

/** Index key prefixes of an entry: releases and refusals by (space, stream), revocations by space. */
function indexPrefixes(e: AuditEntry): string[] {
  if (e.t === 'release' || e.t === 'refusal') return [keys.streamIndexPrefix(e.space, e.stream)]
  if (e.t === 'revocation') return [keys.revocationIndexPrefix(e.space)]
  return []
}

/** An entry of the log, as the index finds it. */
export interface IndexedEntry {
  index: number
  entry: ReleaseEntry | RefusalEntry | RevocationEntry
}

/** The index names an entry that is not there or is not what the index says it is. */
export class AuditIndexError extends Error {
  static override name = 'AuditIndexError'

  constructor(message = 'the audit index does not match the log') {
    super(message)
    this.name = 'AuditIndexError'
  }
}

/** The audit plane's counters, with their help text. */
const METRICS = {
  edgeward_audit_entries_total: 'entries appended to this node’s audit log, by kind',
  edgeward_audit_entries_read_total: 'entries read back from this node’s audit log, by what read them',
  edgeward_audit_equivocations_total: 'logs caught with two heads that cannot both be true',
  edgeward_audit_heads_refused_total: 'tree heads refused, by reason',
  edgeward_audit_head_gossip_failures_total:
    'signed tree heads that gossip could not send (the head is gossiped again every head interval)',
  edgeward_audit_proof_failures_total:
    'consistency proofs asked of a key holder that did not come (refused, unanswered or unreachable), by log',
  edgeward_audit_entries_requests_refused_total:
    'requests for this node’s entries as a custodian that it refused, by reason',
  edgeward_audit_entries_requests_answered_total: 'pages of entries this node gave its spaces’ owners',
  edgeward_audit_custodian_logs_total: 'custodians’ logs asked for a report, by outcome',
  edgeward_audit_log_unverifiable:
    '1 while a key holder’s log has a head that no consistency proof could link to the head accepted before it, after every try',
}

/** A node's audit plane: its own Merkle log as a key holder, and the witness of the other logs of its spaces. */
export class AuditService {
  private readonly c: AuditComponents
  private readonly policy: PolicyService
  private readonly headIntervalMs: number
  private readonly headBurst: number
  private frontier = MerkleFrontier.empty()
  private queue: Pending[] = []
  private flushing: Promise<void> | undefined
  /** the index covers every entry appended so far (set once the start has indexed the log) */
  private indexed = false
  private head: OpenedRecord<TreeHead> | undefined
  private timer: NodeJS.Timeout | undefined
  /** per log: the latest head accepted, and a chain that serialises checks of that log */
  private readonly seen = new Map<string, OpenedRecord<TreeHead>>()
  private readonly checks = new Map<string, Promise<void>>()
  /** checks queued and not started, by log and head id: a head gossiped again shares its check */
  private readonly queued = new Map<string, Promise<void>>()
  private readonly evidence: EvidenceRecord[] = []
  private readonly proofTries: number
  private readonly proofRetryMs: number
  /** per log: the head no proof has linked to the accepted one yet, and the timer that asks again */
  private readonly unchecked = new Map<string, UncheckedHead>()
  private readonly retries = new Map<string, NodeJS.Timeout>()
  private stopped = false

  constructor(components: AuditComponents, policy: PolicyService, opts: AuditServiceOptions = {}) {
    this.c = components
    this.policy = policy
    this.headIntervalMs = opts.headIntervalMs ?? 5000
    this.headBurst = opts.headBurst ?? 100
    this.proofTries = opts.proofTries ?? 3
    this.proofRetryMs = opts.proofRetryMs ?? 10_000
    for (const [name, help] of Object.entries(METRICS)) components.metrics.describe(name, help)
  }

  async start(): Promise<void> {
    const meta = await this.c.store.audit.get(keys.meta)
    if (meta !== undefined) {
      const m = decodeCanonical(meta, 64 * 1024) as { size: number; frontier: Uint8Array[] }
      this.frontier = MerkleFrontier.fromHashes(m.size, m.frontier)
    }
    await this.completeIndex()
    const head = await this.c.store.audit.get(keys.head)
    if (head !== undefined) this.head = openTreeHead(head)
    for await (const [k, v] of this.c.store.audit.iterator(keys.seenRange)) {
      this.seen.set(keys.seenLog(k), openTreeHead(v))
    }
    for await (const v of this.c.store.audit.values(keys.evidenceRange)) {
      this.evidence.push(decodeCanonical(v, 16 * 1024) as EvidenceRecord)
    }
    for await (const v of this.c.store.audit.values(keys.uncheckedRange)) {
      const u = decodeCanonical(v, 16 * 1024) as UncheckedHead
      this.unchecked.set(u.log, u)
      this.c.metrics.set('edgeward_audit_log_unverifiable', { log: u.log }, 1)
      this.scheduleRetry(u.log)
    }
    await handle(
      this.c.libp2p,
      AUDIT_PROOF_PROTOCOL,
      256,
      64 * (MAX_PROOF_HASHES + 2),
      async body => encodeProofResponse(await this.answerProof(body)),
      err => log('proof request failed: %s', err.message),
    )
    await handle(
      this.c.libp2p,
      AUDIT_ENTRIES_PROTOCOL,
      MAX_ENTRIES_REQUEST_BYTES,
      MAX_ENTRIES_RESPONSE_BYTES,
      async (body, conn) => encodeEntriesResponse(await this.answerEntries(body, conn)),
      err => this.refuseEntries('failed', err.message),
    )
    this.policy.onRecords((space, records) => {
      this.onPolicyRecords(space, records).catch(err =>
        log.error('auditing a policy change of %s: %s', space, (err as Error).message),
      )
    })
    for (const space of this.policy.spaces()) this.subscribe(space)
    this.timer = setInterval(
      () => void this.publishHead().catch(err => log.error('head: %s', err.message)),
      this.headIntervalMs,
    )
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    for (const t of this.retries.values()) clearTimeout(t)
    this.retries.clear()
    await this.flushing
  }

  get size(): number {
    return this.frontier.size
  }

  latestHead(): OpenedRecord<TreeHead> | undefined {
    return this.head
  }

  /** The latest head this node accepted of another key holder's log. */
  seenHead(log: string): OpenedRecord<TreeHead> | undefined {
    return this.seen.get(log)
  }

  equivocations(): EvidenceRecord[] {
    return [...this.evidence]
  }

  /** Logs whose heads could not be checked after every try, with the two heads kept. */
  unverifiable(): UnverifiableLog[] {
    return [...this.unchecked.values()]
      .filter(u => u.unverifiable)
      .map(u => ({
        ...u,
        acceptedSize: openTreeHead(u.accepted).body.size,
        uncheckedSize: openTreeHead(u.unchecked).body.size,
      }))
  }

  // ---- the log ----

  /** Append an entry; resolves with its index once it is durable. */
  append(entry: AuditEntry): Promise<number> {
    const bytes = encodeEntry(entry)
    this.c.metrics.inc('edgeward_audit_entries_total', { kind: entry.t })
    const indexedAt = indexPrefixes(entry)
    return new Promise((resolve, reject) => {
      this.queue.push({ bytes, indexedAt, resolve, reject })
      this.flushing ??= this.flush()
    })
  }

  /** Group commit: everything queued goes to disk in one synced batch. */
  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batchEntries = this.queue
      this.queue = []
      let frontier = this.frontier
      const first = frontier.size
      const batch = this.c.store.audit.batch()
      for (const p of batchEntries) {
        batch.put(keys.entry(frontier.size), p.bytes)
        for (const prefix of p.indexedAt) batch.put(keys.indexed(prefix, frontier.size), EMPTY)
        const next = frontier.append(leafHash(p.bytes))
        for (const n of next.completed) batch.put(keys.node(n.level, n.index), n.hash)
        frontier = next.frontier
      }
      batch.put(keys.meta, encodeCanonical({ size: frontier.size, frontier: frontier.hashes }))
      // until the start has indexed the log, the marker stays where it was: the start indexes from there
      if (this.indexed) batch.put(keys.indexMarker, encodeCanonical({ size: frontier.size }))
      try {
        await batch.write(DURABLE)
      } catch (err) {
        for (const p of batchEntries) p.reject(err as Error)
        continue
      }
      this.frontier = frontier
      for (const [i, p] of batchEntries.entries()) p.resolve(first + i)
      if (this.head === undefined || frontier.size - this.head.body.size >= this.headBurst) {
        void this.publishHead().catch(err => log.error('head: %s', err.message))
      }
    }
    this.flushing = undefined
  }

  private readonly readNode = async (level: number, index: number): Promise<Uint8Array> => {
    const v = await this.c.store.audit.get(keys.node(level, index))
    if (v === undefined) throw new NotFoundError(`audit log has no subtree ${level}/${index}`)
    return v
  }

  async entry(index: number): Promise<Uint8Array> {
    const v = await this.c.store.audit.get(keys.entry(index))
    if (v === undefined) throw new NotFoundError(`audit log has no entry ${index}`)
    this.c.metrics.inc('edgeward_audit_entries_read_total', { by: 'entry' })
    return v
  }

  /**
   * The releases and refusals of `stream` in `space`, and the revocations of `space`, in log
   * order, read through the index: only those entries are read from the store, whatever the
   * log's size. Entries appended while it reads are left out (it answers for the log's size
   * when called).
   */
  async streamEntries(space: string, stream: string): Promise<IndexedEntry[]> {
    const size = this.frontier.size
    const [ofStream, revocations] = await Promise.all(
      [keys.streamIndexPrefix(space, stream), keys.revocationIndexPrefix(space)].map(async prefix => {
        const indexes: number[] = []
        const cut = prefix.length
        for await (const k of this.c.store.audit.keys({ gt: prefix, lt: keys.indexed(prefix, size) })) {
          indexes.push(Number(k.slice(cut)))
        }
        return indexes
      }),
    )
    const indexes = mergeSorted(ofStream, revocations)
    const out: IndexedEntry[] = []
    for (let i = 0; i < indexes.length; i += INDEX_READ_BATCH) {
      const part = indexes.slice(i, i + INDEX_READ_BATCH)
      const values = await this.c.store.audit.getMany(part.map(keys.entry))
      this.c.metrics.inc('edgeward_audit_entries_read_total', { by: 'index' }, part.length)
      for (const [j, v] of values.entries()) {
        const index = part[j]
        if (v === undefined) throw new AuditIndexError(`the audit index names entry ${index}, which the log lacks`)
        const entry = decodeEntry(v)
        const matches =
          entry.space === space &&
          (entry.t === 'revocation' || ((entry.t === 'release' || entry.t === 'refusal') && entry.stream === stream))
        if (!matches) throw new AuditIndexError(`the audit index does not match entry ${index}`)
        out.push({ index, entry })
      }
    }
    return out
  }

  /**
   * Index the entries the marker does not cover (all of them in a log written before the
   * index existed), a batch at a time, each synced with the marker moved past it: a log of any
   * size, without holding it in memory, and a crash resumes where the last batch ended.
   */
  private async completeIndex(): Promise<void> {
    const store = this.c.store.audit
    const size = this.frontier.size
    const marker = await store.get(keys.indexMarker)
    let from = marker === undefined ? undefined : (decodeCanonical(marker, 64) as { size: number }).size
    if (from !== size) {
      if (from === undefined || from > size) {
        // no index, or the index of a longer log than this one: start again from nothing
        for (const range of keys.indexRanges) await store.clear(range)
        from = 0
      }
      log('indexing audit entries %d..%d', from, size)
      let next = from
      let batch = store.batch()
      for await (const [k, v] of store.iterator({ gte: keys.entry(from), lt: keys.entry(size) })) {
        const index = keys.entryIndex(k)
        if (index !== next) throw new NotFoundError(`audit log has no entry ${next}`)
        for (const prefix of indexPrefixes(decodeEntry(v))) batch.put(keys.indexed(prefix, index), EMPTY)
        next = index + 1
        if ((next - from) % INDEX_BUILD_BATCH === 0) {
          batch.put(keys.indexMarker, encodeCanonical({ size: next }))
          await batch.write(DURABLE)
          this.c.metrics.inc('edgeward_audit_entries_read_total', { by: 'indexing' }, INDEX_BUILD_BATCH)
          log('indexed audit entries up to %d of %d', next, size)
          batch = store.batch()
        }
      }
      if (next !== size) throw new NotFoundError(`audit log has no entry ${next}`)
      batch.put(keys.indexMarker, encodeCanonical({ size }))
      await batch.write(DURABLE)
      this.c.metrics.inc('edgeward_audit_entries_read_total', { by: 'indexing' }, (next - from) % INDEX_BUILD_BATCH)
      log('indexed audit entries %d..%d', from, size)
    }
    this.indexed = true
  }

  inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    return inclusionProofFrom(this.readNode, index, size)
  }

  consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    return consistencyProofFrom(this.readNode, from, to)
  }

  /**
   * Sign a head for the current size (if it grew, or if asked for a `fresh` one: a head of
   * the time now) and publish it on every space whose members witness this log.
   */
  async publishHead(fresh = false): Promise<OpenedRecord<TreeHead> | undefined> {
    const size = this.frontier.size
    if (fresh || this.head === undefined || this.head.body.size !== size) {
      const { principal, peerId } = this.c.identity
      this.head = signTreeHead(principal, peerId, size, this.frontier.root(), this.c.now())
      await this.c.store.audit.put(keys.head, this.head.bytes, DURABLE)
    }
    const message = encodeAuditMessage({ t: 'head', head: this.head.bytes })
    // the head is signed and stored: a space whose gossip fails now gets it at the next interval
    for (const space of this.loggedSpaces()) {
      try {
        await this.c.libp2p.services.pubsub.publish(auditTopic(space), message)
      } catch (err) {
        this.c.metrics.inc('edgeward_audit_head_gossip_failures_total')
        log.error('gossiping the audit head to space %s: %s', space, (err as Error).message)
      }
    }
    return this.head
  }

  private heldSpaces(): string[] {
    return this.policy.spaces().filter(s => this.policy.holds(s))
  }

  /** The spaces whose members witness this node's log: those it holds keys of or is a custodian of. */
  private loggedSpaces(): string[] {
    const me = this.c.identity.peerId
    return this.policy.spaces().filter(s => {
      if (this.policy.holds(s)) return true
      const doc = this.policy.document(s)
      return doc.hasGenesis && custodiansOf(doc.state).has(me)
    })
  }

  private async answerProof(body: Uint8Array): Promise<Uint8Array[]> {
    const req = decodeProofRequest(body)
    const size = this.frontier.size
    if (req.kind === 'consistency') {
      if (req.from > req.to || req.to > size) throw new RangeError('no such sizes in this log')
      return this.consistencyProof(req.from, req.to)
    }
    if (req.index >= req.size || req.size > size) throw new RangeError('no such entry in this log')
    return this.inclusionProof(req.index, req.size)
  }

  private async onPolicyRecords(space: string, records: AppliedRecord[]): Promise<void> {
    if (!this.heldSpaces().includes(space)) return
    const now = this.c.now()
    for (const r of records) {
      if (r.kind === 'grant') {
        const g = r.record.body
        await this.append({
          t: 'grant',
          ts: now,
          space,
          grant: r.record.id,
          subject: g.sub,
          streams: g.streams,
          nbf: g.nbf,
          exp: g.exp,
        })
      } else if (r.kind === 'revocation') {
        await this.append({ t: 'revocation', ts: now, space, revocation: r.record.id, target: r.record.body.target })
      } else if (r.kind === 'decision') {
        const d = r.record
        await this.append({
          t: 'decision',
          ts: now,
          space,
          request: d.accessRequest.id,
          subject: d.accessRequest.body.sub,
          requester: d.accessRequest.issuer,
          decidedBy: d.issuer,
          streams: d.accessRequest.body.streams,
          approved: d.body.approved,
          ...(d.body.grant === undefined ? {} : { grant: d.body.grant }),
          ...(d.body.reason === undefined ? {} : { reason: d.body.reason }),
        })
      }
    }
  }

  /** A report for `query` against a freshly signed head. */
  async report(query: ReportQuery): Promise<AuditReport> {
    if (!this.policy.holds(query.space)) {
      throw new NotFoundError('this node keeps no audit log for that space: ask its key holder')
    }
    const doc = this.policy.document(query.space)
    await this.flushing
    const head = (await this.publishHead())!
    const entries: { index: number; bytes: Uint8Array; proof: Uint8Array[] }[] = []
    const revocations: RevocationEntry[] = []
    for await (const [k, v] of this.c.store.audit.iterator(keys.entries)) {
      const index = keys.entryIndex(k)
      if (index >= head.body.size) break
      this.c.metrics.inc('edgeward_audit_entries_read_total', { by: 'report' })
      const entry = decodeEntry(v)
      if (!matchesQuery(entry, query)) continue
      if (entry.t === 'revocation') revocations.push(entry)
      entries.push({ index, bytes: v, proof: await this.inclusionProof(index, head.body.size) })
    }
    const custody = await this.custodyPart(query, doc.state, revocations)
    return buildReport(query, doc.state.genesis.bytes, head, entries, custody)
  }

  // ---- custodians' logs in a report ----

  /**
   * The custody part of a report for `query`: every custodian of every set the space has had,
   * asked for its matching entries (those that do not answer are named, with why), and the
   * intervals during which a subject held k shares. Undefined when the space has no custodians.
   */
  private async custodyPart(
    query: ReportQuery,
    state: PolicyState,
    holderRevocations: RevocationEntry[],
  ): Promise<CustodyReport | undefined> {
    const sets = [...state.custodianSets.values()]
    if (sets.length === 0) return undefined
    const peers = [...custodiansOf(state)]
    const answers = await Promise.all(
      peers.map(async peer => {
        try {
          const got = await this.custodianLog(peer, query, state.owner)
          this.c.metrics.inc('edgeward_audit_custodian_logs_total', { outcome: 'answered' })
          return got
        } catch (err) {
          this.c.metrics.inc('edgeward_audit_custodian_logs_total', { outcome: 'missing' })
          log('custodian %s gave no entries for a report: %s', peer, (err as Error).message)
          return { peer, reason: oneLine((err as Error).message) }
        }
      }),
    )
    const logs = answers.filter((a): a is Gathered => 'section' in a)
    return {
      sets: sets.map(s => toBase64url(s.bytes)),
      logs: logs.map(l => l.section),
      missing: answers.filter((a): a is { peer: string; reason: string } => 'reason' in a),
      holdings: computeCustodyHoldings(
        shapes(sets),
        logs.map(l => ({ peer: l.section.peer, entries: l.entries, asOf: l.asOf })),
        holderRevocations,
      ),
    }
  }

  /**
   * Ask custodian `peer` for its entries matching `query`, page by page, each checked against
   * the head of its first page (its log, signed by the principal its device certificate names):
   * a custodian's answer is in a report only if it proves what it shows. Throws saying why not.
   */
  private async custodianLog(peer: string, query: ReportQuery, owner: string): Promise<Gathered> {
    const me = this.c.identity
    if (me.principal.did !== owner)
      throw new Error("not asked: this node does not run as the space's owner, the only one custodians answer")
    let head: OpenedRecord<TreeHead> | undefined
    let device: Uint8Array | undefined
    const paged: PagedEntry[] = []
    let start = 0
    for (let page = 0; page < MAX_ENTRIES_PAGES; page++) {
      const req = createEntriesRequest(
        me.principal,
        me.peerId,
        query,
        this.c.now(),
        head === undefined ? undefined : { size: head.body.size, start },
      )
      const res =
        peer === me.peerId
          ? await this.entriesPage(req.body, me.peerId)
          : decodeEntriesResponse(
              await request(
                this.c.libp2p,
                peerIdFromString(peer),
                AUDIT_ENTRIES_PROTOCOL,
                req.bytes,
                MAX_ENTRIES_RESPONSE_BYTES,
              ),
            )
      if (!res.ok) throw new Error(`refused (${res.code}): ${res.reason}`)
      if (head === undefined) {
        if (res.head === undefined || res.device === undefined)
          throw new Error('answered without its signed tree head and device certificate')
        head = openTreeHead(res.head)
        const cert = openDeviceCert(res.device)
        if (head.body.log !== peer || cert.body.peer !== peer) throw new Error("answered with another log's head")
        if (head.issuer !== cert.issuer)
          throw new Error('answered with a head its device certificate does not vouch for')
        device = res.device
      }
      for (const e of res.entries) {
        if (e.index < start || e.index >= head.body.size)
          throw new Error(`answered with entry ${e.index}, out of order`)
        if (!verifyInclusion(leafHash(e.entry), e.index, head.body.size, e.proof, head.body.root))
          throw new Error(`answered with entry ${e.index}, whose inclusion proof does not verify against its head`)
        paged.push(e)
        start = e.index + 1
      }
      if (res.next === undefined) {
        const entries = paged.map(e => decodeEntry(e.entry))
        const section: CustodianLogSection = {
          peer,
          device: toBase64url(device!),
          head: toBase64url(head.bytes),
          entries: paged.map(e => ({ index: e.index, entry: toBase64url(e.entry), proof: e.proof.map(toBase64url) })),
        }
        return { section, entries, asOf: head.body.ts }
      }
      if (res.next < start || res.next > head.body.size) throw new Error(`answered with a next page at ${res.next}`)
      start = res.next
    }
    throw new Error(`more than ${MAX_ENTRIES_PAGES} pages of entries`)
  }

  private refuseEntries(code: string, reason: string): EntriesResponse {
    this.c.metrics.inc('edgeward_audit_entries_requests_refused_total', { reason: code })
    log('refused a request for entries: %s (%s)', code, reason)
    return { ok: false, code, reason }
  }

  /** Answer a request for this node's entries as a custodian of a space (one page). */
  private async answerEntries(body: Uint8Array, conn: Connection): Promise<EntriesResponse> {
    let req: OpenedRecord<EntriesRequest>
    try {
      req = openEntriesRequest(body)
    } catch (err) {
      return this.refuseEntries('malformed', `invalid request for entries: ${(err as Error).message}`)
    }
    return this.entriesPage(req.body, conn.remotePeer.toString())
  }

  /**
   * One page of this node's entries for `r`, sent by peer `from`: only for the space's owner
   * (who signed it), from the peer it names, while fresh, and of a space this node is a
   * custodian of. The first page signs a head for the log's size now; a later page proves
   * against the size the first one did.
   */
  private async entriesPage(r: EntriesRequest, from: string): Promise<EntriesResponse> {
    if (r.peer !== from) return this.refuseEntries('not-the-sender', 'the request names another peer than its sender')
    if (Math.abs(this.c.now() - r.ts) > ENTRIES_REQUEST_WINDOW_MS)
      return this.refuseEntries('stale', "the request's time is too far from this custodian's clock")
    const doc = this.policy.spaces().includes(r.space) ? this.policy.document(r.space) : undefined
    if (doc === undefined || !doc.hasGenesis)
      return this.refuseEntries('unknown-space', 'this node is not in that space')
    const state = doc.state
    if (r.iss !== state.owner)
      return this.refuseEntries('not-the-owner', "only the space's owner may read a custodian's log of it")
    if (!custodiansOf(state).has(this.c.identity.peerId))
      return this.refuseEntries('not-a-custodian', 'this node is not a custodian of that space')
    await this.flushing
    let size: number
    let head: OpenedRecord<TreeHead> | undefined
    if (r.size === undefined) {
      // a head of now: the custodian vouches for its log as of the report, not as of its last release
      head = (await this.publishHead(true))!
      size = head.body.size
    } else if (r.size > this.frontier.size) {
      return this.refuseEntries('malformed', 'this log has no such size')
    } else {
      size = r.size
    }
    const query = queryOf(r)
    const entries: PagedEntry[] = []
    let bytes = 0
    let next: number | undefined
    for await (const [k, v] of this.c.store.audit.iterator({ gte: keys.entry(r.start ?? 0), lt: keys.entry(size) })) {
      const index = keys.entryIndex(k)
      this.c.metrics.inc('edgeward_audit_entries_read_total', { by: 'custodian-report' })
      if (!matchesQuery(decodeEntry(v), query)) continue
      const proof = await this.inclusionProof(index, size)
      entries.push({ index, entry: v, proof })
      bytes += v.byteLength + 32 * proof.length
      if (entries.length >= MAX_ENTRIES_PER_PAGE || bytes >= ENTRIES_PAGE_BYTES) {
        if (index + 1 < size) next = index + 1
        break
      }
    }
    this.c.metrics.inc('edgeward_audit_entries_requests_answered_total')
    const res: EntriesResponse = { ok: true, entries }
    if (head !== undefined) Object.assign(res, { head: head.bytes, device: this.c.identity.device.bytes })
    if (next !== undefined) res.next = next
    return res
  }

  // ---- watching other logs ----

  subscribe(space: string): void {
    const topic = auditTopic(space)
    const pubsub = this.c.libp2p.services.pubsub
    if (pubsub.topicValidators.has(topic)) return
    pubsub.topicValidators.set(topic, (_peer, msg) => this.validate(space, msg))
    pubsub.subscribe(topic)
  }

  private refuseHead(reason: string): TopicValidatorResult {
    this.c.metrics.inc('edgeward_audit_heads_refused_total', { reason })
    return TopicValidatorResult.Reject
  }

  private validate(
    space: string,
    msg: { type: string; from?: { toString(): string }; data: Uint8Array },
  ): TopicValidatorResult {
    const doc = this.policy.document(space)
    if (!doc.hasGenesis) return TopicValidatorResult.Ignore
    let heads: OpenedRecord<TreeHead>[]
    try {
      const m = decodeAuditMessage(msg.data)
      heads = m.t === 'head' ? [openTreeHead(m.head)] : [openTreeHead(m.a), openTreeHead(m.b)]
      if (m.t === 'head' && (msg.type !== 'signed' || msg.from?.toString() !== heads[0].body.log)) {
        return this.refuseHead('not-from-the-log')
      }
    } catch (err) {
      return this.refuseHead((err as Error).name)
    }
    for (const h of heads) {
      if (!isLogOf(doc.state, h)) return this.refuseHead('not-a-log-of-the-space')
    }
    for (const h of heads) this.check(h)
    return TopicValidatorResult.Accept
  }

  /**
   * Check a head against the latest accepted one of its log, one check at a time per log. A
   * head that is already waiting for its check (gossiped again) shares that check.
   */
  check(head: OpenedRecord<TreeHead>): Promise<void> {
    const logId = head.body.log
    if (logId === this.c.identity.peerId) return Promise.resolve()
    const key = `${logId}!${head.id}`
    const waiting = this.queued.get(key)
    if (waiting !== undefined) return waiting
    const settled = this.enqueue(logId, () => {
      this.queued.delete(key)
      return this.checkNow(head)
    })
    this.queued.set(key, settled)
    return settled
  }

  private enqueue(logId: string, job: () => Promise<void>): Promise<void> {
    const run = (this.checks.get(logId) ?? Promise.resolve()).then(job)
    const settled = run.catch(err => log('check of %s failed: %s', logId, (err as Error).message))
    this.checks.set(logId, settled)
    return settled
  }

  private async checkNow(head: OpenedRecord<TreeHead>): Promise<void> {
    const logId = head.body.log
    const prev = this.seen.get(logId)
    if (prev === undefined) return this.accept(head)
    const a = prev.body
    const b = head.body
    if (a.size === b.size) {
      if (!bytesEqual(a.root, b.root))
        await this.equivocated(prev, head, `two heads of size ${a.size} with different roots`)
      return
    }
    const pending = this.unchecked.get(logId)
    if (pending !== undefined) {
      const unchecked = openTreeHead(pending.unchecked)
      // two heads of one size with different roots need no proof to be caught
      if (unchecked.body.size === b.size && !bytesEqual(unchecked.body.root, b.root)) {
        await this.equivocated(unchecked, head, `two heads of size ${b.size} with different roots`)
        await this.settled(logId, unchecked)
        return
      }
      // the head no proof has linked yet is settled first: a later head must not let it go unchecked
      if (this.c.now() - pending.lastTry < this.proofRetryMs) return
      if (!(await this.link(prev, unchecked))) return
      if (bytesEqual(pending.unchecked, head.bytes)) return
      return this.checkNow(head)
    }
    await this.link(prev, head)
  }

  /** Ask again about the head of `logId` that no proof has linked yet (the retry timer's job). */
  private async recheck(logId: string): Promise<void> {
    const pending = this.unchecked.get(logId)
    const prev = this.seen.get(logId)
    if (pending === undefined || prev === undefined) return
    if (this.c.now() - pending.lastTry < this.proofRetryMs) return this.scheduleRetry(logId)
    await this.link(prev, openTreeHead(pending.unchecked))
  }

  /**
   * Link `head` to `prev`, the accepted head of its log, with a consistency proof from the
   * log's holder, and accept it when it is the newer. Returns whether the pair was settled:
   * linked, or shown to be equivocation. A proof that does not come leaves `prev` in place and
   * `head` unchecked (an unreachable log is not a forked one, but neither is it a checked one).
   */
  private async link(prev: OpenedRecord<TreeHead>, head: OpenedRecord<TreeHead>): Promise<boolean> {
    const logId = head.body.log
    const [older, newer] = prev.body.size < head.body.size ? [prev, head] : [head, prev]
    if (older.body.size > 0) {
      let proof: Uint8Array[]
      try {
        proof = decodeProofResponse(
          await request(
            this.c.libp2p,
            peerIdFromString(logId),
            AUDIT_PROOF_PROTOCOL,
            encodeProofRequest({ kind: 'consistency', from: older.body.size, to: newer.body.size }),
            64 * (MAX_PROOF_HASHES + 2),
          ),
        )
      } catch (err) {
        await this.proofFailed(prev, head, err as Error)
        return false
      }
      if (!verifyConsistency(older.body.size, newer.body.size, older.body.root, newer.body.root, proof)) {
        await this.equivocated(
          older,
          newer,
          `no valid consistency proof from size ${older.body.size} to ${newer.body.size}`,
        )
        await this.settled(logId, head)
        return true
      }
    }
    if (head.body.size > prev.body.size) await this.accept(head)
    await this.settled(logId, head)
    return true
  }

  /** No proof came for (prev, head): keep `head` unchecked, count the try, and ask again later. */
  private async proofFailed(prev: OpenedRecord<TreeHead>, head: OpenedRecord<TreeHead>, err: Error): Promise<void> {
    const logId = head.body.log
    const now = this.c.now()
    const lastError = err.message.slice(0, 200)
    this.c.metrics.inc('edgeward_audit_proof_failures_total', { log: logId })
    log('no consistency proof from %s for sizes %d and %d: %s', logId, prev.body.size, head.body.size, lastError)
    const known = this.unchecked.get(logId)
    const u: UncheckedHead =
      known === undefined
        ? {
            log: logId,
            accepted: prev.bytes,
            unchecked: head.bytes,
            tries: 1,
            since: now,
            lastTry: now,
            lastError,
            unverifiable: false,
          }
        : { ...known, accepted: prev.bytes, tries: known.tries + 1, lastTry: now, lastError }
    this.unchecked.set(logId, u)
    if (u.tries >= this.proofTries) {
      if (!u.unverifiable) {
        u.unverifiable = true
        this.c.metrics.set('edgeward_audit_log_unverifiable', { log: logId }, 1)
        log.error(
          'log %s is unverifiable: no consistency proof from size %d to %d after %d tries (%s)',
          logId,
          prev.body.size,
          openTreeHead(u.unchecked).body.size,
          u.tries,
          lastError,
        )
        await this.c.store.audit.put(keys.unchecked(logId), encodeCanonical(u), DURABLE)
      } else {
        await this.c.store.audit.put(keys.unchecked(logId), encodeCanonical(u))
      }
    }
    this.scheduleRetry(logId)
  }

  /** The unchecked head of `logId`, if it is `head`, is settled: the log is verified again. */
  private async settled(logId: string, head: OpenedRecord<TreeHead>): Promise<void> {
    const u = this.unchecked.get(logId)
    if (u === undefined || !bytesEqual(u.unchecked, head.bytes)) return
    this.unchecked.delete(logId)
    clearTimeout(this.retries.get(logId))
    this.retries.delete(logId)
    if (u.unverifiable) {
      this.c.metrics.set('edgeward_audit_log_unverifiable', { log: logId }, 0)
      log('log %s is settled after %d failed tries', logId, u.tries)
      await this.c.store.audit.del(keys.unchecked(logId), DURABLE)
    }
  }

  /**
   * Ask again after `proofRetryMs`; once the log is unverifiable, twice as long after each
   * further failure, up to 32 times as long, so that a holder that went offline is not dialled
   * every few seconds for ever (a head it gossips is still asked about within `proofRetryMs`).
   */
  private scheduleRetry(logId: string): void {
    if (this.stopped || this.retries.has(logId)) return
    const beyond = Math.max(0, (this.unchecked.get(logId)?.tries ?? 0) - this.proofTries)
    const timer = setTimeout(
      () => {
        this.retries.delete(logId)
        void this.enqueue(logId, () => this.recheck(logId))
      },
      this.proofRetryMs * 2 ** Math.min(5, beyond),
    )
    timer.unref()
    this.retries.set(logId, timer)
  }

  private async accept(head: OpenedRecord<TreeHead>): Promise<void> {
    this.seen.set(head.body.log, head)
    await this.c.store.audit.put(keys.seen(head.body.log), head.bytes)
  }

  private async equivocated(a: OpenedRecord<TreeHead>, b: OpenedRecord<TreeHead>, reason: string): Promise<void> {
    const logId = a.body.log
    const key = keys.evidence(logId, a.id, b.id)
    if ((await this.c.store.audit.get(key)) !== undefined) return
    const rec: EvidenceRecord = { log: logId, reason, a: a.bytes, b: b.bytes, seenAt: this.c.now() }
    await this.c.store.audit.put(key, encodeCanonical(rec), DURABLE)
    this.evidence.push(rec)
    this.c.metrics.inc('edgeward_audit_equivocations_total', { log: logId })
    log.error('log %s equivocated: %s', logId, reason)
    const message = encodeAuditMessage({ t: 'equivocation', a: a.bytes, b: b.bytes, reason })
    for (const space of this.policy.spaces()) {
      const doc = this.policy.document(space)
      if (doc.hasGenesis && (doc.state.holders.includes(logId) || custodiansOf(doc.state).has(logId))) {
        await this.c.libp2p.services.pubsub.publish(auditTopic(space), message).catch(() => undefined)
      }
    }
  }
}

/** What a custodian gave for a report: its section, its entries decoded, and its head's time. */
interface Gathered {
  section: CustodianLogSection
  entries: AuditEntry[]
  asOf: number
}

/** Every custodian of every custodian set a space has had (peer ids). */
function custodiansOf(state: PolicyState): Set<string> {
  const out = new Set<string>()
  for (const set of state.custodianSets.values()) for (const c of set.body.custodians) out.add(c.peer)
  return out
}

/**
 * Is `head` of a log of the space, signed by whom it must be: a key holder's, signed by the
 * owner; or a custodian's, signed by the principal a custodian set names for that peer (a set
 * that names none for it gives no one to check the signer against, so its heads are not taken).
 */
function isLogOf(state: PolicyState, head: OpenedRecord<TreeHead>): boolean {
  const logId = head.body.log
  if (head.issuer === state.owner && state.holders.includes(logId)) return true
  for (const set of state.custodianSets.values()) {
    if (set.body.custodians.some(c => c.peer === logId && c.did === head.issuer)) return true
  }
  return false
}

/** Text for one line: control characters and line separators as spaces, at most 200 characters. */
function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\p{Zl}\p{Zp}]/gu, ' ').slice(0, 200)
}

/** Two ascending lists of distinct indexes as one ascending list. */
function mergeSorted(a: number[], b: number[]): number[] {
  const out: number[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i] < b[j])) out.push(a[i++])
    else out.push(b[j++])
  }
  return out
}
