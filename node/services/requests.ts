/**
 * Access requests on the network: a principal files a signed request on the space's
 * requests topic; every peer of the space validates it (signature, space, size, freshness)
 * and bounds it (per requester, per space, and a rate per connected peer that passes it on,
 * since identities cost nothing to make) before forwarding, and keeps it, so the owner and
 * admins can list and decide on it. The list shows the newest pending request of each
 * requester for each subject and counts the older ones. The decision is written to the policy
 * document (policy service), so the requester learns the outcome by replication.
 *
 * Storage: this service alone reads and writes the `requests` sublevel, keyed
 * `<space>!<request id>!<requester>` (the keys are built below and nowhere else).
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { logger } from '@libp2p/logger'
import type { OpenedRecord } from '../../crypto/signed.ts'
import type { GrantFields } from '../../protocols/policy/records.ts'
import {
  type AccessRequest,
  createAccessRequest,
  openAccessRequest,
  requestsTopic,
} from '../../protocols/policy/requests.ts'
import { patternsWithin } from '../../protocols/policy/state.ts'
import { NotFoundError, UnreachableError, UsageError } from '../errors.ts'
import type { Identity } from '../identity.ts'
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import type { Store } from '../store.ts'
import type { AccessRequestView, RequestStatusView } from '../ui/contract-access.ts'
import type { PolicyService } from './policy.ts'

const log = logger('edgeward:requests')
/** a request's time may be this far from ours */
const FRESHNESS_MS = 10 * 60 * 1000
/** requests kept per requester in a space, and per space */
const MAX_PER_REQUESTER = 20
const MAX_PER_SPACE = 1000
/** what one connected peer may pass on: a burst, refilled at this rate per minute */
const PEER_BURST = 30
const PEER_PER_MINUTE = 30

/** Keys of the `requests` sublevel: a request, every request of a space, every copy of one request id. */
const requestKey = (space: string, id: string, requester: string): string => `${space}!${id}!${requester}`
const requestsOf = (space: string): { gt: string; lt: string } => ({ gt: `${space}!`, lt: `${space}!~` })
const copiesOf = (space: string, id: string): { gt: string; lt: string } => ({
  gt: `${space}!${id}!`,
  lt: `${space}!${id}!~`,
})
/** The space and requester a stored key names; undefined for a key of another layout. */
function parseRequestKey(key: string): { space: string; requester: string } | undefined {
  const [space, , requester] = key.split('!')
  return requester === undefined ? undefined : { space, requester }
}

/** What the requests service uses of its node: the requests sublevel, the requests topics, the principal that files. */
export interface RequestsComponents {
  identity: Pick<Identity, 'principal'>
  store: Pick<Store, 'requests'>
  libp2p: {
    services: {
      pubsub: Pick<EdgewardLibp2p['services']['pubsub'], 'publish' | 'subscribe' | 'getSubscribers' | 'topicValidators'>
    }
  }
  metrics: Metrics
  /** the clock; the simulator passes virtual time */
  now: () => number
}

/** What the requests service asks of the policy service: the spaces, their state, and the decision writes. */
export type RequestsPolicy = Pick<
  PolicyService,
  'spaces' | 'holds' | 'synced' | 'document' | 'approveRequest' | 'denyRequest'
>

/** Where an access request stands (the API's type: the list below is what the API answers). */
export type RequestStatus = RequestStatusView

function bump(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

/** Access requests: filed and kept by every peer of the space, listed and decided by the owner and admins. */
export class RequestsService {
  private readonly c: RequestsComponents
  private readonly policy: RequestsPolicy
  private readonly listeners = new Set<(space: string) => void>()
  /** requests kept, by `space!requester` and by space */
  private readonly perRequester = new Map<string, number>()
  private readonly perSpace = new Map<string, number>()
  /** each connected peer's allowance of requests it may pass on */
  private readonly allowance = new Map<string, { tokens: number; at: number }>()

  constructor(components: RequestsComponents, policy: RequestsPolicy) {
    this.c = components
    this.policy = policy
    components.metrics.describe(
      'edgeward_access_requests_refused_total',
      'access requests refused on the requests topic, by reason',
    )
  }

  /** Count the stored requests (for the bounds) and subscribe to every known space's requests topic. */
  /** Call `listener` with the space of each new request kept here (filed here or arriving); returns the unsubscribe. */
  onRequest(listener: (space: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async start(): Promise<void> {
    for await (const k of this.c.store.requests.keys()) {
      const stored = parseRequestKey(k)
      if (stored === undefined) continue
      bump(this.perRequester, `${stored.space}!${stored.requester}`)
      bump(this.perSpace, stored.space)
    }
    for (const space of this.policy.spaces()) this.subscribe(space)
  }

  /** Validate, keep and forward the requests of a space (once per space). */
  subscribe(space: string): void {
    const topic = requestsTopic(space)
    const pubsub = this.c.libp2p.services.pubsub
    if (pubsub.topicValidators.has(topic)) return
    pubsub.topicValidators.set(topic, async (peer, msg) => {
      const verdict = await this.ingest(space, msg.data, peer.toString())
      // over a bound: not forwarded, but the peer that passed it on did nothing invalid
      return verdict === 'accept'
        ? TopicValidatorResult.Accept
        : verdict === 'ignore'
          ? TopicValidatorResult.Ignore
          : TopicValidatorResult.Reject
    })
    pubsub.subscribe(topic)
  }

  private refuse(reason: string, verdict: 'reject' | 'ignore' = 'reject'): 'reject' | 'ignore' {
    this.c.metrics.inc('edgeward_access_requests_refused_total', { reason })
    return verdict
  }

  /** Take one request from the allowance of the peer that passed it on; false when it has none left. */
  private takeAllowance(peer: string): boolean {
    const now = this.c.now()
    const a = this.allowance.get(peer) ?? { tokens: PEER_BURST, at: now }
    a.tokens = Math.min(PEER_BURST, a.tokens + ((now - a.at) / 60_000) * PEER_PER_MINUTE)
    a.at = now
    if (this.allowance.size >= 10_000 && !this.allowance.has(peer)) this.allowance.clear()
    this.allowance.set(peer, a)
    if (a.tokens < 1) return false
    a.tokens -= 1
    return true
  }

  /** Validate, bound and keep a request; `from` is the connected peer that passed it on (none when filed here). */
  private async ingest(space: string, data: Uint8Array, from?: string): Promise<'accept' | 'reject' | 'ignore'> {
    let req: OpenedRecord<AccessRequest>
    try {
      req = openAccessRequest(data)
    } catch (err) {
      return this.refuse((err as Error).name)
    }
    if (req.body.space !== space) return this.refuse('wrong-space')
    if (Math.abs(req.body.iat - this.c.now()) > FRESHNESS_MS) return this.refuse('stale')
    const key = requestKey(space, req.id, req.issuer)
    if ((await this.c.store.requests.get(key)) !== undefined) return 'accept'
    if (from !== undefined && !this.takeAllowance(from)) return this.refuse('peer-rate', 'ignore')
    const requester = `${space}!${req.issuer}`
    if ((this.perRequester.get(requester) ?? 0) >= MAX_PER_REQUESTER) return this.refuse('too-many-requests', 'ignore')
    if ((this.perSpace.get(space) ?? 0) >= MAX_PER_SPACE) return this.refuse('space-full', 'ignore')
    bump(this.perRequester, requester)
    bump(this.perSpace, space)
    // not synced one by one: a request lost in a crash is kept by the other peers of the space
    await this.c.store.requests.put(key, data)
    log('access request %s from %s', req.id, req.issuer)
    for (const listener of this.listeners) listener(space)
    return 'accept'
  }

  /** File a request (for ourselves, or forwarded through `via` for `onBehalfOf`). */
  async file(
    space: string,
    fields: {
      streams: string[]
      forms: string[]
      durationMs: number
      reason: string
      onBehalfOf?: string
      via?: string
    },
  ): Promise<string> {
    // a request travels only by gossip: with no peer of the space connected it would reach no
    // one but this node, which is enough only where the space's key holder is this node
    const topic = requestsTopic(space)
    if (!this.policy.holds(space) && this.c.libp2p.services.pubsub.getSubscribers(topic).length === 0) {
      throw new UnreachableError(
        `no peer of space ${space} is connected, so the request would reach no one: file it once connected`,
      )
    }
    const me = this.c.identity.principal
    const filed = createAccessRequest(
      me,
      {
        space,
        sub: fields.onBehalfOf ?? me.did,
        streams: fields.streams,
        forms: fields.forms,
        durationMs: fields.durationMs,
        reason: fields.reason,
        via: fields.via,
      },
      this.c.now(),
    )
    const verdict = await this.ingest(space, filed.bytes)
    if (verdict !== 'accept') throw new UsageError(`too many requests of yours are waiting in space ${space}`)
    await this.c.libp2p.services.pubsub.publish(topic, filed.bytes)
    return filed.id
  }

  /** The space's requests, pending first-come, with each decision; older pending ones of a requester counted. */
  async list(space: string): Promise<AccessRequestView[]> {
    const state = this.policy.synced(space).state
    const seen = new Map<string, OpenedRecord<AccessRequest>>()
    for await (const v of this.c.store.requests.values(requestsOf(space))) {
      const r = openAccessRequest(v)
      seen.set(r.id, r)
    }
    // decided requests are in the document even where the request itself never arrived
    for (const d of state.decisions()) seen.set(d.accessRequest.id, d.accessRequest)
    const views = [...seen.values()].map(r => {
      const d = state.decisionOn(r.id)
      const view: AccessRequestView = {
        id: r.id,
        space,
        from: r.issuer,
        for: r.body.sub,
        streams: r.body.streams,
        forms: r.body.forms,
        durationMs: r.body.durationMs,
        reason: r.body.reason,
        at: r.body.iat,
        status: d === undefined ? 'pending' : d.body.approved ? 'approved' : 'denied',
      }
      if (r.body.via !== undefined) view.via = r.body.via
      if (d !== undefined) {
        view.decidedBy = d.issuer
        if (d.body.grant !== undefined) view.grant = d.body.grant
        if (d.body.reason !== undefined) view.decisionReason = d.body.reason
      }
      return view
    })
    // of the pending requests of one requester for one subject, the newest is listed, the others counted
    const newest = new Map<string, AccessRequestView>()
    for (const v of views) {
      if (v.status !== 'pending') continue
      const k = `${v.from}|${v.for}`
      const top = newest.get(k)
      if (top === undefined || v.at > top.at || (v.at === top.at && v.id > top.id)) newest.set(k, v)
    }
    const older = new Map<string, number>()
    const listed = views.filter(v => {
      if (v.status !== 'pending' || newest.get(`${v.from}|${v.for}`) === v) return true
      const k = `${v.from}|${v.for}`
      older.set(k, (older.get(k) ?? 0) + 1)
      return false
    })
    for (const [k, n] of older) newest.get(k)!.older = n
    return listed.sort((a, b) => a.at - b.at)
  }

  private async find(space: string, id: string): Promise<OpenedRecord<AccessRequest>> {
    for await (const v of this.c.store.requests.values(copiesOf(space, id))) {
      return openAccessRequest(v)
    }
    throw new NotFoundError(`no access request ${id} in space ${space}`)
  }

  /**
   * Approve: issue the grant asked for (or for `durationMs`) and record the decision, in one
   * change. A request forwarded through a grant gets no more than that grant covers: its
   * streams and forms must lie inside it, and the new grant ends with it and keeps its data
   * window and its download and device limits. Approving a request for a subject whose access
   * was revoked re-admits it: that is refused unless `readmit` says it is meant. `streams` narrows
   * what is granted to part of what was asked for (each within the request's streams).
   */
  async approve(
    space: string,
    id: string,
    opts: { durationMs?: number; readmit?: boolean; streams?: string[] } = {},
  ): Promise<{ grant: string; notAfter: number }> {
    const req = await this.find(space, id)
    // the approver may narrow what was asked for, never widen it
    if (opts.streams !== undefined && (opts.streams.length === 0 || !patternsWithin(opts.streams, req.body.streams))) {
      throw new UsageError(`approve only what the request asks for (${req.body.streams.join(', ')}), or less`)
    }
    const state = this.policy.document(space).state
    if (state.decisionOn(id) !== undefined) throw new UsageError(`request ${id} has already been decided`)
    const now = this.c.now()
    let exp = now + (opts.durationMs ?? req.body.durationMs)
    let bounds: Partial<GrantFields> = {}
    if (req.body.via !== undefined) {
      const via = state.grants.get(req.body.via)
      if (via === undefined || via.body.sub !== req.issuer || via.body.forward !== 'ask-owner') {
        throw new UsageError('the request was forwarded through a grant that does not allow asking the owner')
      }
      const until = state.activeUntil(via, now)
      if (until === undefined) throw new UsageError('the grant the request was forwarded through is not active')
      if (
        !patternsWithin(req.body.streams, via.body.streams) ||
        !req.body.forms.every(f => via.body.forms.includes(f))
      ) {
        throw new UsageError(
          `the request asks for more than the grant it was forwarded through covers (${via.body.streams.join(', ')}; ${via.body.forms.join(', ')})`,
        )
      }
      exp = Math.min(exp, until)
      const v = via.body
      bounds = { dataFrom: v.dataFrom, dataUntil: v.dataUntil, download: v.download, maxReleases: v.maxReleases }
    }
    const revoked = state.revocationsOfSubjectBy(req.body.sub, state.owner)
    if (revoked.length > 0 && opts.readmit !== true) {
      throw new UsageError(
        `${req.body.sub} had its access to the space revoked (${new Date(revoked[0].body.iat).toISOString()}): approving re-admits it; pass --readmit if that is meant`,
      )
    }
    const { record: grant } = await this.policy.approveRequest(space, req, {
      sub: req.body.sub,
      streams: opts.streams ?? req.body.streams,
      forms: req.body.forms,
      nbf: now,
      exp,
      purpose: req.body.reason.slice(0, 256),
      ...bounds,
    })
    return { grant: grant.id, notAfter: exp }
  }

  /** Deny a request, with the reason the requester will see. */
  async deny(space: string, id: string, reason: string): Promise<void> {
    const req = await this.find(space, id)
    const state = this.policy.document(space).state
    if (state.decisionOn(id) !== undefined) throw new UsageError(`request ${id} has already been decided`)
    await this.policy.denyRequest(space, req, reason)
  }
}
