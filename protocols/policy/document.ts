/**
 * The policy document of a space: an Automerge document whose every change travels in a
 * signed envelope, and the verified PolicyState built from the records it carries.
 *
 * Document shape: `{ genesis: bytes, streams: {name: bytes}, grants: {id: bytes},
 * revocations: {id: bytes}, delegations: {id: bytes}, decisions: {id: bytes} }`; each value
 * is a signed record (records.ts, requests.ts).
 *
 * Guarantees (checked on every envelope, in `applyEnvelope`):
 * - the envelope's signature verifies and names this space;
 * - the change's Automerge actor id is bound to the envelope's signer (its first 16 bytes
 *   are a tagged hash of the signer's key), so nobody can write under another's actor;
 * - the first change (no dependencies) is the genesis change and its genesis record hashes
 *   to the space id; every later change only adds entries: `set` operations with no
 *   predecessor, into one of the collections, each value a valid signed record stored under
 *   its own key, signed by the change's author, who may write it (PolicyState.mayWrite:
 *   the owner; admins; the holder of a forwardable grant for its children).
 *   Deletions and overwrites are refused.
 * Refusals throw InvalidMessageError or UnauthorizedChangeError; the caller counts them.
 */
import * as Automerge from '@automerge/automerge'
import { toHex } from '../../crypto/encoding.ts'
import { InvalidEncodingError, InvalidSignatureError } from '../../crypto/errors.ts'
import { taggedHash } from '../../crypto/hash.ts'
import { publicKeyFromDid, type SigningKeyPair } from '../../crypto/identity.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../../crypto/signed.ts'
import { InvalidMessageError, UnauthorizedChangeError } from '../errors.ts'
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
import { type AddResult, PolicyState } from './state.ts'

export const ENVELOPE_TAG = 'edgeward/change/v1'
/** An envelope carries one change; a change adds at most a few records. */
export const MAX_ENVELOPE_BYTES = 64 * 1024
const MAX_OPS_PER_CHANGE = 16
const MAX_PENDING = 4096

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

type Kind = AppliedRecord['kind']

/** The document's collections: which kind of record each holds, how it is opened, keyed and indexed. */
const COLLECTIONS = {
  streams: { kind: 'stream', open: openStream, key: (r: OpenedRecord<any>) => r.body.name as string },
  grants: { kind: 'grant', open: openGrant, key: (r: OpenedRecord<any>) => r.id },
  revocations: { kind: 'revocation', open: openRevocation, key: (r: OpenedRecord<any>) => r.id },
  delegations: { kind: 'delegation', open: openDelegation, key: (r: OpenedRecord<any>) => r.id },
  decisions: { kind: 'decision', open: openDecision, key: (r: OpenedRecord<any>) => r.id },
} as const
type Collection = keyof typeof COLLECTIONS
const COLLECTION_NAMES = Object.keys(COLLECTIONS) as Collection[]
const COLLECTION_OF: Record<Kind, Collection> = {
  stream: 'streams',
  grant: 'grants',
  revocation: 'revocations',
  delegation: 'delegations',
  decision: 'decisions',
}

export type ApplyOutcome =
  | { status: 'applied'; hash: string; records: AppliedRecord[] }
  | { status: 'duplicate'; hash: string }
  /** the change depends on changes that have not arrived yet; kept, and checked when they do */
  | { status: 'pending'; hash: string }

type PolicyDoc = {
  genesis?: Uint8Array
} & {
  [C in Collection]?: Record<string, Uint8Array>
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

export class PolicyDocument {
  readonly spaceId: string
  private doc: Automerge.Doc<PolicyDoc>
  private readonly actor: string | undefined
  private stateValue: PolicyState | undefined
  /** object ids of the three collections, known once the genesis change is applied */
  private collections: Map<string, Collection> | undefined
  /** every accepted envelope by change hash (what the catch-up protocol serves) */
  private readonly envelopes = new Map<string, Uint8Array>()
  /** changes waiting for a change they depend on, by hash */
  private readonly pending = new Map<string, { data: Uint8Array; deps: string[] }>()

  /** `actor` is this replica's own actor id; a replica that never writes may omit it. */
  constructor(spaceId: string, actor?: string) {
    this.spaceId = spaceId
    this.actor = actor
    this.doc = actor === undefined ? Automerge.init<PolicyDoc>() : Automerge.init<PolicyDoc>({ actor })
  }

  /** The owner creates a space: returns the document and the genesis envelope to publish. */
  static create(
    owner: SigningKeyPair & { did: string },
    actor: string,
    genesis: OpenedRecord<SpaceGenesis>,
    now: number,
  ): { document: PolicyDocument; envelope: Uint8Array } {
    const document = new PolicyDocument(genesis.id, actor)
    const next = Automerge.change(document.doc, { time: Math.floor(now / 1000) }, d => {
      d.genesis = genesis.bytes
      for (const name of COLLECTION_NAMES) d[name] = {}
    })
    document.doc = next
    const envelope = wrap(owner, genesis.id, Automerge.getLastLocalChange(next)!)
    const outcome = document.applyEnvelope(envelope)
    if (outcome.status !== 'applied') throw new Error('genesis change did not apply')
    return { document, envelope }
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
    return Automerge.getHeads(this.doc)
  }

  hasChange(hash: string): boolean {
    return this.envelopes.has(hash)
  }

  get size(): number {
    return this.envelopes.size
  }

  /** Envelopes of the changes the holder of `heads` lacks (heads unknown here are ignored). */
  envelopesSince(heads: string[]): Uint8Array[] {
    const known = heads.filter(h => this.envelopes.has(h))
    const out: Uint8Array[] = []
    for (const change of Automerge.getChangesSince(this.doc, known)) {
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
  applyEnvelope(data: Uint8Array): ApplyOutcome {
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
    if (change.ops.length === 0 || change.ops.length > MAX_OPS_PER_CHANGE) {
      throw new UnauthorizedChangeError(`a change must carry 1..${MAX_OPS_PER_CHANGE} operations`)
    }
    // a change is checked in the state its own history gives: it waits for every change it depends on
    if (!change.deps.every(d => this.envelopes.has(d))) {
      if (this.pending.size >= MAX_PENDING) throw new InvalidMessageError('too many changes waiting for their history')
      this.pending.set(change.hash, { data, deps: change.deps })
      return { status: 'pending', hash: change.hash }
    }
    const records = this.applyReady(env, change, data)
    return { status: 'applied', hash: change.hash, records: [...records, ...this.drainPending()] }
  }

  /** Check a change whose history is all here, then apply it; nothing changes if the check fails. */
  private applyReady(
    env: OpenedRecord<ChangeEnvelope>,
    change: Automerge.DecodedChange,
    data: Uint8Array,
  ): AppliedRecord[] {
    let genesis: { state: PolicyState; collections: Map<string, Collection> } | undefined
    let records: AppliedRecord[] = []
    if (change.deps.length === 0) genesis = this.checkGenesis(env, change)
    else records = this.checkRecords(env, change)
    try {
      ;[this.doc] = Automerge.applyChanges(this.doc, [env.body.change])
    } catch (err) {
      throw new InvalidMessageError(`Automerge refused the change: ${(err as Error).message}`)
    }
    this.envelopes.set(change.hash, data)
    if (genesis !== undefined) {
      this.collections = genesis.collections
      this.stateValue = genesis.state
      return []
    }
    const state = this.state
    return records.filter(r => isAdded(addTo(state, r)))
  }

  private checkGenesis(
    env: OpenedRecord<ChangeEnvelope>,
    change: Automerge.DecodedChange,
  ): { state: PolicyState; collections: Map<string, Collection> } {
    if (this.collections !== undefined) throw new UnauthorizedChangeError('a space has exactly one genesis change')
    const ops = change.ops
    if (
      ops.length !== 1 + COLLECTION_NAMES.length ||
      ops[0].action !== 'set' ||
      ops[0].obj !== '_root' ||
      ops[0].key !== 'genesis'
    ) {
      throw new UnauthorizedChangeError('the first change must be the genesis change')
    }
    const genesis = openGenesis(opValueBytes(ops[0].value))
    if (genesis.id !== this.spaceId) throw new UnauthorizedChangeError('genesis record does not hash to the space id')
    if (env.issuer !== genesis.issuer)
      throw new UnauthorizedChangeError('the genesis change must be signed by the owner')
    const collections = new Map<string, Collection>()
    for (const [i, name] of COLLECTION_NAMES.entries()) {
      const op = ops[i + 1]
      if (op.action !== 'makeMap' || op.obj !== '_root' || op.key !== name || op.pred.length !== 0) {
        throw new UnauthorizedChangeError(
          `the genesis change must create the collections ${COLLECTION_NAMES.join(', ')}`,
        )
      }
      collections.set(`${change.startOp + i + 1}@${change.actor}`, name)
    }
    return { state: new PolicyState(genesis), collections }
  }

  private checkRecords(env: OpenedRecord<ChangeEnvelope>, change: Automerge.DecodedChange): AppliedRecord[] {
    const state = this.state
    const records: AppliedRecord[] = []
    for (const op of change.ops) {
      const collection = this.collections!.get(op.obj)
      if (op.action !== 'set' || collection === undefined) {
        throw new UnauthorizedChangeError(`refused operation ${op.action} on ${op.obj}: changes may only add records`)
      }
      if (op.pred.length !== 0) throw new UnauthorizedChangeError('refused overwrite of an existing entry')
      const value = opValueBytes(op.value)
      const rec = openCollectionRecord(collection, value)
      if (op.key !== COLLECTIONS[collection].key(rec.record))
        throw new UnauthorizedChangeError('record stored under the wrong key')
      if (rec.record.issuer !== env.issuer)
        throw new UnauthorizedChangeError('record issuer differs from change signer')
      records.push(rec)
    }
    checkAuthority(state, records)
    return records
  }

  /**
   * Apply every waiting change whose history has now arrived, until none is ready. One that is
   * refused once its history is here is dropped, as it would have been on arrival, and counted.
   */
  private drainPending(): AppliedRecord[] {
    const records: AppliedRecord[] = []
    let progressed = true
    while (progressed) {
      progressed = false
      for (const [hash, p] of this.pending) {
        if (!p.deps.every(d => this.envelopes.has(d))) continue
        this.pending.delete(hash)
        progressed = true
        try {
          const env = openEnvelope(p.data)
          records.push(...this.applyReady(env, Automerge.decodeChange(env.body.change), p.data))
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
    if (this.actor === undefined) throw new Error('this replica has no actor id')
    for (const e of entries) {
      if (e.record.issuer !== author.did) throw new UnauthorizedChangeError('record issuer differs from change signer')
    }
    checkAuthority(this.state, entries)
    for (const e of entries) {
      const [coll, key] = slotOf(e)
      if (this.doc[coll]?.[key] !== undefined) throw new UnauthorizedChangeError(`${coll} already has an entry ${key}`)
    }
    const next = Automerge.change(this.doc, { time: Math.floor(now / 1000) }, d => {
      for (const e of entries) {
        const [coll, key] = slotOf(e)
        d[coll]![key] = e.record.bytes
      }
    })
    const change = Automerge.getLastLocalChange(next)
    if (change === undefined || next === this.doc) throw new Error('nothing to write')
    // the change was checked above; applyEnvelope re-checks it as any replica would and records it
    this.doc = next
    const envelope = wrap(author, this.spaceId, change)
    return { envelope, outcome: this.applyEnvelope(envelope) }
  }
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
      (err as Error).name === 'InvalidDidError'
    ) {
      throw new UnauthorizedChangeError(`change carries an invalid ${collection} record: ${(err as Error).message}`)
    }
    throw err
  }
}

function addTo(state: PolicyState, r: AppliedRecord): AddResult {
  switch (r.kind) {
    case 'stream':
      return state.addStream(r.record)
    case 'grant':
      return state.addGrant(r.record)
    case 'revocation':
      return state.addRevocation(r.record)
    case 'delegation':
      return state.addDelegation(r.record)
    case 'decision':
      return state.addDecision(r.record)
  }
}

function isAdded(res: AddResult): boolean {
  return res.added
}
