/**
 * The local API's gate, against a real `edgeward start` process and raw HTTP requests that
 * set their own headers: the right token is needed (401 without it, or with a wrong, shorter
 * or longer one); a request addressed to another host (DNS rebinding) or sent from a foreign
 * web page's origin is refused with 403 even with the right token, and counted; the API
 * listens on loopback only (the address the node reports, the kernel's listening sockets, and a
 * connection through this machine's other addresses), and its token file is mode 0600.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, stat } from 'node:fs/promises'
import { request } from 'node:http'
import { connect } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type LocalPeer, readNodeJson, startPeer } from '../../node/cli/local-network.ts'
import { createIdentity } from '../../node/identity.ts'
import { stopPeers } from '../support/local-peers.ts'

interface Reply {
  status: number
  body: string
}

/** One GET with exactly these headers (Host included), to 127.0.0.1 unless `address` says otherwise. */
function get(port: number, headers: Record<string, string>, path = '/v1/status'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', d => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** A refusal is one line of JSON naming the error. */
function assertOneLineError(r: Reply, status: number, what: string): { name: string; message: string } {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${r.body}`)
  assert.ok(
    r.body.endsWith('\n') && !r.body.slice(0, -1).includes('\n'),
    `${what}: one line: ${JSON.stringify(r.body)}`,
  )
  const { error } = JSON.parse(r.body) as { error: { name: string; message: string } }
  assert.equal(typeof error.name, 'string')
  assert.equal(typeof error.message, 'string')
  return error
}

/** Does a TCP connection to address:port succeed? (false when refused or silent for 2 s) */
function connects(address: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect({ host: address, port, timeout: 2000 })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Local addresses (hex, as /proc/net/tcp{,6} writes them) of the sockets listening on `port`. */
async function listeningOn(port: number): Promise<string[]> {
  const out: string[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue
    for (const line of (await readFile(file, 'utf8')).split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length < 4 || cols[3] !== '0A') continue // 0A: LISTEN
      const [addr, hexPort] = cols[1].split(':')
      if (Number.parseInt(hexPort, 16) === port) out.push(addr)
    }
  }
  return out
}

describe('local API gate (a real node process, raw HTTP)', { timeout: 60_000 }, () => {
  let root: string
  let peer: LocalPeer
  let token: string
  let port: number
  const auth = () => ({ authorization: `Bearer ${token}` })
  const own = () => ({ host: `127.0.0.1:${port}`, ...auth() })
  const refusedCount = async (reason: string): Promise<number> => {
    const r = await get(port, own(), '/metrics')
    assert.equal(r.status, 200)
    const m = r.body.match(new RegExp(`^edgeward_api_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm'))
    return m === null ? 0 : Number(m[1])
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-api-gate-'))
    const dir = join(root, 'node')
    await createIdentity(dir, { now: Date.now() })
    peer = await startPeer('node', dir)
    token = (await readFile(join(dir, 'api-token'), 'utf8')).trim()
    port = Number(new URL(peer.info.api).port)
  })

  after(async () => {
    if (peer !== undefined) await stopPeers([peer], root)
  })

  it('answers the right token at its own loopback names', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LocalHost:${port}`, `[::1]:${port}`]) {
      const r = await get(port, { host, ...auth() })
      assert.equal(r.status, 200, `Host ${host}: ${r.body}`)
    }
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      const r = await get(port, { ...own(), origin })
      assert.equal(r.status, 200, `Origin ${origin}: ${r.body}`)
    }
  })

  it('refuses, with 401, a request without the right token', async () => {
    const cases: [string, Record<string, string>][] = [
      ['no Authorization header', {}],
      ['an empty bearer token', { authorization: 'Bearer ' }],
      ['a wrong token of the same length', { authorization: `Bearer ${'0'.repeat(token.length)}` }],
      ['the token one character short', { authorization: `Bearer ${token.slice(0, -1)}` }],
      ['the token with one more character', { authorization: `Bearer ${token}0` }],
      ['the token under another scheme', { authorization: `Basic ${token}` }],
      ['the token alone', { authorization: token }],
    ]
    for (const [what, headers] of cases) {
      const error = assertOneLineError(await get(port, { host: `127.0.0.1:${port}`, ...headers }), 401, what)
      assert.equal(error.name, 'Unauthorized', what)
    }
  })

  it('refuses, with 403 and a count, a foreign Host even with the right token', async () => {
    const before = await refusedCount('host')
    const foreign = [
      'evil.example',
      `evil.example:${port}`,
      `localhost.evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `127.0.0.1:${port + 1}`,
      `127.0.0.1`,
      `192.0.2.7:${port}`,
      `[::1]:${port + 1}`,
    ]
    for (const host of foreign) {
      const error = assertOneLineError(await get(port, { host, ...auth() }), 403, `Host ${host}`)
      assert.match(error.message, /Host/, `Host ${host}`)
    }
    assert.equal(await refusedCount('host'), before + foreign.length, 'each refusal is counted')
  })

  it('refuses, with 403 and a count, a foreign Origin even with the right token', async () => {
    const before = await refusedCount('origin')
    const foreign = [
      'http://evil.example',
      `http://evil.example:${port}`,
      'null',
      `https://127.0.0.1:${port}`,
      `http://127.0.0.1:${port + 1}`,
      `http://127.0.0.1`,
      `http://localhost.evil.example:${port}`,
    ]
    for (const origin of foreign) {
      const error = assertOneLineError(await get(port, { ...own(), origin }), 403, `Origin ${origin}`)
      assert.match(error.message, /Origin/, `Origin ${origin}`)
    }
    assert.equal(await refusedCount('origin'), before + foreign.length, 'each refusal is counted')
  })

  it('listens on loopback only', async () => {
    const info = await readNodeJson(peer.dataDir)
    assert.equal(info?.api, `http://127.0.0.1:${port}`, 'node.json names the loopback address')
    assert.equal(await connects('127.0.0.1', port), true)
    const listening = await listeningOn(port)
    if (existsSync('/proc/net/tcp')) {
      // what the kernel has bound, whatever the node says: 127.0.0.1 only (0100007F, little-endian)
      assert.deepEqual(listening, ['0100007F'], `listening sockets on port ${port}: ${listening.join(', ')}`)
    }
    const others = Object.values(networkInterfaces())
      .flat()
      .filter(a => a !== undefined && !a.internal && !a.address.startsWith('fe80:'))
      .map(a => a!.address)
    for (const address of others) {
      assert.equal(await connects(address, port), false, `the API answers on ${address}`)
    }
    if (others.length === 0) assert.ok(existsSync('/proc/net/tcp'), 'no other address to try and no /proc/net/tcp')
  })

  it('keeps its token in a file of mode 0600', async () => {
    assert.equal((await stat(join(peer.dataDir, 'api-token'))).mode & 0o777, 0o600)
  })
})
