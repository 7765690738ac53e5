/**
 * The desktop client's gate, with raw HTTP requests that set their own headers: against a
 * real `edgeward start` process, a request addressed to another Host or sent from a foreign
 * Origin gets nothing (not the page, not a session, not a link redeemed); a link opens one
 * session (HttpOnly, SameSite=Strict, Path=/) and nothing the second time; without a session
 * the client's endpoints and the API answer 401; with one, reads pass but a change without
 * the session's CSRF token is 403, and no GET changes anything; a session cannot mint links;
 * the CLI's bearer token still works; every response carries the CSP, nosniff, no-referrer
 * and no-store. Against an in-process node whose clock the test moves: a link past its two
 * minutes opens nothing, then or later, and a session ends at its end.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { type IncomingHttpHeaders, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ApiServer } from '../../node/api.ts'
import { readApiToken } from '../../node/api-token.ts'
import { type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import { createIdentity } from '../../node/identity.ts'
import { EdgewardNode } from '../../node/node.ts'
import { CSRF_HEADER, type LoginLink, type SessionInfo } from '../../node/ui/contract.ts'
import { CONTENT_SECURITY_POLICY } from '../../node/ui/server.ts'
import { LINK_TTL_MS, SESSION_TTL_MS } from '../../node/ui/sessions.ts'
import { stopPeers } from '../support/local-peers.ts'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One request with exactly these headers (Host included). */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', d => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const codeOf = (r: Reply): string | undefined => (JSON.parse(r.body) as { error?: { code?: string } }).error?.code

function assertRefused(r: Reply, status: number, code: string, what: string): void {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${r.body}`)
  assert.equal(codeOf(r), code, `${what}: ${r.body}`)
  assert.equal(r.headers['set-cookie'], undefined, `${what}: no cookie`)
}

/** The cookie pair (`name=value`) a Set-Cookie header sets. */
const cookiePair = (r: Reply): string => (r.headers['set-cookie']?.[0] ?? '').split(';')[0]

describe('desktop client gate', { timeout: 60_000 }, () => {
  let root = ''
  let peer: LocalPeer
  let port = 0
  let host = ''
  let token = ''

  /** A fresh one-time link's token, minted with the bearer token as the CLI does. */
  const newLink = async (): Promise<string> => {
    const r = await send(port, 'POST', '/ui/links', { host, authorization: `Bearer ${token}` })
    assert.equal(r.status, 200, r.body)
    return new URL((JSON.parse(r.body) as LoginLink).url).hash.replace('#login=', '')
  }
  const redeem = (link: string, headers: Record<string, string> = {}) =>
    send(
      port,
      'POST',
      '/ui/session',
      { host, 'content-type': 'application/json', ...headers },
      JSON.stringify({ link }),
    )
  /** A session: its cookie pair and its CSRF token. */
  const openSession = async (): Promise<{ cookie: string; csrf: string }> => {
    const r = await redeem(await newLink())
    assert.equal(r.status, 200, r.body)
    return { cookie: cookiePair(r), csrf: (JSON.parse(r.body) as SessionInfo).csrf }
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-ui-gate-'))
    const dir = join(root, 'node')
    assert.equal((await runCli(['init', '--data', dir])).code, 0)
    peer = await startPeer('node', dir)
    port = Number(new URL(peer.info.api).port)
    host = `127.0.0.1:${port}`
    token = await readApiToken(dir)
  })

  after(async () => {
    await stopPeers(peer === undefined ? [] : [peer], root)
  })

  it('serves the page with a strict CSP and no inline script, and refuses it to a foreign Host', async () => {
    const page = await send(port, 'GET', '/', { host })
    assert.equal(page.status, 200)
    assert.match(page.headers['content-type'] ?? '', /^text\/html/)
    assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)/, 'every script is a file of the bundle')
    assert.doesNotMatch(page.body, /https?:\/\//, 'nothing named outside the node')
    for (const path of ['/', '/ui/app.js', '/ui/app.css', '/v1/status']) {
      const r = await send(port, 'GET', path, { host, authorization: `Bearer ${token}` })
      assert.equal(r.status, 200, path)
      assert.equal(r.headers['content-security-policy'], CONTENT_SECURITY_POLICY, path)
      assert.match(CONTENT_SECURITY_POLICY, /^default-src 'self'; /)
      assert.match(CONTENT_SECURITY_POLICY, /; frame-ancestors 'none'; /)
      // blob: only for what the viewer renders (images, media), never for scripts
      assert.doesNotMatch(CONTENT_SECURITY_POLICY, /script-src|default-src[^;]*blob:/)
      assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe|\*|https?:/)
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path)
      assert.equal(r.headers['referrer-policy'], 'no-referrer', path)
      assert.equal(r.headers['cache-control'], 'no-store', path)
    }
    for (const foreign of ['evil.example:80', `evil.example:${port}`, '127.0.0.1.nip.io', `127.0.0.2:${port}`]) {
      assertRefused(await send(port, 'GET', '/', { host: foreign }), 403, 'host', `page for Host ${foreign}`)
      assertRefused(await send(port, 'GET', '/ui/app.js', { host: foreign }), 403, 'host', `bundle for ${foreign}`)
    }
  })

  it('refuses a foreign Host or Origin before a link is redeemed, which then still works', async () => {
    const link = await newLink()
    assertRefused(await redeem(link, { host: `evil.example:${port}` }), 403, 'host', 'redeem under a foreign Host')
    assertRefused(await redeem(link, { origin: 'http://evil.example' }), 403, 'origin', 'redeem from a foreign page')
    assertRefused(
      await redeem(link, { origin: `http://127.0.0.1:${port + 1}` }),
      403,
      'origin',
      'redeem from another port',
    )
    const r = await redeem(link, { origin: `http://127.0.0.1:${port}` })
    assert.equal(r.status, 200, 'the link was not spent by the refused attempts')
  })

  it('turns a link into one session cookie (HttpOnly, SameSite=Strict, Path=/), and nothing the second time', async () => {
    const link = await newLink()
    const first = await redeem(link)
    assert.equal(first.status, 200, first.body)
    const cookie = first.headers['set-cookie']?.[0] ?? ''
    assert.match(cookie, new RegExp(`^edgeward_session_${port}=[\\w-]{43}; `))
    assert.match(cookie, /; HttpOnly/)
    assert.match(cookie, /; SameSite=Strict/)
    assert.match(cookie, /; Path=\//)
    const session = JSON.parse(first.body) as SessionInfo
    assert.match(session.csrf, /^[\w-]{43}$/)
    assertRefused(await redeem(link), 401, 'link', 'the same link again')
    const info = await send(port, 'GET', '/ui/session', { host, cookie: cookiePair(first) })
    assert.equal(info.status, 200)
    assert.equal((JSON.parse(info.body) as SessionInfo).csrf, session.csrf)
  })

  it('answers 401 without a session, or with one it never opened', async () => {
    for (const path of ['/ui/session', '/ui/state', '/ui/events']) {
      assertRefused(await send(port, 'GET', path, { host }), 401, 'session', path)
      assertRefused(
        await send(port, 'GET', path, { host, cookie: `edgeward_session_${port}=${'A'.repeat(43)}` }),
        401,
        'session',
        `${path} with a made-up cookie`,
      )
    }
    assertRefused(await send(port, 'GET', '/v1/status', { host }), 401, 'token', 'the API without token or session')
    assertRefused(
      await send(port, 'POST', '/v1/spaces', { host }, '{"name":"x"}'),
      401,
      'token',
      'a change without token or session',
    )
    assertRefused(await redeem('not-a-link'), 401, 'link', 'a made-up link')
  })

  it('lets a session read, but refuses a change without its CSRF token, and never changes on a GET', async () => {
    const { cookie, csrf } = await openSession()
    const status = await send(port, 'GET', '/v1/status', { host, cookie })
    assert.equal(status.status, 200, 'a session reads the API')
    const state = await send(port, 'GET', '/ui/state', { host, cookie })
    assert.equal(state.status, 200)
    assert.equal(JSON.parse(state.body).identity.did, peer.info.did)

    const create = (headers: Record<string, string>) =>
      send(port, 'POST', '/v1/spaces', { host, cookie, 'content-type': 'application/json', ...headers }, '{"name":"x"}')
    assertRefused(await create({}), 403, 'csrf', 'a POST without the CSRF token')
    assertRefused(await create({ [CSRF_HEADER]: 'A'.repeat(43) }), 403, 'csrf', 'a POST with a wrong CSRF token')
    const other = await openSession()
    assertRefused(await create({ [CSRF_HEADER]: other.csrf }), 403, 'csrf', "another session's CSRF token")
    assertRefused(
      await send(port, 'DELETE', '/ui/session', { host, cookie }),
      403,
      'csrf',
      'signing out without the CSRF token',
    )
    const spacesBefore = JSON.parse((await send(port, 'GET', '/ui/state', { host, cookie })).body).health.checks
    assert.deepEqual(
      spacesBefore.find((c: { id: string }) => c.id === 'spaces').details,
      [],
      'the refused changes changed nothing',
    )

    const made = await create({ [CSRF_HEADER]: csrf })
    assert.equal(made.status, 200, `with the token the change goes through: ${made.body}`)

    // state changes are never GETs: a GET of the change endpoints does not do them
    const mint = await send(port, 'GET', '/ui/links', { host, authorization: `Bearer ${token}` })
    assert.notEqual(mint.status, 200, 'no link minted by a GET')
    const login = await send(port, 'GET', `/ui/session?link=${await newLink()}`, { host })
    assertRefused(login, 401, 'session', 'no session opened by a GET')

    const out = await send(port, 'DELETE', '/ui/session', { host, cookie, [CSRF_HEADER]: csrf })
    assert.equal(out.status, 204)
    assertRefused(await send(port, 'GET', '/ui/state', { host, cookie }), 401, 'session', 'after signing out')
  })

  it('mints links for the bearer token only, never for a session, and the token still works', async () => {
    const { cookie, csrf } = await openSession()
    assertRefused(
      await send(port, 'POST', '/ui/links', { host, cookie, [CSRF_HEADER]: csrf }),
      401,
      'token',
      'a session asking for a link',
    )
    assertRefused(await send(port, 'POST', '/ui/links', { host }), 401, 'token', 'a link without the token')
    const status = await send(port, 'GET', '/v1/status', { host, authorization: `Bearer ${token}` })
    assert.equal(status.status, 200)
    const cli = await peer.cli(['status', '--json'])
    assert.equal(cli.code, 0, cli.stderr)
  })

  it('counts what it refused', async () => {
    const metrics = await send(port, 'GET', '/metrics', { host, authorization: `Bearer ${token}` })
    for (const reason of ['host', 'origin', 'session', 'csrf', 'link'])
      assert.match(metrics.body, new RegExp(`edgeward_api_refused_total\\{reason="${reason}"\\} [1-9]`), reason)
  })
})

describe('desktop client links and sessions in time', { timeout: 60_000 }, () => {
  let root = ''
  let node: EdgewardNode
  let api: ApiServer
  let port = 0
  let host = ''
  let offset = 0
  const token = 'b'.repeat(64)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-ui-time-'))
    await createIdentity(root, { now: Date.now() })
    node = await EdgewardNode.create({
      dataDir: root,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      now: () => Date.now() + offset,
    })
    await node.start()
    api = new ApiServer(node, token)
    port = Number(new URL(await api.listen(0)).port)
    host = `127.0.0.1:${port}`
  })

  after(async () => {
    await api?.close()
    await node?.stop()
    await rm(root, { recursive: true, force: true })
  })

  const link = async () => {
    const r = await send(port, 'POST', '/ui/links', { host, authorization: `Bearer ${token}` })
    const l = JSON.parse(r.body) as LoginLink
    return { token: new URL(l.url).hash.replace('#login=', ''), expiresAt: l.expiresAt }
  }
  const redeem = (t: string) =>
    send(port, 'POST', '/ui/session', { host, 'content-type': 'application/json' }, JSON.stringify({ link: t }))

  it('opens nothing with a link past its two minutes, then or later', async () => {
    const l = await link()
    assert.ok(Math.abs(l.expiresAt - (Date.now() + offset + LINK_TTL_MS)) < 5000)
    offset += LINK_TTL_MS + 1
    assertRefused(await redeem(l.token), 401, 'link', 'an expired link')
    assertRefused(await redeem(l.token), 401, 'link', 'the expired link reused')
    offset -= LINK_TTL_MS + 1
    assertRefused(await redeem(l.token), 401, 'link', 'the link back inside its time, once tried')
  })

  it('opens a session with a link just inside its time, which ends when the session does', async () => {
    const l = await link()
    offset += LINK_TTL_MS - 1000
    const r = await redeem(l.token)
    assert.equal(r.status, 200, r.body)
    const cookie = cookiePair(r)
    assert.equal((await send(port, 'GET', '/ui/state', { host, cookie })).status, 200)
    offset += SESSION_TTL_MS
    assertRefused(await send(port, 'GET', '/ui/state', { host, cookie }), 401, 'session', 'a session past its end')
  })
})
