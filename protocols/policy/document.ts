/**
 * The policy document of a space: an Automerge document whose every change travels in a
 * signed envelope, and the verified PolicyState built from the records it carries.
 *
 * Document shape: `{ genesis: bytes, streams: {name: bytes}, delegations: {id: bytes},
 * custodians: {id: bytes}, grants: {shard: {id: bytes}}, revocations: {shard: {id: bytes}},
 * decisions: {shard: {id: bytes}} }`; each value is a signed record (records.ts, requests.ts,
 * custody/records.ts: `custodians` holds every custodian set the owner wrote). The collections that grow with use
 * (grants, revocations, decisions) are split into 256 fixed shards, made in the genesis change
 * and named by the first two hex digits of the record id: Automerge's cost of adding a key
 * grows with the map it goes into, so a change touches small maps only, whatever the number of
 * grants. The shards exist from the start so that no two writers ever create the same map.
 *
 * Guarantees (checked on every envelope, in `applyEnvelope` and `applyEnvelopes`):
 * - the envelope's signature verifies and names this space;
 * - the change's Automerge actor id is bound to the envelope's signer (its first 16 bytes
 *   are a tagged hash of the signer's key), so nobody can write under another's actor;
 * - the first change (no dependencies) is the genesis change and its genesis record hashes
 *   to the space id, and it makes exactly the collections and their shards; every later
 *   change only adds entries: `set` operations with no predecessor, into one of the
 *   collections (into the shard its key names, for a sharded one), each value a valid signed
 *   record stored under its own key, signed by the change's author, who may write it
 *   (PolicyState.mayWrite: the owner; admins; the holder of a forwardable grant for its
 *   children). Deletions and overwrites are refused;
 * - given the receiver's clock (`now`), no record is dated more than MAX_CLOCK_SKEW_MS after it:
 *   such a change is refused, not kept (it may be offered again once its time has come).
 * The document also keeps the causal order of the changes it applied (ChangeHistory), which the
 * state uses wherever the policy needs "written before" or "after": never the signers' clocks.
 * Refusals throw InvalidMessageError or UnauthorizedChangeError (one at a time), or are
 * returned per envelope (`applyEnvelopes`); the caller counts them.
 */
import * as Automerge from '@automerge/automerge'
import { toHex } from '../../crypto/encoding.ts'
import { InvalidDidError, InvalidEncodingError, InvalidSignatureError } from '../../crypto/errors.ts'
import { taggedHash } from '../../crypto/hash.ts'
import { publicKeyFromDid, type SigningKeyPair } from '../../crypto/identity.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../../crypto/signed.ts'
import { type CustodianSet, openCustodianSet } from '../custody/records.ts'
import { FutureDatedError, InvalidMessageError, PolicyWriteError, UnauthorizedChangeError } from '../errors.ts'
import { asMap, bytes, did, ID_PATTERN, str } from '../validate.ts'
import {
  type Delegation,
  type Grant,
  openDelegation,
  openGenesis,
  openGrant,
  openRevocation,
  openStream,
  type Revocation,
  type SpaceGenesis,
  type StreamRecord,
} from './records.ts'
import { type OpenedDecision, openDecision } from './requests.ts'
import { type AddResult, type CausalHistory, MAX_CLOCK_SKEW_MS, PolicyState } from './state.ts'

export const ENVELOPE_TAG = 'edgeward/change/v1'
/** An envelope carries one change; a change adds at most a few records. */
export const MAX_ENVELOPE_BYTES = 64 * 1024
const MAX_OPS_PER_CHANGE = 16
const MAX_PENDING = 4096
/** changes of one signer kept while they wait for their history */
const MAX_PENDING_PER_SIGNER = 256
/**
 * Changes handed to Automerge in one call: fewer calls save time, but Automerge's cost per
 * change rises again past a few dozen in one call (measured: 0.67 ms one by one, 0.44 in calls
 * of 64, 4.8 in calls of 512, at 20 000 grants).
 */
const MAX_RUN = 64

export interface ChangeEnvelope {
  t: 'change'
  iss: string
  space: string
  change: Uint8Array
}

export type AppliedRecord =
  | { kind: 'stream'; record: OpenedRecord<StreamRecord> }
  | { kind: 'grant'; record: OpenedRecord<Grant> }
  | { kind: 'revocation'; record: OpenedRecord<Revocation> }
  | { kind: 'delegation'; record: OpenedRecord<Delegation> }
  | { kind: 'decision'; record: OpenedDecision }
  | { kind: 'custodian-set'; record: OpenedRecord<CustodianSet> }

type Kind = AppliedRecord['kind']

/**
 * The document's collections: which kind of record each holds, how it is opened and keyed, and
 * whether it is split into shards (those keyed by record id that grow with use).
 */
const COLLECTIONS = {
  streams: { kind: 'stream', open: openStream, key: (r: OpenedRecord<any>) => r.body.name as string, sharded: false },
  grants: { kind: 'grant', open: openGrant, key: (r: OpenedRecord<any>) => r.id, sharded: true },
  revocations: { kind: 'revocation', open: openRevocation, key: (r: OpenedRecord<any>) => r.id, sharded: true },
  delegations: { kind: 'delegation', open: openDelegation, key: (r: OpenedRecord<any>) => r.id, sharded: false },
  decisions: { kind: 'decision', open: openDecision, key: (r: OpenedRecord<any>) => r.id, sharded: true },
  custodians: {
    kind: 'custodian-set',
    open: openCustodianSet,
    key: (r: OpenedRecord<any>) => r.id,
    sharded: false,
  },
} as const
type Collection = keyof typeof COLLECTIONS
const COLLECTION_NAMES = Object.keys(COLLECTIONS) as Collection[]
const COLLECTION_OF: Record<Kind, Collection> = {
  stream: 'streams',
  grant: 'grants',
  revocation: 'revocations',
  delegation: 'delegations',
  decision: 'decisions',
  'custodian-set': 'custodians',
}

export type ApplyOutcome =
  | { status: 'applied'; hash: string; records: AppliedRecord[] }
  | { status: 'duplicate'; hash: string }
  /** the change depends on changes that have not arrived yet; kept, and checked when they do */
  | { status: 'pending'; hash: string }
  /**
   * the change depends on changes that have not arrived yet and is not kept: its signer is not
   * known as an author of the space, or too many of its changes wait already. Catch-up brings
   * it again after its history, in causal order.
   */
  | { status: 'dropped'; hash: string; reason: string }

/** The shards of a sharded collection: the first two hex digits of a record id. */
export const SHARDS: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

const SHARD_SET = new Set(SHARDS)

/** The shard a record id belongs in. */
export function shardOf(id: string): string {
  return id.slice(0, 2)
}

/**
 * The Automerge document itself, without the JavaScript copy of it that Automerge.applyChanges
 * and Automerge.change keep up to date: updating that copy costs time that grows with the maps
 * a change touches, and nothing here reads the document through it (the state is built from the
 * verified records).
 */
type Backend = ReturnType<typeof Automerge.getBackend>

/** What an Automerge object of the document is: a collection, or one shard of a sharded one. */
interface Slot {
  collection: Collection
  /** the shard this map is, for a shard; undefined for a collection's own map */
  shard?: string
}

/** The outcome of one envelope of a batch: as applyEnvelope's, or refused with the error it would throw. */
export type BatchOutcome = ApplyOutcome | { status: 'refused'; error: Error }

/** A change whose envelope and change were opened and whose stateless checks passed. */
interface Opened {
  index: number
  env: OpenedRecord<ChangeEnvelope>
  change: Automerge.DecodedChange
  data: Uint8Array
}

/**
 * The causal order of the applied changes: each change's dependencies and the order in which
 * it was applied here. A change is applied only after every change it depends on, so nothing
 * applied before change A can have A in its past: a walk back from B stops there. Answers are
 * a property of the history, the same on every replica, whatever the order of arrival.
 */
export class ChangeHistory implements CausalHistory {
  private readonly changes = new Map<string, { index: number; deps: string[] }>()
  private readonly answers = new Map<string, boolean>()

  add(hash: string, deps: string[]): void {
    if (!this.changes.has(hash)) this.changes.set(hash, { index: this.changes.size, deps })
  }

  precedes(earlier: string, later: string): boolean {
    if (earlier === later) return false
    const a = this.changes.get(earlier)
    const b = this.changes.get(later)
    if (a === undefined || b === undefined || a.index >= b.index) return false
    const key = `${earlier}>${later}`
    const known = this.answers.get(key)
    if (known !== undefined) return known
    const seen = new Set<string>()
    const stack = [...b.deps]
    let found = false
    while (stack.length > 0 && !found) {
      const h = stack.pop()!
      if (h === earlier) found = true
      else if (!seen.has(h)) {
        seen.add(h)
        const c = this.changes.get(h)
        if (c !== undefined && c.index > a.index) stack.push(...c.deps)
      }
    }
    // questions are few (subject and delegation revocations against what came after): keep them bounded all the same
    if (this.answers.size >= 100_000) this.answers.clear()
    this.answers.set(key, found)
    return found
  }
}

/** The actor id prefix bound to a signer: 16 bytes of a tagged hash of its public key. */
export function actorPrefix(did: string): string {
  return toHex(taggedHash('edgeward/actor', publicKeyFromDid(did)).subarray(0, 16))
}

/** A full actor id: the signer's prefix and 8 bytes that tell its devices apart. */
export function actorFor(did: string, deviceId: string): string {
  return (
    actorPrefix(did) + toHex(taggedHash('edgeward/actor-device', new TextEncoder().encode(deviceId)).subarray(0, 8))
  )
}

/** Decode and verify a signed change envelope (its signature, issuer and space); throws a typed error. */
export function openEnvelope(data: Uint8Array): OpenedRecord<ChangeEnvelope> {
  const rec = openSignedRecord<ChangeEnvelope>(ENVELOPE_TAG, data, MAX_ENVELOPE_BYTES)
  const m = asMap(rec.body, 'change envelope', ['t', 'iss', 'space', 'change'])
  if (m.t !== 'change') throw new InvalidMessageError('not a change envelope')
  did(m, 'iss')
  str(m, 'space', 64, ID_PATTERN)
  bytes(m, 'change', 1, MAX_ENVELOPE_BYTES)
  return rec
}

function opValueBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value
  if (Array.isArray(value) && value.every(b => Number.isInteger(b) && b >= 0 && b < 256)) return Uint8Array.from(value)
  throw new UnauthorizedChangeError('change writes a value that is not a signed record')
}

/** One space's policy: the Automerge document of its signed records, with the rules that decide which changes apply. */
export class PolicyDocument {
  readonly spaceId: string
  private readonly backend: Backend
  private readonly actor: string | undefined
  private stateValue: PolicyState | undefined
  /** the collections and their shards by Automerge object id, known once the genesis change is applied */
  private objects: Map<string, Slot> | undefined
  /** the object id of each map that holds records, by `collection/shard` (`collection/` if not sharded) */
  private maps = new Map<string, string>()
  /** every accepted envelope by change hash (what the catch-up protocol serves) */
  private readonly envelopes = new Map<string, Uint8Array>()
  /** changes waiting for a change they depend on, by hash */
  private readonly pending = new Map<string, { data: Uint8Array; deps: string[]; signer: string }>()
  private readonly pendingBySigner = new Map<string, number>()
  private readonly history = new ChangeHistory()

  /** `actor` is this replica's own actor id; a replica that never writes may omit it. */
  constructor(spaceId: string, actor?: string) {
    this.spaceId = spaceId
    this.actor = actor
    this.backend = Automerge.getBackend(actor === undefined ? Automerge.init() : Automerge.init({ actor }))
  }

  /** The owner creates a space: returns the document and the genesis envelope to publish. */
  static create(
    owner: SigningKeyPair & { did: string },
    actor: string,
    genesis: OpenedRecord<SpaceGenesis>,
    now: number,
  ): { document: PolicyDocument; envelope: Uint8Array } {
    const document = new PolicyDocument(genesis.id, actor)
    const backend = document.backend
    backend.put('_root', 'genesis', genesis.bytes)
    for (const name of COLLECTION_NAMES) {
      const map = backend.putObject('_root', name, {})
      if (COLLECTIONS[name].sharded) for (const shard of SHARDS) backend.putObject(map, shard, {})
    }
    backend.commit(null, Math.floor(now / 1000))
    const envelope = wrap(owner, genesis.id, backend.getLastLocalChange()!)
    const outcome = document.applyEnvelope(envelope)
    if (outcome.status !== 'applied') throw new PolicyWriteError('genesis change did not apply')
    return { document, envelope }
  }

  /** The causal order of the changes applied here. */
  get causalHistory(): CausalHistory {
    return this.history
  }

  get hasGenesis(): boolean {
    return this.stateValue !== undefined
  }

  /** The verified policy state; throws if the genesis has not arrived. */
  get state(): PolicyState {
    if (this.stateValue === undefined) throw new InvalidMessageError(`space ${this.spaceId} has no genesis yet`)
    return this.stateValue
  }

  heads(): string[] {
    return this.backend.getHeads()
  }

  hasChange(hash: string): boolean {
    return this.envelopes.has(hash)
  }

  get size(): number {
    return this.envelopes.size
  }

  /** Changes kept until the changes they depend on arrive. */
  get waiting(): number {
    return this.pending.size
  }

  /** Envelopes of the changes the holder of `heads` lacks (heads unknown here are ignored). */
  envelopesSince(heads: string[]): Uint8Array[] {
    const known = heads.filter(h => this.envelopes.has(h))
    const out: Uint8Array[] = []
    for (const change of this.backend.getChanges(known)) {
      const env = this.envelopes.get(Automerge.decodeChange(change).hash)
      if (env !== undefined) out.push(env)
    }
    for (const p of this.pending.values()) out.push(p.data)
    return out
  }

  allEnvelopes(): Uint8Array[] {
    return [...this.envelopes.values()]
  }

  /**
   * Validate and apply one signed change. Idempotent: a change already applied returns
   * `duplicate`. Throws InvalidMessageError, InvalidEncodingError, InvalidSignatureError,
   * InvalidDidError or UnauthorizedChangeError for anything refused.
   */
  applyEnvelope(data: Uint8Array, now?: number): ApplyOutcome {
    const opened = this.open(data, 0)
    if ('status' in opened) return opened
    const { env, change } = opened
    // a change is checked in the state its own history gives: it waits for every change it depends on
    if (!change.deps.every(d => this.envelopes.has(d))) return this.wait(opened)
    const records = this.applyReady(env, change, data, now)
    return { status: 'applied', hash: change.hash, records: [...records, ...this.drainPending(now)] }
  }

  /**
   * Validate and apply many signed changes, in any order (each is applied after the changes of
   * the batch it depends on), with one Automerge call for a run of changes that all pass their
   * checks: what a peer catching up, or a node loading its store, does. Every envelope is
   * verified and checked on its own, and refused on its own: a refused one changes nothing and
   * does not stop the others. The outcome of each envelope, at its index, is what
   * applyEnvelope would give (or the error it would throw, as `refused`); `records` are every
   * record added to the state, including those of earlier changes that were waiting for these.
   */
  applyEnvelopes(datas: Uint8Array[], now?: number): { outcomes: BatchOutcome[]; records: AppliedRecord[] } {
    const outcomes: BatchOutcome[] = new Array(datas.length)
    const records: AppliedRecord[] = []
    const opened: Opened[] = []
    const inBatch = new Set<string>()
    for (const [i, data] of datas.entries()) {
      try {
        const o = this.open(data, i)
        if ('status' in o) outcomes[i] = o
        else if (inBatch.has(o.change.hash)) outcomes[i] = { status: 'duplicate', hash: o.change.hash }
        else {
          inBatch.add(o.change.hash)
          opened.push(o)
        }
      } catch (err) {
        outcomes[i] = { status: 'refused', error: err as Error }
      }
    }
    /** the run of checked changes not yet handed to Automerge, and their hashes */
    let run: { o: Opened; records: AppliedRecord[] }[] = []
    const inRun = new Set<string>()
    const flush = () => {
      if (run.length > 0) records.push(...this.applyRun(run, outcomes, now))
      run = []
      inRun.clear()
    }
    for (const o of causalOrder(opened)) {
      const { env, change, index } = o
      // a dependency that is neither here nor earlier in the batch is missing, or was refused
      if (!change.deps.every(d => this.envelopes.has(d) || inRun.has(d))) {
        outcomes[index] = this.wait(o)
        continue
      }
      if (change.deps.length === 0) {
        // the genesis change makes the state the others are checked in
        flush()
        const outcome = this.tryApplyReady(o, now)
        if (outcome.status === 'applied') records.push(...outcome.records)
        outcomes[index] = outcome
        continue
      }
      let checked: AppliedRecord[]
      try {
        checked = this.checkRecords(env, change, now)
      } catch (err) {
        if (run.length === 0) {
          outcomes[index] = { status: 'refused', error: err as Error }
          continue
        }
        // authority only grows as records are added: check again in the state the run makes
        flush()
        try {
          checked = this.checkRecords(env, change, now)
        } catch (again) {
          outcomes[index] = { status: 'refused', error: again as Error }
          continue
        }
      }
      run.push({ o, records: checked })
      inRun.add(change.hash)
      if (run.length >= MAX_RUN) flush()
    }
    flush()
    records.push(...this.drainPending(now))
    return { outcomes, records }
  }

  /** Open an envelope and its change and run the checks that need no state; or say it is known already. */
  private open(data: Uint8Array, index: number): Opened | ApplyOutcome {
    const env = openEnvelope(data)
    if (env.body.space !== this.spaceId) throw new InvalidMessageError('envelope is for another space')
    let change: Automerge.DecodedChange
    try {
      change = Automerge.decodeChange(env.body.change)
    } catch (err) {
      throw new InvalidMessageError(`not an Automerge change: ${(err as Error).message}`)
    }
    if (this.envelopes.has(change.hash)) return { status: 'duplicate', hash: change.hash }
    if (this.pending.has(change.hash)) return { status: 'pending', hash: change.hash }
    if (change.actor.length !== 48 || !change.actor.startsWith(actorPrefix(env.issuer))) {
      throw new UnauthorizedChangeError("the change's actor id is not bound to its signer")
    }
    if (change.deps.length > 0 && (change.ops.length === 0 || change.ops.length > MAX_OPS_PER_CHANGE)) {
      throw new UnauthorizedChangeError(`a change must carry 1..${MAX_OPS_PER_CHANGE} operations`)
    }
    return { index, env, change, data }
  }

  /**
   * Keep a change until the changes it depends on arrive, if its signer is one of the space's
   * authors (nothing else can be checked before its history is here; before the genesis, anyone
   * might be), within a bound per signer and in all; otherwise drop it: catch-up brings it
   * again, after its history. Kept in memory only.
   */
  private wait({ env, change, data }: Opened): ApplyOutcome {
    const drop = (reason: string): ApplyOutcome => ({ status: 'dropped', hash: change.hash, reason })
    const signer = env.issuer
    if (this.stateValue !== undefined && !this.stateValue.mayBeAuthor(signer)) {
      return drop("its signer is not one of the space's authors")
    }
    const mine = this.pendingBySigner.get(signer) ?? 0
    if (mine >= MAX_PENDING_PER_SIGNER) return drop('too many changes of its signer wait for their history')
    if (this.pending.size >= MAX_PENDING) return drop('too many changes wait for their history')
    this.pending.set(change.hash, { data, deps: change.deps, signer })
    this.pendingBySigner.set(signer, mine + 1)
    return { status: 'pending', hash: change.hash }
  }

  /** Once the genesis says who the owner is, let go of what waits from anyone who cannot write. */
  private evictStrangers(): void {
    const state = this.stateValue
    if (state === undefined) return
    for (const [hash, p] of this.pending) if (!state.mayBeAuthor(p.signer)) this.unwait(hash, p.signer)
  }

  private unwait(hash: string, signer: string): void {
    this.pending.delete(hash)
    const left = (this.pendingBySigner.get(signer) ?? 1) - 1
    if (left > 0) this.pendingBySigner.set(signer, left)
    else this.pendingBySigner.delete(signer)
  }

  private tryApplyReady(o: Opened, now: number | undefined): BatchOutcome {
    try {
      return { status: 'applied', hash: o.change.hash, records: this.applyReady(o.env, o.change, o.data, now) }
    } catch (err) {
      return { status: 'refused', error: err as Error }
    }
  }

  /**
   * Hand a run of checked changes, whose history is here or earlier in the run, to Automerge in
   * one call. Automerge takes a batch whole or not at all: if it refuses it, each change is
   * applied on its own, so that only the one it refuses is refused.
   */
  private applyRun(
    run: { o: Opened; records: AppliedRecord[] }[],
    outcomes: BatchOutcome[],
    now: number | undefined,
  ): AppliedRecord[] {
    try {
      this.backend.applyChanges(run.map(r => r.o.env.body.change))
    } catch {
      const added: AppliedRecord[] = []
      for (const { o } of run) {
        if (!o.change.deps.every(d => this.envelopes.has(d))) outcomes[o.index] = this.wait(o)
        else {
          outcomes[o.index] = this.tryApplyReady(o, now)
          const out = outcomes[o.index]
          if (out.status === 'applied') added.push(...out.records)
        }
      }
      return added
    }
    const state = this.state
    const added: AppliedRecord[] = []
    for (const { o } of run) this.accepted(o.change, o.data)
    for (const { o, records } of run) {
      const mine = records.filter(r => isAdded(addTo(state, r, o.change.hash)))
      outcomes[o.index] = { status: 'applied', hash: o.change.hash, records: mine }
      added.push(...mine)
    }
    return added
  }

  /** Check a change whose history is all here, then apply it; nothing changes if the check fails. */
  private applyReady(
    env: OpenedRecord<ChangeEnvelope>,
    change: Automerge.DecodedChange,
    data: Uint8Array,
    now: number | undefined,
  ): AppliedRecord[] {
    let genesis: { state: PolicyState; objects: Map<string, Slot> } | undefined
    let records: AppliedRecord[] = []
    if (change.deps.length === 0) genesis = this.checkGenesis(env, change)
    else records = this.checkRecords(env, change, now)
    try {
      this.backend.applyChanges([env.body.change])
    } catch (err) {
      throw new InvalidMessageError(`Automerge refused the change: ${(err as Error).message}`)
    }
    this.accepted(change, data)
    if (genesis !== undefined) {
      this.objects = genesis.objects
      for (const [id, slot] of genesis.objects) this.maps.set(`${slot.collection}/${slot.shard ?? ''}`, id)
      this.stateValue = genesis.state
      this.evictStrangers()
      return []
    }
    const state = this.state
    return records.filter(r => isAdded(addTo(state, r, change.hash)))
  }

  /** A change is part of the document: served in catch-up, and placed in the causal history. */
  private accepted(change: Automerge.DecodedChange, data: Uint8Array): void {
    this.envelopes.set(change.hash, data)
    this.history.add(change.hash, change.deps)
  }

  private checkGenesis(
    env: OpenedRecord<ChangeEnvelope>,
    change: Automerge.DecodedChange,
  ): { state: PolicyState; objects: Map<string, Slot> } {
    if (this.objects !== undefined) throw new UnauthorizedChangeError('a space has exactly one genesis change')
    const ops = change.ops
    if (ops.length !== GENESIS_OPS || ops[0].action !== 'set' || ops[0].obj !== '_root' || ops[0].key !== 'genesis') {
      throw new UnauthorizedChangeError('the first change must be the genesis change')
    }
    const genesis = openGenesis(opValueBytes(ops[0].value))
    if (genesis.id !== this.spaceId) throw new UnauthorizedChangeError('genesis record does not hash to the space id')
    if (env.issuer !== genesis.issuer)
      throw new UnauthorizedChangeError('the genesis change must be signed by the owner')
    // every other operation makes a collection at the root, or a shard inside a sharded collection, once each
    const objects = new Map<string, Slot>()
    const made = new Set<string>()
    for (const [i, op] of ops.entries()) {
      if (i === 0) continue
      const parent = op.obj === '_root' ? undefined : objects.get(op.obj)
      const key = String(op.key)
      const slot: Slot | undefined =
        op.obj === '_root'
          ? key in COLLECTIONS
            ? { collection: key as Collection }
            : undefined
          : parent !== undefined && parent.shard === undefined && COLLECTIONS[parent.collection].sharded
            ? SHARD_SET.has(key)
              ? { collection: parent.collection, shard: key }
              : undefined
            : undefined
      const name = slot === undefined ? '' : `${slot.collection}/${slot.shard ?? ''}`
      if (op.action !== 'makeMap' || op.pred.length !== 0 || slot === undefined || made.has(name)) {
        throw new UnauthorizedChangeError(
          `the genesis change must create the collections ${COLLECTION_NAMES.join(', ')} and their shards, once each`,
        )
      }
      made.add(name)
      objects.set(`${change.startOp + i}@${change.actor}`, slot)
    }
    return { state: new PolicyState(genesis, this.history), objects }
  }

  private checkRecords(
    env: OpenedRecord<ChangeEnvelope>,
    change: Automerge.DecodedChange,
    now: number | undefined,
  ): AppliedRecord[] {
    const state = this.state
    const records: AppliedRecord[] = []
    for (const op of change.ops) {
      const slot = this.objects!.get(op.obj)
      // a sharded collection's own map holds only its shards: records go into a shard
      if (
        op.action !== 'set' ||
        slot === undefined ||
        (COLLECTIONS[slot.collection].sharded && slot.shard === undefined)
      ) {
        throw new UnauthorizedChangeError(`refused operation ${op.action} on ${op.obj}: changes may only add records`)
      }
      if (op.pred.length !== 0) throw new UnauthorizedChangeError('refused overwrite of an existing entry')
      const { collection } = slot
      if (slot.shard !== undefined && shardOf(String(op.key)) !== slot.shard) {
        throw new UnauthorizedChangeError(`record stored in the wrong shard of ${collection}`)
      }
      const value = opValueBytes(op.value)
      const rec = openCollectionRecord(collection, value)
      if (op.key !== COLLECTIONS[collection].key(rec.record))
        throw new UnauthorizedChangeError('record stored under the wrong key')
      if (rec.record.issuer !== env.issuer)
        throw new UnauthorizedChangeError('record issuer differs from change signer')
      if (now !== undefined && rec.record.body.iat > now + MAX_CLOCK_SKEW_MS) {
        throw new FutureDatedError(
          `a ${rec.kind} dated ${new Date(rec.record.body.iat).toISOString()} is more than ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead of this node's clock`,
        )
      }
      records.push(rec)
    }
    checkAuthority(state, records)
    return records
  }

  /**
   * Apply every waiting change whose history has now arrived, until none is ready. One that is
   * refused once its history is here is dropped, as it would have been on arrival, and counted.
   */
  private drainPending(now: number | undefined): AppliedRecord[] {
    const records: AppliedRecord[] = []
    let progressed = true
    while (progressed) {
      progressed = false
      for (const [hash, p] of this.pending) {
        if (!p.deps.every(d => this.envelopes.has(d))) continue
        this.unwait(hash, p.signer)
        progressed = true
        try {
          const env = openEnvelope(p.data)
          records.push(...this.applyReady(env, Automerge.decodeChange(env.body.change), p.data, now))
        } catch {
          this.refusedAfterWaiting++
        }
      }
    }
    return records
  }

  /** Changes that waited for their history and were refused once it arrived. */
  refusedAfterWaiting = 0

  /** Write records as one signed change; returns the envelope to publish. */
  write(
    author: SigningKeyPair & { did: string },
    entries: AppliedRecord[],
    now: number,
  ): { envelope: Uint8Array; outcome: ApplyOutcome } {
    if (this.actor === undefined) throw new PolicyWriteError('this replica has no actor id')
    for (const e of entries) {
      if (e.record.issuer !== author.did) throw new UnauthorizedChangeError('record issuer differs from change signer')
    }
    checkAuthority(this.state, entries)
    if (entries.length === 0) throw new PolicyWriteError('nothing to write')
    const keys = new Set<string>()
    const puts = entries.map(e => {
      const [collection, key] = slotOf(e)
      const map = this.maps.get(`${collection}/${COLLECTIONS[collection].sharded ? shardOf(key) : ''}`)!
      if (this.backend.get(map, key) !== undefined || keys.has(`${map}/${key}`)) {
        throw new UnauthorizedChangeError(`${collection} already has an entry ${key}`)
      }
      keys.add(`${map}/${key}`)
      return { map, key, value: e.record.bytes }
    })
    let change: Uint8Array | null
    try {
      for (const { map, key, value } of puts) this.backend.put(map, key, value)
      this.backend.commit(null, Math.floor(now / 1000))
      change = this.backend.getLastLocalChange()
    } catch (err) {
      this.backend.rollback()
      throw err
    }
    if (change === null) throw new PolicyWriteError('nothing was written')
    // the change was checked above; applyEnvelope re-checks it as any replica would and records it
    const envelope = wrap(author, this.spaceId, change)
    return { envelope, outcome: this.applyEnvelope(envelope, now) }
  }
}

/** Operations of the genesis change: the genesis record, each collection, and each shard of a sharded one. */
const GENESIS_OPS =
  1 + COLLECTION_NAMES.length + COLLECTION_NAMES.filter(c => COLLECTIONS[c].sharded).length * SHARDS.length

/**
 * The changes of a batch in an order where each comes after those of the batch it depends on,
 * otherwise in the order given (a depth-first walk, without recursion: histories are long).
 */
function causalOrder(items: Opened[]): Opened[] {
  const byHash = new Map(items.map(o => [o.change.hash, o]))
  const placed = new Set<string>()
  const out: Opened[] = []
  for (const root of items) {
    if (placed.has(root.change.hash)) continue
    const stack = [{ o: root, next: 0 }]
    const entered = new Set([root.change.hash])
    while (stack.length > 0) {
      const top = stack[stack.length - 1]
      const deps = top.o.change.deps
      if (top.next < deps.length) {
        const dep = byHash.get(deps[top.next++])
        if (dep !== undefined && !placed.has(dep.change.hash) && !entered.has(dep.change.hash)) {
          entered.add(dep.change.hash)
          stack.push({ o: dep, next: 0 })
        }
      } else {
        stack.pop()
        placed.add(top.o.change.hash)
        out.push(top.o)
      }
    }
  }
  return out
}

/** Authority is checked for every record before any is added, so a change applies whole or not at all. */
function checkAuthority(state: PolicyState, records: AppliedRecord[]): void {
  for (const r of records) {
    if (r.record.body.space !== state.spaceId) throw new UnauthorizedChangeError('record belongs to another space')
    const problem = state.mayWrite(r.record.issuer, {
      kind: r.kind,
      body: r.record.body as unknown as Record<string, unknown>,
    })
    if (problem !== undefined) throw new UnauthorizedChangeError(problem)
  }
}

/** Where a record lives in the document: its collection and key. */
function slotOf(e: AppliedRecord): [Collection, string] {
  const collection = COLLECTION_OF[e.kind]
  return [collection, COLLECTIONS[collection].key(e.record)]
}

function wrap(author: SigningKeyPair & { did: string }, space: string, change: Uint8Array): Uint8Array {
  return signRecord<ChangeEnvelope>(ENVELOPE_TAG, { t: 'change', iss: author.did, space, change }, author).bytes
}

function openCollectionRecord(collection: Collection, value: Uint8Array): AppliedRecord {
  const c = COLLECTIONS[collection]
  try {
    return { kind: c.kind, record: c.open(value) } as AppliedRecord
  } catch (err) {
    if (
      err instanceof InvalidEncodingError ||
      err instanceof InvalidSignatureError ||
      err instanceof InvalidMessageError ||
      (err as Error).name === InvalidDidError.name
    ) {
      throw new UnauthorizedChangeError(`change carries an invalid ${collection} record: ${(err as Error).message}`)
    }
    throw err
  }
}

/** Add a record to the state, with the change that carried it. */
export function addTo(state: PolicyState, r: AppliedRecord, origin?: string): AddResult {
  switch (r.kind) {
    case 'stream':
      return state.addStream(r.record, origin)
    case 'grant':
      return state.addGrant(r.record, origin)
    case 'revocation':
      return state.addRevocation(r.record, origin)
    case 'delegation':
      return state.addDelegation(r.record, origin)
    case 'decision':
      return state.addDecision(r.record, origin)
    case 'custodian-set':
      return state.addCustodianSet(r.record, origin)
  }
}

function isAdded(res: AddResult): boolean {
  return res.added
}
