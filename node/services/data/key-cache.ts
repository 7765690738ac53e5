/**
 * The reader's data keys: asked of a key holder when a read needs them, kept in memory only.
 *
 * Guarantees: a key is kept until its lease ends (dropped by the sweep, not only when next
 * looked at) or until a revocation arrives that could end the grant it was released under;
 * then the key holder decides again on the next read. Nothing here touches the disk. An epoch
 * the key holder did not release (outside the grant's data window) is remembered as such for
 * the lease, so it is not asked for again.
 *
 * Assumes: the key holders of a space are the policy's `holders`, asked in that order; a
 * response is sealed to this device's X25519 key and bound to the request it answers.
 *
 * When no key holder answers and the space has custodians, the keys come from k of them
 * (custody/reader.ts), which decide as the key holder would.
 *
 * Refuses: throws AccessRefusedError with the key holder's code and reason when it refuses
 * (or enough custodians do), and UnreachableError when no key holder of the space answers
 * (nor enough custodians).
 */
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes } from '../../../crypto/hash.ts'
import { openSealed } from '../../../crypto/seal.ts'
import type { OpenedRecord } from '../../../crypto/signed.ts'
import {
  createKeyRequest,
  decodeEpochKeys,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  type KeyResponse,
  MAX_EPOCHS_PER_REQUEST,
  MAX_KEY_RESPONSE_BYTES,
  releaseInfo,
} from '../../../protocols/access/messages.ts'
import type { Revocation } from '../../../protocols/policy/records.ts'
import { streamsCover } from '../../../protocols/policy/state.ts'
import { AccessRefusedError, UnreachableError } from '../../errors.ts'
import type { Identity } from '../../identity.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'
import type { PolicyService } from '../policy.ts'
import { request } from '../stream-io.ts'

const log = logger('edgeward:keys')

/** What the key cache uses: the network (to ask key holders), this node's identity, the metrics and the clock. */
export interface KeyCacheComponents {
  libp2p: EdgewardLibp2p
  identity: Pick<Identity, 'principal' | 'device' | 'sealing'>
  metrics: Metrics
  now: () => number
}

/** Keys made from custodians' shares: per epoch (undefined: outside the grant's data window), their lease and grant. */
export interface CustodyKeys {
  keys: Map<number, Uint8Array | undefined>
  lease: number
  /** the grant the custodians released under, when it is one of this reader's grants that this node knows ('' if not) */
  grant: string
}

/** Where keys come from when no key holder answers: the space's custodians (custody/reader.ts). */
export interface CustodyFallback {
  /** whether the space has custodians */
  has(space: string): boolean
  /** the keys of `epochs` from the custodians' shares */
  keys(space: string, stream: string, form: string, epochs: number[], grant?: string): Promise<CustodyKeys>
}

interface CachedKey {
  /** undefined: the epoch was asked for and is outside the grant's data window */
  key: Uint8Array | undefined
  lease: number
  grant: string
}

/** A reader's released keys, in memory, per (space, stream, form, epoch). */
export class KeyCache {
  private readonly c: KeyCacheComponents
  private readonly policy: Pick<PolicyService, 'document'>
  private readonly keys = new Map<string, CachedKey>()

  private readonly custody: CustodyFallback | undefined

  constructor(components: KeyCacheComponents, policy: Pick<PolicyService, 'document'>, custody?: CustodyFallback) {
    this.c = components
    this.policy = policy
    this.custody = custody
    components.metrics.describe('edgeward_keys_dropped_total', 'cached keys dropped by this reader, by cause')
  }

  /**
   * The key of one epoch as cached: `{ key }` (undefined key: outside the grant's data
   * window), or undefined when none is cached (it was dropped, or never asked for).
   */
  get(space: string, stream: string, form: string, epoch: number): { key: Uint8Array | undefined } | undefined {
    return this.keys.get(cacheKey(space, stream, form, epoch))
  }

  /** Number of data keys held (for status and tests). */
  count(): number {
    this.dropExpired()
    return [...this.keys.values()].filter(k => k.key !== undefined).length
  }

  /** The lease and grant of the key held for one epoch of a stream, if one is held. */
  lease(space: string, stream: string, form: string, epoch: number): { lease: number; grant: string } | undefined {
    const k = this.keys.get(cacheKey(space, stream, form, epoch))
    return k === undefined || k.key === undefined || k.lease <= this.c.now()
      ? undefined
      : { lease: k.lease, grant: k.grant }
  }

  /** Drop the keys whose lease has ended. */
  dropExpired(): void {
    const now = this.c.now()
    for (const [k, v] of this.keys) {
      if (v.lease > now) continue
      this.keys.delete(k)
      this.c.metrics.inc('edgeward_keys_dropped_total', { cause: 'lease-end' })
    }
  }

  /**
   * Drop every cached key of the space whose grant no longer holds. A key whose grant this
   * reader has not received (the key holder knew it) is dropped on any revocation that could
   * end it: of that grant, of this subject, of this device, or of a delegation; the key holder
   * decides again on the next read.
   */
  recheck(space: string, revocations: OpenedRecord<Revocation>[]): void {
    const state = this.policy.document(space).state
    const me = this.c.identity
    const now = this.c.now()
    // for a grant this reader never received, any revocation could end it (of an ancestor, a
    // subject up its chain, a delegation): drop, and let the key holder decide on the next read
    const mayEndUnknown = revocations.length > 0
    for (const [k, cached] of this.keys) {
      if (!k.startsWith(`${space}|`)) continue
      const grant = state.grants.get(cached.grant)
      const ended =
        grant === undefined
          ? mayEndUnknown
          : state.grantProblem(grant, now) !== undefined ||
            state.deviceProblem(me.device, me.principal.did, now) !== undefined
      if (ended) {
        this.keys.delete(k)
        this.c.metrics.inc('edgeward_keys_dropped_total', { cause: 'revocation' })
      }
    }
  }

  /** Ensure keys for `epochs` are cached, asking a key holder for the missing ones. */
  async ensure(space: string, stream: string, form: string, epochs: number[]): Promise<void> {
    this.dropExpired()
    const missing = [...new Set(epochs)].filter(e => !this.keys.has(cacheKey(space, stream, form, e)))
    for (let i = 0; i < missing.length; i += MAX_EPOCHS_PER_REQUEST) {
      await this.requestKeys(space, stream, form, missing.slice(i, i + MAX_EPOCHS_PER_REQUEST))
    }
  }

  private async requestKeys(space: string, stream: string, form: string, epochs: number[]): Promise<void> {
    const state = this.policy.document(space).state
    const me = this.c.identity
    const active = state
      .grantsOf(me.principal.did)
      .find(
        g =>
          streamsCover(g.body.streams, stream) &&
          g.body.forms.includes(form) &&
          state.grantProblem(g, this.c.now()) === undefined,
      )
    const req = createKeyRequest(me.principal, {
      space,
      stream,
      form,
      epochs,
      grant: active?.id,
      device: me.device.bytes,
      nonce: randomBytes(16),
      ts: this.c.now(),
    })
    let lastError: Error | undefined
    // a member's file or message: its keys are with the custodians only
    const holders = state.streams.get(stream)?.body.peer === undefined ? state.holders : []
    for (const holder of holders) {
      let res: KeyResponse
      try {
        const raw = await request(
          this.c.libp2p,
          peerIdFromString(holder),
          KEYS_PROTOCOL,
          req.bytes,
          MAX_KEY_RESPONSE_BYTES,
        )
        res = decodeKeyResponse(raw)
      } catch (err) {
        lastError = err as Error
        log('key holder %s unreachable: %s', holder, lastError.message)
        continue
      }
      if (!res.ok) throw new AccessRefusedError(res.code, res.reason)
      const keys = decodeEpochKeys(await openSealed(me.sealing.secretKey, res.sealed, releaseInfo(req.bytes)))
      const released = new Map(keys.map(k => [k.epoch, k.key]))
      // epochs asked for but not released are outside the grant's data window: remembered as such for the lease
      for (const epoch of epochs) {
        this.keys.set(cacheKey(space, stream, form, epoch), {
          key: released.get(epoch),
          lease: res.lease,
          grant: res.grant,
        })
      }
      return
    }
    if (this.custody?.has(space)) {
      // the key holder is away: the custodians decide as it would, and k of them give the key
      const got = await this.custody.keys(space, stream, form, epochs, active?.id)
      for (const epoch of epochs) {
        // a key whose grant this node does not know ('') is dropped on any revocation (recheck)
        this.keys.set(cacheKey(space, stream, form, epoch), {
          key: got.keys.get(epoch),
          lease: got.lease,
          grant: got.grant,
        })
      }
      return
    }
    throw new UnreachableError(`no key holder of the space answered${lastError ? `: ${lastError.message}` : ''}`)
  }
}

function cacheKey(space: string, stream: string, form: string, epoch: number): string {
  return `${space}|${stream}|${form}|${epoch}`
}
