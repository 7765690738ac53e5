/**
 * The data plane of a node, both sides of it, assembled from parts with one job each:
 * - EpochKeys (`epoch-keys.ts`): the key holder's epochs and data keys on disk;
 * - Rotation (`rotation.ts`): closing epochs on revocation, and at start what a crash cut short;
 * - KeyRelease (`key-release.ts`): deciding and answering key requests;
 * - Publisher (`publisher.ts`, `writer.ts`, `outbox.ts`): encrypting, storing, gossiping readings;
 * - GossipIntake (`gossip-intake.ts`): validating and storing what key holders gossip;
 * - KeyCache (`key-cache.ts`) and Reader (`reader.ts`): the reader's keys, and reading;
 * - RecordStore (`record-store.ts`): the stored ciphertext, shared with the fetch service and
 *   given by the node (node/node.ts), like the fetch service's backfill.
 * No part imports another's module but for its type, and none imports this one.
 *
 * Guarantees: what each part guarantees; here, that a revocation in a space drops the cached
 * keys it could end and (on the key holder) rotates the space's keys, that keys leave memory
 * when their lease ends (a sweep every second, which also closes due aggregate windows), and
 * that stop sends what is stored and not yet gossiped.
 */
import { logger } from '@libp2p/logger'
import { RAW } from '../../../protocols/data/forms.ts'
import type { EncryptedReading, Reading } from '../../../protocols/data/reading.ts'
import type { AppliedRecord } from '../../../protocols/policy/document.ts'
import type { ObjectMedia } from '../../../protocols/policy/records.ts'
import type { AuditService } from '../audit.ts'
import type { KeyDealer } from '../custody/index.ts'
import type { PolicyService } from '../policy.ts'
import { EpochKeys, type EpochKeysComponents } from './epoch-keys.ts'
import { GossipIntake, type GossipIntakeComponents } from './gossip-intake.ts'
import { type CustodyFallback, KeyCache, type KeyCacheComponents } from './key-cache.ts'
import { KeyRelease, type KeyReleaseComponents, type KeyReleaseOptions } from './key-release.ts'
import { Outbox, type OutboxComponents } from './outbox.ts'
import { Publisher, type PublisherComponents } from './publisher.ts'
import { type Backfill, type DecryptedReading, Reader } from './reader.ts'
import type { RecordStore } from './record-store.ts'
import { Rotation } from './rotation.ts'
import { StreamQueue } from './stream-queue.ts'

export type { DecryptedReading } from './reader.ts'

const log = logger('edgeward:keys')

/** The data service's options: the key holder's limits, and the epoch length of new streams. */
export interface DataServiceOptions extends KeyReleaseOptions {
  /** epoch length of new streams (default 1 h) */
  epochMs?: number
}

/** What the data service's parts use, together. */
export type DataServiceComponents = EpochKeysComponents &
  KeyReleaseComponents &
  KeyCacheComponents &
  PublisherComponents &
  GossipIntakeComponents &
  OutboxComponents

/** The services and shared parts the data service is built with. */
export interface DataServiceParts {
  policy: PolicyService
  audit: AuditService | undefined
  /** the stored ciphertext (shared with the fetch service) */
  records: RecordStore
  /** fetches what this node lacks of a stream before a read (the fetch service's) */
  backfill?: Backfill
  /** custody's: deals the keys this node makes, and asks custodians when no key holder answers */
  custody?: { dealer: KeyDealer; reader: CustodyFallback }
}

/** Told of each encrypted record this node stores (published here or received by gossip). */
export type ReadingListener = (r: EncryptedReading) => void

/** The data plane of a node: the outer service that assembles the parts and keeps the public surface. */
export class DataService {
  /** the stored ciphertext */
  readonly records: RecordStore
  private readonly c: DataServiceComponents
  private readonly policy: PolicyService
  private readonly epochKeys: EpochKeys
  private readonly rotation: Rotation
  private readonly keyRelease: KeyRelease
  private readonly keyCache: KeyCache
  private readonly outbox: Outbox
  private readonly publisher: Publisher
  private readonly intake: GossipIntake
  private readonly reader: Reader
  private readonly readingListeners = new Set<ReadingListener>()
  private sweep: NodeJS.Timeout | undefined
  private stopListening: (() => void) | undefined

  constructor(components: DataServiceComponents, parts: DataServiceParts, opts: DataServiceOptions = {}) {
    this.c = components
    this.policy = parts.policy
    this.records = parts.records
    const { policy, audit, records } = parts
    const stored = (r: EncryptedReading) => {
      for (const l of this.readingListeners) l(r)
    }
    const queue = new StreamQueue()
    this.epochKeys = new EpochKeys(components, parts.custody?.dealer)
    const epochKeys = this.epochKeys
    this.rotation = new Rotation(components, { policy, audit, epochKeys, queue })
    this.keyRelease = new KeyRelease(components, { policy, audit, epochKeys }, opts)
    this.keyCache = new KeyCache(components, policy, parts.custody?.reader)
    this.outbox = new Outbox(components)
    this.publisher = new Publisher(
      components,
      { policy, epochKeys, records, queue, outbox: this.outbox, stored },
      { epochMs: opts.epochMs },
    )
    this.intake = new GossipIntake(components, { policy, records, stored })
    this.reader = new Reader(components, {
      policy,
      keyCache: this.keyCache,
      epochKeys,
      records,
      backfill: parts.backfill,
    })
  }

  async start(): Promise<void> {
    this.stopListening = this.policy.onRecords((space, records) => {
      this.onPolicyRecords(space, records).catch(err => log.error('after a policy change: %s', (err as Error).message))
    })
    // keys leave memory when their lease ends, not only when next looked at
    this.sweep = setInterval(() => {
      this.keyCache.dropExpired()
      this.keyRelease.sweep(this.c.now())
      this.publisher.closeDueWindows().catch(err => log.error('closing aggregate windows: %s', (err as Error).message))
    }, 1000)
    this.sweep.unref()
    for (const space of this.policy.spaces()) this.subscribe(space)
    await this.rotation.resume()
    await this.keyRelease.start()
  }

  /** Stop the timers and listeners, and send what is stored and not yet gossiped. */
  async stop(): Promise<void> {
    clearInterval(this.sweep)
    this.stopListening?.()
    this.stopListening = undefined
    this.rotation.stop()
    await this.outbox.drain()
  }

  /** A revocation drops the cached keys it could end; on the key holder, it rotates the space's keys. */
  private async onPolicyRecords(space: string, records: AppliedRecord[]): Promise<void> {
    const revocations = records.filter(r => r.kind === 'revocation')
    this.keyCache.recheck(
      space,
      revocations.map(r => r.record),
    )
    if (revocations.length > 0 && this.policy.makesAnyKeys(space)) await this.rotation.rotate(space, 'revocation')
  }

  /** Start receiving a space's readings (after create or join). */
  subscribe(space: string): void {
    this.intake.subscribe(space)
  }

  /** Define a stream: its epoch length and the forms the gateway produces (default raw and hashed). */
  async createStream(
    space: string,
    stream: string,
    opts: { epochMs?: number; forms?: string[]; media?: ObjectMedia } = {},
  ): Promise<void> {
    await this.publisher.createStream(space, stream, opts)
  }

  /**
   * Encrypt and store durably, then return the sequence numbers assigned (of the raw form);
   * the records are gossiped right after. `last`: the stream takes nothing more (an object's
   * manifest). See Publisher.publish.
   */
  async publish(space: string, stream: string, readings: Reading[], opts: { last?: boolean } = {}): Promise<number[]> {
    return this.publisher.publish(space, stream, readings, opts)
  }

  /** Number of data keys this node holds in memory as a reader (for status and tests). */
  cachedKeyCount(): number {
    return this.keyCache.count()
  }

  /** The lease and grant of the key this reader holds for one epoch of a stream, if it holds one. */
  cachedLease(
    space: string,
    stream: string,
    form: string,
    epoch: number,
  ): { lease: number; grant: string } | undefined {
    return this.keyCache.lease(space, stream, form, epoch)
  }

  /** Stored ciphertext of a stream, in sequence order. */
  async storedReadings(space: string, stream: string, form = RAW): Promise<EncryptedReading[]> {
    const out: EncryptedReading[] = []
    for await (const r of this.records.records(space, stream, form)) out.push(r)
    return out
  }

  /** Decrypt the stored readings of a stream; throws AccessRefusedError when the key holder refuses. */
  async read(space: string, stream: string, since = 0, form = RAW): Promise<DecryptedReading[]> {
    return this.reader.read(space, stream, since, form)
  }

  /** Fetch what this node lacks of a stream before reading it (the backfill the node gave; none: nothing). */
  async backfill(space: string, stream: string, form: string): Promise<void> {
    await this.reader.backfill(space, stream, form)
  }

  /** Decrypt readings of one stream and one form (each reading names its form). */
  async decryptAll(space: string, stream: string, stored: EncryptedReading[], since = 0): Promise<DecryptedReading[]> {
    return this.reader.decryptAll(space, stream, stored, since)
  }

  /** Be told of each record stored here; returns the function that stops it. */
  onReading(listener: ReadingListener): () => void {
    this.readingListeners.add(listener)
    return () => this.readingListeners.delete(listener)
  }
}
