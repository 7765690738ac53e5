/**
 * Files and messages, shared under the same governance as streams: each object is a stream
 * of chunks (layout in protocols/data/objects.ts) published by the key holder, so encryption
 * at the edge, key release after a policy check, leases, revocation and the audit trail are
 * the data plane's, unchanged.
 *
 * Sharing streams the source (a file of any size, never held whole in memory) through
 * DataService.publish in batches of chunks, hashing it on the way, then writes the grant
 * through the policy service (which checks, before anything is stored, that it could).
 *
 * Opening verifies before it gives out a byte: a first pass decrypts every chunk and checks
 * order, completeness, size and SHA-256 against the manifest, keeping nothing; the object it
 * returns decrypts again as it is iterated (each chunk is authenticated by its AEAD, bound to
 * its position, so the second pass yields only what the key holder published) and checks the
 * same again at the end. A mismatch throws ObjectIntegrityError, never wrong data.
 *
 * A grant that forbids download: the plaintext goes only to a viewer file under
 * `DATA/view/` (mode 0600), which the node deletes when the key's lease ends, as soon as a
 * revocation drops the key, and when the node stops or starts. What a viewer application
 * copies from it before then is out of reach, as for any plaintext a reader has seen.
 * Stream readings read under such a grant go to a viewer file the same way (`viewReadings`).
 */
import { createReadStream } from 'node:fs'
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { toHex } from '../../crypto/encoding.ts'
import { DecryptionError, InvalidEncodingError } from '../../crypto/errors.ts'
import { randomBytes, sha256Stream } from '../../crypto/hash.ts'
import { isDid } from '../../crypto/identity.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { type ReleaseEntry, type RevocationEntry, revocationEndsRelease } from '../../protocols/audit/entries.ts'
import { RAW } from '../../protocols/data/forms.ts'
import {
  chunkReading,
  isObjectStream,
  MAX_OBJECT_NAME,
  type MediaType,
  manifestReading,
  OBJECT_CHUNK_BYTES,
  OBJECT_EPOCH_MS,
  ObjectIntegrityError,
  type ObjectManifest,
  ObjectVerifier,
  objectStreamName,
} from '../../protocols/data/objects.ts'
import { decodeEncryptedReading, type EncryptedReading, type Reading } from '../../protocols/data/reading.ts'
import { InvalidMessageError } from '../../protocols/errors.ts'
import type { ForwardPermission, Grant, GrantFields } from '../../protocols/policy/records.ts'
import { type GrantStatus, streamsCover } from '../../protocols/policy/state.ts'
import { AccessRefusedError, NotFoundError, UsageError } from '../errors.ts'
import type { Identity } from '../identity.ts'
import type { Metrics } from '../metrics.ts'
import type { AuditService } from './audit.ts'
import type { DataService, DecryptedReading } from './data/index.ts'
import type { PolicyService } from './policy.ts'
import type { RequestStatus, RequestsService } from './requests.ts'

const log = logger('edgeward:objects')

/** chunks per DataService.publish call: one durable batch (1.5 MiB of content) */
const PUBLISH_BATCH = 32
/** stored readings decrypted at a time when opening */
const READ_BATCH = 64
/** how often viewer files are checked against their key's lease (besides on every revocation) */
const VIEWER_SWEEP_MS = 250
/** errors of a stored reading that was changed or damaged (as opposed to refusals and network errors) */
const DAMAGE = new Set([DecryptionError.name, InvalidMessageError.name, InvalidEncodingError.name, SyntaxError.name])

/** What the objects service uses of its node: counters and the clock. */
export interface ObjectsComponents {
  metrics: Metrics
  /** whose shares these are (a member shares under its own grant to contribute) */
  identity: Pick<Identity, 'principal'>
  /** the clock; the simulator passes virtual time */
  now: () => number
}

/** The services the objects service works through, and what it calls of each. */
export interface ObjectsServices {
  policy: Pick<PolicyService, 'synced' | 'document' | 'holds' | 'makesKeys' | 'onRecords' | 'checkGrant' | 'grant'>
  data: Pick<DataService, 'createStream' | 'publish' | 'backfill' | 'decryptAll' | 'cachedLease' | 'records'>
  requests: Pick<RequestsService, 'list'>
  /** undefined on a node that keeps no audit log */
  audit: Pick<AuditService, 'streamEntries'> | undefined
}

/** Options of the objects service. */
export interface ObjectsServiceOptions {
  /** where viewer files go (the node passes DATA/view) */
  viewDir: string
}

/** How an object is shared: with whom, for how long, and what the reader may do with it. */
export interface ShareOptions {
  /** the principals (did:key) the object is shared with, each by a grant of its own */
  to: string | string[]
  durationMs: number
  /** false: the reader may only view, in a viewer file that the node deletes at lease end (default true) */
  download?: boolean
  forward?: ForwardPermission
  /** the file's name as the reader sees it (default "file", or "message") */
  name?: string
  mediaType?: MediaType
  /** called after each batch of chunks is stored (gossip follows), with the bytes read so far */
  onProgress?: (bytes: number) => void
}

/** A shared object: its id, the grant that shares it (the first recipient's) and its manifest. */
export interface SharedObject {
  object: string
  grant: string
  notAfter: number
  manifest: ObjectManifest
  /** one grant per recipient, in the order they were given */
  grants: { to: string; grant: string; notAfter: number }[]
}

/** at most this many recipients of one share */
export const MAX_RECIPIENTS = 64
/** object names this node learnt by opening (names travel encrypted), for the inbox; the oldest go first */
const MAX_KNOWN_NAMES = 100_000

/** A verified object, ready to be read: iterating it yields the plaintext chunks in order. */
export interface OpenedObject extends AsyncIterable<Uint8Array> {
  space: string
  object: string
  manifest: ObjectManifest
  /** the key epochs its chunks are under (one, unless a revocation came while it was shared) */
  epochs: number[]
  /** may this node hand out the plaintext (false: a viewer file only) */
  download: boolean
  /** the reader's lease on the object's key and the grant it was released under (undefined on the key holder) */
  leaseEnd?: number
  grant?: string
}

/** Who holds or asked for access to an object, and (on its key holder) who received its key. */
export interface ObjectAccess {
  space: string
  object: string
  /** every grant whose streams cover the object */
  grants: {
    id: string
    subject: string
    issuer: string
    status: GrantStatus
    why?: string
    notBefore: number
    notAfter: number
    download: boolean
    forward: ForwardPermission
  }[]
  /** every access request naming the object (or a prefix that covers it) */
  requests: {
    id: string
    from: string
    for: string
    status: RequestStatus
    at: number
    reason: string
    grant?: string
  }[]
  /** key releases from this node's audit log; undefined when this node is not the object's key holder */
  releases?: {
    subject: string
    device: string
    grant: string
    at: number
    leaseEnd: number
    renewal: boolean
    /** when the holding ended (or now, while it lasts) and why */
    heldUntil: number
    endedBy: 'lease-end' | 'revocation' | 'open'
  }[]
  refusals?: { subject: string; device: string; at: number; code: string; reason: string }[]
}

/** A viewer file: plaintext of one stream's form (an object is a stream), kept while its keys are held. */
interface Viewer {
  space: string
  stream: string
  form: string
  path: string
  until: number
  /** the grants the keys were released under: the file goes when any of them ends */
  grants: string[]
  epochs: number[]
}

/** An object open in the client's in-app viewer: it stays open while its keys are held. */
interface ClientView {
  id: string
  space: string
  object: string
  until: number
  grants: string[]
  epochs: number[]
  /** told once, when the view must close */
  onEnd: ((cause: ViewEnd) => void) | undefined
}

/** Why an in-app view closed. */
export type ViewEnd = 'lease-end' | 'revocation'

/** at most this many in-app views open at once (the oldest closes first) */
const MAX_CLIENT_VIEWS = 64

/** Files and messages: shared as streams of chunks, opened only whole and verified, viewer files for view-only grants. */
export class ObjectsService {
  private readonly c: ObjectsComponents
  private readonly policy: ObjectsServices['policy']
  private readonly data: ObjectsServices['data']
  private readonly requests: ObjectsServices['requests']
  private readonly audit: ObjectsServices['audit']
  private readonly viewDir: string
  private readonly viewers = new Map<string, Viewer>()
  private readonly names = new Map<string, string>()
  private namesLearnt = 0
  private readonly clientViews = new Map<string, ClientView>()
  private readonly removals = new Set<Promise<void>>()
  private sweep: NodeJS.Timeout | undefined

  constructor(components: ObjectsComponents, services: ObjectsServices, opts: ObjectsServiceOptions) {
    this.c = components
    this.policy = services.policy
    this.data = services.data
    this.requests = services.requests
    this.audit = services.audit
    this.viewDir = opts.viewDir
    components.metrics.describe('edgeward_objects_shared_total', 'objects shared by this node, by media type')
    components.metrics.describe('edgeward_viewer_files_removed_total', 'viewer files removed, by cause')
  }

  /** Remove viewer files an earlier run left, and start removing viewers whose keys end. */
  async start(): Promise<void> {
    // keys live in memory only: a viewer left by an earlier run has no key behind it
    await rm(this.viewDir, { recursive: true, force: true })
    this.policy.onRecords((space, records) => {
      if (records.some(r => r.kind === 'revocation')) this.sweepViewers(space)
    })
    this.sweep = setInterval(() => this.sweepViewers(), VIEWER_SWEEP_MS)
    this.sweep.unref()
  }

  /** Remove every viewer file, and wait for the removals. */
  async stop(): Promise<void> {
    clearInterval(this.sweep)
    for (const v of this.viewers.values()) this.remove(v, 'node-stop')
    await Promise.allSettled([...this.removals])
  }

  // ---- sharing (key holder) ----

  /** Store `source` as a new object of `space` and grant `to` access to it. */
  async share(space: string, source: AsyncIterable<Uint8Array> | string, opts: ShareOptions): Promise<SharedObject> {
    this.policy.synced(space)
    const recipients = [...new Set(typeof opts.to === 'string' ? [opts.to] : opts.to)]
    if (recipients.length === 0) throw new UsageError('a share needs at least one recipient (--to DID)')
    if (recipients.length > MAX_RECIPIENTS) throw new UsageError(`at most ${MAX_RECIPIENTS} recipients at once`)
    for (const to of recipients) if (!isDid(to)) throw new UsageError(`--to must be a did:key, got ${to}`)
    if (!Number.isSafeInteger(opts.durationMs) || opts.durationMs < 1000)
      throw new UsageError('--for must be at least 1s')
    const mediaType = opts.mediaType ?? 'file'
    const name = opts.name ?? mediaType
    if (name.length === 0 || name.length > MAX_OBJECT_NAME) throw new UsageError('a name is 1..255 characters')
    const object = objectStreamName(randomBytes(8))
    const grantFields = (now: number, to: string): Omit<GrantFields, 'space'> => ({
      sub: to,
      streams: [object],
      forms: [RAW],
      nbf: now,
      exp: now + opts.durationMs,
      download: opts.download === false ? false : undefined,
      forward: opts.forward,
    })
    // refuse before storing anything if this node could not issue the grant; a member (sharing
    // under a grant to contribute) may grant on its object only once its record is written,
    // which the data service refuses to write unless the member may share into the space
    const member =
      !this.policy.holds(space) && this.policy.document(space).state.isContributor(this.c.identity.principal.did)
    if (!member) for (const to of recipients) this.policy.checkGrant(space, grantFields(this.c.now(), to))
    await this.data.createStream(space, object, { epochMs: OBJECT_EPOCH_MS, forms: [RAW], media: mediaType })
    if (member) for (const to of recipients) this.policy.checkGrant(space, grantFields(this.c.now(), to))
    const input = typeof source === 'string' ? createReadStream(source, { highWaterMark: OBJECT_CHUNK_BYTES }) : source
    const hash = sha256Stream()
    let size = 0
    let index = 0
    let batch: Reading[] = []
    for await (const chunk of chunksOf(input, OBJECT_CHUNK_BYTES)) {
      hash.update(chunk)
      size += chunk.byteLength
      batch.push(chunkReading(index++, chunk))
      if (batch.length >= PUBLISH_BATCH) {
        await this.data.publish(space, object, batch)
        batch = []
        opts.onProgress?.(size)
      }
    }
    const manifest: ObjectManifest = { name, size, chunks: index, sha256: toHex(hash.digest()), mediaType }
    batch.push(manifestReading(manifest))
    // the object is whole: its stream takes nothing more, and revocations need not rotate its key
    await this.data.publish(space, object, batch, { last: true })
    opts.onProgress?.(size)

    this.remember(space, object, name)
    const grants: SharedObject['grants'] = []
    for (const to of recipients) {
      const { record: grant } = await this.policy.grant(space, grantFields(this.c.now(), to))
      grants.push({ to, grant: grant.id, notAfter: grant.body.exp })
    }
    this.c.metrics.inc('edgeward_objects_shared_total', { mediaType })
    log('shared %s (%d bytes in %d chunks) with %d recipients', object, size, index, recipients.length)
    return { object, grant: grants[0].grant, notAfter: grants[0].notAfter, manifest, grants }
  }

  /** The name of an object this node shared or opened, if it did (for the inbox). */
  knownName(space: string, object: string): string | undefined {
    return this.names.get(`${space}/${object}`)
  }

  /** Changes whenever this node learns an object's name (for the inbox's version). */
  get namesVersion(): number {
    return this.namesLearnt
  }

  private remember(space: string, object: string, name: string): void {
    const key = `${space}/${object}`
    if (this.names.get(key) !== name) this.namesLearnt++
    this.names.delete(key)
    this.names.set(key, name)
    if (this.names.size > MAX_KNOWN_NAMES) this.names.delete(this.names.keys().next().value!)
  }

  // ---- opening (reader, or the key holder itself) ----

  /**
   * Verify an object and return it for reading. Throws AccessRefusedError when the key
   * holder refuses, NotFoundError when the object is unknown here, ObjectIntegrityError when
   * it is incomplete or does not match its manifest.
   */
  async open(space: string, object: string): Promise<OpenedObject> {
    const doc = this.policy.document(space)
    if (!isObjectStream(object)) throw new UsageError(`not an object id: ${object}`)
    if (!doc.hasGenesis) throw new NotFoundError(`space ${space} has not synchronised yet`)
    if (!doc.state.streams.has(object)) throw new NotFoundError(`space ${space} has no object ${object} (yet)`)
    // a reader that was offline during the share fetches the chunks it missed
    await this.data.backfill?.(space, object, RAW)
    const epochs = new Set<number>()
    const first = new ObjectVerifier()
    for await (const batch of this.decryptedBatches(space, object)) {
      for (const r of batch) {
        epochs.add(r.epoch)
        first.accept(r)
      }
    }
    const manifest = first.finish()
    this.remember(space, object, manifest.name)
    const read = (): AsyncIterator<Uint8Array> => this.plaintext(space, object)
    const base = { space, object, manifest, epochs: [...epochs], [Symbol.asyncIterator]: read }
    if (this.policy.makesKeys(space, object)) return { ...base, download: true }
    const held = [...epochs].map(e => this.data.cachedLease(space, object, RAW, e))
    if (held.some(k => k === undefined)) throw new AccessRefusedError('no-key', 'the key was dropped while opening')
    const leaseEnd = Math.min(...held.map(k => k!.lease), Number.MAX_SAFE_INTEGER)
    const grantId = held[0]?.grant
    // a grant this node has not received yet is treated as view-only until it arrives
    const grant = grantId === undefined ? undefined : doc.state.grants.get(grantId)
    const download = grant !== undefined && grant.body.download !== false
    return {
      ...base,
      download,
      leaseEnd,
      ...(grantId === undefined ? {} : { grant: grantId }),
    }
  }

  private async *plaintext(space: string, object: string): AsyncGenerator<Uint8Array> {
    const v = new ObjectVerifier()
    for await (const batch of this.decryptedBatches(space, object)) {
      for (const r of batch) {
        const bytes = v.accept(r)
        if (bytes !== undefined) yield bytes
      }
    }
    v.finish()
  }

  /** The object's stored readings, decrypted a batch at a time, in sequence order. */
  private async *decryptedBatches(space: string, object: string): AsyncGenerator<DecryptedReading[]> {
    let batch: EncryptedReading[] = []
    for await (const v of this.data.records.encoded(space, object, RAW)) {
      let r: EncryptedReading
      try {
        r = decodeEncryptedReading(v)
      } catch (err) {
        throw new ObjectIntegrityError(`a stored chunk of ${object} does not decode: ${(err as Error).message}`)
      }
      if (r.space !== space || r.stream !== object || r.form !== RAW) {
        throw new ObjectIntegrityError(`a stored chunk of ${object} names another place`)
      }
      batch.push(r)
      if (batch.length >= READ_BATCH) {
        yield await this.decrypt(space, object, batch)
        batch = []
      }
    }
    if (batch.length > 0) yield await this.decrypt(space, object, batch)
  }

  private async decrypt(space: string, object: string, batch: EncryptedReading[]): Promise<DecryptedReading[]> {
    try {
      return await this.data.decryptAll(space, object, batch)
    } catch (err) {
      if (!DAMAGE.has((err as Error).name)) throw err
      throw new ObjectIntegrityError(
        `a stored chunk of ${object} (readings ${batch[0].seq}..${batch[batch.length - 1].seq}) is damaged: ${(err as Error).message}`,
      )
    }
  }

  // ---- viewer files (download forbidden) ----

  /**
   * Write an opened object's plaintext to a new viewer file (mode 0600) under DATA/view and
   * keep it until the key's lease ends or a revocation drops the key.
   */
  async view(opened: OpenedObject): Promise<{ viewer: string; until: number }> {
    if (opened.leaseEnd === undefined || opened.grant === undefined) {
      throw new UsageError('viewer files are for readers; the key holder opens its objects directly')
    }
    const held = { until: opened.leaseEnd, grants: [opened.grant], epochs: opened.epochs }
    return this.writeViewer(opened.space, opened.object, RAW, opened.object, held, async file => {
      for await (const chunk of opened) await file.write(chunk)
    })
  }

  /**
   * May this reader hand out the plaintext of these readings (decrypted with keys from its
   * cache)? Only when every key came under a grant, known here, that allows download; the
   * key holder reads its own data.
   */
  readingsDownloadable(space: string, stream: string, form: string, readings: DecryptedReading[]): boolean {
    if (this.policy.makesKeys(space, stream)) return true
    const state = this.policy.document(space).state
    for (const epoch of new Set(readings.map(r => r.epoch))) {
      const k = this.data.cachedLease(space, stream, form, epoch)
      if (k === undefined) return false
      const grant = state.grants.get(k.grant)
      if (grant === undefined || grant.body.download === false) return false
    }
    return true
  }

  /**
   * Write decrypted readings (NDJSON, one reading a line) to a new viewer file, kept until the
   * first of their keys' leases ends or a revocation drops one of their keys.
   */
  async viewReadings(
    space: string,
    stream: string,
    form: string,
    readings: DecryptedReading[],
  ): Promise<{ viewer: string; until: number; count: number }> {
    const epochs = [...new Set(readings.map(r => r.epoch))]
    const leases = epochs.map(e => this.data.cachedLease(space, stream, form, e))
    if (leases.some(k => k === undefined)) throw new AccessRefusedError('no-key', 'the key was dropped while reading')
    const held = {
      until: Math.min(...leases.map(k => k!.lease)),
      grants: [...new Set(leases.map(k => k!.grant))],
      epochs,
    }
    const name = `${stream.replace(/[^A-Za-z0-9._-]/g, '_')}.${form.replace(/[^A-Za-z0-9._-]/g, '_')}`
    const v = await this.writeViewer(space, stream, form, name, held, async file => {
      for (const r of readings)
        await file.write(`${JSON.stringify({ ts: r.ts, value: r.value, seq: r.seq, epoch: r.epoch })}\n`)
    })
    return { ...v, count: readings.length }
  }

  private async writeViewer(
    space: string,
    stream: string,
    form: string,
    name: string,
    held: { until: number; grants: string[]; epochs: number[] },
    write: (file: FileHandle) => Promise<void>,
  ): Promise<{ viewer: string; until: number }> {
    await mkdir(this.viewDir, { recursive: true, mode: 0o700 })
    const path = join(this.viewDir, `${name}-${toHex(randomBytes(8))}`)
    const viewer: Viewer = { space, stream, form, path, ...held }
    const file = await open(path, 'wx', 0o600)
    // registered before the first byte, so that a revocation during the write removes it too
    this.viewers.set(path, viewer)
    try {
      await write(file)
    } catch (err) {
      await file.close()
      await this.remove(viewer, 'failed')
      throw err
    }
    await file.close()
    if (!this.isStillHeld(viewer)) {
      await this.remove(viewer, 'revocation')
      throw new AccessRefusedError('no-key', 'the key was dropped while the viewer file was written')
    }
    log('viewer %s until %d', path, viewer.until)
    return { viewer: path, until: viewer.until }
  }

  /** Number of viewer files this node keeps now. */
  viewerCount(): number {
    return this.viewers.size
  }

  private isStillHeld(v: Pick<Viewer, 'space' | 'stream' | 'form' | 'until' | 'grants' | 'epochs'>): boolean {
    const now = this.c.now()
    if (now >= v.until) return false
    for (const e of v.epochs) {
      const k = this.data.cachedLease(v.space, v.stream, v.form, e)
      if (k === undefined || k.lease <= now) return false
    }
    const state = this.policy.document(v.space).state
    return v.grants.every(id => {
      const grant = state.grants.get(id)
      return grant === undefined || state.grantProblem(grant, now) === undefined
    })
  }

  private sweepViewers(space?: string): void {
    for (const v of this.viewers.values()) {
      if (space !== undefined && v.space !== space) continue
      if (!this.isStillHeld(v)) this.remove(v, this.c.now() >= v.until ? 'lease-end' : 'revocation')
    }
    for (const v of this.clientViews.values()) {
      if (space !== undefined && v.space !== space) continue
      if (!this.isStillHeld({ ...v, stream: v.object, form: RAW })) {
        this.clientViews.delete(v.id)
        v.onEnd?.(this.c.now() >= v.until ? 'lease-end' : 'revocation')
      }
    }
  }

  // ---- in-app views (the client's viewer) ----

  /**
   * Register an opened object as shown in the client's viewer: `watchView` then says when it
   * must close (its lease ended, or a revocation dropped its key). On the key holder a view
   * never closes by itself. Returns the view's id (random, not guessable).
   */
  openView(opened: OpenedObject): string {
    const id = toHex(randomBytes(16))
    if (opened.leaseEnd === undefined || opened.grant === undefined) return id
    if (this.clientViews.size >= MAX_CLIENT_VIEWS) {
      const oldest = this.clientViews.values().next().value!
      this.clientViews.delete(oldest.id)
      oldest.onEnd?.('lease-end')
    }
    this.clientViews.set(id, {
      id,
      space: opened.space,
      object: opened.object,
      until: opened.leaseEnd,
      grants: [opened.grant],
      epochs: opened.epochs,
      onEnd: undefined,
    })
    return id
  }

  /**
   * Call `onEnd` once when the view must close; undefined when no such view is open (it
   * closed already, or it is the key holder's, which never closes). Returns the unwatch.
   */
  watchView(id: string, onEnd: (cause: ViewEnd) => void): (() => void) | undefined {
    const v = this.clientViews.get(id)
    if (v === undefined) return undefined
    v.onEnd = onEnd
    return () => {
      if (this.clientViews.get(id) === v) v.onEnd = undefined
    }
  }

  /** Forget a view the client closed. */
  closeView(id: string): void {
    this.clientViews.delete(id)
  }

  private remove(v: Viewer, cause: string): Promise<void> {
    if (!this.viewers.delete(v.path)) return Promise.resolve()
    const p = rm(v.path, { force: true })
      .then(() => {
        this.c.metrics.inc('edgeward_viewer_files_removed_total', { cause })
        log('removed viewer %s (%s)', v.path, cause)
      })
      .catch(err => log.error('could not remove viewer %s: %s', v.path, (err as Error).message))
      .finally(() => this.removals.delete(p))
    this.removals.add(p)
    return p
  }

  // ---- who holds or asked for access ----

  /** Grants covering the object, access requests naming it and (on the key holder) key releases of it. */
  async access(space: string, object: string): Promise<ObjectAccess> {
    if (!isObjectStream(object)) throw new UsageError(`not an object id: ${object}`)
    const state = this.policy.synced(space).state
    if (!state.streams.has(object)) throw new NotFoundError(`space ${space} has no object ${object}`)
    const now = this.c.now()
    const grants = [...state.grants.values()]
      .filter(g => streamsCover(g.body.streams, object))
      .map(g => grantView(g, state.grantStatus(g, now)))
      .sort((a, b) => a.notBefore - b.notBefore)
    const requests = (await this.requests.list(space))
      .filter(r => streamsCover(r.streams, object))
      .map(r => ({
        id: r.id,
        from: r.from,
        for: r.for,
        status: r.status,
        at: r.at,
        reason: r.reason,
        ...(r.grant === undefined ? {} : { grant: r.grant }),
      }))
    const out: ObjectAccess = { space, object, grants, requests }
    if (this.audit === undefined || !this.policy.holds(space)) return out
    // the object's releases and refusals and the space's revocations, in log order, through the log's index
    const entries = (await this.audit.streamEntries(space, object)).map(x => x.entry)
    const revocations = entries.filter((e): e is RevocationEntry => e.t === 'revocation')
    out.releases = entries
      .filter((e): e is ReleaseEntry => e.t === 'release')
      .map(rel => ({
        subject: rel.subject,
        device: rel.device,
        grant: rel.grant,
        at: rel.ts,
        leaseEnd: rel.leaseEnd,
        renewal: rel.renewal,
        ...heldUntil(rel, revocations, now),
      }))
    out.refusals = entries.flatMap(e =>
      e.t === 'refusal' ? [{ subject: e.subject, device: e.device, at: e.ts, code: e.code, reason: e.reason }] : [],
    )
    return out
  }
}

function grantView(
  g: OpenedRecord<Grant>,
  s: { status: GrantStatus; reason?: string },
): ObjectAccess['grants'][number] {
  return {
    id: g.id,
    subject: g.body.sub,
    issuer: g.issuer,
    status: s.status,
    ...(s.reason === undefined ? {} : { why: s.reason }),
    notBefore: g.body.nbf,
    notAfter: g.body.exp,
    download: g.body.download !== false,
    forward: g.body.forward ?? 'never',
  }
}

/** A release holds until its lease end, or the first later revocation that ends it; 'open' while it lasts. */
function heldUntil(
  rel: ReleaseEntry,
  revocations: RevocationEntry[],
  now: number,
): { heldUntil: number; endedBy: 'lease-end' | 'revocation' | 'open' } {
  let until = rel.leaseEnd
  let endedBy: 'lease-end' | 'revocation' | 'open' = 'lease-end'
  for (const rev of revocations) {
    if (rev.ts >= rel.ts && rev.ts < until && revocationEndsRelease(rev, rel)) {
      until = rev.ts
      endedBy = 'revocation'
    }
  }
  if (until > now) return { heldUntil: now, endedBy: 'open' }
  return { heldUntil: until, endedBy }
}

/** Re-cut a stream of pieces of any size into chunks of `size` bytes (the last one shorter). */
export async function* chunksOf(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(size)
  let fill = 0
  for await (const piece of source) {
    let off = 0
    while (off < piece.byteLength) {
      const n = Math.min(size - fill, piece.byteLength - off)
      buf.set(piece.subarray(off, off + n), fill)
      fill += n
      off += n
      if (fill === size) {
        yield buf
        buf = new Uint8Array(size)
        fill = 0
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill)
}
