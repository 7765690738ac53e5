/**
 * The local API's handlers for objects (files and messages):
 * - POST /v1/spaces/:id/objects?to=DID[&to=DID…]&for=MS[&download=false][&forward=F][&name=N][&type=file|message]
 *   with the content as the request body, streamed: -> { object, grant, notAfter, grants, size, chunks, sha256 }
 *   (one grant per recipient; `grant` and `notAfter` are the first's)
 * - GET /v1/spaces/:id/objects/:object: the plaintext, streamed, with the manifest in
 *   `x-edgeward-*` headers; when the reader's grant forbids download, never the plaintext:
 *   a viewer file instead -> { viewer, until } (until: the key's lease end, ISO 8601)
 * - GET /v1/spaces/:id/objects/:object/access -> grants, requests and (on the key holder) releases
 * - GET /v1/spaces/:id/objects[?limit=N][&before=OBJECT] -> the space's objects newest first, each
 *   with its grants, for the sender's view (ObjectList in node/ui/contract-objects.ts)
 * The plaintext is verified against the manifest before the first byte is sent; a failure
 * after that (a revocation in the middle) cuts the response short, so a client never sees a
 * complete-looking answer that is not the object.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isDid } from '../crypto/identity.ts'
import type { OpenedRecord } from '../crypto/signed.ts'
import { isObjectStream, MAX_OBJECT_NAME, MEDIA_TYPES, type MediaType } from '../protocols/data/objects.ts'
import { FORWARD_PERMISSIONS, type ForwardPermission, type Revocation } from '../protocols/policy/records.ts'
import type { PolicyState } from '../protocols/policy/state.ts'
import { UsageError } from './errors.ts'
import type { EdgewardNode } from './node.ts'
import { MAX_RECIPIENTS } from './services/objects.ts'
import {
  OBJECTS_PAGE,
  OBJECTS_PAGE_MAX,
  type ObjectGrantView,
  type ObjectList,
  type ObjectSummary,
  type ShareAnswer,
} from './ui/contract-objects.ts'

type Body = Record<string, unknown>

/** Share a file or message streamed in the request body with one principal, for a time. */
export async function share(node: EdgewardNode, space: string, url: URL, req: IncomingMessage): Promise<ShareAnswer> {
  const q = url.searchParams
  const to = q.getAll('to')
  if (to.length === 0) throw new UsageError('a share needs at least one recipient (--to DID)')
  if (to.length > MAX_RECIPIENTS) throw new UsageError(`at most ${MAX_RECIPIENTS} recipients at once`)
  for (const d of to) if (!isDid(d)) throw new UsageError(`--to must be a did:key, got ${JSON.stringify(d)}`)
  const forMs = Number(q.get('for') ?? Number.NaN)
  if (!Number.isSafeInteger(forMs) || forMs < 1000) throw new UsageError('--for must be a duration of at least 1s')
  const download = q.get('download')
  if (download !== null && download !== 'true' && download !== 'false')
    throw new UsageError('download must be true or false')
  const forward = q.get('forward') ?? undefined
  if (forward !== undefined && !FORWARD_PERMISSIONS.includes(forward as ForwardPermission)) {
    throw new UsageError('--forward must be never, ask-owner or allowed')
  }
  const type = q.get('type') ?? 'file'
  if (!(MEDIA_TYPES as readonly string[]).includes(type)) throw new UsageError('type must be file or message')
  const name = q.get('name') ?? undefined
  if (name !== undefined && (name.length === 0 || name.length > MAX_OBJECT_NAME))
    throw new UsageError(`a name is 1..${MAX_OBJECT_NAME} characters`)
  const shared = await node.objects.share(space, req, {
    to,
    durationMs: forMs,
    download: download !== 'false',
    ...(forward === undefined ? {} : { forward: forward as ForwardPermission }),
    ...(name === undefined ? {} : { name }),
    mediaType: type as MediaType,
  })
  return {
    object: shared.object,
    grant: shared.grant,
    notAfter: new Date(shared.notAfter).toISOString(),
    grants: shared.grants.map(g => ({ to: g.to, grant: g.grant, notAfter: new Date(g.notAfter).toISOString() })),
    name: shared.manifest.name,
    size: shared.manifest.size,
    chunks: shared.manifest.chunks,
    sha256: shared.manifest.sha256,
  }
}

/** Stream the plaintext, or (download forbidden) write a viewer file and say where. */
export async function open(
  node: EdgewardNode,
  space: string,
  object: string,
  res: ServerResponse,
  send: (res: ServerResponse, status: number, body: unknown) => void,
): Promise<void> {
  const opened = await node.objects.open(space, object)
  if (!opened.download) {
    const v = await node.objects.view(opened)
    return send(res, 200, {
      object,
      viewer: v.viewer,
      until: new Date(v.until).toISOString(),
      name: opened.manifest.name,
    })
  }
  const m = opened.manifest
  res.writeHead(200, {
    'content-type': m.mediaType === 'message' ? 'text/plain; charset=utf-8' : 'application/octet-stream',
    'content-length': String(m.size),
    'x-edgeward-object': object,
    'x-edgeward-name': encodeURIComponent(m.name),
    'x-edgeward-media-type': m.mediaType,
    'x-edgeward-sha256': m.sha256,
  })
  try {
    for await (const chunk of opened) {
      if (!res.write(chunk)) await drained(res)
      if (res.destroyed) return
    }
  } catch (err) {
    // headers are out: cut the response short rather than end it as if it were complete
    res.destroy(err as Error)
    return
  }
  res.end()
}

/** Until the response can take more, or is closed (a client that went away never drains). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise(resolve => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.once('drain', done)
    res.once('close', done)
  })
}

/** Who holds or asked for access to an object: its grants, requests and (on the key holder) key releases. */
export async function access(node: EdgewardNode, space: string, object: string): Promise<Body> {
  const a = await node.objects.access(space, object)
  const iso = (t: number) => new Date(t).toISOString()
  return {
    space: a.space,
    object: a.object,
    grants: a.grants.map(g => ({ ...g, notBefore: iso(g.notBefore), notAfter: iso(g.notAfter) })),
    requests: a.requests.map(r => ({ ...r, at: iso(r.at) })),
    ...(a.releases === undefined
      ? {}
      : {
          releases: a.releases.map(r => ({
            ...r,
            at: iso(r.at),
            leaseEnd: iso(r.leaseEnd),
            heldUntil: iso(r.heldUntil),
          })),
        }),
    ...(a.refusals === undefined ? {} : { refusals: a.refusals.map(r => ({ ...r, at: iso(r.at) })) }),
  }
}

/**
 * The space's objects this node knows (their stream records), newest first, each with the
 * grants that name it: what was shared, with whom, and where each recipient stands. `before`
 * is the last object of the previous page; objects that arrive meanwhile do not shift a page.
 */
export function list(node: EdgewardNode, space: string, url: URL): ObjectList {
  const q = url.searchParams
  const limitText = q.get('limit')
  const limit = limitText === null ? OBJECTS_PAGE : Number(limitText)
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > OBJECTS_PAGE_MAX)
    throw new UsageError(`limit must be 1..${OBJECTS_PAGE_MAX}`)
  const before = q.get('before') ?? undefined
  if (before !== undefined && !isObjectStream(before))
    throw new UsageError(`before must be an object id, got ${before}`)
  const now = node.now()
  const doc = node.policy.document(space)
  if (!doc.hasGenesis) return { space, now, objects: [] }
  const state = doc.state
  // newest first; ties in time by id, so that the order (and a cursor) is total
  const records = [...state.streams.values()]
    .filter(r => isObjectStream(r.body.name))
    .sort((a, b) => b.body.iat - a.body.iat || (a.body.name < b.body.name ? 1 : -1))
  let start = 0
  if (before !== undefined) {
    const at = records.findIndex(r => r.body.name === before)
    if (at < 0) throw new UsageError(`before: space ${space} has no object ${before}`)
    start = at + 1
  }
  const page = records.slice(start, start + limit)
  const grants = grantsByObject(state, new Set(page.map(r => r.body.name)), now)
  const objects: ObjectSummary[] = page.map(r => {
    const name = node.objects.knownName(space, r.body.name)
    return {
      object: r.body.name,
      media: r.body.media ?? 'file',
      createdAt: r.body.iat,
      creator: r.issuer,
      ...(name === undefined ? {} : { name }),
      grants: grants.get(r.body.name) ?? [],
    }
  })
  const more = start + limit < records.length
  return { space, now, objects, ...(more ? { next: page[page.length - 1].body.name } : {}) }
}

/** The grants naming each of `objects` (an object is covered only by its own id), oldest first. */
function grantsByObject(state: PolicyState, objects: Set<string>, now: number): Map<string, ObjectGrantView[]> {
  const revocations = revocationsByTarget(state)
  const out = new Map<string, ObjectGrantView[]>()
  const grants = [...state.grants.values()].sort((a, b) => a.body.nbf - b.body.nbf)
  for (const g of grants) {
    const named = g.body.streams.filter(s => objects.has(s))
    if (named.length === 0) continue
    const { status } = state.grantStatus(g, now)
    const rev = status === 'revoked' ? (revocations.get(g.id) ?? revocations.get(`subject:${g.body.sub}`)) : undefined
    const view: ObjectGrantView = {
      id: g.id,
      subject: g.body.sub,
      status,
      notAfter: g.body.exp,
      download: g.body.download !== false,
      ...(rev === undefined ? {} : { revokedBy: rev.issuer, revokedAt: rev.body.iat }),
    }
    for (const object of named) out.set(object, [...(out.get(object) ?? []), view])
  }
  return out
}

/** The first revocation of each grant (by id) and of each subject (`subject:DID`). */
function revocationsByTarget(state: PolicyState): Map<string, OpenedRecord<Revocation>> {
  const out = new Map<string, OpenedRecord<Revocation>>()
  for (const rev of state.revocations.values()) {
    const t = rev.body.target
    const key = 'grant' in t ? t.grant : 'subject' in t ? `subject:${t.subject}` : undefined
    if (key === undefined) continue
    const known = out.get(key)
    if (known === undefined || rev.body.iat < known.body.iat) out.set(key, rev)
  }
  return out
}
