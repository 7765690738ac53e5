/**
 * The local API's policy-plane handlers: grants (with every field of the grant model),
 * delegations to admins, revocations, the grants listing, and access requests with their
 * decisions. Each parses its input and calls the policy or requests service, which signs on
 * the node's clock, checks authority and writes: a write the node may not make is refused
 * there, as access refused (exit 3).
 */
import { isDid } from '../crypto/identity.ts'
import {
  FORM_PATTERN,
  FORWARD_PERMISSIONS,
  type ForwardPermission,
  type GrantFields,
  type RevocationTarget,
  STREAM_PATTERN,
} from '../protocols/policy/records.ts'
import { type PolicyState, streamsCover } from '../protocols/policy/state.ts'
import { ID_PATTERN, PEER_ID_PATTERN } from '../protocols/validate.ts'
import { NotFoundError, UsageError } from './errors.ts'
import type { EdgewardNode } from './node.ts'
import type { AccessItem } from './ui/contract-access.ts'

type Body = Record<string, unknown>

function synchronisedState(node: EdgewardNode, space: string): PolicyState {
  return node.policy.synced(space).state
}

function did(body: Body, key: string, flag: string): string {
  const v = body[key]
  if (typeof v !== 'string' || !isDid(v)) throw new UsageError(`${flag} must be a did:key, got ${JSON.stringify(v)}`)
  return v
}

function optTime(body: Body, key: string, flag: string): number | undefined {
  const v = body[key]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new UsageError(`${flag} must be a time`)
  return v
}

function stringList(body: Body, key: string, flag: string, pattern: RegExp, fallback: string[] | string): string[] {
  const v = body[key]
  if (v === undefined) {
    // a string fallback is the message for a list that must be given
    if (typeof fallback === 'string') throw new UsageError(fallback)
    return fallback
  }
  if (!Array.isArray(v) || v.length === 0 || v.length > 64) throw new UsageError(`${flag} must be given 1..64 times`)
  for (const s of v)
    if (typeof s !== 'string' || !pattern.test(s)) throw new UsageError(`bad ${flag}: ${JSON.stringify(s)}`)
  return v as string[]
}

/**
 * The whole id that `given` names among `ids`: itself, or the one id it is a prefix of (at least
 * 8 hex digits, as listings show 12). Unknown or ambiguous: a clear error.
 */
function resolveId(given: unknown, ids: Iterable<string>, what: string, flag: string, space: string): string {
  if (typeof given !== 'string' || !/^[0-9a-f]{8,64}$/.test(given)) {
    throw new UsageError(
      `${flag} must be a ${what} id (or at least 8 of its first hex digits), got ${JSON.stringify(given)}`,
    )
  }
  const matches = [...ids].filter(id => id.startsWith(given))
  if (matches.length === 0) throw new NotFoundError(`space ${space} has no ${what} ${given}`)
  if (matches.length > 1) throw new UsageError(`${given} names ${matches.length} ${what}s: give more of the id`)
  return matches[0]
}

function checkStreamsExist(state: PolicyState, streams: string[]): void {
  for (const s of streams) {
    if (!s.endsWith('*') && !state.streams.has(s)) throw new NotFoundError(`space ${state.spaceId} has no stream ${s}`)
  }
}

/** Validity window: --from (default now) and --until (required, after --from). */
function window(body: Body, now: number): { nbf: number; exp: number } {
  const nbf = optTime(body, 'from', '--from') ?? now
  const exp = optTime(body, 'until', '--until')
  if (exp === undefined || exp <= nbf || exp <= now)
    throw new UsageError('access must end in the future, after it starts')
  return { nbf, exp }
}

/** POST grants: a grant with every field of the grant model, by the node's principal. */
export async function grant(node: EdgewardNode, space: string, body: Body): Promise<Body> {
  const state = synchronisedState(node, space)
  const now = node.now()
  const sub = did(body, 'to', '--to')
  const parent =
    body.parent === undefined ? undefined : resolveId(body.parent, state.grants.keys(), 'grant', '--parent', space)
  const parentGrant = parent === undefined ? undefined : state.grants.get(parent)
  if (body.contribute !== undefined && body.contribute !== true) throw new UsageError('--contribute takes no value')
  const contribute = body.contribute === true
  // a grant names what it covers; a child grant covers its parent's streams unless it narrows them;
  // a grant to contribute alone covers no data ('obj-*' names no object: each is covered by its own id)
  const streams = stringList(
    body,
    'streams',
    '--stream',
    STREAM_PATTERN,
    parentGrant?.body.streams ??
      (contribute
        ? ['obj-*']
        : "name what the grant covers: --stream NAME, PREFIX* or '*' for every stream (files and messages are covered only by their own id)"),
  )
  checkStreamsExist(state, streams)
  const forward = body.forward
  if (forward !== undefined && !FORWARD_PERMISSIONS.includes(forward as ForwardPermission)) {
    throw new UsageError('--forward must be never, ask-owner or allowed')
  }
  const maxReleases = body.maxReleases
  if (
    maxReleases !== undefined &&
    (typeof maxReleases !== 'number' || !Number.isSafeInteger(maxReleases) || maxReleases < 1)
  ) {
    throw new UsageError('--max-releases must be a positive whole number')
  }
  const purpose = body.purpose
  if (purpose !== undefined && (typeof purpose !== 'string' || purpose.length === 0 || purpose.length > 256)) {
    throw new UsageError('--purpose must be 1..256 characters')
  }
  const fields: Omit<GrantFields, 'space'> = {
    sub,
    streams,
    forms: stringList(body, 'forms', '--form', FORM_PATTERN, ['raw']),
    ...window(body, now),
    dataFrom: optTime(body, 'dataFrom', '--data-from'),
    dataUntil: optTime(body, 'dataUntil', '--data-until'),
    download: body.download === false ? false : undefined,
    forward: forward as ForwardPermission | undefined,
    devices: body.devices === undefined ? undefined : stringList(body, 'devices', '--device', PEER_ID_PATTERN, []),
    maxReleases: maxReleases as number | undefined,
    purpose: purpose as string | undefined,
    parent: parent as string | undefined,
    contribute: contribute ? true : undefined,
  }
  const { record: rec } = await node.policy.grant(space, fields)
  const status = state.grantStatus(rec, now)
  return {
    grant: rec.id,
    subject: sub,
    streams,
    forms: fields.forms,
    notBefore: new Date(fields.nbf).toISOString(),
    notAfter: new Date(fields.exp).toISOString(),
    status: status.status,
    ...(status.reason === undefined ? {} : { why: status.reason }),
  }
}

/** POST delegations: the owner makes an admin for part of the space. */
export async function delegate(node: EdgewardNode, space: string, body: Body): Promise<Body> {
  synchronisedState(node, space)
  const now = node.now()
  const admin = did(body, 'to', '--to')
  const streams = stringList(body, 'streams', '--stream', STREAM_PATTERN, ['*'])
  const { record: rec } = await node.policy.delegate(space, { admin, streams, ...window(body, now) })
  return { delegation: rec.id, admin, streams, notAfter: new Date(rec.body.exp).toISOString() }
}

/** POST revocations: of a grant, a subject, a device or a delegation. */
export async function revoke(node: EdgewardNode, space: string, body: Body): Promise<Body> {
  const state = synchronisedState(node, space)
  let target: RevocationTarget
  if (typeof body.grant === 'string') {
    target = { grant: resolveId(body.grant, state.grants.keys(), 'grant', '--grant', space) }
  } else if (typeof body.subject === 'string') {
    if (!isDid(body.subject)) throw new UsageError(`not a did:key: ${body.subject}`)
    target = { subject: body.subject }
  } else if (typeof body.device === 'string') {
    if (!PEER_ID_PATTERN.test(body.device)) throw new UsageError(`not a peer id: ${body.device}`)
    target = { device: body.device }
  } else if (typeof body.delegation === 'string') {
    target = { delegation: resolveId(body.delegation, state.delegations.keys(), 'delegation', '--delegation', space) }
  } else {
    throw new UsageError('revoke needs --grant ID, --subject DID, --device PEER or --delegation ID')
  }
  const reason = typeof body.reason === 'string' ? body.reason.slice(0, 512) : undefined
  const { record: rec } = await node.policy.revoke(space, target, reason)
  return { revocation: rec.id, target }
}

/** Every grant of the space with its state now (active, expired, revoked, pending, not-honoured) and why. */
export function listGrants(node: EdgewardNode, space: string): Body {
  const state = synchronisedState(node, space)
  const now = node.now()
  const grants = [...state.grants.values()]
    .map(g => {
      const s = state.grantStatus(g, now)
      return {
        id: g.id,
        issuer: g.issuer,
        subject: g.body.sub,
        streams: g.body.streams,
        forms: g.body.forms,
        notBefore: new Date(g.body.nbf).toISOString(),
        notAfter: new Date(g.body.exp).toISOString(),
        status: s.status,
        ...(s.reason === undefined ? {} : { why: s.reason }),
        ...(g.body.dataFrom === undefined ? {} : { dataFrom: new Date(g.body.dataFrom).toISOString() }),
        ...(g.body.dataUntil === undefined ? {} : { dataUntil: new Date(g.body.dataUntil).toISOString() }),
        download: g.body.download !== false,
        forward: g.body.forward ?? 'never',
        ...(g.body.devices === undefined ? {} : { devices: g.body.devices }),
        ...(g.body.maxReleases === undefined ? {} : { maxReleases: g.body.maxReleases }),
        ...(g.body.purpose === undefined ? {} : { purpose: g.body.purpose }),
        ...(g.body.parent === undefined ? {} : { parent: g.body.parent }),
      }
    })
    .sort((a, b) => (a.notBefore < b.notBefore ? -1 : a.notBefore > b.notBefore ? 1 : a.id < b.id ? -1 : 1))
  const delegations = [...state.delegations.values()].map(d => ({
    id: d.id,
    admin: d.body.admin,
    streams: d.body.streams,
    notBefore: new Date(d.body.nbf).toISOString(),
    notAfter: new Date(d.body.exp).toISOString(),
    status: state.isDelegationRevoked(d.id)
      ? 'revoked'
      : now < d.body.nbf
        ? 'pending'
        : now >= d.body.exp
          ? 'expired'
          : 'active',
  }))
  // coverage is the node's to decide: the client shows, per item, the grants listed here
  const items: AccessItem[] = [...state.streams.values()].map(s => {
    const label = s.body.media === undefined ? undefined : node.objects.knownName(space, s.body.name)
    return {
      name: s.body.name,
      kind: s.body.media ?? 'stream',
      ...(label === undefined ? {} : { label }),
      grants: grants.filter(g => streamsCover(g.streams, s.body.name)).map(g => g.id),
    }
  })
  return { space, grants, delegations, items }
}

/** POST requests: file an access request, for ourselves or forwarded through a grant. */
export async function fileRequest(node: EdgewardNode, space: string, body: Body): Promise<Body> {
  const state = synchronisedState(node, space)
  const durationMs = body.durationMs
  if (typeof durationMs !== 'number' || !Number.isSafeInteger(durationMs) || durationMs < 1000) {
    throw new UsageError('request needs --for DURATION')
  }
  const reason = body.reason
  if (typeof reason !== 'string' || reason.length === 0 || reason.length > 512)
    throw new UsageError('request needs --reason TEXT')
  const onBehalfOf = body.onBehalfOf === undefined ? undefined : did(body, 'onBehalfOf', '--on-behalf-of')
  const via = body.via
  if ((onBehalfOf === undefined) !== (via === undefined)) throw new UsageError('--on-behalf-of and --via go together')
  // a request forwarded through a grant asks, unless told otherwise, for what that grant covers
  const viaId = via === undefined ? undefined : resolveId(via, state.grants.keys(), 'grant', '--via', space)
  const viaGrant = viaId === undefined ? undefined : state.grants.get(viaId)
  const id = await node.requests.file(space, {
    streams: stringList(body, 'streams', '--stream', STREAM_PATTERN, viaGrant?.body.streams ?? ['*']),
    forms: stringList(body, 'forms', '--form', FORM_PATTERN, viaGrant?.body.forms ?? ['raw']),
    durationMs,
    reason,
    onBehalfOf,
    via: viaId,
  })
  return { request: id }
}

/** POST approve / deny: decide on an access request. */
export async function decide(
  node: EdgewardNode,
  space: string,
  id: string,
  approve: boolean,
  body: Body,
): Promise<Body> {
  synchronisedState(node, space)
  if (!ID_PATTERN.test(id)) throw new UsageError(`not a request id: ${id}`)
  if (approve) {
    const d = body.durationMs
    if (d !== undefined && (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 1000))
      throw new UsageError('--for must be a duration')
    const out = await node.requests.approve(space, id, {
      durationMs: d as number | undefined,
      readmit: body.readmit === true,
      ...(body.streams === undefined ? {} : { streams: stringList(body, 'streams', '--stream', STREAM_PATTERN, []) }),
    })
    return { request: id, approved: true, grant: out.grant, notAfter: new Date(out.notAfter).toISOString() }
  }
  const reason = body.reason
  if (typeof reason !== 'string' || reason.length === 0) throw new UsageError('deny needs --reason TEXT')
  await node.requests.deny(space, id, reason.slice(0, 512))
  return { request: id, approved: false, reason }
}

/** The custodian set of a space as the API shows it: its id, threshold, custodians and when it was written. */
function custodyView(node: EdgewardNode, space: string): Body {
  const set = synchronisedState(node, space).custodianSet
  if (set === undefined) return { space, set: null }
  return {
    space,
    set: {
      id: set.id,
      threshold: set.body.k,
      custodians: set.body.custodians.map(c => ({ peer: c.peer, ...(c.did === undefined ? {} : { did: c.did }) })),
      writtenAt: new Date(set.body.iat).toISOString(),
    },
  }
}

/** GET custody: the set in force (or none), and what this node holds and has dealt. */
export async function custody(node: EdgewardNode, space: string): Promise<Body> {
  return { ...custodyView(node, space), ...(await node.custody.status()) }
}

/**
 * POST custody: the owner names the custodians (peer ids) and the threshold; each custodian is
 * asked for its certificate (its X25519 key and principal), then the set is signed and written.
 */
export async function setCustody(node: EdgewardNode, space: string, body: Body): Promise<Body> {
  synchronisedState(node, space)
  const peers = stringList(body, 'custodians', '--custodian', PEER_ID_PATTERN, [])
  if (peers.length < 2) throw new UsageError('custody needs at least two --custodian PEER')
  const k = body.threshold
  if (typeof k !== 'number' || !Number.isSafeInteger(k)) throw new UsageError('custody needs --threshold K')
  if (k < 2 || k > peers.length) throw new UsageError(`--threshold must be 2..${peers.length} (the custodians named)`)
  const custodians = await Promise.all(peers.map(p => node.custody.describe(p)))
  await node.policy.setCustodians(space, custodians, k)
  return custodyView(node, space)
}
