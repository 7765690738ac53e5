/**
 * Reading a stream: its stored ciphertext, fetched first where this node lacks some, then
 * decrypted with the keys the key holder released (or, on the key holder, the keys it made).
 *
 * Guarantees: only readings of epochs whose key this node holds come out; an epoch outside
 * the grant's data window is skipped; a record that does not decrypt under the right key was
 * not what the key holder published (a peer served something else): it is dropped, counted,
 * and fetched again on a later read.
 *
 * Assumes: the policy is synced enough to know the stream (`synced`); backfill is the node's
 * fetch service, given at construction.
 *
 * Refuses: NotFoundError for a stream or form the space does not have; AccessRefusedError
 * when the key holder refuses, or when a key is dropped (revocation, lease end) mid-read.
 */
import { DecryptionError } from '../../../crypto/errors.ts'
import { DEFAULT_FORMS, RAW } from '../../../protocols/data/forms.ts'
import { decryptReadings, type EncryptedReading, type Reading } from '../../../protocols/data/reading.ts'
import { AccessRefusedError, NotFoundError } from '../../errors.ts'
import type { Metrics } from '../../metrics.ts'
import type { PolicyService } from '../policy.ts'
import type { EpochKeys } from './epoch-keys.ts'
import type { KeyCache } from './key-cache.ts'
import type { RecordStore } from './record-store.ts'

/** A reading decrypted, with where it sits in its stream. */
export interface DecryptedReading extends Reading {
  seq: number
  epoch: number
  form: string
}

/** Fetches what this node lacks of a stream before a read (the fetch service's backfill). */
export type Backfill = (space: string, stream: string, form: string) => Promise<unknown>

/** The parts and services reading works with. */
export interface ReaderParts {
  policy: Pick<PolicyService, 'synced' | 'makesKeys'>
  keyCache: KeyCache
  epochKeys: EpochKeys
  records: RecordStore
  backfill: Backfill | undefined
}

/** Decrypts a stream's stored readings for this node. */
export class Reader {
  private readonly metrics: Metrics
  private readonly p: ReaderParts

  constructor(components: { metrics: Metrics }, parts: ReaderParts) {
    this.metrics = components.metrics
    this.p = parts
    components.metrics.describe('edgeward_readings_refused_total', 'gossiped readings refused, by reason')
  }

  /** Fetch what this node lacks of a stream (a no-op when no backfill was given). */
  async backfill(space: string, stream: string, form: string): Promise<void> {
    await this.p.backfill?.(space, stream, form)
  }

  /** Decrypt the stored readings of a stream from reading time `since`; throws AccessRefusedError when the key holder refuses. */
  async read(space: string, stream: string, since = 0, form = RAW): Promise<DecryptedReading[]> {
    const doc = this.p.policy.synced(space)
    const rec = doc.state.streams.get(stream)
    if (rec === undefined) throw new NotFoundError(`space ${space} has no stream ${stream}`)
    const forms: readonly string[] = rec.body.forms ?? DEFAULT_FORMS
    if (!forms.includes(form))
      throw new NotFoundError(`stream ${stream} has no form ${form} (it has ${forms.join(', ')})`)
    await this.backfill(space, stream, form)
    const stored: EncryptedReading[] = []
    for await (const r of this.p.records.records(space, stream, form)) stored.push(r)
    return this.decryptAll(space, stream, stored, since)
  }

  /** Decrypt readings of one stream and one form (each reading names its form). */
  async decryptAll(space: string, stream: string, stored: EncryptedReading[], since = 0): Promise<DecryptedReading[]> {
    if (stored.length === 0) return []
    const { keyCache, epochKeys } = this.p
    const form = stored[0].form
    // the node that made the keys (the key holder; a member, of its own objects) reads with them; everyone else asks
    const holder = this.p.policy.makesKeys(space, stream)
    if (!holder) {
      await keyCache.ensure(
        space,
        stream,
        form,
        stored.map(r => r.epoch),
      )
    }
    const out: DecryptedReading[] = []
    for (const r of stored) {
      let key: Uint8Array | undefined
      if (holder) {
        key = await epochKeys.existingKey(space, stream, r.form, r.epoch)
      } else {
        const cached = keyCache.get(space, stream, r.form, r.epoch)
        if (cached === undefined) throw new AccessRefusedError('no-key', 'the key was dropped while reading')
        key = cached.key
      }
      if (key === undefined) continue // outside the grant's data window
      let plain: Reading[]
      try {
        plain = decryptReadings(key, r)
      } catch (err) {
        if ((err as Error).name !== DecryptionError.name) throw err
        // not what the key holder published (a peer served something else): drop it, fetch again later
        await this.p.records.drop(r)
        this.metrics.inc('edgeward_readings_refused_total', { reason: 'does-not-decrypt' })
        continue
      }
      for (const [i, p] of plain.entries()) {
        if (p.ts >= since) out.push({ ...p, seq: r.seq + i, epoch: r.epoch, form: r.form })
      }
    }
    return out
  }
}
