/**
 * The node's local HTTP API: what the CLI's commands talk to while `edgeward start` runs.
 * It listens on 127.0.0.1 only. A request must be addressed to it by a loopback name
 * (`Host: 127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`), may come from no web page but
 * its own (an `Origin` header, if any, is `http://127.0.0.1:PORT` or `http://localhost:PORT`),
 * else 403: so a page whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing. It must
 * carry the token kept in `DIR/api-token` (mode 0600) as `Authorization: Bearer <token>`,
 * compared in constant time, else 401. Refusals are counted (`edgeward_api_refused_total`).
 * Errors are JSON `{ error: { name, message, code? } }` with 400 (bad input), 404 (unknown),
 * 403 (access refused, foreign Host or Origin), 401 (no token), 422 (an object that does not
 * match its manifest), 503 (no peer of the space reachable), 500.
 * Objects (files and messages): node/api-objects.ts; the client's in-app viewer: node/api-view.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { constantTimeEqual, sha256 } from '../crypto/hash.ts'
import { isDid } from '../crypto/identity.ts'
import { isObjectStream, ObjectIntegrityError } from '../protocols/data/objects.ts'
import { readingsIn, validateReadingInput } from '../protocols/data/reading.ts'
import { InvalidMessageError } from '../protocols/errors.ts'
import { isForm, MAX_EPOCH_MS, MIN_EPOCH_MS } from '../protocols/policy/records.ts'
import { ID_PATTERN, NAME_PATTERN } from '../protocols/validate.ts'
import * as objectsApi from './api-objects.ts'
import * as policyApi from './api-policy.ts'
import * as viewApi from './api-view.ts'
import { AccessRefusedError, NotFoundError, UnreachableError, UsageError } from './errors.ts'
import type { EdgewardNode } from './node.ts'
import type { DecryptedReading } from './services/data/index.ts'
import { inviteRequest } from './services/invites.ts'
import type { MqttIngestions } from './services/mqtt.ts'
import type { StreamList } from './ui/contract-streams.ts'
import { ClientServer, setSecurityHeaders } from './ui/server.ts'

const MAX_BODY_BYTES = 16 * 1024 * 1024

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new UsageError('request body too large')
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function parseJson(text: string): Record<string, unknown> {
  let v: unknown
  try {
    v = JSON.parse(text === '' ? '{}' : text)
  } catch {
    throw new UsageError('request body must be a JSON object')
  }
  if (v == null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError('request body must be a JSON object')
  return v as Record<string, unknown>
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(`${JSON.stringify(body)}\n`)
}

/** The HTTP status of each typed error; anything else is an internal error (500). */
const HTTP_STATUS: Record<string, number> = {
  [UsageError.name]: 400,
  [InvalidMessageError.name]: 400,
  [NotFoundError.name]: 404,
  [AccessRefusedError.name]: 403,
  [ObjectIntegrityError.name]: 422,
  [UnreachableError.name]: 503,
}

function statusOf(err: Error): number {
  return HTTP_STATUS[err.name] ?? 500
}

/** The JSON body of an error answer: its stable name, its message and, for a refusal, its code. */
export function errorBody(err: Error): { error: { name: string; message: string; code?: string } } {
  const code = err instanceof AccessRefusedError ? err.code : undefined
  return { error: { name: err.name, message: err.message, ...(code === undefined ? {} : { code }) } }
}

/** A decrypted reading as the API gives it; the raw form's salt lets a holder prove a hashed commitment. */
function readingJson(r: DecryptedReading): string {
  return JSON.stringify({
    ts: r.ts,
    value: r.value,
    seq: r.seq,
    epoch: r.epoch,
    ...(r.salt === undefined ? {} : { salt: Buffer.from(r.salt).toString('hex') }),
  })
}

function spaceParam(id: string): string {
  if (!ID_PATTERN.test(id)) throw new UsageError(`not a space id: ${id}`)
  return id
}

function streamParam(name: string): string {
  if (!NAME_PATTERN.test(name)) throw new UsageError(`not a stream name: ${name}`)
  return name
}

const REFUSED_METRIC = 'edgeward_api_refused_total'

/** `Host` values that name this server on loopback: lower case, with the port (without it only on port 80). */
function loopbackHosts(port: number): Set<string> {
  const names = ['127.0.0.1', 'localhost', '[::1]']
  return new Set([...names.map(n => `${n}:${port}`), ...(port === 80 ? names : [])])
}

/** `Origin` values of pages this server itself serves. */
function loopbackOrigins(port: number): Set<string> {
  const names = ['127.0.0.1', 'localhost']
  return new Set([...names.map(n => `http://${n}:${port}`), ...(port === 80 ? names.map(n => `http://${n}`) : [])])
}

/** The node's local HTTP API on 127.0.0.1, guarded by Host, Origin and a bearer token. */
export class ApiServer {
  private readonly node: EdgewardNode
  /** the token's SHA-256: what a given token's digest is compared with, in constant time and at one length */
  private readonly tokenDigest: Uint8Array
  private readonly emptyToken: boolean
  private readonly ingest: MqttIngestions | undefined
  private server: Server | undefined
  /** the Host and Origin values this server answers, once it listens */
  private hosts = new Set<string>()
  private origins = new Set<string>()
  /** the desktop client: its pages, its sessions (node/ui/) */
  private readonly ui: ClientServer

  /** `ingest`: the node's MQTT ingestions, for /v1/ingest (without it, those endpoints are 404) */
  constructor(node: EdgewardNode, token: string, ingest?: MqttIngestions) {
    this.node = node
    this.tokenDigest = sha256(new TextEncoder().encode(token))
    this.emptyToken = token === ''
    this.ingest = ingest
    this.ui = new ClientServer({
      now: node.now,
      metrics: node.metrics,
      status: () => this.status(),
      inboxVersion: () => node.inbox.version,
      people: () => node.contacts.names(),
    })
    node.metrics.describe(REFUSED_METRIC, 'local API requests refused, by reason (token, host, origin)')
  }

  async listen(port: number): Promise<string> {
    this.server = createServer((req, res) => {
      this.route(req, res).catch(err => {
        if (!res.headersSent) send(res, statusOf(err as Error), errorBody(err as Error))
        else res.end()
      })
    })
    // an object's upload streams for as long as its file takes: no deadline for the whole request
    this.server.requestTimeout = 0
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(port, '127.0.0.1', () => resolve())
    })
    const addr = this.server.address() as AddressInfo
    this.hosts = loopbackHosts(addr.port)
    this.origins = loopbackOrigins(addr.port)
    return `http://127.0.0.1:${addr.port}`
  }

  async close(): Promise<void> {
    if (this.server === undefined) return
    this.server.closeAllConnections()
    await new Promise(resolve => this.server!.close(resolve))
  }

  /**
   * Why this request may not pass, or undefined when it may: addressed to this server by a
   * loopback name, from no web page or this server's own, with the right token.
   */
  private refusal(req: IncomingMessage): { status: number; reason: string; message: string } | undefined {
    const host = req.headers.host?.toLowerCase()
    if (host === undefined || !this.hosts.has(host)) {
      return {
        status: 403,
        reason: 'host',
        message: `foreign Host ${JSON.stringify(host ?? '')}: use ${this.ownName()}`,
      }
    }
    const origin = req.headers.origin
    if (origin !== undefined && !this.origins.has(origin.toLowerCase())) {
      return {
        status: 403,
        reason: 'origin',
        message: `foreign Origin ${JSON.stringify(origin)}: not a page of ${this.ownName()}`,
      }
    }
    const h = req.headers.authorization ?? ''
    const given = h.startsWith('Bearer ') ? h.slice(7) : ''
    // digests of equal length, compared in constant time: neither the token nor its length leaks
    const right = constantTimeEqual(sha256(new TextEncoder().encode(given)), this.tokenDigest)
    if (!right || this.emptyToken) return { status: 401, reason: 'token', message: 'missing or wrong API token' }
    return undefined
  }

  private ownName(): string {
    return [...this.origins][0] ?? 'http://127.0.0.1'
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    setSecurityHeaders(res)
    // Host and Origin as above; the client's session cookie (and CSRF token) may stand in for the token
    const byApi = this.refusal(req)
    const refused = this.ui.refusal(req, byApi)
    // passed without the bearer token: the client's session opened it
    const viaSession = byApi !== undefined
    if (refused !== undefined) {
      this.node.metrics.inc(REFUSED_METRIC, { reason: refused.reason })
      const name = refused.status === 401 ? 'Unauthorized' : 'Forbidden'
      return send(res, refused.status, { error: { name, message: refused.message, code: refused.reason } })
    }
    if (await this.ui.route(req, res)) return
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const parts = url.pathname.split('/').filter(p => p !== '')
    const n = this.node
    const m = req.method ?? 'GET'
    if (m === 'GET' && url.pathname === '/v1/status') return send(res, 200, this.status())
    if (m === 'GET' && url.pathname === '/v1/inbox') return send(res, 200, await n.inbox.list())
    if (parts[0] === 'v1' && parts[1] === 'contacts') return send(res, 200, await this.contacts(m, parts, req))
    if (parts[0] === 'v1' && parts[1] === 'views' && parts.length === 4 && m === 'GET' && parts[3] === 'events')
      return viewApi.viewEvents(n, parts[2], req, res)
    if (parts[0] === 'v1' && parts[1] === 'views' && parts.length === 3 && m === 'DELETE') {
      viewApi.closeView(n, parts[2])
      return void res.writeHead(204).end()
    }
    if (m === 'GET' && url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
      return void res.end(n.metrics.prometheus())
    }
    if (m === 'POST' && url.pathname === '/v1/spaces') {
      const body = parseJson(await readBody(req))
      const name = body.name
      if (typeof name !== 'string' || name.length === 0 || name.length > 128)
        throw new UsageError('a space needs a name (1..128 characters)')
      return send(res, 200, { space: await n.createSpace(name) })
    }
    if (parts[0] === 'v1' && parts[1] === 'ingest') {
      const ingest = this.ingestions()
      if (m === 'GET' && parts.length === 2) return send(res, 200, { ingestions: ingest.list() })
      if (m === 'GET' && parts.length === 3) return send(res, 200, ingest.get(parts[2]))
      if (m === 'DELETE' && parts.length === 3) return send(res, 200, await ingest.stop(parts[2]))
    }
    if (m === 'POST' && url.pathname === '/v1/audit/verify')
      return send(res, 200, (await import('./api-audit.ts')).verifyReportBody(url, await readBody(req)))
    if (m === 'POST' && url.pathname === '/v1/join') {
      const invite = parseJson(await readBody(req)).invite
      if (typeof invite !== 'string') throw new UsageError('join needs the invite code')
      return send(res, 200, await n.invites.join(invite))
    }
    if (parts[0] !== 'v1' || parts[1] !== 'spaces' || parts.length < 4)
      throw new NotFoundError(`no such endpoint: ${m} ${url.pathname}`)
    const space = spaceParam(parts[2])
    if (m === 'POST' && parts[3] === 'join' && parts.length === 4) {
      await n.joinSpace(space)
      return send(res, 200, { space, synchronised: n.policy.document(space).hasGenesis })
    }
    if (parts.length === 4 && parts[3] === 'invites') {
      if (m === 'GET') return send(res, 200, await n.invites.list(space))
      if (m === 'POST')
        return send(res, 200, await n.invites.create(space, inviteRequest(parseJson(await readBody(req)))))
    }
    if (parts.length === 4 && parts[3] === 'custody') {
      if (m === 'GET') return send(res, 200, await policyApi.custody(n, space))
      if (m === 'POST') return send(res, 200, await policyApi.setCustody(n, space, parseJson(await readBody(req))))
    }
    if (parts.length === 4 && ['grants', 'revocations', 'delegations', 'requests'].includes(parts[3])) {
      if (m === 'GET' && parts[3] === 'grants') return send(res, 200, policyApi.listGrants(n, space))
      if (m === 'GET' && parts[3] === 'requests')
        return send(res, 200, { space, requests: await n.requests.list(space) })
      if (m === 'POST') {
        const body = parseJson(await readBody(req))
        if (parts[3] === 'grants') return send(res, 200, await policyApi.grant(n, space, body))
        if (parts[3] === 'revocations') return send(res, 200, await policyApi.revoke(n, space, body))
        if (parts[3] === 'delegations') return send(res, 200, await policyApi.delegate(n, space, body))
        return send(res, 200, await policyApi.fileRequest(n, space, body))
      }
    }
    if (
      m === 'POST' &&
      parts[3] === 'requests' &&
      parts.length === 6 &&
      (parts[5] === 'approve' || parts[5] === 'deny')
    ) {
      const body = parseJson(await readBody(req))
      return send(res, 200, await policyApi.decide(n, space, parts[4], parts[5] === 'approve', body))
    }
    if (m === 'POST' && parts[3] === 'ingest' && parts.length === 4) {
      return send(res, 200, await this.startIngest(space, parseJson(await readBody(req))))
    }
    if (m === 'GET' && parts[3] === 'audit' && parts[4] === 'report' && parts.length === 5) {
      return send(res, 200, await this.auditReport(space, url))
    }
    if (m === 'GET' && parts[3] === 'streams' && parts.length === 4) return send(res, 200, this.streams(space))
    if (m === 'POST' && parts[3] === 'streams' && parts.length === 4) {
      const body = parseJson(await readBody(req))
      const name = streamParam(String(body.name))
      const epochMs = body.epochMs
      if (
        epochMs !== undefined &&
        (typeof epochMs !== 'number' ||
          !Number.isSafeInteger(epochMs) ||
          epochMs < MIN_EPOCH_MS ||
          epochMs > MAX_EPOCH_MS)
      ) {
        throw new UsageError('--epoch must be a duration from 1s to 366d')
      }
      const forms = body.forms
      if (forms !== undefined && (!Array.isArray(forms) || !forms.every(isForm))) {
        throw new UsageError('forms are raw, hashed or aggregate:<window> (e.g. aggregate:15m)')
      }
      await n.data.createStream(space, name, {
        epochMs: epochMs as number | undefined,
        forms: forms as string[] | undefined,
      })
      const rec = n.policy.document(space).state.streams.get(name)!.body
      return send(res, 200, { stream: name, epochMs: rec.epochMs, forms: rec.forms ?? ['raw', 'hashed'] })
    }
    if (parts[3] === 'streams' && parts[5] === 'retention' && parts.length === 6) {
      const stream = streamParam(parts[4])
      if (m === 'PUT') {
        const body = parseJson(await readBody(req))
        const positive = (v: unknown, flag: string) => {
          if (v === undefined) return undefined
          if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
            throw new UsageError(`${flag} must be positive`)
          return v
        }
        const r = { maxAgeMs: positive(body.maxAgeMs, '--max-age'), maxCount: positive(body.maxCount, '--max-count') }
        if (r.maxAgeMs === undefined && r.maxCount === undefined)
          throw new UsageError('retention needs --max-age or --max-count')
        n.policy.document(space)
        await n.fetch.setRetention(
          space,
          stream,
          Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)),
        )
      }
      return send(res, 200, { space, stream, retention: (await n.fetch.retention(space, stream)) ?? null })
    }
    if (parts[3] === 'objects') {
      if (m === 'POST' && parts.length === 4) return send(res, 200, await objectsApi.share(n, space, url, req))
      if (m === 'GET' && parts.length === 4) return send(res, 200, objectsApi.list(n, space, url))
      if (m === 'GET' && parts.length === 5) return objectsApi.open(n, space, parts[4], res, send)
      if (m === 'GET' && parts.length === 6 && parts[5] === 'view')
        return viewApi.view(n, space, parts[4], req, res, viaSession)
      if (m === 'GET' && parts.length === 6 && parts[5] === 'access')
        return send(res, 200, await objectsApi.access(n, space, parts[4]))
    }
    if (parts[3] === 'streams' && parts[5] === 'readings' && parts.length === 6) {
      const stream = streamParam(parts[4])
      if (m === 'POST') return send(res, 200, await this.publish(space, stream, await readBody(req)))
      if (m === 'GET') return this.read(space, stream, url, res)
    }
    throw new NotFoundError(`no such endpoint: ${m} ${url.pathname}`)
  }

  status(): Record<string, unknown> {
    const n = this.node
    const connected = new Set(n.connectedPeers())
    const now = n.now()
    return {
      peerId: n.identity.peerId,
      did: n.identity.principal.did,
      developmentMode: n.identity.developmentMode,
      addresses: n.addresses(),
      peers: n.connectedPeers(),
      // relay reservations (relay, state, expiry, refusals) and what AutoNAT confirmed
      traversal: n.traversal(),
      cachedKeys: n.data.cachedKeyCount(),
      refusedPolicyChanges: n.policy.refusals(),
      spaces: n.policy.spaces().map(id => {
        const doc = n.policy.document(id)
        if (!doc.hasGenesis) return { id, synchronised: false }
        const s = doc.state
        return {
          id,
          synchronised: true,
          name: s.genesis.body.name,
          owner: s.owner,
          role:
            s.owner === n.identity.principal.did
              ? 'owner'
              : [...s.delegations.values()].some(d => d.body.admin === n.identity.principal.did)
                ? 'admin'
                : 'member',
          keyHolder: s.holders.includes(n.identity.peerId),
          holders: s.holders.map(peer => ({ peer, connected: peer === n.identity.peerId || connected.has(peer) })),
          // files and messages: a key holder shares; so does a member granted to contribute, once custodians keep the keys
          mayShare:
            s.holders.includes(n.identity.peerId) ||
            (s.custodianSet !== undefined && s.contributesAt(n.identity.principal.did, now)),
          // k of these release a key when no key holder answers
          ...(s.custodianSet === undefined
            ? {}
            : {
                custody: {
                  threshold: s.custodianSet.body.k,
                  custodians: s.custodianSet.body.custodians.map(({ peer, did }) => ({
                    peer,
                    ...(did === undefined ? {} : { did }),
                    connected: peer === n.identity.peerId || connected.has(peer),
                  })),
                },
              }),
          streams: [...s.streams.keys()],
          grants: s.grants.size,
          revocations: s.revocations.size,
          changes: doc.size,
        }
      }),
      audit:
        n.audit === undefined
          ? undefined
          : {
              size: n.audit.size,
              head: n.audit.latestHead()?.body.size,
              equivocations: n.audit.equivocations().map(e => ({ log: e.log, reason: e.reason, seenAt: e.seenAt })),
              unverifiable: n.audit.unverifiable().map(u => ({
                log: u.log,
                acceptedSize: u.acceptedSize,
                uncheckedSize: u.uncheckedSize,
                tries: u.tries,
                since: u.since,
                lastError: u.lastError,
              })),
            },
      counters: n.metrics.snapshot(),
    }
  }

  /** GET /v1/spaces/:id/streams: the space's streams with their forms, as their records define them (objects left out). */
  private streams(space: string): StreamList {
    const doc = this.node.policy.document(space)
    if (!doc.hasGenesis) return { space, streams: [] }
    const streams = [...doc.state.streams.values()]
      .map(r => r.body)
      .filter(b => !isObjectStream(b.name))
      .map(b => ({ name: b.name, forms: b.forms ?? ['raw', 'hashed'], epochMs: b.epochMs }))
    return { space, streams }
  }

  /** GET /v1/contacts; PUT /v1/contacts/:did {name}; DELETE /v1/contacts/:did */
  private async contacts(m: string, parts: string[], req: IncomingMessage): Promise<unknown> {
    const c = this.node.contacts
    if (m === 'GET' && parts.length === 2) return { me: this.node.identity.principal.did, contacts: c.list() }
    const did = parts[2]
    if (parts.length === 3 && did !== undefined && isDid(did)) {
      if (m === 'PUT') return c.set(did, parseJson(await readBody(req)).name as string)
      if (m === 'DELETE') return { removed: await c.remove(did) }
    }
    if (parts.length === 3) throw new UsageError(`not a did:key: ${did}`)
    throw new NotFoundError(`no such endpoint: ${m} /${parts.join('/')}`)
  }

  private ingestions(): MqttIngestions {
    if (this.ingest === undefined) throw new NotFoundError('this node runs no MQTT ingestion')
    return this.ingest
  }

  /** POST /v1/spaces/:id/ingest {url, topic, map?, version?}: subscribe and store what arrives. */
  private async startIngest(space: string, body: Record<string, unknown>): Promise<unknown> {
    const { url, topic, map, version } = body
    if (typeof url !== 'string') throw new UsageError('ingest needs the broker URL (--mqtt)')
    if (typeof topic !== 'string') throw new UsageError('ingest needs a topic filter (--topic)')
    if (
      map !== undefined &&
      (map == null || typeof map !== 'object' || !Object.values(map).every(t => typeof t === 'string'))
    )
      throw new UsageError('map must be an object {stream: topic filter}')
    if (version !== undefined && version !== 4 && version !== 5) throw new UsageError('--mqtt-version must be 4 or 5')
    return this.ingestions().start({
      space,
      url,
      topic,
      ...(map === undefined ? {} : { map: map as Record<string, string> }),
      protocolVersion: version ?? 4,
    })
  }

  private async auditReport(space: string, url: URL): Promise<unknown> {
    const audit = this.node.audit
    if (audit === undefined) throw new NotFoundError('this node keeps no audit log')
    const q = url.searchParams
    const time = (name: string): number | undefined => {
      const v = q.get(name)
      if (v === null) return undefined
      const n = Number(v)
      if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--${name} must be a time`)
      return n
    }
    const subject = q.get('subject') ?? undefined
    if (subject !== undefined && !isDid(subject)) throw new UsageError(`--subject is not a did:key: ${subject}`)
    const resource = q.get('resource') ?? undefined
    if (resource !== undefined) streamParam(resource)
    return audit.report({ space, subject, resource, from: time('from'), until: time('until') })
  }

  private async publish(space: string, stream: string, text: string): Promise<Record<string, unknown>> {
    const lines = text.split('\n')
    const readings = []
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim()
      if (line === '') continue
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        throw new UsageError(`line ${i + 1}: not JSON`)
      }
      try {
        readings.push(validateReadingInput(parsed))
      } catch (err) {
        throw new UsageError(`line ${i + 1}: ${(err as Error).message}`)
      }
    }
    this.node.policy.document(space)
    const seqs = await this.node.data.publish(space, stream, readings)
    return { published: seqs.length, seqs }
  }

  private async read(space: string, stream: string, url: URL, res: ServerResponse): Promise<void> {
    const since = Number(url.searchParams.get('since') ?? '0')
    if (!Number.isSafeInteger(since) || since < 0) throw new UsageError('--since must be a time in ms')
    const follow = url.searchParams.get('follow') === '1'
    const form = url.searchParams.get('form') ?? 'raw'
    if (!isForm(form)) throw new UsageError(`--form must be raw, hashed or aggregate:<window>, got ${form}`)
    const data = this.node.data
    const objects = this.node.objects
    if (!follow) {
      const out = await data.read(space, stream, since, form)
      if (!objects.readingsDownloadable(space, stream, form, out)) {
        // the grant forbids download: the plaintext goes to a viewer file, never into the response
        const v = await objects.viewReadings(space, stream, form, out)
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        return void res.end(
          `${JSON.stringify({ viewer: v.viewer, until: new Date(v.until).toISOString(), count: v.count })}\n`,
        )
      }
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      return void res.end(out.map(r => `${readingJson(r)}\n`).join(''))
    }
    // follow: everything stored so far, then each new reading as it arrives; a refusal ends the stream
    const queue: Parameters<Parameters<typeof data.onReading>[0]>[0][] = []
    let wake: (() => void) | undefined
    const unsubscribe = data.onReading(r => {
      if (r.space !== space || r.stream !== stream || r.form !== form) return
      queue.push(r)
      wake?.()
    })
    let closed = false
    res.on('close', () => {
      closed = true
      wake?.()
    })
    try {
      const first = await data.read(space, stream, since, form)
      if (!objects.readingsDownloadable(space, stream, form, first)) throw viewOnly()
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      let lastSeq = -1
      for (const r of first) {
        res.write(`${readingJson(r)}\n`)
        lastSeq = r.seq
      }
      while (!closed) {
        if (queue.length === 0) await new Promise<void>(resolve => (wake = resolve))
        // records that hold a reading after the last one written (a record may hold several)
        const batch = queue.splice(0).filter(r => r.seq + readingsIn(r) - 1 > lastSeq)
        if (batch.length === 0) continue
        try {
          const decrypted = await data.decryptAll(space, stream, batch, since)
          if (!objects.readingsDownloadable(space, stream, form, decrypted)) throw viewOnly()
          for (const r of decrypted) {
            if (r.seq <= lastSeq) continue
            res.write(`${readingJson(r)}\n`)
            lastSeq = Math.max(lastSeq, r.seq)
          }
        } catch (err) {
          res.end(`${JSON.stringify(errorBody(err as Error))}\n`)
          return
        }
      }
    } finally {
      unsubscribe()
    }
  }
}

/** `read --follow` under a grant that forbids download: there is no viewer file for a stream that goes on. */
function viewOnly(): AccessRefusedError {
  return new AccessRefusedError(
    'download-forbidden',
    'the grant allows viewing only: read without --follow to get a viewer file, removed when the lease ends',
  )
}
