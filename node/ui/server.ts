/**
 * The desktop client's side of the node's local API (node/api.ts delegates to it): it serves
 * the client (`/`, `/ui/app.js`, `/ui/app.css`, `/ui/icon.svg`), turns a one-time login link
 * into a session, lets that session's cookie stand in for the bearer token, and pushes the
 * client's state as server-sent events.
 *
 * Guarantees: the API's own check of Host and Origin runs first and is final (a foreign Host
 * or Origin is refused before anything here). A session opens the API as the token does, but
 * any request that is not a GET or HEAD must also carry the session's CSRF token
 * ({@link CSRF_HEADER}), else 403. `POST /ui/links` (a new login link) takes the bearer token
 * only. Every response carries a strict Content-Security-Policy (scripts and styles from this
 * server only, no inline script, no framing), nosniff, no referrer and `no-store`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { logger } from '@libp2p/logger'
import type { Metrics } from '../metrics.ts'
import { ClientBundle } from './bundle.ts'
import { type ClientState, CSRF_HEADER, type LoginLink, type SessionInfo } from './contract.ts'
import { clientState, type NodeStatus } from './health.ts'
import { SessionStore } from './sessions.ts'

const log = logger('edgeward:ui')

/** What the API answers a request it refuses; the same shape as node/api.ts's own refusals. */
export interface Refusal {
  status: number
  reason: string
  message: string
}

/** What the client's server needs of the node. */
export interface ClientServerComponents {
  /** the node's clock */
  now: () => number
  metrics: Metrics
  /** the API's `GET /v1/status` answer */
  status: () => Record<string, unknown>
  /** changes whenever what is shared with this person does (the inbox) */
  inboxVersion?: () => number
  /** the names this person gave people, by did */
  people?: () => Record<string, string>
}

export interface ClientServerOptions {
  /** how often the state is sampled while a client listens to /ui/events (default 1 s) */
  sampleIntervalMs?: number
}

/** blob: for images and media only: the viewer renders what it fetched, never from a URL of its own */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

/** Headers every response of the local API carries, the client's and the API's alike. */
export function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY)
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('referrer-policy', 'no-referrer')
  res.setHeader('x-frame-options', 'DENY')
  res.setHeader('cross-origin-opener-policy', 'same-origin')
  res.setHeader('cross-origin-resource-policy', 'same-origin')
  res.setHeader('cache-control', 'no-store')
}

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>edgeward</title>
<link rel="icon" href="/ui/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/app.css">
<script type="module" src="/ui/app.js"></script>
</head>
<body>
<div id="app"></div>
<noscript>edgeward's client needs JavaScript.</noscript>
</body>
</html>
`

/** Paths anyone on this machine may GET (with the right Host and Origin): the page and its bundle. */
const PUBLIC_GET = new Set(['/', '/index.html'])
/** The bundle's files: `/ui/app.js`, `/ui/chunk-HASH.js`, `/ui/pdf.worker.js`, ... (served when the bundle has them). */
const BUNDLE_PATH = /^\/ui\/[a-z][a-z0-9.-]{0,40}\.(js|css|svg)$/i
const isBundlePath = (path: string): boolean => BUNDLE_PATH.test(path)
const SAFE_METHODS = new Set(['GET', 'HEAD'])
const MAX_LOGIN_BODY = 1024

const pathOf = (req: IncomingMessage): string => new URL(req.url ?? '/', 'http://127.0.0.1').pathname

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(`${JSON.stringify(body)}\n`)
}

function sendError(res: ServerResponse, status: number, name: string, code: string, message: string): void {
  sendJson(res, status, { error: { name, message, code } })
}

/** The session cookie's name: one per port, since a browser sends 127.0.0.1's cookies to every port. */
function cookieName(req: IncomingMessage): string {
  const port = /:(\d+)$/.exec(req.headers.host ?? '')?.[1] ?? '80'
  return `edgeward_session_${port}`
}

function cookieOf(req: IncomingMessage): string | undefined {
  const name = cookieName(req)
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

async function readSmallBody(req: IncomingMessage): Promise<string | undefined> {
  let text = ''
  for await (const chunk of req) {
    text += chunk
    if (text.length > MAX_LOGIN_BODY) return undefined
  }
  return text
}

export class ClientServer {
  private readonly c: ClientServerComponents
  private readonly sessions = new SessionStore()
  private readonly bundle = new ClientBundle()
  private readonly sampleIntervalMs: number
  /** responses of /ui/events still open */
  private readonly listeners = new Set<ServerResponse>()
  private sampler: NodeJS.Timeout | undefined
  private lastPushed = ''

  constructor(components: ClientServerComponents, opts: ClientServerOptions = {}) {
    this.c = components
    this.sampleIntervalMs = opts.sampleIntervalMs ?? 1000
  }

  /**
   * The refusal that stands for this request, given the API's own (`byApi`: undefined when
   * its bearer token is right). A foreign Host or Origin stays refused; without the token,
   * the page and its bundle pass, and so does redeeming a link; anything else needs a live
   * session, and its CSRF token unless it is a GET or HEAD.
   */
  refusal(req: IncomingMessage, byApi: Refusal | undefined): Refusal | undefined {
    if (byApi === undefined || byApi.reason !== 'token') return byApi
    const path = pathOf(req)
    const method = req.method ?? 'GET'
    if (SAFE_METHODS.has(method) && (PUBLIC_GET.has(path) || isBundlePath(path))) return undefined
    if (method === 'POST' && path === '/ui/session') return undefined
    if (path === '/ui/links') return byApi
    const session = this.sessions.find(cookieOf(req), this.c.now())
    if (session === undefined) {
      if (!path.startsWith('/ui/') || req.headers.authorization !== undefined) return byApi
      return { status: 401, reason: 'session', message: 'no session: open the link that `edgeward ui` prints' }
    }
    if (!SAFE_METHODS.has(method) && !this.sessions.isCsrfValid(session, header(req, CSRF_HEADER))) {
      return { status: 403, reason: 'csrf', message: `a change needs the session's CSRF token (${CSRF_HEADER})` }
    }
    return undefined
  }

  /** Answer the request if it is the client's (`/`, `/ui/...`); false to leave it to the API. */
  async route(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = pathOf(req)
    const m = req.method ?? 'GET'
    if (path !== '/' && path !== '/index.html' && !path.startsWith('/ui/')) return false
    if (SAFE_METHODS.has(m) && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(m === 'HEAD' ? undefined : INDEX_HTML)
      return true
    }
    if (SAFE_METHODS.has(m) && isBundlePath(path)) {
      const file = (await this.bundle.files()).get(path.slice('/ui/'.length))
      if (file !== undefined) {
        res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length })
        res.end(m === 'HEAD' ? undefined : file.body)
        return true
      }
    }
    if (path === '/ui/links' && m === 'POST') {
      sendJson(res, 200, this.createLink(req))
      return true
    }
    if (path === '/ui/session') {
      if (m === 'POST') await this.login(req, res)
      else if (m === 'GET') this.sessionInfo(req, res)
      else if (m === 'DELETE') this.logout(req, res)
      else sendError(res, 405, 'MethodNotAllowed', 'method', `${m} ${path} is not allowed`)
      return true
    }
    if (path === '/ui/state' && m === 'GET') {
      sendJson(res, 200, this.state())
      return true
    }
    if (path === '/ui/events' && m === 'GET') {
      this.subscribe(res)
      return true
    }
    sendError(res, 404, 'NotFoundError', 'not-found', `no such endpoint: ${m} ${path}`)
    return true
  }

  /** The client's state, from the API's own status and metrics. */
  state(): ClientState {
    return clientState(this.c.status() as unknown as NodeStatus, this.c.metrics.prometheus(), {
      inboxVersion: this.c.inboxVersion?.() ?? 0,
      people: this.c.people?.() ?? {},
    })
  }

  private createLink(req: IncomingMessage): LoginLink {
    const { token, expiresAt } = this.sessions.createLink(this.c.now())
    // the Host passed the API's loopback check: the link names the server as the CLI reached it
    return { url: `http://${req.headers.host}/#login=${token}`, expiresAt }
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readSmallBody(req)
    let link: unknown
    try {
      link = text === undefined ? undefined : (JSON.parse(text) as { link?: unknown }).link
    } catch {
      link = undefined
    }
    if (typeof link !== 'string') {
      sendError(res, 400, 'UsageError', 'usage', 'POST /ui/session takes {"link": TOKEN}')
      return
    }
    const opened = this.sessions.redeem(link, this.c.now())
    if (opened === undefined) {
      this.c.metrics.inc('edgeward_api_refused_total', { reason: 'link' })
      sendError(
        res,
        401,
        'Unauthorized',
        'link',
        'this login link was used already or has expired: run `edgeward ui` for a new one',
      )
      return
    }
    const maxAge = Math.floor((opened.session.expiresAt - this.c.now()) / 1000)
    res.setHeader('set-cookie', `${cookieName(req)}=${opened.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`)
    const info: SessionInfo = { csrf: opened.session.csrf, expiresAt: opened.session.expiresAt }
    sendJson(res, 200, info)
  }

  private sessionInfo(req: IncomingMessage, res: ServerResponse): void {
    const s = this.sessions.find(cookieOf(req), this.c.now())
    if (s === undefined) {
      sendError(res, 401, 'Unauthorized', 'session', 'no session')
      return
    }
    const info: SessionInfo = { csrf: s.csrf, expiresAt: s.expiresAt }
    sendJson(res, 200, info)
  }

  private logout(req: IncomingMessage, res: ServerResponse): void {
    const id = cookieOf(req)
    if (id !== undefined) this.sessions.end(id)
    res.setHeader('set-cookie', `${cookieName(req)}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`)
    res.writeHead(204).end()
  }

  /** `/ui/events`: the state now, then again whenever it changes, until the client goes. */
  private subscribe(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' })
    const state = JSON.stringify(this.state())
    res.write(`event: state\ndata: ${state}\n\n`)
    this.listeners.add(res)
    if (this.listeners.size === 1) this.lastPushed = state
    res.on('close', () => {
      this.listeners.delete(res)
      if (this.listeners.size === 0 && this.sampler !== undefined) {
        clearInterval(this.sampler)
        this.sampler = undefined
      }
    })
    // the node has no single "status changed" event: sample while someone listens, push changes only
    this.sampler ??= setInterval(() => this.pushIfChanged(), this.sampleIntervalMs)
  }

  private pushIfChanged(): void {
    let state: string
    try {
      state = JSON.stringify(this.state())
    } catch (err) {
      // a status that cannot be read this once (the node stopping): the next sample tries again
      log.error('state for /ui/events: %s', (err as Error).message)
      return
    }
    if (state === this.lastPushed) return
    this.lastPushed = state
    for (const res of this.listeners) res.write(`event: state\ndata: ${state}\n\n`)
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}
