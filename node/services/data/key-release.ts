/**
 * The key holder's answer to key requests on `/edgeward/keys/1.0.0`.
 *
 * Guarantees: a key leaves only after these checks, in this order: the request decodes (with
 * its signature and device certificate), this node holds the space, the connection comes
 * from the device the request names, the request is fresh and not a replay, and the policy
 * as it stands now allows it, inside the grant's data window and release limit. The keys go
 * out sealed (HPKE) to the device's X25519 key, with a lease `min(grant end, now + lease
 * max)`, and only once the release is durable in the audit log. Decisions for one subject run
 * one at a time, so a release limit is checked and counted with no other request of that
 * subject in between. The earliest end of a grant a key went out under is kept (EpochKeys),
 * so the epoch closes then.
 *
 * Abuse bounds: replay protection is kept per requesting device (one device's flood cannot
 * crowd out another), and a request made before this process started is refused (what an
 * earlier process saw is not remembered). Refusals are all counted, but only the first few
 * per remote peer and minute are each written to the audit log; the rest are counted in
 * `edgeward_key_refusals_unlogged_total`.
 *
 * Refuses (as a response with a code and a reason, never an exception): malformed,
 * not-a-holder, wrong-device, replay, unknown-epoch, outside-data-window, and every refusal
 * of the policy's evaluation.
 */
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { sealTo } from '../../../crypto/seal.ts'
import {
  decodeKeyRequest,
  encodeEpochKeys,
  encodeKeyResponse,
  KEYS_PROTOCOL,
  MAX_KEY_REQUEST_BYTES,
  MAX_KEY_RESPONSE_BYTES,
  REQUEST_WINDOW_MS,
  releaseInfo,
} from '../../../protocols/access/messages.ts'
import { RefusalBudget } from '../../../protocols/access/refusal-budget.ts'
import { DeviceReplayGuard } from '../../../protocols/access/replay-guard.ts'
import { requestHash } from '../../../protocols/audit/entries.ts'
import { leaseEnd } from '../../../protocols/policy/state.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'
import type { AuditService } from '../audit.ts'
import type { PolicyService } from '../policy.ts'
import { handle } from '../stream-io.ts'
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

/** The key holder's limits on what it releases and remembers. */
export interface KeyReleaseOptions {
  /** longest lease a key holder grants (default 15 min) */
  leaseMaxMs?: number
  /** key requests remembered per requesting device for replay protection (default 4096) */
  replayMaxPerDevice?: number
  /** key requests remembered in all, past which only devices under their fair share are served (default 1 000 000) */
  replayMaxEntries?: number
  /** refused key requests of one remote peer written to the audit log per minute (default 30); the rest are counted */
  refusalsLoggedPerMinute?: number
}

/** Decides and answers key requests: the only place a data key leaves the key holder. */
export class KeyRelease {
  private readonly c: KeyReleaseComponents
  private readonly p: KeyReleaseParts
  private readonly leaseMaxMs: number
  private readonly replay: DeviceReplayGuard
  /** refusals written to the audit log, per remote peer and minute */
  private readonly refusalBudget: RefusalBudget
  /** lease end of each (subject, grant, stream), to tell renewals from first releases */
  private readonly leases = new Map<string, number>()
  private readonly decisionChains = new Map<string, Promise<void>>()

  constructor(components: KeyReleaseComponents, parts: KeyReleaseParts, opts: KeyReleaseOptions = {}) {
    this.c = components
    this.p = parts
    this.leaseMaxMs = opts.leaseMaxMs ?? 15 * 60 * 1000
    // a request made before this process existed may have been answered by the one before it
    this.replay = new DeviceReplayGuard({
      windowMs: REQUEST_WINDOW_MS,
      notBefore: components.now(),
      maxPerDevice: opts.replayMaxPerDevice,
      maxEntries: opts.replayMaxEntries,
    })
    this.refusalBudget = new RefusalBudget({ perWindow: opts.refusalsLoggedPerMinute, windowMs: 60_000 })
    const m = components.metrics
    m.describe('edgeward_key_releases_total', 'key releases by this key holder')
    m.describe('edgeward_key_refusals_total', 'key requests refused by this key holder, by reason')
    m.describe(
      'edgeward_key_refusals_unlogged_total',
      'refused key requests not written to the audit log (over the per-peer budget), by reason',
    )
  }

  /** Answer key requests from now on. */
  async start(): Promise<void> {
    await handle(
      this.c.libp2p,
      KEYS_PROTOCOL,
      MAX_KEY_REQUEST_BYTES,
      MAX_KEY_RESPONSE_BYTES,
      (body, conn) => this.answer(body, conn),
      err => this.countRefusal('failed', err.message),
    )
  }

  /** Forget what no longer matters at `now`: refusal budgets and requests out of the replay window. */
  sweep(now: number): void {
    this.refusalBudget.sweep(now)
    this.replay.evictAll(now)
  }

  private countRefusal(code: string, reason: string): void {
    log('refused key request: %s (%s)', code, reason)
    this.c.metrics.inc('edgeward_key_refusals_total', { reason: code })
  }

  /**
   * Decisions for one subject run one at a time: a release limit (maxReleases) is checked and
   * counted without another request of the same subject in between.
   */
  private async answer(body: Uint8Array, conn: Connection): Promise<Uint8Array> {
    let req: ReturnType<typeof decodeKeyRequest>
    try {
      req = decodeKeyRequest(body)
    } catch (err) {
      this.countRefusal('malformed', (err as Error).message)
      return encodeKeyResponse({
        ok: false,
        code: 'malformed',
        reason: `invalid key request: ${(err as Error).message}`,
      })
    }
    const subject = req.request.issuer
    const previous = this.decisionChains.get(subject) ?? Promise.resolve()
    const run = previous.then(() => this.decide(req, conn))
    const settled: Promise<void> = run
      .catch(() => undefined)
      .then(() => {
        if (this.decisionChains.get(subject) === settled) this.decisionChains.delete(subject)
      })
    this.decisionChains.set(subject, settled)
    return run
  }

  private async decide(req: ReturnType<typeof decodeKeyRequest>, conn: Connection): Promise<Uint8Array> {
    const { policy, audit, epochKeys } = this.p
    const refuse = (code: string, reason: string): Uint8Array => {
      this.countRefusal(code, reason)
      return encodeKeyResponse({ ok: false, code, reason })
    }
    const { request: r, device } = req
    const space = r.body.space
    // only a request for a space this node holds is worth an audit entry; the rest are counted
    if (!policy.spaces().includes(space) || !policy.holds(space)) {
      return refuse('not-a-holder', 'this node is not a key holder of that space')
    }
    const now = this.c.now()
    const reqHash = requestHash(r.bytes)
    const remote = conn.remotePeer.toString()
    // a refusal is logged within the remote peer's budget, and counted in any case
    const refuseLogged = async (code: string, reason: string): Promise<Uint8Array> => {
      if (audit !== undefined && !this.refusalBudget.take(remote, now)) {
        this.c.metrics.inc('edgeward_key_refusals_unlogged_total', { reason: code })
        return refuse(code, reason)
      }
      await audit?.append({
        t: 'refusal',
        ts: now,
        space,
        subject: r.issuer,
        device: device.body.peer,
        stream: r.body.stream,
        form: r.body.form,
        code,
        reason,
        reqHash,
      })
      return refuse(code, reason)
    }
    if (device.body.peer !== remote) {
      return refuseLogged('wrong-device', 'the request does not come from the device it names')
    }
    const replay = this.replay.check(remote, r.issuer, r.body.nonce, r.body.ts, now)
    if (replay !== undefined) return refuseLogged('replay', replay)
    const state = policy.document(space).state
    // release counts of the subject's grants, for their maxReleases conditions
    const counts = new Map<string, number>()
    for (const g of state.grantsOf(r.issuer)) {
      if (g.body.maxReleases !== undefined) counts.set(g.id, await epochKeys.releaseCount(g.id))
    }
    const decision = state.evaluateAccess(
      {
        subject: r.issuer,
        device,
        stream: r.body.stream,
        form: r.body.form,
        grantId: r.body.grant,
        releaseCount: id => counts.get(id) ?? 0,
      },
      now,
    )
    if (!decision.allowed) return refuseLogged(decision.code, decision.reason)
    const g = decision.grant.body
    // the epochs asked for, looked up together (from memory, once this key holder has used them)
    const found = await Promise.all(
      r.body.epochs.map(async epoch => ({
        epoch,
        key: await epochKeys.existingKey(space, r.body.stream, r.body.form, epoch),
        // the data window: only epochs whose time range overlaps it
        inWindow: await epochKeys.epochInWindow(space, r.body.stream, epoch, g.dataFrom, g.dataUntil),
      })),
    )
    const unknown = found.find(f => f.key === undefined)
    if (unknown !== undefined)
      return refuseLogged('unknown-epoch', `stream ${r.body.stream} has no epoch ${unknown.epoch}`)
    const keys = found.filter(f => f.inWindow).map(f => ({ epoch: f.epoch, key: f.key! }))
    if (keys.length === 0)
      return refuseLogged('outside-data-window', "none of the data asked for is inside the grant's data window")
    const lease = leaseEnd({ exp: decision.until }, now, this.leaseMaxMs)
    const leaseKey = `${r.issuer}|${decision.grant.id}|${r.body.stream}`
    const renewal = (this.leases.get(leaseKey) ?? 0) > now
    // until when what this release gives can be renewed: the grant's end (its delegation's, its
    // parent's) or the device certificate's; for the last release a limit allows, its lease.
    // The epoch released is closed then, before the key leaves.
    const lastRelease = g.maxReleases !== undefined && (counts.get(decision.grant.id) ?? 0) + 1 >= g.maxReleases
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
