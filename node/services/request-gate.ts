/**
 * The checks a key request passes before anyone releases a key for it, shared by the key
 * holder (data/key-release.ts) and the custodians (custody/custodian.ts), so the two decide
 * alike. The gate also takes the requests off the wire (`listen`), at most a key request's
 * size each.
 *
 * Guarantees: in this order, the request decodes (with its signature and device certificate),
 * the answering node serves the space (the caller says), the connection comes from the device
 * the request names, the request is fresh and not a replay, and the policy as it stands now
 * allows it (release limits counted by the caller); a release's lease is `min(grant end,
 * now + lease max)`. Decisions for one subject run one at a
 * time, so a release limit is checked and counted with no other request of that subject in
 * between. Every refusal is counted (`<prefix>_refusals_total` by reason); the first few per
 * remote peer and minute are also written to the audit log, the rest counted in
 * `<prefix>_refusals_unlogged_total`.
 *
 * Abuse bounds: replay protection is kept per requesting device (one device's flood cannot
 * crowd out another), and a request made before this process started is refused (what an
 * earlier process saw is not remembered).
 */
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import {
  decodeKeyRequest,
  MAX_KEY_REQUEST_BYTES,
  type OpenedKeyRequest,
  REQUEST_WINDOW_MS,
} from '../../protocols/access/messages.ts'
import { RefusalBudget } from '../../protocols/access/refusal-budget.ts'
import { DeviceReplayGuard } from '../../protocols/access/replay-guard.ts'
import { requestHash } from '../../protocols/audit/entries.ts'
import { leaseEnd, type Permit, type PolicyState } from '../../protocols/policy/state.ts'
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import type { AuditService } from './audit.ts'
import type { PolicyService } from './policy.ts'
import { handle } from './stream-io.ts'

const log = logger('edgeward:keys')

/** What the gate uses: the network (to take key requests), counters and the clock. */
export interface RequestGateComponents {
  libp2p: Pick<EdgewardLibp2p, 'handle'>
  metrics: Metrics
  now: () => number
}

/** What the gate asks of its owner: the policy, the audit log, and the releases made under a grant. */
export interface RequestGateParts {
  policy: Pick<PolicyService, 'document'>
  audit: Pick<AuditService, 'append'> | undefined
  /** key releases made under a grant so far (for its maxReleases condition) */
  releaseCount: (grant: string) => Promise<number>
}

/** What the gate remembers and logs, at most, and the longest lease it lets a release have. */
export interface GateLimits {
  /** longest lease of a key release (default 15 min) */
  leaseMaxMs?: number
  /** key requests remembered per requesting device for replay protection (default 4096) */ replayMaxPerDevice?: number
  /** key requests remembered in all, past which only devices under their fair share are served (default 1 000 000) */
  replayMaxEntries?: number
  /** refused key requests of one remote peer written to the audit log per minute (default 30); the rest are counted */
  refusalsLoggedPerMinute?: number
}

/** The gate's limits, and whose gate it is. */
export interface RequestGateOptions extends GateLimits {
  /** metric names start with it: `edgeward_key`, `edgeward_custody` */
  prefix: string
  /** who refuses, in metric help texts: "this key holder", "this custodian" */
  who: string
}

/** A refusal, as a value: its code and its reason. */
export interface Refused {
  ok: false
  code: string
  reason: string
}

/** A request the gate let through, with what the decision found and a way to refuse it after all (logged). */
export interface Admitted {
  ok: true
  request: OpenedKeyRequest
  permit: Permit
  state: PolicyState
  /** release counts of the subject's grants with a release limit */
  counts: Map<string, number>
  /** whether this release is the last one the grant's limit allows */
  lastRelease: boolean
  /** the lease of what is released: the grant's authority's end, at most the longest lease from now */
  lease: number
  now: number
  reqHash: Uint8Array
  /** refuse the request after all, written to the audit log within the peer's budget */
  refuse: (code: string, reason: string) => Promise<Refused>
}

/** Decodes, authenticates and checks key requests against the policy; see the module comment. */
export class RequestGate {
  private readonly c: RequestGateComponents
  private readonly p: RequestGateParts
  private readonly prefix: string
  private readonly replay: DeviceReplayGuard
  private readonly refusalBudget: RefusalBudget
  private readonly chains = new Map<string, Promise<void>>()
  private readonly leaseMaxMs: number

  constructor(components: RequestGateComponents, parts: RequestGateParts, opts: RequestGateOptions) {
    this.c = components
    this.p = parts
    this.prefix = opts.prefix
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
    m.describe(`${opts.prefix}_refusals_total`, `key requests refused by ${opts.who}, by reason`)
    m.describe(
      `${opts.prefix}_refusals_unlogged_total`,
      'refused key requests not written to the audit log (over the per-peer budget), by reason',
    )
  }

  /** Forget what no longer matters at `now`: refusal budgets and requests out of the replay window. */
  sweep(now: number): void {
    this.refusalBudget.sweep(now)
    this.replay.evictAll(now)
  }

  /** Count a refusal (not written to the audit log) and return it. */
  refuse(code: string, reason: string): Refused {
    log('refused key request: %s (%s)', code, reason)
    this.c.metrics.inc(`${this.prefix}_refusals_total`, { reason: code })
    return { ok: false, code, reason }
  }

  /**
   * Take key requests on `protocol` from now on, each through `serve` to `decide` (with the
   * connection it came on), a refusal answered as `refused` encodes it; a request whose stream
   * fails is counted as `failed`.
   */
  async listen(
    protocol: string,
    maxResponseBytes: number,
    decide: (req: OpenedKeyRequest, conn: Connection) => Promise<Uint8Array>,
    refused: (r: Refused) => Uint8Array,
  ): Promise<void> {
    await handle(
      this.c.libp2p,
      protocol,
      MAX_KEY_REQUEST_BYTES,
      maxResponseBytes,
      (body, conn) => this.serve(body, req => decide(req, conn), refused),
      err => this.refuse('failed', err.message),
    )
  }

  /**
   * Decode `body` and decide on it with `decide`, one decision per subject at a time; a request
   * that does not decode is refused as `malformed`.
   */
  async serve<T>(
    body: Uint8Array,
    decide: (req: OpenedKeyRequest) => Promise<T>,
    refused: (r: Refused) => T,
  ): Promise<T> {
    let req: OpenedKeyRequest
    try {
      req = decodeKeyRequest(body)
    } catch (err) {
      return refused(this.refuse('malformed', `invalid key request: ${(err as Error).message}`))
    }
    const subject = req.request.issuer
    const previous = this.chains.get(subject) ?? Promise.resolve()
    const run = previous.then(() => decide(req))
    const settled: Promise<void> = run
      .catch(() => undefined)
      .then(() => {
        if (this.chains.get(subject) === settled) this.chains.delete(subject)
      })
    this.chains.set(subject, settled)
    return run
  }

  /**
   * The checks after the caller found that it serves the request's space: the device, replay,
   * and the policy now. A refusal is written to the audit log within the remote peer's budget.
   */
  async admit(req: OpenedKeyRequest, conn: Connection): Promise<Admitted | Refused> {
    const { audit, policy } = this.p
    const { request: r, device } = req
    const space = r.body.space
    const now = this.c.now()
    const reqHash = requestHash(r.bytes)
    const remote = conn.remotePeer.toString()
    const refuse = async (code: string, reason: string): Promise<Refused> => {
      if (audit !== undefined && !this.refusalBudget.take(remote, now)) {
        this.c.metrics.inc(`${this.prefix}_refusals_unlogged_total`, { reason: code })
        return this.refuse(code, reason)
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
      return this.refuse(code, reason)
    }
    if (device.body.peer !== remote) return refuse('wrong-device', 'the request does not come from the device it names')
    const replay = this.replay.check(remote, r.issuer, r.body.nonce, r.body.ts, now)
    if (replay !== undefined) return refuse('replay', replay)
    const state = policy.document(space).state
    const counts = new Map<string, number>()
    for (const g of state.grantsOf(r.issuer)) {
      if (g.body.maxReleases !== undefined) counts.set(g.id, await this.p.releaseCount(g.id))
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
    if (!decision.allowed) return refuse(decision.code, decision.reason)
    const max = decision.grant.body.maxReleases
    const lastRelease = max !== undefined && (counts.get(decision.grant.id) ?? 0) + 1 >= max
    const lease = leaseEnd({ exp: decision.until }, now, this.leaseMaxMs)
    return { ok: true, request: req, permit: decision, state, counts, lastRelease, lease, now, reqHash, refuse }
  }
}
