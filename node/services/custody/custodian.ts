/**
 * The custodian's side: it says who it is, takes deals, and releases its shares.
 *
 * - Info (`/edgeward/custody/info/1.0.0`): answers with this node's signed device certificate
 *   (peer id, X25519 key, principal), which an owner puts in a custodian set.
 * - Deals (`/edgeward/custody/deal/1.0.0`): a deal is kept, synced, before it is acknowledged,
 *   and only if it verifies, names a custodian set of its space that this replica knows (after
 *   catching up with the dealer if it does not), fits that set, names this node in it with its
 *   own X25519 key, comes from a dealer of the space (its owner), and its share for this node
 *   opens and matches the deal's commitment. The first deal of a resource is kept; another is
 *   refused as conflicting.
 * - Releases (`/edgeward/custody/release/1.0.0`): the reader's signed key request passes the
 *   same gate as at a key holder (request-gate.ts: device, replay, the policy now, release
 *   limits), each epoch asked for must be held here and inside the grant's data window, and
 *   the release is appended to this node's audit log before any share leaves. Each share goes
 *   out sealed to the reader's device, bound to the request, with a lease `min(grant end,
 *   now + lease max)`.
 *
 * Freshness: before deciding, the custodian catches up with the requester (and every connected
 * peer) when the request names policy heads this replica lacks, or when its last catch-up of
 * the space is older than FRESHNESS_MS; a request whose heads are still missing after that is
 * refused as `stale-policy`, saying so. A revocation reaches a custodian by gossip or catch-up;
 * one that has reached n - k + 1 custodians stops every later release (fewer than k are left
 * to answer).
 *
 * Refuses (as a response with a code and a reason): malformed, not-a-custodian, stale-policy,
 * unknown-epoch, outside-data-window, too-many-epochs, and every refusal of the gate.
 */
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { bytesEqual } from '../../../crypto/encoding.ts'
import type { OpenedRecord } from '../../../crypto/signed.ts'
import type { OpenedKeyRequest } from '../../../protocols/access/messages.ts'
import {
  checkDealForSet,
  type Deal,
  MAX_DEAL_BYTES,
  mayDeal,
  openDeal,
  openDealtShare,
} from '../../../protocols/custody/deal.ts'
import {
  CUSTODY_DEAL_PROTOCOL,
  CUSTODY_INFO_PROTOCOL,
  CUSTODY_RELEASE_PROTOCOL,
  type CustodyAnswer,
  encodeCustodyAnswer,
  encodeCustodyReleaseResponse,
  MAX_ANSWER_BYTES,
  MAX_CUSTODY_EPOCHS,
  MAX_CUSTODY_RESPONSE_BYTES,
  MAX_INFO_REQUEST_BYTES,
  MAX_INFO_RESPONSE_BYTES,
  type ReleasedShare,
} from '../../../protocols/custody/messages.ts'
import { createShareRelease } from '../../../protocols/custody/release.ts'
import { epochInDataWindow } from '../../../protocols/policy/state.ts'
import type { Identity } from '../../identity.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'
import type { AuditService } from '../audit.ts'
import type { PolicyService } from '../policy.ts'
import { type GateLimits, type Refused, RequestGate } from '../request-gate.ts'
import { handle } from '../stream-io.ts'
import type { CustodyStore } from './store.ts'

const log = logger('edgeward:custody')

/** how old a custodian's last catch-up of a space may be before it catches up again to decide */
export const FRESHNESS_MS = 30_000
/** how often a request or a deal from one peer may make this node catch up with that peer */
const PEER_CATCH_UP_MS = 5_000

/** What a custodian uses: the network, this node's identity, counters and the clock. */
export interface CustodianComponents {
  libp2p: EdgewardLibp2p
  identity: Pick<Identity, 'principal' | 'device' | 'sealing' | 'peerId'>
  metrics: Metrics
  now: () => number
}

/** The services a custodian works with. */
export interface CustodianParts {
  policy: Pick<PolicyService, 'document' | 'spaces' | 'syncWith' | 'syncAll'>
  audit: Pick<AuditService, 'append'> | undefined
  store: CustodyStore
}

/** A custodian's limits: the gate's (the longest lease is 15 min by default, as a key holder's). */
export type CustodianOptions = GateLimits

/** The custodian's counters, with their help text. */
const METRICS = {
  edgeward_custody_held_total: 'deals this custodian took and keeps',
  edgeward_custody_deals_rejected_total: 'deals this custodian refused, by reason',
  edgeward_custody_releases_total: 'shares this custodian released',
  edgeward_custody_catchups_total: 'catch-ups a custodian made before deciding, by cause',
}

/** Holds shares of a space's data keys and releases them after the same checks as a key holder. */
export class Custodian {
  private readonly c: CustodianComponents
  private readonly p: CustodianParts
  private readonly gate: RequestGate
  /** when this node last caught up with its peers, per space, to decide a release */
  private readonly caughtUp = new Map<string, number>()
  /** when a request or a deal last made this node catch up with the peer that sent it */
  private readonly syncedWith = new Map<string, number>()

  constructor(components: CustodianComponents, parts: CustodianParts, opts: CustodianOptions = {}) {
    this.c = components
    this.p = parts
    this.gate = new RequestGate(
      components,
      { policy: parts.policy, audit: parts.audit, releaseCount: grant => parts.store.releaseCount(grant) },
      { ...opts, prefix: 'edgeward_custody', who: 'this custodian' },
    )
    for (const [name, help] of Object.entries(METRICS)) components.metrics.describe(name, help)
  }

  async start(): Promise<void> {
    const libp2p = this.c.libp2p
    await handle(
      libp2p,
      CUSTODY_INFO_PROTOCOL,
      MAX_INFO_REQUEST_BYTES,
      MAX_INFO_RESPONSE_BYTES,
      async () => this.c.identity.device.bytes,
      err => log('info request failed: %s', err.message),
    )
    await handle(
      libp2p,
      CUSTODY_DEAL_PROTOCOL,
      MAX_DEAL_BYTES,
      MAX_ANSWER_BYTES,
      async (body, conn) => encodeCustodyAnswer(await this.takeDeal(body, conn)),
      err => this.rejectDeal('failed', err.message),
    )
    await this.gate.listen(
      CUSTODY_RELEASE_PROTOCOL,
      MAX_CUSTODY_RESPONSE_BYTES,
      (req, conn) => this.release(req, conn),
      refusal,
    )
  }

  /** Forget what no longer matters at `now` (the gate's replay window and refusal budgets). */
  sweep(now: number): void {
    this.gate.sweep(now)
    for (const [peer, at] of this.syncedWith) if (now - at >= PEER_CATCH_UP_MS) this.syncedWith.delete(peer)
  }

  private rejectDeal(code: string, reason: string): CustodyAnswer {
    log('refused a deal: %s (%s)', code, reason)
    this.c.metrics.inc('edgeward_custody_deals_rejected_total', { reason: code })
    return { ok: false, code, reason }
  }

  private async takeDeal(body: Uint8Array, conn: Connection): Promise<CustodyAnswer> {
    let deal: OpenedRecord<Deal>
    try {
      deal = openDeal(body)
    } catch (err) {
      return this.rejectDeal('malformed', `invalid deal: ${(err as Error).message}`)
    }
    const space = deal.body.space
    if (!this.p.policy.spaces().includes(space))
      return this.rejectDeal('not-a-custodian', 'this node is not in that space')
    const doc = this.p.policy.document(space)
    // a set (or a member's object) written after this replica last heard: the dealer knows it, so catch up with it
    if (!doc.hasGenesis || !doc.state.custodianSets.has(deal.body.set) || !mayDeal(doc.state, deal)) {
      await this.catchUpWith(conn, 'deal')
    }
    const state = doc.state
    const set = doc.hasGenesis ? state.custodianSets.get(deal.body.set) : undefined
    if (set === undefined)
      return this.rejectDeal('unknown-set', 'this node does not know the custodian set the deal names')
    const misfit = checkDealForSet(deal, set)
    if (misfit !== undefined) return this.rejectDeal('malformed', misfit)
    if (!mayDeal(state, deal)) {
      return this.rejectDeal(
        'not-a-dealer',
        "only the owner deals a space's keys, and a member those of its own objects",
      )
    }
    const me = this.c.identity
    const index = set.body.custodians.findIndex(c => c.peer === me.peerId)
    if (index < 0) return this.rejectDeal('not-a-custodian', 'this node is not in the custodian set the deal names')
    if (!bytesEqual(set.body.custodians[index].xpk, me.sealing.publicKey)) {
      return this.rejectDeal('not-a-custodian', "the set names this peer with another node's sealing key")
    }
    try {
      ;(await openDealtShare(deal, index, me.sealing.secretKey)).fill(0)
    } catch (err) {
      return this.rejectDeal('bad-share', `the share for this custodian does not open: ${(err as Error).message}`)
    }
    const r = deal.body.resource
    if (!('stream' in r)) return this.rejectDeal('malformed', 'a deal names a stream, its form and epoch')
    const held = await this.p.store.held(space, r.stream, r.form, r.epoch)
    if (held?.deal.id === deal.id) return { ok: true }
    // the first deal of a key is kept, unless its dealer may no longer deal it (a member's deal
    // for a name the owner's own object took, the owner's record having come after it)
    if (held !== undefined && mayDeal(state, held.deal)) {
      return this.rejectDeal('conflicting-deal', 'another deal of this key is held here already')
    }
    if (!(await this.p.store.hold(deal, index, held !== undefined))) return { ok: true }
    this.c.metrics.inc('edgeward_custody_held_total')
    return { ok: true }
  }

  /**
   * Catch up with the peer at the other end of `conn`, at most once per PEER_CATCH_UP_MS: a
   * peer that names heads nobody has, or sends deals nobody wants, costs one catch-up a while.
   */
  private async catchUpWith(conn: Connection, cause: 'heads' | 'deal'): Promise<void> {
    const peer = conn.remotePeer.toString()
    const now = this.c.now()
    if (now - (this.syncedWith.get(peer) ?? Number.NEGATIVE_INFINITY) < PEER_CATCH_UP_MS) return
    this.syncedWith.set(peer, now)
    this.c.metrics.inc('edgeward_custody_catchups_total', { cause })
    await this.p.policy.syncWith(conn.remotePeer)
  }

  /**
   * Catch up before deciding when the request names policy heads this replica lacks (with the
   * requester first: it has them), or when the last catch-up is older than FRESHNESS_MS; a
   * refusal when the named heads are still missing.
   */
  private async catchUp(req: OpenedKeyRequest, conn: Connection): Promise<Refused | undefined> {
    const space = req.request.body.space
    const doc = this.p.policy.document(space)
    const heads = req.request.body.heads ?? []
    const lacking = () => heads.filter(h => !doc.hasChange(h))
    const now = this.c.now()
    if (lacking().length > 0) {
      await this.catchUpWith(conn, 'heads')
    }
    if (now - (this.caughtUp.get(space) ?? 0) > FRESHNESS_MS) {
      this.c.metrics.inc('edgeward_custody_catchups_total', { cause: 'age' })
      await this.p.policy.syncAll()
      this.caughtUp.set(space, now)
    }
    const still = lacking().length
    if (still === 0) return undefined
    return this.gate.refuse(
      'stale-policy',
      `this custodian lacks ${still} of the policy changes the request names and could not fetch them`,
    )
  }

  private async release(req: OpenedKeyRequest, conn: Connection): Promise<Uint8Array> {
    const { store, audit, policy } = this.p
    const { request: r, device } = req
    const space = r.body.space
    if (!policy.spaces().includes(space) || !policy.document(space).hasGenesis) {
      return refusal(this.gate.refuse('not-a-custodian', 'this node is not a custodian of that space'))
    }
    if (r.body.epochs.length > MAX_CUSTODY_EPOCHS) {
      return refusal(
        this.gate.refuse('too-many-epochs', `a custodian releases at most ${MAX_CUSTODY_EPOCHS} epochs at once`),
      )
    }
    const stale = await this.catchUp(req, conn)
    if (stale !== undefined) return refusal(stale)
    const admitted = await this.gate.admit(req, conn)
    if (!admitted.ok) return refusal(admitted)
    const { permit, now, reqHash, counts, lease } = admitted
    const g = permit.grant.body
    // each deal asked for, and the next epoch's (where the epoch's data ends), read once
    const wanted = [...new Set(r.body.epochs.flatMap(e => [e, e + 1]))]
    const heldAt = new Map(
      await Promise.all(wanted.map(async e => [e, await store.held(space, r.body.stream, r.body.form, e)] as const)),
    )
    const found = r.body.epochs.map(epoch => {
      const held = heldAt.get(epoch)
      if (held === undefined) return { epoch, held }
      // the epoch's data runs from its deal's time (the epoch's start) to the next epoch's
      const ends = heldAt.get(epoch + 1)?.deal.body.iat ?? Number.POSITIVE_INFINITY
      return { epoch, held, inWindow: epochInDataWindow(held.deal.body.iat, ends, g) }
    })
    const unknown = found.find(f => f.held === undefined)
    if (unknown !== undefined) {
      return refusal(
        await admitted.refuse(
          'unknown-epoch',
          `this custodian holds no share of epoch ${unknown.epoch} of ${r.body.stream}`,
        ),
      )
    }
    const releasing = found.filter(f => f.inWindow)
    if (releasing.length === 0) {
      return refusal(
        await admitted.refuse('outside-data-window', "none of the data asked for is inside the grant's data window"),
      )
    }
    // the release is durable in this custodian's log before any share leaves
    await audit?.append({
      t: 'release',
      ts: now,
      space,
      subject: r.issuer,
      device: device.body.peer,
      grant: permit.grant.id,
      stream: r.body.stream,
      form: r.body.form,
      epochs: releasing.map(f => f.epoch),
      leaseEnd: lease,
      renewal: false,
      request: r.bytes,
      reqHash,
      ...(g.purpose === undefined ? {} : { purpose: g.purpose }),
    })
    const me = this.c.identity
    const shares: ReleasedShare[] = []
    for (const f of releasing) {
      const { deal, index } = f.held!
      const share = await openDealtShare(deal, index, me.sealing.secretKey)
      const release = await createShareRelease(me.principal, {
        device: me.device.bytes,
        deal,
        index,
        share,
        readerXpk: device.body.xpk,
        req: reqHash,
        lease,
        now,
      })
      share.fill(0)
      shares.push({ deal: deal.bytes, release: release.bytes })
    }
    if (g.maxReleases !== undefined) {
      await store.setReleaseCount(permit.grant.id, (counts.get(permit.grant.id) ?? 0) + 1)
    }
    this.c.metrics.inc('edgeward_custody_releases_total', { stream: r.body.stream })
    log('released %d shares of %s to %s until %d', shares.length, r.body.stream, r.issuer, lease)
    return encodeCustodyReleaseResponse({ ok: true, grant: permit.grant.id, shares })
  }
}

function refusal(r: Refused): Uint8Array {
  return encodeCustodyReleaseResponse({ ok: false, code: r.code, reason: r.reason })
}
