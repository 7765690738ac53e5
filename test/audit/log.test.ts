/**
 * A key holder's audit log with real nodes in one process (LevelDB, libp2p over TCP on
 * loopback): what goes into it when a reader reads, is refused, is granted and revoked; that
 * it survives a restart and goes on at the right index; that a key leaves only once its
 * release entry is stored; and that readers accept the heads it gossips.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { bytesEqual } from '../../crypto/encoding.ts'
import { leafHash, rootFromLeafHashes, verifyInclusion } from '../../crypto/merkle.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { pad, unwrapKey } from '../../node/store.ts'
import { decodeKeyRequest, type KeyRequest } from '../../protocols/access/messages.ts'
import {
  type GrantEntry,
  type RefusalEntry,
  type ReleaseEntry,
  type RevocationEntry,
  requestHash,
} from '../../protocols/audit/entries.ts'
import { newPrincipal } from '../protocols/fixtures.ts'
import { type LoggedEntry, logOf, seenHead, waitForEntry } from '../support/audit.ts'
import { askKeys, keyRequest } from '../support/keys.ts'
import { grantTo, HOUR, publish, revoke, STREAM } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { until, waitFor } from '../support/wait.ts'

const LEASE_MAX_MS = 15 * 60 * 1000
const OPTS = { headIntervalMs: 200 }

const isRelease = (e: LoggedEntry): e is LoggedEntry & { entry: ReleaseEntry } => e.entry.t === 'release'
const isRefusal = (e: LoggedEntry): e is LoggedEntry & { entry: RefusalEntry } => e.entry.t === 'refusal'

function within(t: number, from: number, to: number, what: string): void {
  assert.ok(t >= from && t <= to, `${what}: ${t} is not within [${from}, ${to}]`)
}

describe('the audit log of a key holder', { timeout: 60_000 }, () => {
  const s = suiteNodes('audit-log', ['gateway', 'reader', 'stranger'], { space: 'audited', start: OPTS })
  let grantAll: Awaited<ReturnType<typeof grantTo>>

  const readerDid = () => s.reader.identity.principal.did

  /** A key request for the audited stream signed by `who`, carrying its device certificate. */
  const requestOf = (who: EdgewardNode, fields: Partial<Omit<KeyRequest, 't' | 'iss'>> = {}) =>
    keyRequest(who, { space: s.space, stream: STREAM, ...fields })

  /** Send a key request to the gateway over `from`'s own libp2p connection. */
  const ask = (from: EdgewardNode, body: Uint8Array) => askKeys(from.libp2p, s.gateway.identity.peerId, body)

  const releasesCounted = () => s.gateway.metrics.total('edgeward_key_releases_total')

  before(async () => {
    await publish(s.gateway, [s.reader, s.stranger], s.space, STREAM, [20, 21, 22])
  })

  it('logs each grant and revocation it applies, once, when it applies it', async () => {
    const now = Date.now()
    const t0 = Date.now()
    grantAll = await grantTo(s.gateway, s.space, readerDid(), { nbf: now - 1000, exp: now + HOUR }, { streams: ['*'] })
    const t1 = Date.now()
    const g = await waitForEntry(s.gateway, 'the grant entry', log =>
      log.find(e => e.entry.t === 'grant' && e.entry.grant === grantAll.id),
    )
    const ge = g.entry as GrantEntry
    within(ge.ts, t0, t1, 'the grant entry time')
    assert.deepEqual(ge, {
      t: 'grant',
      ts: ge.ts,
      space: s.space,
      grant: grantAll.id,
      subject: readerDid(),
      streams: ['*'],
      nbf: grantAll.body.nbf,
      exp: grantAll.body.exp,
    })

    const ghost = newPrincipal().did
    const other = await grantTo(s.gateway, s.space, ghost, { nbf: now, exp: now + HOUR })
    const t2 = Date.now()
    const rv = await revoke(s.gateway, s.space, { grant: other.id })
    const t3 = Date.now()
    const r = await waitForEntry(s.gateway, 'the revocation entry', log =>
      log.find(e => e.entry.t === 'revocation' && e.entry.revocation === rv.id),
    )
    const re = r.entry as RevocationEntry
    within(re.ts, t2, t3, 'the revocation entry time')
    assert.deepEqual(re, { t: 'revocation', ts: re.ts, space: s.space, revocation: rv.id, target: { grant: other.id } })

    const log = await logOf(s.gateway)
    const grantOfGhost = log.filter(e => e.entry.t === 'grant' && e.entry.grant === other.id)
    assert.equal(grantOfGhost.length, 1, 'one entry per grant')
    assert.ok(grantOfGhost[0].index < r.index, 'the grant is logged before its revocation')
    assert.equal(log.filter(e => e.entry.t === 'grant' && e.entry.grant === grantAll.id).length, 1)
    assert.equal(log.filter(e => e.entry.t === 'revocation').length, 1)
    await until('the reader to know its grant', () => s.reader.policy.document(s.space).state.grants.has(grantAll.id))
  })

  it("logs a release with the reader's signed request and the lease it gave, and no key", async () => {
    const before = releasesCounted()
    const t0 = Date.now()
    const readings = await s.reader.data.read(s.space, STREAM)
    const t1 = Date.now()
    assert.deepEqual(
      readings.map(r => r.value),
      [20, 21, 22],
    )
    assert.equal(releasesCounted(), before + 1)
    const releases = (await logOf(s.gateway)).filter(isRelease)
    assert.equal(releases.length, 1, 'one release for one read')
    const { entry: e, bytes } = releases[0]
    within(e.ts, t0, t1, 'the release time')
    assert.equal(e.space, s.space)
    assert.equal(e.subject, readerDid())
    assert.equal(e.device, s.reader.identity.peerId)
    assert.equal(e.grant, grantAll.id)
    assert.equal(e.stream, STREAM)
    assert.equal(e.form, 'raw')
    assert.deepEqual(e.epochs, [0])
    assert.equal(e.renewal, false)
    assert.equal(e.leaseEnd, Math.min(grantAll.body.exp, e.ts + LEASE_MAX_MS))

    // the embedded request is the reader's own, signed, for what was released
    const { request: req, device } = decodeKeyRequest(e.request)
    assert.equal(req.issuer, readerDid())
    assert.equal(device.body.peer, s.reader.identity.peerId)
    assert.equal(device.issuer, readerDid())
    assert.equal(req.body.space, s.space)
    assert.equal(req.body.stream, STREAM)
    assert.deepEqual(req.body.epochs, e.epochs)
    assert.equal(req.body.grant, grantAll.id)
    within(req.body.ts, t0, t1, 'the request time')
    assert.ok(bytesEqual(e.reqHash, requestHash(e.request)))

    // "no payload and no key ever enters the log"
    const loc = `${s.space}!${STREAM}!raw!${pad(0)}`
    const key = unwrapKey(s.gateway.identity.storageKey, loc, (await s.gateway.store.keys.get(loc))!)
    assert.equal(Buffer.from(bytes).indexOf(Buffer.from(key)), -1, 'the data key is not in the entry')
  })

  it('gives a lease that ends with a grant that ends sooner, and marks a second release a renewal', async () => {
    const now = Date.now()
    const short = await grantTo(s.gateway, s.space, readerDid(), { nbf: now - 1000, exp: now + 5 * 60 * 1000 })
    await until('the gateway to hold the short grant', () =>
      s.gateway.policy.document(s.space).state.grants.has(short.id),
    )
    const first = requestOf(s.reader, { grant: short.id })
    const res = await ask(s.reader, first.bytes)
    assert.equal(res.ok, true, res.ok ? '' : `${res.code}: ${res.reason}`)
    if (res.ok) assert.equal(res.lease, short.body.exp)
    const second = requestOf(s.reader, { grant: short.id })
    const res2 = await ask(s.reader, second.bytes)
    assert.equal(res2.ok, true)

    const log = (await logOf(s.gateway)).filter(isRelease)
    const a = log.find(e => bytesEqual(e.entry.reqHash, requestHash(first.bytes)))
    const b = log.find(e => bytesEqual(e.entry.reqHash, requestHash(second.bytes)))
    assert.ok(a !== undefined && b !== undefined, 'both releases are in the log')
    assert.equal(a.entry.grant, short.id)
    assert.equal(a.entry.leaseEnd, short.body.exp, 'the lease ends with the grant')
    assert.ok(bytesEqual(a.entry.request, first.bytes), 'the request is logged as received')
    assert.equal(a.entry.renewal, false)
    assert.equal(b.entry.renewal, true, 'a release while the lease runs is a renewal')
    assert.equal(b.index, a.index + 1)
  })

  it('logs a refusal with its code, and releases nothing to the refused', async () => {
    const before = releasesCounted()
    await assert.rejects(s.stranger.data.read(s.space, STREAM), (err: Error & { code?: string }) => {
      assert.equal(err.name, 'AccessRefusedError')
      assert.equal(err.code, 'no-grant')
      return true
    })
    assert.equal(s.stranger.data.cachedKeyCount(), 0)
    const refusal = (await logOf(s.gateway))
      .filter(isRefusal)
      .find(e => e.entry.subject === s.stranger.identity.principal.did)
    assert.ok(refusal !== undefined, 'the refusal is in the log')
    assert.equal(refusal.entry.code, 'no-grant')
    assert.equal(refusal.entry.device, s.stranger.identity.peerId)
    assert.equal(refusal.entry.stream, STREAM)
    assert.equal(refusal.entry.space, s.space)
    assert.equal(refusal.entry.reqHash.byteLength, 32)

    // the reader's own request, sent from the stranger's connection
    const stolen = requestOf(s.reader, { grant: grantAll.id })
    const res = await ask(s.stranger, stolen.bytes)
    assert.equal(res.ok, false)
    const wrong = (await logOf(s.gateway))
      .filter(isRefusal)
      .find(e => bytesEqual(e.entry.reqHash, requestHash(stolen.bytes)))
    assert.ok(wrong !== undefined, 'the wrong-device refusal is in the log')
    assert.equal(wrong.entry.code, 'wrong-device')
    assert.equal(wrong.entry.subject, readerDid())
    assert.equal(releasesCounted(), before, 'nothing was released')
    assert.equal(
      (await logOf(s.gateway)).filter(isRelease).filter(e => e.entry.subject === s.stranger.identity.principal.did)
        .length,
      0,
    )
  })

  it("lets readers accept the gateway's heads: the latest one, with the log's own root", async () => {
    const size = s.gateway.audit!.size
    const log = await logOf(s.gateway)
    const root = rootFromLeafHashes(log.map(e => leafHash(e.bytes)))
    for (const watcher of [s.reader, s.stranger]) {
      await waitFor(`a watcher to accept a head of size ${size}`, async () =>
        (await seenHead(watcher, s.gateway.identity.peerId))?.size === size ? true : undefined,
      )
      const seen = (await seenHead(watcher, s.gateway.identity.peerId))!
      assert.equal(seen.iss, s.gateway.identity.principal.did)
      assert.ok(bytesEqual(seen.root, root), "the accepted head has the log's root")
      assert.equal(watcher.metrics.total('edgeward_audit_heads_refused_total'), 0)
      assert.deepEqual(watcher.audit!.equivocations(), [])
      assert.equal(watcher.audit!.size, 0, 'a reader keeps no log of its own')
    }
  })

  it('keeps the log across a restart: same size, every proof verifies, appends go on at the next index', async () => {
    const before = await logOf(s.gateway)
    const size = before.length
    const root = rootFromLeafHashes(before.map(e => leafHash(e.bytes)))
    await s.peers.stop(s.gateway)
    s.gateway = await s.peers.start(s.peers.dir('gateway'), OPTS)
    assert.equal(s.gateway.audit!.size, size, 'the size survives the restart')
    const head = (await s.gateway.audit!.publishHead())!
    assert.equal(head.body.size, size)
    assert.ok(bytesEqual(head.body.root, root), 'the root survives the restart')
    for (const e of before) {
      const stored = await s.gateway.audit!.entry(e.index)
      assert.ok(bytesEqual(stored, e.bytes), `entry ${e.index} is unchanged`)
      const proof = await s.gateway.audit!.inclusionProof(e.index, size)
      assert.ok(verifyInclusion(leafHash(stored), e.index, size, proof, head.body.root), `entry ${e.index} is proven`)
    }

    await until('the gateway to reconnect to the reader', () =>
      s.reader.connectedPeers().includes(s.gateway.identity.peerId),
    )
    const req = requestOf(s.reader, { grant: grantAll.id })
    const res = await ask(s.reader, req.bytes)
    assert.equal(res.ok, true, res.ok ? '' : `${res.code}: ${res.reason}`)
    assert.equal(s.gateway.audit!.size, size + 1)
    const after = await logOf(s.gateway)
    assert.equal(after[size].entry.t, 'release', 'the next entry is the release, at the old size')
    assert.ok(bytesEqual((after[size].entry as ReleaseEntry).reqHash, requestHash(req.bytes)))
    assert.deepEqual(
      after.slice(0, size).map(e => e.bytes),
      before.map(e => e.bytes),
      'nothing before it changed',
    )
    // the reader checks the grown log against the head it accepted before the restart
    await waitFor('the reader to accept a head of the grown log', async () =>
      (await seenHead(s.reader, s.gateway.identity.peerId))?.size === size + 1 ? true : undefined,
    )
    assert.deepEqual(s.reader.audit!.equivocations(), [], 'the restarted log is consistent with before')
  })

  describe('when the audit store fails', () => {
    const WIND = 'wind'
    let failedRelease: LoggedEntry & { entry: ReleaseEntry }

    it('releases no key: the read fails, nothing is counted, the log does not move', async () => {
      await publish(s.gateway, [s.reader], s.space, WIND, [3, 4])
      const store = s.gateway.store.audit as unknown as {
        batch: () => { write: () => Promise<void>; close: () => Promise<void> }
      }
      const original = store.batch
      let failedWrites = 0
      store.batch = () => {
        const b = original.call(s.gateway.store.audit)
        b.write = async () => {
          failedWrites++
          await b.close()
          throw new Error('disk failure (test)')
        }
        return b
      }
      const size = s.gateway.audit!.size
      const released = releasesCounted()
      const cached = s.reader.data.cachedKeyCount()
      try {
        await assert.rejects(s.reader.data.read(s.space, WIND), (err: Error) => {
          assert.match(err.message, /no key holder of the space answered/)
          return true
        })
        assert.equal(failedWrites, 1, 'the release entry was written, and the write failed')
        assert.equal(s.reader.data.cachedKeyCount(), cached, 'no key reached the reader')
        assert.equal(s.gateway.audit!.size, size, 'the log did not move')
        assert.equal(releasesCounted(), released, 'no release was counted')
      } finally {
        delete (store as { batch?: unknown }).batch
      }
      assert.equal(store.batch, original, 'the store is whole again')

      const readings = await s.reader.data.read(s.space, WIND)
      assert.deepEqual(
        readings.map(r => r.value),
        [3, 4],
      )
      assert.equal(s.gateway.audit!.size, size + 1)
      const e = (await logOf(s.gateway))[size]
      assert.ok(
        isRelease(e) && e.entry.stream === WIND,
        'the release is logged at the index the failed one did not take',
      )
      failedRelease = e
      const head = (await s.gateway.audit!.publishHead())!
      const proof = await s.gateway.audit!.inclusionProof(size, head.body.size)
      assert.ok(verifyInclusion(leafHash(e.bytes), size, head.body.size, proof, head.body.root))
    })

    // The key holder records the lease before the release entry is stored; when the store
    // fails, the next (first real) release of that lease is logged as a renewal.
    it('does not log the first release after a failed one as a renewal', () => {
      assert.ok(failedRelease !== undefined, 'the previous test logged the release')
      assert.equal(failedRelease.entry.renewal, false, 'no lease was ever given before this release')
    })
  })
})
