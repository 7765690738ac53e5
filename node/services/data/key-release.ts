/**
 * The key holder's answer to key requests on `/edgeward/keys/1.0.0`.
 *
 * Guarantees: a key leaves only after the checks of the request gate (request-gate.ts: the
 * request decodes, this node holds the space, the device, replay, the policy now) and inside
 * the grant's data window and release limit. The keys go
 * out sealed (HPKE) to the device's X25519 key, with a lease `min(grant end, now + lease
 * max)`, and only once the release is durable in the audit log. Decisions for one subject run
 * one at a time, so a release limit is checked and counted with no other request of that
 * subject in between. The earliest end of a grant a key went out under is kept (EpochKeys),
 * so the epoch closes then.
 *
 * Abuse bounds: the gate's (replay protection per device, refusals logged within a budget per
 * peer, all counted in `edgeward_key_refusals_total`).
 *
 * Refuses (as a response with a code and a reason, never an exception): malformed,
 * not-a-holder, wrong-device, replay, unknown-epoch, outside-data-window, and every refusal
 * of the policy's evaluation.
 */
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { sealTo } from '../../../crypto/seal.ts'
import {
  encodeEpochKeys,
  encodeKeyResponse,
  KEYS_PROTOCOL,
  MAX_KEY_RESPONSE_BYTES,
  type OpenedKeyRequest,
  releaseInfo,
} from '../../../protocols/access/messages.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'
import type { AuditService } from '../audit.ts'
import type { PolicyService } from '../policy.ts'
import { type GateLimits, type Refused, RequestGate } from '../request-gate.ts'
import type { EpochKeys } from './epoch-keys.ts'

const log = logger('edgeward:keys')

/** What answering key requests uses: the network (to register the protocol), the metrics and the clock. */
export interface KeyReleaseComponents {
  libp2p: EdgewardLibp2p
  metrics: Metrics
  now: () => number
}

/** The parts and services a key release works with. */
export interface KeyReleaseParts {
  policy: Pick<PolicyService, 'document' | 'spaces' | 'holds'>
  audit: Pick<AuditService, 'append'> | undefined
  epochKeys: EpochKeys
}

/** The key holder's limits on what it releases and remembers (the gate's). */
export type KeyReleaseOptions = GateLimits

/** Decides and answers key requests: the only place a data key leaves the key holder. */
export class KeyRelease {
  private readonly c: KeyReleaseComponents
  private readonly p: KeyReleaseParts
  private readonly gate: RequestGate
  /** lease end of each (subject, grant, stream), to tell renewals from first releases */
  private readonly leases = new Map<string, number>()

  constructor(components: KeyReleaseComponents, parts: KeyReleaseParts, opts: KeyReleaseOptions = {}) {
    this.c = components
    this.p = parts
    this.gate = new RequestGate(
      components,
      { policy: parts.policy, audit: parts.audit, releaseCount: grant => parts.epochKeys.releaseCount(grant) },
      { ...opts, prefix: 'edgeward_key', who: 'this key holder' },
    )
    components.metrics.describe('edgeward_key_releases_total', 'key releases by this key holder')
  }

  /** Answer key requests from now on. */
  async start(): Promise<void> {
    await this.gate.listen(KEYS_PROTOCOL, MAX_KEY_RESPONSE_BYTES, (req, conn) => this.decide(req, conn), refusal)
  }

  /** Forget what no longer matters at `now`: refusal budgets and requests out of the replay window. */
  sweep(now: number): void {
    this.gate.sweep(now)
  }

  private async decide(req: OpenedKeyRequest, conn: Connection): Promise<Uint8Array> {
    const { policy, audit, epochKeys } = this.p
    const { request: r, device } = req
    const space = r.body.space
    // only a request for a space this node holds is worth an audit entry; the rest are counted
    if (!policy.spaces().includes(space) || !policy.holds(space)) {
      return refusal(this.gate.refuse('not-a-holder', 'this node is not a key holder of that space'))
    }
    const admitted = await this.gate.admit(req, conn)
    if (!admitted.ok) return refusal(admitted)
    const { permit: decision, state, counts, lastRelease, lease, now, reqHash } = admitted
    const refuseLogged = async (code: string, reason: string) => refusal(await admitted.refuse(code, reason))
    const g = decision.grant.body
    // the epochs asked for, looked up together (from memory, once this key holder has used them)
    const found = await Promise.all(
      r.body.epochs.map(async epoch => ({
        epoch,
        key: await epochKeys.existingKey(space, r.body.stream, r.body.form, epoch),
        // the data window: only epochs whose time range overlaps it
        inWindow: await epochKeys.epochInWindow(space, r.body.stream, epoch, g),
      })),
    )
    const unknown = found.find(f => f.key === undefined)
    if (unknown !== undefined)
      return refuseLogged('unknown-epoch', `stream ${r.body.stream} has no epoch ${unknown.epoch}`)
    const keys = found.filter(f => f.inWindow).map(f => ({ epoch: f.epoch, key: f.key! }))
    if (keys.length === 0)
      return refuseLogged('outside-data-window', "none of the data asked for is inside the grant's data window")
    const leaseKey = `${r.issuer}|${decision.grant.id}|${r.body.stream}`
    const renewal = (this.leases.get(leaseKey) ?? 0) > now
    // until when what this release gives can be renewed: the grant's end (its delegation's, its
    // parent's) or the device certificate's; for the last release a limit allows, its lease.
    // The epoch released is closed then, before the key leaves.
    const ends = Math.min(lastRelease ? lease : decision.until, device.body.exp)
    const noted = epochKeys.noteGrantEnd(
      space,
      r.body.stream,
      Math.max(...keys.map(k => k.epoch)),
      ends,
      state.streams.get(r.body.stream)?.body.epochMs,
    )
    noted.catch(() => undefined)
    // the key leaves only once its release is durable in the audit log; the keys are sealed
    // while that entry is being synced (the seal does not depend on it, and goes nowhere until
    // it is done). A seal that fails (a device key that is a small-order point) leaves a
    // release entry for keys that never left: the log then says more than happened, never less.
    const logged = audit?.append({
      t: 'release',
      ts: now,
      space,
      subject: r.issuer,
      device: device.body.peer,
      grant: decision.grant.id,
      stream: r.body.stream,
      form: r.body.form,
      epochs: keys.map(k => k.epoch),
      leaseEnd: lease,
      renewal,
      request: r.bytes,
      reqHash,
      ...(g.purpose === undefined ? {} : { purpose: g.purpose }),
    })
    // a failed append must not go unhandled while the seal runs; it is thrown below
    logged?.catch(() => undefined)
    const sealed = await sealTo(device.body.xpk, encodeEpochKeys(keys), releaseInfo(r.bytes))
    await logged
    await noted
    // only a release that was logged (and so will be answered) counts as a lease
    this.leases.set(leaseKey, lease)
    if (g.maxReleases !== undefined) {
      await epochKeys.setReleaseCount(decision.grant.id, (counts.get(decision.grant.id) ?? 0) + 1)
    }
    this.c.metrics.inc('edgeward_key_releases_total', { stream: r.body.stream })
    log('released %d keys of %s to %s until %d', keys.length, r.body.stream, r.issuer, lease)
    return encodeKeyResponse({ ok: true, lease, grant: decision.grant.id, sealed })
  }
}

function refusal(r: Refused): Uint8Array {
  return encodeKeyResponse({ ok: false, code: r.code, reason: r.reason })
}
