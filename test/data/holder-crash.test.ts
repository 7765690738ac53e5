/**
 * The key holder killed with SIGKILL while it releases keys and publishes, then restarted.
 * The gateway is a real `edgeward start` process; the reader is a node in this process that
 * asks for keys on `/edgeward/keys/1.0.0` again and again (so that it knows exactly what it
 * was given) while the test publishes through the gateway's API. The stream's epochs last
 * 1 s, so new epoch keys are made all along. The gateway is killed a few times, once the
 * round has seen a random number of releases and publishes, and restarted on its data
 * directory. Afterwards:
 * - the audit log is consistent: a report of the whole log verifies (every entry's inclusion
 *   proof against one signed head), its head covers every entry, `audit report` and
 *   `audit verify` succeed;
 * - every key release the reader received has its release entry in the log (same request,
 *   epochs, lease, grant): no key left the key holder without it;
 * - nothing was reused: no (form, sequence number) was given to two records, no AEAD nonce
 *   twice, each epoch has one key (every release of it gave the same key, no two epochs share
 *   one) and every record decrypts with its epoch's key;
 * - every reading the API acknowledged is stored once.
 * The seed of the kill moments is printed; EDGEWARD_CRASH_SEED repeats a run.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { fromBase64url, fromHex, toHex } from '../../crypto/encoding.ts'
import type { ApiClient } from '../../node/cli/client.ts'
import { type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { MAX_EPOCHS_PER_REQUEST } from '../../protocols/access/messages.ts'
import { decodeEntry, type ReleaseEntry, requestHash } from '../../protocols/audit/entries.ts'
import { type AuditReport, verifyReport } from '../../protocols/audit/report.ts'
import { decryptReadings, type EncryptedReading, readingsIn } from '../../protocols/data/reading.ts'
import { readingsTopic } from '../../protocols/sync/messages.ts'
import { askKeys, keyRequest, openRelease } from '../support/keys.ts'
import { initAndStart, stopPeers } from '../support/local-peers.ts'
import { HOUR, Peers, rng } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const STREAM = 'temperature'
const KILLS = 4
const NONCE_BYTES = 12

interface Release {
  reqHash: string
  epochs: number[]
  lease: number
  grant: string
  keys: { epoch: number; key: Uint8Array }[]
}

describe('the key holder killed during key releases and publishes', { timeout: 120_000 }, () => {
  const seed = Number(process.env.EDGEWARD_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31))
  const random = rng(seed)
  let root: string
  let dir: string
  const procs: LocalPeer[] = []
  let gw: LocalPeer
  const peers = new Peers()
  let reader: EdgewardNode
  let space: string
  let grantId: string
  /** values of readings the gateway's API acknowledged */
  const acked = new Set<number>()
  let nextValue = 0
  const released: Release[] = []
  /**
   * every record the reader received by gossip, by its ciphertext (a record gossiped twice counts
   * once), and at the end those it stored otherwise (fetched)
   */
  const gossiped = new Map<string, EncryptedReading>()

  const epochsSeen = () => [...new Set([...gossiped.values()].map(r => r.epoch))].sort((a, b) => a - b)

  /** One key request on the wire, as the reader's device; what it was given is recorded. */
  async function requestKeys(epochs: number[]): Promise<void> {
    const req = keyRequest(reader, { space, stream: STREAM, epochs, grant: grantId })
    const res = await askKeys(reader.libp2p, gw.info.peerId, req.bytes)
    if (!res.ok) throw new Error(`key request refused: ${res.code}: ${res.reason}`)
    const keys = await openRelease(reader, res, req.bytes)
    released.push({ reqHash: toHex(requestHash(req.bytes)), epochs, lease: res.lease, grant: res.grant, keys })
  }

  async function publish(api: ApiClient): Promise<void> {
    const values = [0, 1, 2, 3, 4].map(() => nextValue++)
    const t = Date.now()
    const body = values.map((value, i) => JSON.stringify({ ts: t + i, value })).join('\n')
    await api.call('POST', `/v1/spaces/${space}/streams/${STREAM}/readings`, body)
    for (const v of values) acked.add(v)
  }

  /** The reader connected to the (re)started gateway and in its gossip mesh. */
  async function connectReader(): Promise<void> {
    await reader.libp2p.dial(multiaddr(gw.info.addresses[0]))
    await waitFor('the reader to subscribe to the gateway’s readings', async () =>
      reader.libp2p.services.pubsub.getSubscribers(readingsTopic(space)).some(p => p.toString() === gw.info.peerId)
        ? true
        : undefined,
    )
  }

  /**
   * Publish and ask for keys, both in a loop, until `stop` says so. Errors once `ending()`
   * holds are what the kill does to calls in flight; any other error fails the test.
   */
  function activity(ending: () => boolean, counts: { published: number; released: number }): Promise<unknown> {
    const run = async (step: () => Promise<boolean>, count: 'published' | 'released') => {
      while (!ending()) {
        try {
          if (await step()) counts[count]++
        } catch (err) {
          if (ending()) return
          throw err
        }
      }
    }
    return Promise.all([
      gw.api().then(api => run(() => publish(api).then(() => true), 'published')),
      run(async () => {
        const seen = epochsSeen()
        if (seen.length === 0) {
          // nothing gossiped yet to ask a key for
          await new Promise(r => setTimeout(r, 20))
          return false
        }
        // the newest epoch, and one older one at random (a crash may come between their releases)
        const older = seen[Math.floor(random() * seen.length)]
        await requestKeys([...new Set([seen[seen.length - 1], older])])
        return true
      }, 'released'),
    ])
  }

  before(async () => {
    console.log(`# holder-crash seed ${seed} (EDGEWARD_CRASH_SEED=${seed} repeats the kill moments)`)
    root = await mkdtemp(join(tmpdir(), 'edgeward-holder-crash-'))
    dir = join(root, 'gw')
    gw = (await initAndStart('gw', dir)).peer
    procs.push(gw)
    await peers.init()
    reader = await peers.node('reader', { bootstrap: gw.info.addresses })
    const api = await gw.api()
    space = (await api.call<{ space: string }>('POST', '/v1/spaces', { name: 'plant' })).space
    await api.call('POST', `/v1/spaces/${space}/streams`, { name: STREAM, epochMs: 1000, forms: ['raw'] })
    reader.data.onReading(r => {
      if (r.stream === STREAM) gossiped.set(toHex(r.ct), r)
    })
    await reader.joinSpace(space)
    await waitFor('the reader to receive the stream', async () =>
      reader.policy.document(space).state.streams.has(STREAM) ? true : undefined,
    )
    grantId = (
      await api.call<{ grant: string }>('POST', `/v1/spaces/${space}/grants`, {
        to: reader.identity.principal.did,
        streams: [STREAM],
        until: Date.now() + HOUR,
      })
    ).grant
    await connectReader()
  })

  after(async () => {
    await peers.stopAll()
    await stopPeers(procs, root)
  })

  it('keeps its audit log whole, logs every key it released, and reuses no key, nonce or sequence number', async () => {
    for (let kill = 1; kill <= KILLS + 1; kill++) {
      let ending = false
      const counts = { published: 0, released: 0 }
      const newest = Math.max(-1, ...epochsSeen())
      const running = activity(() => ending, counts)
      // a random moment: once this round has started an epoch (made a key) and made a random
      // number of releases and publishes
      const target = 5 + Math.floor(random() * 40)
      await waitFor(
        `a new epoch and ${target} releases and publishes in round ${kill}`,
        async () =>
          Math.max(-1, ...epochsSeen()) > newest && counts.published >= target && counts.released >= target
            ? true
            : undefined,
        30_000,
        5,
      )
      if (kill > KILLS) {
        ending = true
        await running
        break
      }
      const exited = new Promise(resolve => gw.process.once('exit', resolve))
      ending = true
      gw.process.kill('SIGKILL')
      await exited
      procs.pop()
      await running
      await waitFor('the reader to see the connection end', async () =>
        reader.connectedPeers().includes(gw.info.peerId) ? undefined : true,
      )
      gw = await startPeer('gw', dir)
      procs.push(gw)
      await connectReader()
    }
    // every record: those gossip missed (stored just before a kill, or in flight at the end) the reader fetches now
    await reader.data.read(space, STREAM)
    for (const r of await reader.data.storedReadings(space, STREAM)) gossiped.set(toHex(r.ct), r)
    // the keys of every epoch, so that every record can be checked against one
    const epochs = epochsSeen()
    for (let i = 0; i < epochs.length; i += MAX_EPOCHS_PER_REQUEST)
      await requestKeys(epochs.slice(i, i + MAX_EPOCHS_PER_REQUEST))
    console.log(
      `# ${KILLS} kills: ${released.length} key releases received, ${acked.size} readings acknowledged, ${epochs.length} epochs`,
    )

    // the audit log: a report of the whole space (every entry of this key holder's log)
    const api = await gw.api()
    const report = await api.call<AuditReport>('GET', `/v1/spaces/${space}/audit/report`)
    const verified = verifyReport(report, { space })
    assert.ok(verified.ok, verified.ok ? '' : verified.failure)
    // every key the reader received has its release entry
    const releases = new Map<string, ReleaseEntry>()
    for (const e of report.entries) {
      const entry = decodeEntry(fromBase64url(e.entry))
      if (entry.t === 'release') releases.set(toHex(entry.reqHash), entry)
    }
    const unlogged = released
      .filter(r => {
        const e = releases.get(r.reqHash)
        return (
          e === undefined ||
          e.subject !== reader.identity.principal.did ||
          e.grant !== r.grant ||
          e.leaseEnd !== r.lease ||
          e.epochs.join() !== r.keys.map(k => k.epoch).join()
        )
      })
      .map(r => `request ${r.reqHash.slice(0, 16)}… for epochs ${r.epochs.join(',')}`)
    assert.deepEqual(
      unlogged,
      [],
      `every release the reader received is in the log, as it was given (${released.length})`,
    )

    const status = await api.call<{ audit: { size: number } }>('GET', '/v1/status')
    assert.equal(verified.head.size, status.audit.size, 'the signed head covers the whole log')
    assert.deepEqual(
      report.entries.map(e => e.index),
      Array.from({ length: verified.head.size }, (_, i) => i),
      'every entry of the log is in the report, with a proof that verifies',
    )
    const out = join(root, 'report.json')
    const cliReport = await gw.cli(['audit', 'report', space, '--out', out])
    assert.equal(cliReport.code, 0, cliReport.stderr)
    const cliVerify = await runCli(['audit', 'verify', out, '--space', space])
    assert.equal(cliVerify.code, 0, cliVerify.stderr)
    assert.ok(JSON.parse(await readFile(out, 'utf8')).entries.length >= verified.head.size)

    // one key per epoch, and no key for two epochs
    const keyOf = new Map<number, string>()
    for (const { keys } of released) {
      for (const { epoch, key } of keys) {
        const hex = toHex(key)
        assert.equal(keyOf.get(epoch) ?? hex, hex, `epoch ${epoch} was released under two different keys`)
        keyOf.set(epoch, hex)
      }
    }
    assert.equal(new Set(keyOf.values()).size, keyOf.size, 'no two epochs share a key')

    // every record: what the reader received by gossip, and what the key holder has stored
    const records = [...gossiped.values()].sort((a, b) => a.seq - b.seq)
    const nonces = new Set(records.map(r => toHex(r.ct.subarray(0, NONCE_BYTES))))
    assert.equal(nonces.size, records.length, 'no AEAD nonce is used twice')
    for (let i = 1; i < records.length; i++) {
      const [prev, r] = [records[i - 1], records[i]]
      assert.ok(
        prev.seq + readingsIn(prev) <= r.seq,
        `records ${prev.seq}+${readingsIn(prev)} and ${r.seq} share sequence numbers`,
      )
      assert.ok(prev.epoch <= r.epoch, `sequence ${r.seq} is in an epoch before that of ${prev.seq}`)
    }
    const values: number[] = []
    for (const r of records) {
      const key = keyOf.get(r.epoch)
      assert.ok(key !== undefined, `a key was released for epoch ${r.epoch}`)
      values.push(...decryptReadings(fromHex(key), r).map(p => p.value as number))
    }
    const stored = new Set(values)
    assert.equal(stored.size, values.length, 'no reading is stored twice')
    assert.deepEqual(
      [...acked].filter(v => !stored.has(v)),
      [],
      'every acknowledged reading is stored',
    )
  })
})
