/**
 * The audit log's index, with real nodes in one process (LevelDB on disk, libp2p over TCP on
 * loopback): the history of one object (its releases and refusals, its space's revocations)
 * read through the index is exactly what a scan of the whole log finds, in a log of several
 * spaces and streams with every kind of entry; `access` reads only those entries; an index
 * that is missing (a log written before it existed) or partial is completed at start and
 * answers the same; an index that names the wrong entry is an error, never a wrong answer.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import type { EdgewardNode } from '../../node/node.ts'
import type { IndexedEntry } from '../../node/services/audit.ts'
import { DURABLE, openStore, pad } from '../../node/store.ts'
import { type AuditEntry, requestHash } from '../../protocols/audit/entries.ts'
import { readingCount } from '../../protocols/data/reading.ts'
// deterministic: every run builds the same mix of entries
import { mulberry32 as rng } from '../../sim/random.ts'
import { newPrincipal } from '../protocols/fixtures.ts'
import { type LoggedEntry, logOf } from '../support/audit.ts'
import { grantTo, HOUR, revoke, spaceWith } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { until, waitFor } from '../support/wait.ts'

const OPTS = { headIntervalMs: 200 }
/** entries appended besides the real ones: more than one batch of the index's build at start */
const FILLER = 5000
const READ_METRIC = 'edgeward_audit_entries_read_total'
const hexId = () => Buffer.from(randomBytes(32)).toString('hex')

/** What the index must answer for (space, stream): the entries a scan of the whole log picks. */
function scanned(log: LoggedEntry[], space: string, stream: string): IndexedEntry[] {
  return log
    .filter(
      ({ entry: e }) =>
        e.space === space &&
        (e.t === 'revocation' || ((e.t === 'release' || e.t === 'refusal') && e.stream === stream)),
    )
    .map(({ index, entry }) => ({ index, entry }) as IndexedEntry)
}

async function opened(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'opened'
  } catch (err) {
    return (err as Error).name
  }
}

describe('the audit index of a key holder', { timeout: 180_000 }, () => {
  const s = suiteNodes('audit-index', ['gw', 'reader', 'stranger'], { space: 'indexed', start: OPTS })
  let other: string
  const foreign = hexId()
  const objects: { object: string; grant: string }[] = []
  const streams = () => [...objects.map(o => o.object), 'temperature', 'obj-00000000000000ff', 'never-logged']
  const spaces = () => [s.space, other, foreign]

  /** Every (space, stream) answer of the index, keyed `space/stream`. */
  const answers = async (): Promise<Map<string, IndexedEntry[]>> => {
    const out = new Map<string, IndexedEntry[]>()
    for (const sp of spaces())
      for (const st of streams()) out.set(`${sp}/${st}`, await s.gw.audit!.streamEntries(sp, st))
    return out
  }

  /** The index keys of the gateway's store (node/services/audit.ts: `is!...` and `iv!...`) and its marker. */
  const indexKeys = async (node: EdgewardNode): Promise<string[]> => {
    const keys: string[] = []
    for (const range of [
      { gt: 'is!', lt: 'is!~' },
      { gt: 'iv!', lt: 'iv!~' },
    ])
      for await (const k of node.store.audit.keys(range)) keys.push(k)
    return keys
  }

  const readsBy = (node: EdgewardNode, by: string) => node.metrics.total(READ_METRIC, `by="${by}"`)

  /** Stop the gateway, change its store with `edit`, start it again on the same data. */
  const restartWith = async (edit: (store: Awaited<ReturnType<typeof openStore>>) => Promise<void>) => {
    await s.peers.stop(s.gw)
    const store = await openStore(join(s.peers.dir('gw'), 'db'))
    try {
      await store.audit.open()
      await edit(store)
    } finally {
      await store.close()
    }
    s.gw = await s.peers.start(s.peers.dir('gw'), OPTS)
  }

  /** A mix of every kind of entry over three spaces (one this node does not hold) and several streams. */
  const filler = (random: () => number): AuditEntry => {
    const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]
    const sp = pick(spaces())
    const stream = pick(streams().slice(0, -1))
    const ts = Date.now()
    const subject = newPrincipal().did
    const request = randomBytes(48)
    switch (pick(['release', 'release', 'refusal', 'grant', 'grant', 'decision', 'decision', 'revocation'] as const)) {
      case 'release':
        return {
          t: 'release',
          ts,
          space: sp,
          subject,
          device: s.reader.identity.peerId,
          grant: hexId(),
          stream,
          form: 'raw',
          epochs: [0],
          leaseEnd: ts + 60_000,
          renewal: random() < 0.5,
          request,
          reqHash: requestHash(request),
        }
      case 'refusal':
        return {
          t: 'refusal',
          ts,
          space: sp,
          subject,
          device: s.stranger.identity.peerId,
          stream,
          form: 'raw',
          code: 'no-grant',
          reason: 'no active grant covers the request',
          reqHash: requestHash(request),
        }
      case 'grant':
        return { t: 'grant', ts, space: sp, grant: hexId(), subject, streams: [stream], nbf: ts, exp: ts + HOUR }
      case 'revocation':
        // a grant no release above was made under: the real releases' intervals stay as they are
        return { t: 'revocation', ts, space: sp, revocation: hexId(), target: { grant: hexId() } }
      case 'decision':
        return {
          t: 'decision',
          ts,
          space: sp,
          request: hexId(),
          subject,
          requester: subject,
          decidedBy: s.gw.identity.principal.did,
          streams: [stream],
          approved: false,
          reason: 'no',
        }
    }
  }

  before(async () => {
    other = await spaceWith(s.gw, [], 'other')
    for (const text of ['the first file', 'the second file']) {
      const shared = await s.gw.objects.share(
        s.space,
        (async function* () {
          yield new TextEncoder().encode(text)
        })(),
        { to: s.reader.identity.principal.did, durationMs: HOUR },
      )
      objects.push({ object: shared.object, grant: shared.grant })
    }
    for (const node of [s.reader, s.stranger]) {
      await until('the readers to hold both objects and their grants', () => {
        const state = node.policy.document(s.space).state
        return objects.every(o => state.streams.has(o.object) && state.grants.has(o.grant))
      })
      for (const { object } of objects) {
        // a chunk and the manifest
        await waitFor('the readers to store the objects', async () =>
          readingCount(await node.data.storedReadings(s.space, object)) >= 2 ? true : undefined,
        )
      }
    }
    const [a, b] = objects
    // real entries: two releases, a refusal, a revocation in each held space
    assert.equal(await opened(s.reader.objects.open(s.space, a.object)), 'opened')
    assert.equal(await opened(s.stranger.objects.open(s.space, a.object)), 'AccessRefusedError')
    assert.equal(await opened(s.reader.objects.open(s.space, b.object)), 'opened')
    await revoke(s.gw, s.space, { grant: b.grant })
    const now = Date.now()
    const g = await grantTo(s.gw, other, newPrincipal().did, { nbf: now, exp: now + HOUR })
    await revoke(s.gw, other, { grant: g.id })
    await until(
      'the revocations to be logged',
      () => s.gw.metrics.total('edgeward_audit_entries_total', 'revocation') >= 2,
    )
    const random = rng(2024)
    await Promise.all(Array.from({ length: FILLER }, () => s.gw.audit!.append(filler(random))))
  })

  it('answers for each stream exactly what a scan of the whole log answers, in log order', async () => {
    const log = await logOf(s.gw)
    assert.ok(log.length > FILLER)
    const kinds = new Set(log.map(e => e.entry.t))
    assert.deepEqual([...kinds].sort(), ['decision', 'grant', 'refusal', 'release', 'revocation'])
    const got = await answers()
    let listed = 0
    for (const sp of spaces()) {
      for (const st of streams()) {
        const expected = scanned(log, sp, st)
        assert.deepEqual(got.get(`${sp}/${st}`), expected, `${sp}/${st}`)
        listed += expected.length
      }
    }
    assert.ok(listed > 0)
    // the real ones are there: the reader's release and the stranger's refusal of the first object
    const first = got.get(`${s.space}/${objects[0].object}`)!.map(x => x.entry)
    assert.ok(first.some(e => e.t === 'release' && e.subject === s.reader.identity.principal.did))
    assert.ok(first.some(e => e.t === 'refusal' && e.subject === s.stranger.identity.principal.did))
    // a stream with no release or refusal still gets its space's revocations, and nothing else
    const none = got.get(`${s.space}/never-logged`)!
    assert.ok(none.length > 0)
    assert.ok(none.every(x => x.entry.t === 'revocation'))
  })

  it('access reads only the entries of the object and the revocations of its space', async () => {
    const log = await logOf(s.gw)
    for (const [i, { object }] of objects.entries()) {
      const expected = scanned(log, s.space, object)
      const before = s.gw.metrics.total(READ_METRIC)
      const a = await s.gw.objects.access(s.space, object)
      const read = s.gw.metrics.total(READ_METRIC) - before
      assert.equal(read, expected.length, 'one read per matching entry')
      assert.ok(read * 5 < log.length, `${read} entries read of ${log.length}`)

      const releases = expected.flatMap(({ entry: e }) =>
        e.t === 'release'
          ? [
              {
                subject: e.subject,
                device: e.device,
                grant: e.grant,
                at: e.ts,
                leaseEnd: e.leaseEnd,
                renewal: e.renewal,
              },
            ]
          : [],
      )
      assert.ok(releases.length > 1)
      assert.deepEqual(
        a.releases!.map(({ heldUntil: _h, endedBy: _e, ...r }) => r),
        releases,
      )
      const refusals = expected.flatMap(({ entry: e }) =>
        e.t === 'refusal' ? [{ subject: e.subject, device: e.device, at: e.ts, code: e.code, reason: e.reason }] : [],
      )
      assert.ok(refusals.length > 0)
      assert.deepEqual(a.refusals, refusals)
      const real = a.releases!.find(r => r.subject === s.reader.identity.principal.did)!
      // the first object's grant holds; the second's was revoked after its release
      assert.equal(real.endedBy, i === 0 ? 'open' : 'revocation')
    }
  })

  it('builds the index at start for a log written without it, and completes a partial one', async () => {
    const keys = await indexKeys(s.gw)
    const before = await answers()
    const size = s.gw.audit!.size
    assert.ok(keys.length > FILLER / 2)

    // a log written before the index existed: no index key, no marker
    await restartWith(async store => {
      for (const k of ['is!', 'iv!']) await store.audit.clear({ gt: k, lt: `${k}~` })
      await store.audit.del('index')
    })
    assert.deepEqual(await indexKeys(s.gw), keys, 'the same index keys, rebuilt')
    assert.equal(readsBy(s.gw, 'indexing'), size, 'each entry read once')
    assert.deepEqual(await answers(), before)

    // an index that covers the first half only
    const half = Math.floor(size / 2)
    await restartWith(async store => {
      const batch = store.audit.batch()
      for (const k of keys) if (Number(k.slice(-16)) >= half) batch.del(k)
      batch.put('index', encodeCanonical({ size: half }))
      await batch.write(DURABLE)
    })
    assert.deepEqual(await indexKeys(s.gw), keys)
    assert.equal(readsBy(s.gw, 'indexing'), size - half, 'only the entries the index lacked are read')
    assert.deepEqual(await answers(), before)
    const a = await s.gw.objects.access(s.space, objects[0].object)
    assert.ok(a.releases!.some(r => r.subject === s.reader.identity.principal.did))

    // appends after the start are indexed as they are written
    const n = await s.gw.audit!.append({
      t: 'refusal',
      ts: Date.now(),
      space: s.space,
      subject: newPrincipal().did,
      device: s.stranger.identity.peerId,
      stream: objects[0].object,
      form: 'raw',
      code: 'no-grant',
      reason: 'no active grant covers the request',
      reqHash: requestHash(randomBytes(8)),
    })
    const after = await s.gw.audit!.streamEntries(s.space, objects[0].object)
    assert.equal(after.at(-1)?.index, n)
    assert.deepEqual(await indexKeys(s.gw), [...keys, `is!${s.space}!${objects[0].object}!${pad(n)}`].sort())
  })

  it('refuses to answer from an index that names the wrong entry', async () => {
    const log = await logOf(s.gw)
    const grant = log.find(e => e.entry.t === 'grant' && e.entry.space === s.space)!
    await restartWith(async store => {
      await store.audit.put(`is!${s.space}!${objects[0].object}!${pad(grant.index)}`, new Uint8Array(0))
    })
    await assert.rejects(s.gw.objects.access(s.space, objects[0].object), { name: 'AuditIndexError' })
  })
})
