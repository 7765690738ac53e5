/**
 * Binds policy documents to the network and the disk.
 * - Gossip: changes are published on the space's policy topic; the topic validator applies
 *   each envelope (protocols/policy/document.ts checks signature, actor binding, authority,
 *   add-only) and stores it durably before accepting it, so only valid changes are
 *   forwarded. Refusals are counted per sending peer, and the sender loses gossip score.
 * - Catch-up: on every new connection, and every `syncIntervalMs`, the node asks peers for
 *   the changes it lacks over `/edgeward/policy-sync/1.0.0`, page by page. A page is applied as
 *   one batch (PolicyDocument.applyEnvelopes: every envelope checked, and refused, on its own;
 *   one Automerge call for the rest) and stored in one synced write; so are the stored changes
 *   when the node starts.
 * - Writes: `grant`, `delegate`, `revoke`, `setCustodians` and the decisions on access requests sign with the
 *   node's principal on the node's clock, check, write and gossip, and return the record; a
 *   write the principal may not make is AccessRefusedError `not-authorized`. Callers (the local
 *   API, the requests and objects services, the simulator) build no policy records themselves.
 * - Storage: this service alone reads and writes the `spaces` and `policy` sublevels.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { type Custodian, type CustodianSet, createCustodianSet } from '../../protocols/custody/records.ts'
import { InvalidMessageError, PolicyWriteError, UnauthorizedChangeError } from '../../protocols/errors.ts'
import { type AppliedRecord, type ApplyOutcome, actorFor, PolicyDocument } from '../../protocols/policy/document.ts'
import {
  createDelegation,
  createGenesis,
  createGrant,
  createRevocation,
  type Delegation,
  type Grant,
  type GrantFields,
  openGenesis,
  type Revocation,
  type RevocationTarget,
  type SpaceGenesis,
} from '../../protocols/policy/records.ts'
import { type AccessRequest, createDecision, type Decision } from '../../protocols/policy/requests.ts'
import {
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  MAX_SYNC_PAGE,
  MAX_SYNC_REQUEST_BYTES,
  MAX_SYNC_RESPONSE_BYTES,
  POLICY_SYNC_PROTOCOL,
  policyTopic,
} from '../../protocols/sync/messages.ts'
import { AccessRefusedError, NotFoundError, UsageError } from '../errors.ts'
import type { Identity } from '../identity.ts'
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import { DURABLE, type Store } from '../store.ts'
import { handle, request } from './stream-io.ts'

const log = logger('edgeward:policy')

/**
 * Storage layout, owned here and built nowhere else: the `spaces` sublevel maps a space id to
 * `{ genesis? }` (every space this node created or joined), the `policy` sublevel maps
 * `<space>!<change hash>` to the signed change envelope, so that a space's changes are one range.
 */
const changeKey = (space: string, hash: string): string => `${space}!${hash}`
const changesOf = (space: string): { gt: string; lt: string } => ({ gt: `${space}!`, lt: `${space}!~` })

/** The libp2p methods the policy service calls: catch-up streams, connection events, connected peers, gossip. */
export type PolicyNetwork = Pick<
  EdgewardLibp2p,
  'handle' | 'dialProtocol' | 'getConnections' | 'getPeers' | 'addEventListener'
> & {
  services: { pubsub: Pick<EdgewardLibp2p['services']['pubsub'], 'publish' | 'subscribe' | 'topicValidators'> }
}

/** What the policy service uses of its node. */
export interface PolicyComponents {
  /** signs what this node writes; its actor id in each document is bound to the principal and the peer */
  identity: Pick<Identity, 'principal' | 'peerId'>
  store: Pick<Store, 'spaces' | 'policy'>
  libp2p: PolicyNetwork
  metrics: Metrics
  /** the clock; the simulator passes virtual time */
  now: () => number
}

/** A record this node signed and wrote: the record, and the hash of the change that carries it. */
export interface Written<T> {
  record: OpenedRecord<T>
  change: string
}

/** Options of the policy service. */
export interface PolicyServiceOptions {
  /** how often to catch up with connected peers even without new connections (default 30 s) */
  syncIntervalMs?: number
}

/** Called with the records each applied change of a space added (local writes, gossip, catch-up). */
export type PolicyListener = (space: string, records: AppliedRecord[]) => void

/** The policy service's counters, with their help text. */
const METRICS = {
  edgeward_policy_changes_applied_total: 'policy changes applied, by source',
  edgeward_policy_changes_refused_total: 'policy changes refused, by reason and sending peer',
  edgeward_policy_changes_dropped_total:
    'policy changes not kept because their history is missing and their signer is not known as an author (or has too many waiting), by sending peer',
  edgeward_policy_records_powerless_total:
    'records taken from peers that have no effect, by kind and issuer: their author holds no authority for them (a fired or expired admin)',
  edgeward_policy_gossip_failures_total:
    'policy changes stored here that gossip could not send (peers get them by catch-up)',
}

/** The policy documents of every space this node knows: writes, gossip, catch-up and storage. */
export class PolicyService {
  private readonly c: PolicyComponents
  private readonly docs = new Map<string, PolicyDocument>()
  private readonly listeners: PolicyListener[] = []
  private readonly syncIntervalMs: number
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private readonly inFlight = new Set<Promise<unknown>>()
  /** peers being caught up with in the background, and whether to go again once done */
  private readonly catchingUp = new Map<string, { again: boolean }>()
  private readonly actor: string
  private readonly genesisStored = new Set<string>()

  constructor(components: PolicyComponents, opts: PolicyServiceOptions = {}) {
    this.c = components
    this.syncIntervalMs = opts.syncIntervalMs ?? 30_000
    this.actor = actorFor(components.identity.principal.did, components.identity.peerId)
    for (const [name, help] of Object.entries(METRICS)) components.metrics.describe(name, help)
  }

  /** Be told of the records each applied change brings; returns the function that stops it. */
  onRecords(listener: PolicyListener): () => void {
    this.listeners.push(listener)
    return () => {
      const i = this.listeners.indexOf(listener)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }

  /** Load the stored spaces and changes, subscribe to their topics, answer and start catch-up. */
  async start(): Promise<void> {
    for await (const [space, value] of this.c.store.spaces.iterator()) {
      const meta = decodeCanonical(value, 64 * 1024) as { genesis?: Uint8Array }
      const doc = new PolicyDocument(space, this.actor)
      if (meta.genesis !== undefined) {
        openGenesis(meta.genesis) // stored genesis must still verify
        this.genesisStored.add(space)
      }
      this.docs.set(space, doc)
      // stored by hash, not in causal order: applyEnvelopes orders them
      const stored = await this.c.store.policy.values(changesOf(space)).all()
      const drop: string[] = []
      for (const outcome of doc.applyEnvelopes(stored).outcomes) {
        if (outcome.status === 'refused') {
          log.error('stored change of %s no longer applies: %s', space, outcome.error.message)
        }
        // a change kept by an earlier version while it waited, that this one would not keep
        if (outcome.status === 'dropped') drop.push(changeKey(space, outcome.hash))
      }
      if (drop.length > 0) {
        await this.c.store.policy.batch(
          drop.map(key => ({ type: 'del' as const, key })),
          DURABLE,
        )
        log('dropped %d stored changes of %s that wait for a history from no author', drop.length, space)
      }
      this.subscribe(space)
    }
    await handle(
      this.c.libp2p,
      POLICY_SYNC_PROTOCOL,
      MAX_SYNC_REQUEST_BYTES,
      MAX_SYNC_RESPONSE_BYTES,
      async (body, conn) => this.answerSync(body, conn.remotePeer),
      // a broken catch-up stream is a network event, not a refused policy change
      (err, conn) => log('catch-up request from %s failed: %s', conn.remotePeer, err.message),
    )
    this.c.libp2p.addEventListener('connection:open', evt => {
      this.catchUpSoon(evt.detail.remotePeer)
    })
    this.timer = setInterval(() => this.track(this.syncAll()), this.syncIntervalMs)
    this.timer.unref()
  }

  /** Stop catching up and wait for the catch-ups in flight (before the store closes). */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    await Promise.allSettled(this.inFlight)
  }

  /** Background catch-ups are tracked so that stop() can wait for them before the store closes. */
  private track(p: Promise<unknown>): void {
    const tracked = p
      .catch(err => log('catch-up failed: %s', (err as Error).message))
      .finally(() => this.inFlight.delete(tracked))
    this.inFlight.add(tracked)
  }

  /** Every space this node created or joined. */
  spaces(): string[] {
    return [...this.docs.keys()]
  }

  /** The space's document once its policy has arrived here; NotFoundError before that. */
  synced(space: string): PolicyDocument {
    const doc = this.document(space)
    if (!doc.hasGenesis) {
      throw new NotFoundError(`space ${space} has not synchronised yet: is a peer of the space connected?`)
    }
    return doc
  }

  /** Whether this node is a key holder of the space (false until the space's policy has arrived). */
  holds(space: string): boolean {
    const doc = this.document(space)
    return doc.hasGenesis && doc.state.holders.includes(this.c.identity.peerId)
  }

  /**
   * Whether this node makes the keys of `stream`: a key holder makes those of the owner's
   * streams, a member's device those of its own files and messages (their record names it).
   */
  makesKeys(space: string, stream: string): boolean {
    const doc = this.document(space)
    if (!doc.hasGenesis) return false
    const peer = doc.state.streams.get(stream)?.body.peer
    return peer === undefined ? this.holds(space) : peer === this.c.identity.peerId
  }

  /** Whether this node makes the keys of any stream of the space (it holds it, or publishes a member's streams in it). */
  makesAnyKeys(space: string): boolean {
    if (this.holds(space)) return true
    const doc = this.document(space)
    if (!doc.hasGenesis) return false
    for (const rec of doc.state.streams.values()) if (rec.body.peer === this.c.identity.peerId) return true
    return false
  }

  /** The space's document, synchronised or not yet; NotFoundError for a space this node does not know. */
  document(space: string): PolicyDocument {
    const doc = this.docs.get(space)
    if (doc === undefined) throw new NotFoundError(`unknown space ${space}: create or join it first`)
    return doc
  }

  /** The owner creates a space; this node becomes its key holder. */
  async createSpace(name: string): Promise<OpenedRecord<SpaceGenesis>> {
    const { principal, peerId } = this.c.identity
    const now = this.c.now()
    const genesis = createGenesis(principal, name, [peerId], now)
    const { document, envelope } = PolicyDocument.create(principal, this.actor, genesis, now)
    await this.storeSpace(genesis.id, genesis.bytes)
    this.genesisStored.add(genesis.id)
    await this.persist(genesis.id, document.heads()[0], envelope)
    this.docs.set(genesis.id, document)
    this.subscribe(genesis.id)
    await this.publish(genesis.id, envelope)
    return genesis
  }

  /** A reader joins a space by id; the genesis and policy arrive by catch-up from peers. */
  async joinSpace(space: string): Promise<void> {
    if (this.docs.has(space)) return
    await this.storeSpace(space)
    this.docs.set(space, new PolicyDocument(space, this.actor))
    this.subscribe(space)
    await this.syncAll()
  }

  /**
   * Write records this node signed, as they are: apply locally, store, then gossip. The
   * low-level path (the simulator's adversaries craft records with it); the node's own grants,
   * delegations, revocations and decisions go through `grant`, `delegate`, `revoke`,
   * `approveRequest` and `denyRequest`.
   */
  async write(space: string, entries: AppliedRecord[]): Promise<ApplyOutcome> {
    const doc = this.document(space)
    const { envelope, outcome } = doc.write(this.c.identity.principal, entries, this.c.now())
    if (outcome.status === 'applied') {
      await this.persist(space, outcome.hash, envelope)
      this.c.metrics.inc('edgeward_policy_changes_applied_total', { source: 'local' })
      this.notify(space, outcome.records)
    }
    await this.publish(space, envelope)
    return outcome
  }

  /**
   * Grant `fields` as this node's principal, signed on the node's clock, and write it. Refused
   * before anything is written (AccessRefusedError `not-authorized`) when this node may not
   * write it or its issuer would have no authority for it; fields that make no valid grant are
   * a UsageError.
   */
  async grant(space: string, fields: Omit<GrantFields, 'space'>): Promise<Written<Grant>> {
    const record = this.checkGrant(space, fields)
    return { record, change: await this.writeOwn(space, [{ kind: 'grant', record }]) }
  }

  /**
   * The grant `grant` would write, signed now, after the same checks: for a caller that must know
   * before other work (storing a file) that the grant it ends with will be accepted.
   */
  checkGrant(space: string, fields: Omit<GrantFields, 'space'>): OpenedRecord<Grant> {
    const state = this.synced(space).state
    const now = this.c.now()
    let record: OpenedRecord<Grant>
    try {
      record = createGrant(this.c.identity.principal, { space, ...fields }, now)
    } catch (err) {
      if ((err as Error).name === InvalidMessageError.name) throw new UsageError((err as Error).message)
      throw err
    }
    const may = state.mayWrite(record.issuer, {
      kind: 'grant',
      body: record.body as unknown as Record<string, unknown>,
    })
    if (may !== undefined) throw new AccessRefusedError('not-authorized', may)
    // a grant its issuer has no authority for would never be honoured: say so rather than write it
    const problem = state.grantProblem(record, now)
    if (problem?.code === 'issuer-not-authorized' || problem?.code === 'parent-not-active') {
      throw new AccessRefusedError('not-authorized', problem.reason)
    }
    return record
  }

  /** Delegate part of the space to an admin, as this node's principal (the owner), on the node's clock. */
  async delegate(
    space: string,
    fields: Omit<Delegation, 't' | 'iss' | 'nonce' | 'iat' | 'space'>,
  ): Promise<Written<Delegation>> {
    this.synced(space)
    const record = createDelegation(this.c.identity.principal, { space, ...fields }, this.c.now())
    return { record, change: await this.writeOwn(space, [{ kind: 'delegation', record }]) }
  }

  /** Revoke a grant, a subject, a device or a delegation, as this node's principal, on the node's clock. */
  async revoke(space: string, target: RevocationTarget, reason?: string): Promise<Written<Revocation>> {
    this.synced(space)
    const record = createRevocation(this.c.identity.principal, space, target, this.c.now(), reason)
    return { record, change: await this.writeOwn(space, [{ kind: 'revocation', record }]) }
  }

  /**
   * Name the space's custodians and the threshold k of them that together release a key, as
   * this node's principal (the owner), on the node's clock. The set is in force once written
   * (PolicyState.custodianSet) and replaces the one before. Refused before anything is written:
   * AccessRefusedError `not-authorized` if this node's principal is not the owner; UsageError for
   * a set that is not valid (k outside 2..n, a custodian named twice, a bad key).
   */
  async setCustodians(space: string, custodians: Custodian[], k: number): Promise<Written<CustodianSet>> {
    const state = this.synced(space).state
    const me = this.c.identity.principal
    const may = state.mayWrite(me.did, { kind: 'custodian-set', body: { space } })
    if (may !== undefined) throw new AccessRefusedError('not-authorized', may)
    let record: OpenedRecord<CustodianSet>
    try {
      record = createCustodianSet(me, space, custodians, k, this.c.now())
    } catch (err) {
      if ((err as Error).name === InvalidMessageError.name) throw new UsageError((err as Error).message)
      throw err
    }
    return { record, change: await this.writeOwn(space, [{ kind: 'custodian-set', record }]) }
  }

  /** Approve an access request: the grant of `fields` and the decision naming it, in one change. */
  async approveRequest(
    space: string,
    request: OpenedRecord<AccessRequest>,
    fields: Omit<GrantFields, 'space'>,
  ): Promise<Written<Grant>> {
    this.synced(space)
    const me = this.c.identity.principal
    const now = this.c.now()
    const record = createGrant(me, { space, ...fields }, now)
    const decision = createDecision(me, request, { approved: true, grant: record.id }, now)
    const change = await this.writeOwn(space, [
      { kind: 'grant', record },
      { kind: 'decision', record: decision },
    ])
    return { record, change }
  }

  /** Deny an access request, with the reason the requester will see. */
  async denyRequest(space: string, request: OpenedRecord<AccessRequest>, reason: string): Promise<Written<Decision>> {
    this.synced(space)
    const record = createDecision(this.c.identity.principal, request, { approved: false, reason }, this.c.now())
    return { record, change: await this.writeOwn(space, [{ kind: 'decision', record }]) }
  }

  /** A stored change of the space by its hash (the signed envelope), if this node has it. */
  async storedChange(space: string, hash: string): Promise<Uint8Array | undefined> {
    return this.c.store.policy.get(changeKey(space, hash))
  }

  /**
   * Write records this node signed; returns the change's hash. A write its author may not make
   * is AccessRefusedError `not-authorized`; a change that did not apply, PolicyWriteError.
   */
  private async writeOwn(space: string, entries: AppliedRecord[]): Promise<string> {
    let outcome: ApplyOutcome
    try {
      outcome = await this.write(space, entries)
    } catch (err) {
      if ((err as Error).name === UnauthorizedChangeError.name) {
        throw new AccessRefusedError('not-authorized', (err as Error).message)
      }
      throw err
    }
    if (outcome.status !== 'applied') throw new PolicyWriteError(`the change was not applied: ${outcome.status}`)
    return outcome.hash
  }

  private async storeSpace(space: string, genesis?: Uint8Array): Promise<void> {
    await this.c.store.spaces.put(space, encodeCanonical(genesis === undefined ? {} : { genesis }), DURABLE)
  }

  private notify(space: string, records: AppliedRecord[]): void {
    if (records.length === 0) return
    for (const l of this.listeners) l(space, records)
  }

  private async persist(space: string, hash: string, envelope: Uint8Array): Promise<void> {
    await this.c.store.policy.put(changeKey(space, hash), envelope, DURABLE)
  }

  private async persistAll(space: string, changes: { hash: string; envelope: Uint8Array }[]): Promise<void> {
    if (changes.length === 0) return
    await this.c.store.policy.batch(
      changes.map(c => ({ type: 'put' as const, key: changeKey(space, c.hash), value: c.envelope })),
      DURABLE,
    )
  }

  /**
   * Gossip a change that is already stored and applied here. A failure does not undo it, so it
   * is not the caller's error: peers get the change by catch-up (on connecting, and every
   * syncIntervalMs).
   */
  private async publish(space: string, envelope: Uint8Array): Promise<void> {
    try {
      await this.c.libp2p.services.pubsub.publish(policyTopic(space), envelope)
    } catch (err) {
      this.c.metrics.inc('edgeward_policy_gossip_failures_total')
      log.error('gossiping a policy change of space %s: %s', space, (err as Error).message)
    }
  }

  private subscribe(space: string): void {
    const topic = policyTopic(space)
    const pubsub = this.c.libp2p.services.pubsub
    pubsub.topicValidators.set(topic, async (peer, msg) => {
      const verdict = await this.ingest(space, msg.data, peer.toString(), 'gossip')
      // the history it needs is with the peer that forwarded it: catch up with that peer now
      if (verdict === 'wait') this.catchUpSoon(peer)
      // a change whose history has not arrived is kept but not forwarded: catch-up brings it in order
      return verdict === 'accept'
        ? TopicValidatorResult.Accept
        : verdict === 'wait'
          ? TopicValidatorResult.Ignore
          : TopicValidatorResult.Reject
    })
    pubsub.subscribe(topic)
  }

  /**
   * Validate, apply and store one envelope: 'accept' (applied or already had), 'wait' (its
   * history has not arrived: kept, not forwarded) or 'reject' (refused, and counted).
   */
  private async ingest(
    space: string,
    data: Uint8Array,
    from: string,
    source: string,
  ): Promise<'accept' | 'wait' | 'reject'> {
    const doc = this.docs.get(space)
    if (doc === undefined) return 'reject'
    let outcome: ApplyOutcome
    const refusedBefore = doc.refusedAfterWaiting
    try {
      outcome = doc.applyEnvelope(data, this.c.now())
    } catch (err) {
      this.refused(source, from, err as Error)
      return 'reject'
    }
    if (outcome.status === 'duplicate') return 'accept'
    if (outcome.status === 'dropped') {
      this.dropped(source, from, 1)
      return 'wait'
    }
    // what waits for its history stays in memory: after a restart, catch-up brings it again
    if (outcome.status === 'pending') return 'wait'
    await this.persist(space, outcome.hash, data)
    this.c.metrics.inc('edgeward_policy_changes_applied_total', { source })
    await this.afterApplied(space, doc, refusedBefore, from, source)
    this.countPowerless(doc, outcome.records)
    this.notify(space, outcome.records)
    return 'accept'
  }

  /**
   * Validate, apply and store a page of envelopes as one batch; each refused one is counted on
   * its own and does not stop the others. Returns how many were accepted (applied or had).
   */
  private async ingestAll(
    space: string,
    envelopes: Uint8Array[],
    from: string,
    source: string,
  ): Promise<{ accepted: number; fresh: number }> {
    const doc = this.docs.get(space)
    if (doc === undefined) return { accepted: 0, fresh: 0 }
    const refusedBefore = doc.refusedAfterWaiting
    const [sizeBefore, waitingBefore] = [doc.size, doc.waiting]
    const { outcomes, records } = doc.applyEnvelopes(envelopes, this.c.now())
    const keep: { hash: string; envelope: Uint8Array }[] = []
    let applied = 0
    let accepted = 0
    let dropped = 0
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === 'refused') this.refused(source, from, outcome.error)
      else if (outcome.status === 'duplicate') accepted++
      else if (outcome.status === 'dropped') dropped++
      else if (outcome.status === 'applied') {
        keep.push({ hash: outcome.hash, envelope: envelopes[i] })
        applied++
        accepted++
      }
    }
    if (dropped > 0) this.dropped(source, from, dropped)
    await this.persistAll(space, keep)
    if (applied > 0) this.c.metrics.inc('edgeward_policy_changes_applied_total', { source }, applied)
    await this.afterApplied(space, doc, refusedBefore, from, source)
    this.countPowerless(doc, records)
    this.notify(space, records)
    // new to this node: applied (with what waited for them), or newly waiting
    return { accepted, fresh: doc.size - sizeBefore + Math.max(0, doc.waiting - waitingBefore) }
  }

  /** Count the waiting changes that were refused once their history came, and store a new genesis. */
  private async afterApplied(
    space: string,
    doc: PolicyDocument,
    refusedBefore: number,
    from: string,
    source: string,
  ): Promise<void> {
    const refusedLater = doc.refusedAfterWaiting - refusedBefore
    if (refusedLater > 0) {
      this.c.metrics.inc(
        'edgeward_policy_changes_refused_total',
        { reason: 'refused-after-waiting', peer: from, source },
        refusedLater,
      )
    }
    if (doc.hasGenesis && !this.genesisStored.has(space)) {
      await this.storeSpace(space, doc.state.genesis.bytes)
      this.genesisStored.add(space)
    }
  }

  /** Count the records from peers that are kept but have no effect (their author has no authority left). */
  private countPowerless(doc: PolicyDocument, records: AppliedRecord[]): void {
    const now = this.c.now()
    for (const r of records) {
      const why = doc.state.powerlessReason(r, now)
      if (why === undefined) continue
      log('%s %s by %s has no effect: %s', r.kind, r.record.id, r.record.issuer, why)
      this.c.metrics.inc('edgeward_policy_records_powerless_total', { kind: r.kind, issuer: r.record.issuer })
    }
  }

  private dropped(source: string, peer: string, n: number): void {
    this.c.metrics.inc('edgeward_policy_changes_dropped_total', { peer, source }, n)
  }

  private refused(source: string, peer: string, err: Error): void {
    log('refused %s from %s: %s', source, peer, err.message)
    this.c.metrics.inc('edgeward_policy_changes_refused_total', { reason: err.name, peer, source })
  }

  /** Policy changes refused so far, from every source. */
  refusals(): number {
    return this.c.metrics.total('edgeward_policy_changes_refused_total')
  }

  private async answerSync(body: Uint8Array, from: PeerId): Promise<Uint8Array> {
    const req = decodeSyncRequest(body)
    const doc = this.docs.get(req.space)
    if (doc === undefined) return encodeSyncResponse({ envelopes: [], more: false })
    // the asking peer has changes this node lacks: catch up with it in turn
    if (req.heads.some(h => !doc.hasChange(h))) this.catchUpSoon(from)
    const all = doc.envelopesSince(req.heads)
    // a peer that knows none of our heads needs everything, the genesis first
    return encodeSyncResponse({ envelopes: all.slice(0, MAX_SYNC_PAGE), more: all.length > MAX_SYNC_PAGE })
  }

  /** Catch up with every connected peer now. */
  async syncAll(): Promise<void> {
    await Promise.all(this.c.libp2p.getPeers().map(p => this.syncWith(p)))
  }

  /**
   * Catch up with a peer in the background, once at a time per peer (asked again while one
   * runs: once more after it). A catch-up that brought new changes asks every other connected
   * peer for what it lacks too; the request carries this node's heads, so a peer that lacks
   * the new changes catches up from this node in turn (answerSync). Changes made on the far
   * side of a healed partition thus spread hop by hop at once, not one catch-up interval per hop.
   */
  private catchUpSoon(peer: PeerId): void {
    const key = peer.toString()
    const state = this.catchingUp.get(key)
    if (state !== undefined) {
      state.again = true
      return
    }
    const run = async (): Promise<void> => {
      const s = { again: false }
      this.catchingUp.set(key, s)
      try {
        do {
          s.again = false
          await this.syncWith(peer)
        } while (s.again && !this.stopped)
      } finally {
        this.catchingUp.delete(key)
      }
    }
    this.track(run())
  }

  /** Peers asked because a catch-up brought new changes: all connected but the one they came from. */
  private spreadFrom(source: string): void {
    for (const p of this.c.libp2p.getPeers()) if (p.toString() !== source) this.catchUpSoon(p)
  }

  /** Ask one peer for the changes we lack, in every space we know, until it has no more. */
  async syncWith(peer: PeerId | string): Promise<number> {
    const id = typeof peer === 'string' ? peerIdFromString(peer) : peer
    let applied = 0
    let fresh = 0
    for (const [space, doc] of this.docs) {
      for (let page = 0; page < 1000 && !this.stopped; page++) {
        let res: ReturnType<typeof decodeSyncResponse>
        try {
          const body = encodeSyncRequest({ space, heads: doc.heads() })
          res = decodeSyncResponse(
            await request(this.c.libp2p, id, POLICY_SYNC_PROTOCOL, body, MAX_SYNC_RESPONSE_BYTES),
          )
        } catch (err) {
          log('sync of %s with %s failed: %s', space, id, (err as Error).message)
          break
        }
        const before = doc.heads().join()
        const page = await this.ingestAll(space, res.envelopes, id.toString(), 'sync')
        applied += page.accepted
        if (doc.heads().join() !== before) fresh++
        // a page that brought nothing new would come again: the peer has no more that we can take
        if (!res.more || page.fresh === 0) break
      }
    }
    if (fresh > 0 && !this.stopped) this.spreadFrom(id.toString())
    return applied
  }
}
