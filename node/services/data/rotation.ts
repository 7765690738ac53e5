/**
 * Key rotation where keys are made (the key holder; a member, for its own streams): a revocation
 * closes the current epoch of every open stream whose keys this node makes, at once, so what is
 * published afterwards is under a key nobody has been given.
 *
 * Guarantees: each stream's next epoch start, its raw key and its state go in one synced
 * batch, every stream of the space queued at once (none waits for another's rotation); once
 * all are done, the count of revocations they cover is stored. A process stopped before that
 * rotates again at start (`resume`), and writes the audit entry of each revocation loaded
 * from disk that the log lacks (the process before stopped between storing and logging it).
 *
 * Assumes: it is constructed before the policy service starts, so it hears of the revocations
 * that catch-up applies as the node starts and tells them apart from those loaded from disk.
 *
 * Refuses: to rotate a closed stream (an object shared whole takes no more readings, so it
 * keeps its key).
 */
import { logger } from '@libp2p/logger'
import type { OpenedRecord } from '../../../crypto/signed.ts'
import { RAW } from '../../../protocols/data/forms.ts'
import type { Revocation } from '../../../protocols/policy/records.ts'
import type { Metrics } from '../../metrics.ts'
import type { AuditService } from '../audit.ts'
import type { PolicyService } from '../policy.ts'
import type { EpochKeys } from './epoch-keys.ts'
import type { StreamQueue } from './stream-queue.ts'

const log = logger('edgeward:keys')

/** A stream name no stream has (names never hold '~'): asking the audit index for it gives a space's revocations only. */
const NO_STREAM = '~'

/** What rotation uses: the metrics and the clock. */
export interface RotationComponents {
  metrics: Metrics
  now: () => number
}

/** The parts and services rotation works with. */
export interface RotationParts {
  policy: Pick<PolicyService, 'document' | 'spaces' | 'makesKeys' | 'makesAnyKeys' | 'onRecords'>
  audit: Pick<AuditService, 'append' | 'streamEntries'> | undefined
  epochKeys: EpochKeys
  queue: StreamQueue
}

/** Why an epoch was closed early: a revocation now, or one a rotation did not cover before a restart. */
export type RotationCause = 'revocation' | 'restart'

/** Closes the current epoch of a space's streams on revocation, and finishes at start what a crash cut short. */
export class Rotation {
  private readonly c: RotationComponents
  private readonly p: RotationParts
  /** revocations applied in this process before `resume`; the rest were loaded from disk */
  private seenRevocations: Set<string> | undefined = new Set()
  private stopListening: (() => void) | undefined

  constructor(components: RotationComponents, parts: RotationParts) {
    this.c = components
    this.p = parts
    // revocations the policy applies before start (catch-up as the node starts) are told to
    // this listener; resume() tells them apart from those loaded from disk
    this.stopListening = parts.policy.onRecords((_space, records) => {
      for (const r of records) if (r.kind === 'revocation') this.seenRevocations?.add(r.record.id)
    })
    components.metrics.describe('edgeward_epochs_rotated_total', 'epochs closed early by this key holder, by cause')
  }

  /** Close the current epoch of every open stream of a space, and store that the space's revocations are covered. */
  async rotate(space: string, cause: RotationCause): Promise<void> {
    const state = this.p.policy.document(space).state
    // every revocation applied by now is covered once each stream has rotated after this point
    const covers = state.revocations.size
    // the streams whose keys this node makes: the owner's on a key holder, a member's own on its device
    const mine = [...state.streams.keys()].filter(stream => this.p.policy.makesKeys(space, stream))
    await Promise.all(
      mine.map(stream => this.p.queue.run(space, stream, () => this.rotateStream(space, stream, cause))),
    )
    await this.p.epochKeys.markRotated(space, covers)
  }

  private async rotateStream(space: string, stream: string, cause: RotationCause): Promise<void> {
    const epoch = await this.p.epochKeys.startNextEpoch(space, stream, RAW, this.c.now())
    if (epoch === undefined) return
    this.c.metrics.inc('edgeward_epochs_rotated_total', { cause })
    log('rotated %s/%s to epoch %d (%s)', space, stream, epoch, cause)
  }

  /**
   * At start, for every space this node holds: the grant ends kept on disk; a rotation if the
   * space has more revocations than a finished rotation covers (the process before stopped
   * between storing a revocation and rotating, or this one applied revocations before it
   * listened); and an audit entry for each revocation loaded from disk that the log lacks.
   */
  async resume(): Promise<void> {
    const policy = this.p.policy
    await this.p.epochKeys.loadGrantEnds()
    // taken at once: revocations applied from here on are logged by the audit service as they come
    const seen = this.seenRevocations ?? new Set<string>()
    this.seenRevocations = undefined
    this.stopListening?.()
    this.stopListening = undefined
    const held = policy.spaces().filter(space => policy.makesAnyKeys(space))
    const loaded = new Map(
      held.map(space => [space, [...policy.document(space).state.revocations.values()].filter(r => !seen.has(r.id))]),
    )
    for (const space of held) {
      const covered = await this.p.epochKeys.loadRotated(space)
      const revocations = policy.document(space).state.revocations.size
      if (revocations > covered) {
        log('space %s: %d revocations, %d covered by a finished rotation: rotating', space, revocations, covered)
        await this.rotate(space, 'restart')
      }
      await this.logMissedRevocations(space, loaded.get(space)!)
    }
  }

  /** Stop listening to the policy (if `resume` never ran). */
  stop(): void {
    this.stopListening?.()
    this.stopListening = undefined
  }

  /**
   * Audit entries for revocations that were on disk when this process started but are not in
   * the log (the process before stopped between storing and logging them), dated now.
   */
  private async logMissedRevocations(space: string, loaded: OpenedRecord<Revocation>[]): Promise<void> {
    const audit = this.p.audit
    if (audit === undefined || loaded.length === 0) return
    const logged = new Set<string>()
    // no stream has this name: only the space's revocations come back
    for (const { entry } of await audit.streamEntries(space, NO_STREAM)) {
      if (entry.t === 'revocation') logged.add(entry.revocation)
    }
    const now = this.c.now()
    const missing = loaded.filter(r => !logged.has(r.id))
    if (missing.length > 0) log('space %s: logging %d revocations the audit log lacks', space, missing.length)
    await Promise.all(
      missing.map(r => audit.append({ t: 'revocation', ts: now, space, revocation: r.id, target: r.body.target })),
    )
  }
}
