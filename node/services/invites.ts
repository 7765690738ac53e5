/**
 * Invites: a member makes a code that lets someone find and join a space (and, made by the
 * owner or an admin, receive a grant); the person who gets it pastes it into their own node,
 * which dials the inviter, redeems the code over `/edgeward/invite/1` and waits until the
 * space has synchronised.
 *
 * - Making one: the code (protocols/invites.ts) carries the space, its name, this node's
 *   addresses (non-loopback first), a random token and the expiry. This node keeps only
 *   sha256(token) with the uses left and the grant template; the template is checked against
 *   this principal's authority when the invite is made, and again when it is redeemed.
 * - Redeeming: one signed Redemption in, one answer out, both size-limited. Refused, and
 *   counted by reason (`edgeward_invites_refused_total`): malformed, bad-signature (not signed
 *   by the did it names, or for another connection's peer), unknown, expired, used,
 *   not-authorized (this principal may no longer grant what the invite carries). A use is
 *   spent durably before the grant is written, and given back if the write fails; redemptions
 *   run one at a time, so a single-use code is never spent twice.
 * - Storage: this service alone reads and writes the `invites` sublevel (key: hex sha256(token)).
 */
import type { Connection } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { decodeCanonical, encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { InvalidDidError, InvalidSignatureError } from '../../crypto/errors.ts'
import { constantTimeEqual, randomBytes, sha256 } from '../../crypto/hash.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import {
  createRedemption,
  decodeInvite,
  decodeRedeemAnswer,
  encodeInvite,
  encodeRedeemAnswer,
  hasExpired,
  INVITE_PROTOCOL,
  INVITE_TOKEN_BYTES,
  type Invite,
  type InviteRefusal,
  MAX_REDEEM_ANSWER_BYTES,
  MAX_REDEMPTION_BYTES,
  openRedemption,
  type RedeemAnswer,
  type Redemption,
} from '../../protocols/invites.ts'
import { STREAM_PATTERN } from '../../protocols/policy/records.ts'
import { MAX_TIME_MS } from '../../protocols/validate.ts'
import { AccessRefusedError, UnreachableError, UsageError } from '../errors.ts'
import type { Identity } from '../identity.ts'
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import { DURABLE, type Store } from '../store.ts'
import type { InviteCreated, InviteList, InviteRequest, InviteView, JoinResult } from '../ui/contract-spaces.ts'
import type { ContactsService } from './contacts.ts'
import type { PolicyService } from './policy.ts'
import { handle, request } from './stream-io.ts'

const log = logger('edgeward:invites')

const DAY_MS = 86_400_000
/** defaults of an invite: valid for 7 days, one use, access for 7 days from joining */
const DEFAULT_VALID_MS = 7 * DAY_MS
const DEFAULT_ACCESS_MS = 7 * DAY_MS
const MAX_VALID_MS = 366 * DAY_MS
const MAX_USES = 1000
/** how long one dial of the inviter may take */
const DIAL_TIMEOUT_MS = 5000
/** how long a join waits for the space to synchronise (and the grant to arrive) before answering */
const JOIN_WAIT_MS = 15_000
const REFUSED_METRIC = 'edgeward_invites_refused_total'

/** An invite as this node keeps it. */
interface StoredInvite {
  space: string
  /** sha256 of the token: what a redemption's token is compared with */
  tokenHash: Uint8Array
  createdAt: number
  expiresAt: number
  uses: number
  usesLeft: number
  /** the grant to issue on redemption, when the invite carries one */
  streams?: string[]
  forms?: string[]
  accessMs?: number
  download?: boolean
}

/** What the invites service uses of its node. */
export interface InvitesComponents {
  identity: Pick<Identity, 'principal' | 'peerId'>
  store: Pick<Store, 'invites'>
  libp2p: Pick<EdgewardLibp2p, 'handle' | 'dial' | 'dialProtocol' | 'getConnections'>
  metrics: Metrics
  /** the clock; the simulator passes virtual time */
  now: () => number
}

/** What the invites service asks of the rest of the node. */
export interface InvitesParts {
  policy: Pick<PolicyService, 'synced' | 'document' | 'checkGrant' | 'grant' | 'onRecords' | 'syncWith'>
  /** join a space (the node's joinSpace: policy, readings, audit) */
  joinSpace: (space: string) => Promise<void>
  /** this node's addresses, each ending in /p2p/<peer> */
  addresses: () => string[]
  /** the names this person gives people: the names carried by invites and redemptions are suggestions */
  contacts: Pick<ContactsService, 'nameOf' | 'suggest'>
}

/** The body of `POST /v1/spaces/:id/invites`, checked; UsageError names the first bad field. */
export function inviteRequest(body: Record<string, unknown>): InviteRequest {
  const duration = (key: string, min: number): number | undefined => {
    const v = body[key]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > MAX_VALID_MS) {
      throw new UsageError(`${key} must be a duration in ms from ${min / 1000} s to 366 days`)
    }
    return v
  }
  const uses = body.uses
  if (uses !== undefined && (typeof uses !== 'number' || !Number.isSafeInteger(uses) || uses < 1 || uses > MAX_USES)) {
    throw new UsageError(`uses must be a whole number from 1 to ${MAX_USES}`)
  }
  const streams = body.streams
  if (
    streams !== undefined &&
    (!Array.isArray(streams) ||
      streams.length > 64 ||
      !streams.every(s => typeof s === 'string' && STREAM_PATTERN.test(s)))
  ) {
    throw new UsageError('streams must be a list of stream names, prefixes (name*) or *')
  }
  if (body.download !== undefined && typeof body.download !== 'boolean') throw new UsageError('download is a boolean')
  const req: InviteRequest = {}
  const validFor = duration('for', 60_000)
  const accessMs = duration('accessMs', 60_000)
  if (validFor !== undefined) req.for = validFor
  if (uses !== undefined) req.uses = uses as number
  if (streams !== undefined && streams.length > 0) req.streams = streams as string[]
  if (accessMs !== undefined) req.accessMs = accessMs
  if (body.download !== undefined) req.download = body.download as boolean
  return req
}

/** Loopback addresses last: a code travels to other machines, where those lead nowhere. */
function nonLoopbackFirst(addresses: string[]): string[] {
  const loopback = (a: string) => /^\/(ip4\/127\.|ip6\/::1\/|dns4?\/localhost\/)/.test(a)
  return [...addresses.filter(a => !loopback(a)), ...addresses.filter(loopback)]
}

/** The words for a refusal, as the person who joins reads them. */
function refusalWords(code: InviteRefusal, name: string): string {
  switch (code) {
    case 'unknown':
      return `the inviter does not know this invite to "${name}" (it may have been made on another device)`
    case 'expired':
      return `the invite to "${name}" has expired: ask for a new one`
    case 'used':
      return `the invite to "${name}" has already been used: ask for a new one`
    case 'bad-signature':
      return `the inviter could not verify this node's signature`
    case 'not-authorized':
      return `the inviter may no longer grant what the invite to "${name}" offers: ask for a new one`
    case 'malformed':
      return `the inviter could not read this node's request (a different edgeward version?)`
  }
}

/** Invites made here and redeemed by others; invites from others redeemed from here. */
export class InvitesService {
  private readonly c: InvitesComponents
  private readonly parts: InvitesParts
  /** redemptions run one at a time: a use is read, spent and written before the next is read */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(components: InvitesComponents, parts: InvitesParts) {
    this.c = components
    this.parts = parts
    components.metrics.describe(REFUSED_METRIC, 'invite redemptions refused, by reason')
    components.metrics.describe(
      'edgeward_invites_redeemed_total',
      'invites redeemed here, by whether they carried a grant',
    )
  }

  async start(): Promise<void> {
    await handle(
      this.c.libp2p,
      INVITE_PROTOCOL,
      MAX_REDEMPTION_BYTES,
      MAX_REDEEM_ANSWER_BYTES,
      async (body, conn) => this.answer(body, conn),
      (err, conn) => log('invite redemption from %s failed: %s', conn.remotePeer, err.message),
    )
  }

  /** Wait for the redemption in progress (before the store closes). */
  async stop(): Promise<void> {
    await this.queue
  }

  /**
   * Make an invite to `space`. With streams it carries a grant, which only the owner or an
   * admin covering them may offer (AccessRefusedError `not-authorized` otherwise); without,
   * any member may make one.
   */
  async create(space: string, req: InviteRequest): Promise<InviteCreated> {
    const state = this.parts.policy.synced(space).state
    const now = this.c.now()
    const expiresAt = now + (req.for ?? DEFAULT_VALID_MS)
    const uses = req.uses ?? 1
    const stored: StoredInvite = {
      space,
      tokenHash: new Uint8Array(),
      createdAt: now,
      expiresAt,
      uses,
      usesLeft: uses,
    }
    if (req.streams !== undefined && req.streams.length > 0) {
      stored.streams = req.streams
      stored.forms = ['raw']
      stored.accessMs = req.accessMs ?? DEFAULT_ACCESS_MS
      stored.download = req.download ?? true
      // the grant it will carry, checked now against this principal's authority (signed, not written)
      this.parts.policy.checkGrant(space, this.grantFields(stored, this.c.identity.principal.did, now))
    }
    const addresses = nonLoopbackFirst(this.parts.addresses())
    if (addresses.length === 0) throw new UsageError('this node listens on no address: an invite would lead nowhere')
    const token = randomBytes(INVITE_TOKEN_BYTES)
    stored.tokenHash = sha256(token)
    const me = this.c.identity.principal.did
    const myName = this.parts.contacts.nameOf(me)
    const invite = encodeInvite({
      space,
      name: state.genesis.body.name,
      addresses,
      token,
      expiresAt,
      ...(myName === undefined ? {} : { from: { did: me, name: myName } }),
    })
    await this.c.store.invites.put(toHex(stored.tokenHash), encodeCanonical(stored), DURABLE)
    log('invite to %s, %d use(s), until %s', space, uses, new Date(expiresAt).toISOString())
    return { invite, expiresAt, addresses: decodeInvite(invite).addresses.length }
  }

  /** The invites to `space` made here, newest first, without their tokens. */
  async list(space: string): Promise<InviteList> {
    this.parts.policy.document(space)
    const invites: InviteView[] = []
    for await (const [key, value] of this.c.store.invites.iterator()) {
      const s = decodeStored(value)
      if (s.space !== space) continue
      const view: InviteView = {
        id: key.slice(0, 16),
        createdAt: s.createdAt,
        expiresAt: s.expiresAt,
        uses: s.uses,
        usesLeft: s.usesLeft,
        streams: s.streams ?? [],
      }
      if (s.accessMs !== undefined) view.accessMs = s.accessMs
      if (s.download !== undefined) view.download = s.download
      invites.push(view)
    }
    return { space, invites: invites.sort((a, b) => b.createdAt - a.createdAt) }
  }

  /**
   * Join the space an invite names: dial the inviter, redeem the code, join, and wait (at
   * most `waitMs`) until the space has synchronised and any grant the invite carries has
   * arrived. A malformed or expired code is a UsageError; an inviter that cannot be reached,
   * UnreachableError; a refusal, AccessRefusedError with the inviter's code.
   */
  async join(code: string, opts: { waitMs?: number } = {}): Promise<JoinResult> {
    let invite: Invite
    try {
      invite = decodeInvite(code)
    } catch (err) {
      throw new UsageError(`malformed invite: ${(err as Error).message}`)
    }
    if (hasExpired(invite, this.c.now())) {
      throw new UsageError(
        `the invite to "${invite.name}" expired at ${new Date(invite.expiresAt).toISOString()}: ask for a new one`,
      )
    }
    const conn = await this.dialInviter(invite)
    const myName = this.parts.contacts.nameOf(this.c.identity.principal.did)
    const redemption = createRedemption(this.c.identity.principal, {
      space: invite.space,
      token: invite.token,
      peer: this.c.identity.peerId,
      ...(myName === undefined ? {} : { name: myName }),
    })
    let answer: RedeemAnswer
    try {
      answer = decodeRedeemAnswer(
        await request(this.c.libp2p, conn.remotePeer, INVITE_PROTOCOL, redemption.bytes, MAX_REDEEM_ANSWER_BYTES),
      )
    } catch (err) {
      throw new UnreachableError(`the inviter did not answer the invite: ${(err as Error).message.split('\n')[0]}`)
    }
    if (!answer.ok) throw new AccessRefusedError(answer.refusal, refusalWords(answer.refusal, invite.name))
    await this.parts.joinSpace(invite.space)
    // joined before: joinSpace does not catch up again, so ask the inviter now
    await this.parts.policy.syncWith(conn.remotePeer)
    await this.synchronised(invite.space, answer.grant?.id, opts.waitMs ?? JOIN_WAIT_MS)
    const doc = this.parts.policy.document(invite.space)
    const result: JoinResult = {
      space: invite.space,
      name: doc.hasGenesis ? doc.state.genesis.body.name : invite.name,
      synchronised: doc.hasGenesis,
    }
    if (doc.hasGenesis) result.owner = doc.state.owner
    if (answer.grant !== undefined) result.grant = answer.grant
    // the inviter's name, unsigned: kept only for someone who writes the space's policy (owner, admin)
    if (invite.from !== undefined && doc.hasGenesis && doc.state.mayBeAuthor(invite.from.did))
      await this.parts.contacts.suggest(invite.from.did, invite.from.name)
    return result
  }

  /** Dial the inviter at the addresses of its invite; UnreachableError naming why, when none answers. */
  private async dialInviter(invite: Invite): Promise<Connection> {
    try {
      return await this.c.libp2p.dial(
        invite.addresses.map(a => multiaddr(a)),
        { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) },
      )
    } catch (err) {
      const e = err as Error
      const inner = e instanceof AggregateError && e.errors.length > 0 ? (e.errors[0] as Error).message : e.message
      const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? 'no answer within 5 s' : inner
      throw new UnreachableError(
        `the inviter of "${invite.name}" is unreachable at its ${invite.addresses.length} address(es): ${why.split('\n')[0]}`,
      )
    }
  }

  /** Resolve once the space has its genesis (and grant `grant`, if any), or after `waitMs`. */
  private async synchronised(space: string, grant: string | undefined, waitMs: number): Promise<void> {
    const done = () => {
      const doc = this.parts.policy.document(space)
      return doc.hasGenesis && (grant === undefined || doc.state.grants.has(grant))
    }
    if (done()) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(finish, waitMs)
      const unsubscribe = this.parts.policy.onRecords(s => {
        if (s === space && done()) finish()
      })
      function finish(): void {
        clearTimeout(timer)
        unsubscribe()
        resolve()
      }
    })
  }

  private grantFields(s: StoredInvite, sub: string, now: number) {
    return {
      sub,
      streams: s.streams ?? [],
      forms: s.forms ?? ['raw'],
      nbf: now,
      exp: Math.min(now + (s.accessMs ?? DEFAULT_ACCESS_MS), MAX_TIME_MS),
      purpose: 'joined by invite',
      ...(s.download === false ? { download: false } : {}),
    }
  }

  /** Answer one redemption, after the one before it. */
  private answer(body: Uint8Array, conn: Connection): Promise<Uint8Array> {
    const next = this.queue.then(() => this.redeem(body, conn.remotePeer.toString()))
    this.queue = next.catch(() => undefined)
    return next.then(encodeRedeemAnswer)
  }

  private refuse(reason: InviteRefusal, from: string): RedeemAnswer {
    log('invite redemption from %s refused: %s', from, reason)
    this.c.metrics.inc(REFUSED_METRIC, { reason })
    return { ok: false, refusal: reason }
  }

  private async redeem(body: Uint8Array, from: string): Promise<RedeemAnswer> {
    let r: OpenedRecord<Redemption>
    try {
      r = openRedemption(body)
    } catch (err) {
      const name = (err as Error).name
      const forged = name === InvalidSignatureError.name || name === InvalidDidError.name
      return this.refuse(forged ? 'bad-signature' : 'malformed', from)
    }
    // signed for another connection: a redemption seen elsewhere is replayed
    if (r.body.peer !== from) return this.refuse('bad-signature', from)
    const tokenHash = sha256(r.body.token)
    const key = toHex(tokenHash)
    const value = await this.c.store.invites.get(key)
    if (value === undefined) return this.refuse('unknown', from)
    const s = decodeStored(value)
    if (!constantTimeEqual(s.tokenHash, tokenHash) || s.space !== r.body.space) return this.refuse('unknown', from)
    const now = this.c.now()
    if (hasExpired(s, now)) return this.refuse('expired', from)
    if (s.usesLeft < 1) return this.refuse('used', from)
    const carriesGrant = s.streams !== undefined
    if (carriesGrant) {
      try {
        this.parts.policy.checkGrant(s.space, this.grantFields(s, r.issuer, now))
      } catch (err) {
        log('invite to %s cannot grant: %s', s.space, (err as Error).message)
        return this.refuse('not-authorized', from)
      }
    }
    await this.c.store.invites.put(key, encodeCanonical({ ...s, usesLeft: s.usesLeft - 1 }), DURABLE)
    let answer: RedeemAnswer = { ok: true }
    if (carriesGrant) {
      try {
        const fields = this.grantFields(s, r.issuer, now)
        const { record } = await this.parts.policy.grant(s.space, fields)
        answer = {
          ok: true,
          grant: {
            id: record.id,
            streams: fields.streams,
            forms: fields.forms,
            notAfter: fields.exp,
            download: s.download !== false,
          },
        }
      } catch (err) {
        // nothing was granted: the use is not spent
        await this.c.store.invites.put(key, encodeCanonical(s), DURABLE)
        log('invite to %s: the grant was not written: %s', s.space, (err as Error).message)
        return this.refuse('not-authorized', from)
      }
    }
    // signed by the joiner: a name they suggest for themselves
    if (r.body.name !== undefined) await this.parts.contacts.suggest(r.issuer, r.body.name)
    this.c.metrics.inc('edgeward_invites_redeemed_total', { grant: String(carriesGrant) })
    log('invite to %s redeemed by %s', s.space, r.issuer)
    return answer
  }
}

/** A stored invite (written by this service only). */
function decodeStored(value: Uint8Array): StoredInvite {
  return decodeCanonical(value, 64 * 1024) as StoredInvite
}
