/**
 * Files and messages as governed streams, with real nodes in one process over TCP on
 * 127.0.0.1 and each reader's local API: a 5 MB file opens byte for byte on the reader it was
 * shared with and is refused elsewhere; a damaged or missing chunk fails with a typed error;
 * a view-only grant yields a viewer file (never the bytes), which is gone after a revocation
 * and at lease end; the access listing shows grants, requests and releases; revocation
 * refuses the reader and drops its key. Share and open throughput is measured by `npm run bench`.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { randomBytes } from '../../crypto/hash.ts'
import { ApiServer } from '../../node/api.ts'
import type { EdgewardNode } from '../../node/node.ts'
import type { OpenedObject } from '../../node/services/objects.ts'
import { pad } from '../../node/store.ts'
import { readingCount, readingsIn } from '../../protocols/data/reading.ts'
import { createRevocation } from '../../protocols/policy/records.ts'
import { HOUR, Peers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const MB = 1024 * 1024
const DEADLINE_MS = 20_000

interface Api {
  server: ApiServer
  url: string
  token: string
}

/** support's `Peers`, and the API servers the suite starts on its nodes: closed before the nodes stop. */
class PeersWithApis extends Peers {
  private readonly apis = new Set<ApiServer>()

  async api(node: EdgewardNode): Promise<Api> {
    const token = Buffer.from(randomBytes(16)).toString('hex')
    const server = new ApiServer(node, token)
    this.apis.add(server)
    return { server, url: await server.listen(0), token }
  }

  override async stopAll(): Promise<void> {
    try {
      await Promise.all([...this.apis].map(a => a.close()))
      this.apis.clear()
    } finally {
      await super.stopAll()
    }
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  return h.digest('hex')
}

async function sha256Of(chunks: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256')
  let size = 0
  for await (const c of chunks) {
    h.update(c)
    size += c.byteLength
  }
  return { sha256: h.digest('hex'), size }
}

function get(api: Api, path: string): Promise<Response> {
  return fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${api.token}` } })
}

/** Readings stored of an object (a record holds one or more). */
async function storedCount(node: EdgewardNode, space: string, object: string): Promise<number> {
  return readingCount(await node.data.storedReadings(space, object))
}

/** Wait until `readers` stored every reading of `object` (chunks and manifest) and know its stream. */
async function arrived(readers: EdgewardNode[], space: string, object: string, readings: number): Promise<void> {
  await waitFor(
    `${readers.length} readers to store ${readings} readings of ${object}`,
    async () => {
      for (const r of readers) {
        if (!r.policy.document(space).state.streams.has(object)) return undefined
        if ((await storedCount(r, space, object)) < readings) return undefined
      }
      return true
    },
    60_000,
    20,
  )
}

async function refusal(p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  assert.fail('expected a failure')
}

describe('objects: files and messages as governed streams', { timeout: 300_000 }, () => {
  const peers = new PeersWithApis()
  let gw: EdgewardNode
  let reader: EdgewardNode
  let stranger: EdgewardNode
  let readerApi: Api
  let strangerApi: Api
  let gwApi: Api
  let space: string
  const big = { path: '', sha256: '', object: '', grant: '' }

  const share = async (content: Uint8Array, opts: { download?: boolean; name?: string } = {}) => {
    const s = await gw.objects.share(
      space,
      (async function* () {
        // pieces of odd sizes: the service re-cuts them into chunks
        for (let i = 0; i < content.length; i += 100_003) yield content.subarray(i, i + 100_003)
      })(),
      { to: reader.identity.principal.did, durationMs: HOUR, name: opts.name ?? 'x.bin', download: opts.download },
    )
    await arrived([reader], space, s.object, s.manifest.chunks + 1)
    return s
  }

  before(async () => {
    await peers.init('objects')
    gw = await peers.node('gateway')
    reader = await peers.node('reader', { bootstrap: gw.addresses() })
    stranger = await peers.node('stranger', { bootstrap: gw.addresses() })
    space = await gw.createSpace('shared-folder')
    for (const r of [reader, stranger]) await r.joinSpace(space)
    await waitFor('readers to receive the genesis', async () =>
      reader.policy.document(space).hasGenesis && stranger.policy.document(space).hasGenesis ? true : undefined,
    )
    readerApi = await peers.api(reader)
    strangerApi = await peers.api(stranger)
    gwApi = await peers.api(gw)
  })

  after(async () => {
    await peers.stopAll()
  })

  it('shares a 5 MB file with R: R opens identical bytes, through the service and its API', async () => {
    big.path = join(peers.root, 'five.bin')
    await writeFile(big.path, randomBytes(5 * MB))
    big.sha256 = await sha256OfFile(big.path)
    const before = Date.now()
    const s = await gw.objects.share(space, big.path, {
      to: reader.identity.principal.did,
      durationMs: HOUR,
      name: 'five.bin',
    })
    big.object = s.object
    big.grant = s.grant
    assert.match(s.object, /^obj-[0-9a-f]{16}$/)
    assert.equal(s.manifest.size, 5 * MB)
    assert.equal(s.manifest.chunks, Math.ceil((5 * MB) / (48 * 1024)))
    assert.equal(s.manifest.sha256, big.sha256)
    assert.ok(Math.abs(s.notAfter - before - HOUR) < 60_000)
    await arrived([reader, stranger], space, s.object, s.manifest.chunks + 1)

    const opened = await reader.objects.open(space, s.object)
    assert.equal(opened.download, true)
    assert.equal(opened.grant, s.grant)
    assert.ok(opened.leaseEnd! > Date.now() && opened.leaseEnd! <= Date.now() + 15 * 60_000)
    assert.deepEqual(await sha256Of(opened), { sha256: big.sha256, size: 5 * MB })
    // an opened object can be read again
    assert.equal((await sha256Of(opened)).sha256, big.sha256)

    const res = await get(readerApi, `/v1/spaces/${space}/objects/${s.object}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/octet-stream')
    assert.equal(res.headers.get('x-edgeward-sha256'), big.sha256)
    assert.equal(decodeURIComponent(res.headers.get('x-edgeward-name')!), 'five.bin')
    const body = new Uint8Array(await res.arrayBuffer())
    assert.equal(sha256(body), big.sha256)
  })

  it('refuses a peer without a grant, which holds the same ciphertext', async () => {
    const err = await refusal(stranger.objects.open(space, big.object))
    assert.equal(err.name, 'AccessRefusedError')
    const res = await get(strangerApi, `/v1/spaces/${space}/objects/${big.object}`)
    assert.equal(res.status, 403)
    assert.equal(((await res.json()) as { error: { name: string } }).error.name, 'AccessRefusedError')
  })

  it('fails with a typed error, never wrong data, when a stored chunk is damaged or missing', async () => {
    const content = randomBytes(200_000)
    const s = await share(content)
    // flip one byte in the middle of R's stored chunk 1 (inside its ciphertext)
    const key = `${space}!${s.object}!raw!${pad(1)}`
    const stored = (await reader.store.records.get(key))!
    const flipped = new Uint8Array(stored)
    flipped[Math.floor(flipped.length / 2)] ^= 0x01
    await reader.store.records.put(key, flipped)
    const err = await refusal(reader.objects.open(space, s.object))
    assert.equal(err.name, 'ObjectIntegrityError', err.message)
    const res = await get(readerApi, `/v1/spaces/${space}/objects/${s.object}`)
    assert.equal(res.status, 422)
    assert.equal(((await res.json()) as { error: { name: string } }).error.name, 'ObjectIntegrityError')

    // put it back: the object opens again; then lose the manifest: incomplete
    await reader.store.records.put(key, stored)
    assert.equal((await sha256Of(await reader.objects.open(space, s.object))).sha256, sha256(content))
    // the last record holds the manifest (with the last, short chunk)
    const last = (await reader.data.storedReadings(space, s.object)).at(-1)!
    assert.equal(last.seq + readingsIn(last) - 1, s.manifest.chunks)
    await reader.store.records.del(`${space}!${s.object}!raw!${pad(last.seq)}`)
    const incomplete = await refusal(reader.objects.open(space, s.object))
    assert.equal(incomplete.name, 'ObjectIntegrityError')
    assert.match(incomplete.message, /incomplete/)
  })

  it('gives a view-only reader a viewer file (mode 0600), never the bytes; a revocation deletes it', async () => {
    const content = randomBytes(300_000)
    const s = await share(content, { download: false })
    const res = await get(readerApi, `/v1/spaces/${space}/objects/${s.object}`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type')!, /^application\/json/)
    const v = (await res.json()) as { viewer: string; until: string }
    assert.ok(v.viewer.startsWith(join(peers.root, 'reader', 'view', `${s.object}-`)), v.viewer)
    assert.equal((await stat(v.viewer)).mode & 0o777, 0o600)
    assert.equal(sha256(await readFile(v.viewer)), sha256(content))
    assert.ok(Date.parse(v.until) > Date.now())
    assert.equal(reader.objects.viewerCount(), 1)

    const keysBefore = reader.data.cachedKeyCount()
    await gw.policy.write(space, [
      { kind: 'revocation', record: createRevocation(gw.identity.principal, space, { grant: s.grant }, Date.now()) },
    ])
    const t0 = performance.now()
    await waitFor(
      'the viewer file to be deleted',
      async () => (existsSync(v.viewer) ? undefined : true),
      DEADLINE_MS,
      5,
    )
    console.log(`# viewer file deleted ${(performance.now() - t0).toFixed(0)} ms after the revocation was written`)
    assert.equal(reader.objects.viewerCount(), 0)
    assert.equal(reader.data.cachedKeyCount(), keysBefore - 1, "the object's key is dropped")
    assert.equal((await refusal(reader.objects.open(space, s.object))).name, 'AccessRefusedError')
    assert.equal((await get(readerApi, `/v1/spaces/${space}/objects/${s.object}`)).status, 403)
  })

  it('lists who holds or asked for access, then revokes: R is refused and its key dropped', async () => {
    await stranger.requests.file(space, {
      streams: [big.object],
      forms: ['raw'],
      durationMs: HOUR,
      reason: 'I would like to read five.bin',
    })
    await waitFor('the gateway to receive the request', async () =>
      (await gw.requests.list(space)).length > 0 ? true : undefined,
    )
    const a = await gw.objects.access(space, big.object)
    assert.deepEqual(
      a.grants.map(g => [g.id, g.subject, g.status, g.download]),
      [[big.grant, reader.identity.principal.did, 'active', true]],
    )
    assert.deepEqual(
      a.requests.map(r => [r.for, r.status]),
      [[stranger.identity.principal.did, 'pending']],
    )
    const releases = a.releases!.filter(r => r.subject === reader.identity.principal.did)
    assert.equal(releases.length, 1, 'one release: the second read used the cached key')
    assert.equal(releases[0].grant, big.grant)
    assert.ok(releases[0].leaseEnd > releases[0].at && releases[0].leaseEnd <= releases[0].at + 15 * 60_000)
    assert.equal(releases[0].endedBy, 'open')
    assert.ok(
      a.refusals!.some(r => r.subject === stranger.identity.principal.did),
      "the stranger's refused key request is listed",
    )
    // the same through the API, as JSON
    const viaApi = (await (await get(gwApi, `/v1/spaces/${space}/objects/${big.object}/access`)).json()) as any
    assert.equal(viaApi.grants[0].status, 'active')
    assert.equal(viaApi.releases[0].leaseEnd, new Date(releases[0].leaseEnd).toISOString())
    // a reader sees grants and requests, not the key holder's log
    assert.equal((await reader.objects.access(space, big.object)).releases, undefined)

    const keysBefore = reader.data.cachedKeyCount()
    const revokedAt = Date.now()
    await gw.policy.write(space, [
      { kind: 'revocation', record: createRevocation(gw.identity.principal, space, { grant: big.grant }, revokedAt) },
    ])
    await waitFor('R to drop the key', async () => (reader.data.cachedKeyCount() === keysBefore - 1 ? true : undefined))
    const err = await refusal(reader.objects.open(space, big.object))
    assert.equal(err.name, 'AccessRefusedError')
    assert.match(err.message, /revoked/)

    const later = await gw.objects.access(space, big.object)
    assert.equal(later.grants[0].status, 'revoked')
    const held = later.releases!.find(r => r.subject === reader.identity.principal.did)!
    assert.equal(held.endedBy, 'revocation')
    assert.ok(held.heldUntil >= revokedAt && held.heldUntil < held.leaseEnd)
  })

  it('shares and opens a message', async () => {
    const s = await gw.objects.share(
      space,
      (async function* () {
        yield new TextEncoder().encode('the pump on line 1 is back')
      })(),
      { to: reader.identity.principal.did, durationMs: HOUR, mediaType: 'message', forward: 'ask-owner' },
    )
    assert.equal(s.manifest.name, 'message')
    await arrived([reader], space, s.object, 2)
    const grants = (await gw.objects.access(space, s.object)).grants
    assert.deepEqual(
      grants.map(g => [g.id, g.forward, g.download]),
      [[s.grant, 'ask-owner', true]],
    )
    const res = await get(readerApi, `/v1/spaces/${space}/objects/${s.object}`)
    assert.equal(res.headers.get('x-edgeward-media-type'), 'message')
    assert.equal(await res.text(), 'the pump on line 1 is back')
  })

  it('refuses bad input with 400', async () => {
    const post = (q: string) =>
      fetch(`${gwApi.url}/v1/spaces/${space}/objects?${q}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gwApi.token}` },
        body: 'x',
      })
    assert.equal((await post('to=nobody&for=60000')).status, 400)
    assert.equal((await post(`to=${reader.identity.principal.did}`)).status, 400)
    assert.equal((await post(`to=${reader.identity.principal.did}&for=60000&forward=maybe`)).status, 400)
    assert.equal((await get(readerApi, `/v1/spaces/${space}/objects/not-an-object`)).status, 400)
    assert.equal((await get(readerApi, `/v1/spaces/${space}/objects/obj-0000000000000000`)).status, 404)
    // a reader is no key holder: it cannot share in the space
    const r = await fetch(`${readerApi.url}/v1/spaces/${space}/objects?to=${gw.identity.principal.did}&for=60000`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readerApi.token}` },
      body: 'x',
    })
    assert.equal(r.status, 403)
  })

  it('deletes a viewer file at lease end (a gateway with short leases)', async () => {
    const gw2 = await peers.node('gateway-short-leases', { leaseMaxMs: 1500 })
    await reader.libp2p.dial((await import('@multiformats/multiaddr')).multiaddr(gw2.addresses()[0]))
    const space2 = await gw2.createSpace('short')
    await reader.joinSpace(space2)
    await waitFor('R to receive the genesis', async () =>
      reader.policy.document(space2).hasGenesis ? true : undefined,
    )
    const content = randomBytes(100_000)
    const s = await gw2.objects.share(
      space2,
      (async function* () {
        yield content
      })(),
      { to: reader.identity.principal.did, durationMs: HOUR, download: false },
    )
    await arrived([reader], space2, s.object, s.manifest.chunks + 1)
    const opened: OpenedObject = await reader.objects.open(space2, s.object)
    assert.equal(opened.download, false)
    const res = await get(readerApi, `/v1/spaces/${space2}/objects/${s.object}`)
    const body = (await res.json()) as { viewer: string; until: string }
    const viewer = body.viewer
    const until = Date.parse(body.until)
    assert.equal(until, opened.leaseEnd, 'the viewer lasts as long as the lease')
    assert.ok(until <= Date.now() + 1500)
    assert.ok(existsSync(viewer))
    await waitFor('the viewer file to be deleted at lease end', async () => (existsSync(viewer) ? undefined : true))
    const late = Date.now() - until
    console.log(`# viewer file deleted ${late} ms after its lease end`)
    assert.ok(late >= 0, 'not before the lease end')
    assert.ok(late < 2000, 'soon after the lease end (it is checked every 250 ms)')
  })
})
