/**
 * The audit plane's costs, with real LevelDB on disk and real libp2p peers over TCP loopback:
 * 1. durable appends per second through a node's store: one synced write per append, and many
 *    concurrent appends sharing group-committed batches;
 * 2. inclusion and consistency proofs read from a LevelDB holding a 1M-entry tree (built
 *    directly with MerkleFrontier in the layout of node/services/audit.ts), and verification;
 * 3. the latency a reader sees on a key release from a key holder that logs the release
 *    before answering, against one that keeps no audit log, interleaved in the same run.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes } from '../crypto/hash.ts'
import {
  consistencyProofFrom,
  inclusionProofFrom,
  leafHash,
  MerkleFrontier,
  rootFrom,
  verifyConsistency,
  verifyInclusion,
} from '../crypto/merkle.ts'
import { openSealed } from '../crypto/seal.ts'
import { waitFor } from '../node/cli/local-network.ts'
import { createIdentity } from '../node/identity.ts'
import type { EdgewardNode } from '../node/node.ts'
import { request } from '../node/services/stream-io.ts'
import { openStore, pad, type Store } from '../node/store.ts'
import {
  createKeyRequest,
  decodeEpochKeys,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  MAX_KEY_RESPONSE_BYTES,
  releaseInfo,
} from '../protocols/access/messages.ts'
import { type AuditEntry, encodeEntry, type ReleaseEntry, requestHash } from '../protocols/audit/entries.ts'
import { readingCount } from '../protocols/data/reading.ts'
import { createGrant } from '../protocols/policy/records.ts'
import { rng, withPeers } from '../test/support/peers.ts'
import { type Figure, figure, percentile, round, type SuiteOptions, versus } from './harness.ts'

const STREAM = 'temperature'
const HOUR = 3600 * 1000

const progress = (line: string) => process.stderr.write(`[audit] ${line}\n`)

/** Same key layout as node/services/audit.ts. */
const nodeKey = (level: number, index: number) => `n!${pad(level)}!${pad(index)}`

/** Deterministic PRNG (mulberry32), so every run samples the same indexes and sizes. */
// ---------------------------------------------------------------------------------------------
// 1. durable appends

async function appends(quick: boolean): Promise<Figure[]> {
  const runs = quick ? 1 : 5
  const sequential = quick ? 30 : 300
  const concurrent = 1000
  return withPeers(async peers => {
    const gateway = await peers.node('append-gateway')
    const requester = await createIdentity(peers.dir('append-requester'), { now: Date.now() })
    const space = await gateway.createSpace('append-bench')
    const now = Date.now()
    const grant = createGrant(
      gateway.identity.principal,
      { space, sub: requester.principal.did, streams: [STREAM], forms: ['raw'], nbf: now, exp: now + HOUR },
      now,
    )
    // one real signed request, as a reader sends it; its bytes go into every entry
    const req = createKeyRequest(requester.principal, {
      space,
      stream: STREAM,
      form: 'raw',
      epochs: [0],
      grant: grant.id,
      device: requester.device.bytes,
      nonce: randomBytes(16),
      ts: now,
    })
    const reqHash = requestHash(req.bytes)
    const entry = (): ReleaseEntry => ({
      t: 'release',
      ts: Date.now(),
      space,
      subject: requester.principal.did,
      device: requester.device.body.peer,
      grant: grant.id,
      stream: STREAM,
      form: 'raw',
      epochs: [0],
      leaseEnd: now + 15 * 60 * 1000,
      renewal: true,
      request: req.bytes,
      reqHash,
    })
    const audit = gateway.audit!
    // warm up: open files, JIT
    for (let i = 0; i < 10; i++) await audit.append(entry())
    await Promise.all(Array.from({ length: 100 }, () => audit.append(entry())))

    const seqRates: number[] = []
    const grpRates: number[] = []
    const seqLatencies: number[] = []
    for (let run = 0; run < runs; run++) {
      let t0 = performance.now()
      for (let i = 0; i < sequential; i++) {
        const t = performance.now()
        await audit.append(entry())
        seqLatencies.push(performance.now() - t)
      }
      seqRates.push(sequential / ((performance.now() - t0) / 1000))

      const before = audit.size
      t0 = performance.now()
      const indexes = await Promise.all(Array.from({ length: concurrent }, () => audit.append(entry())))
      grpRates.push(concurrent / ((performance.now() - t0) / 1000))
      if (audit.size !== before + concurrent || new Set(indexes).size !== concurrent) {
        throw new Error('concurrent appends did not each get their own index')
      }
    }
    const entryBytes = (await audit.entry(audit.size - 1)).byteLength
    // CPU spent per append before any I/O: validating and encoding the entry (append does it)
    const encodeTimes: number[] = []
    for (let i = 0; i < 300; i++) {
      const e = entry()
      const t = performance.now()
      encodeEntry(e)
      encodeTimes.push((performance.now() - t) * 1000)
    }
    const encodeUs = round(percentile(encodeTimes.slice(50), 50), 1)
    progress(`appends: ${audit.size} entries of ${entryBytes} bytes in the log`)
    return [
      figure('audit append, sequential (synced each)', 'entries/s', seqRates, {
        note:
          `${sequential} appends awaited one by one per run, release entries of ${entryBytes} bytes; ` +
          `latency per append median ${round(percentile(seqLatencies, 50), 2)} ms, ` +
          `p99 ${round(percentile(seqLatencies, 99), 2)} ms`,
      }),
      figure(`audit append, ${concurrent} concurrent (group commit)`, 'entries/s', grpRates, {
        note:
          `${concurrent} appends issued at once per run; they share synced batches (group commit); ` +
          `encodeEntry (validation + canonical CBOR, on the event loop) alone takes ${encodeUs} µs per entry`,
      }),
    ]
  })
}

// ---------------------------------------------------------------------------------------------
// 2. proofs from a LevelDB holding a large tree

async function proofs(quick: boolean): Promise<Figure[]> {
  const size = quick ? 10_000 : 1_000_000
  const label = quick ? '10k' : '1M'
  const samples = quick ? 50 : 200
  const verifyRepeats = 10
  const batchSize = 10_000
  const root = await mkdtemp(join(tmpdir(), 'edgeward-bench-tree-'))
  const path = join(root, 'db')
  let store: Store | undefined
  try {
    store = await openStore(path)
    // a sublevel finishes opening after its database: a chained batch needs it open
    await store.audit.open()
    // leaf hashes of distinct small entries: the tree's shape and the stored nodes are what
    // proofs read; entries themselves are not stored here
    const leafOf = (i: number) => {
      const b = new Uint8Array(8)
      new DataView(b.buffer).setFloat64(0, i)
      return leafHash(b)
    }
    let frontier = MerkleFrontier.empty()
    let nodes = 0
    const t0 = performance.now()
    for (let start = 0; start < size; start += batchSize) {
      const batch = store.audit.batch()
      for (let i = start; i < Math.min(size, start + batchSize); i++) {
        const next = frontier.append(leafOf(i))
        for (const n of next.completed) batch.put(nodeKey(n.level, n.index), n.hash)
        nodes += next.completed.length
        frontier = next.frontier
      }
      await batch.write()
      if (frontier.size % 100_000 === 0 || frontier.size === size) {
        progress(
          `tree: ${frontier.size}/${size} leaves, ${nodes} nodes stored (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
        )
      }
    }
    const buildSeconds = (performance.now() - t0) / 1000
    progress(`tree of ${size} leaves built in ${buildSeconds.toFixed(1)} s`)
    // reopen, as a node would find its log after a restart: nothing left in the memtable
    await store.close()
    store = await openStore(path)
    const audit = store.audit
    await audit.open()
    const readNode = async (level: number, index: number): Promise<Uint8Array> => {
      const v = await audit.get(nodeKey(level, index))
      if (v === undefined) throw new Error(`no subtree ${level}/${index}`)
      return v
    }
    const treeRoot = frontier.root()
    const storedRoot = await rootFrom(readNode, size)
    if (Buffer.compare(storedRoot, treeRoot) !== 0) throw new Error('stored tree does not give the frontier root')

    const random = rng(9162)
    const pick = () => Math.floor(random() * size)
    for (let i = 0; i < 20; i++) await inclusionProofFrom(readNode, pick(), size)

    const incTimes: number[] = []
    const incProofs: { index: number; proof: Uint8Array[] }[] = []
    for (let i = 0; i < samples; i++) {
      const index = pick()
      const t = performance.now()
      const proof = await inclusionProofFrom(readNode, index, size)
      incTimes.push((performance.now() - t) * 1000)
      incProofs.push({ index, proof })
    }

    const verifyTimes: number[] = []
    for (const { index, proof } of incProofs) {
      const leaf = leafOf(index)
      for (let k = 0; k < verifyRepeats; k++) {
        const t = performance.now()
        const ok = verifyInclusion(leaf, index, size, proof, treeRoot)
        verifyTimes.push((performance.now() - t) * 1000)
        if (!ok) throw new Error(`inclusion proof of ${index} does not verify`)
      }
    }

    const consTimes: number[] = []
    const consProofs: { oldSize: number; proof: Uint8Array[] }[] = []
    for (let i = 0; i < samples; i++) {
      const oldSize = 1 + Math.floor(random() * (size - 1))
      const t = performance.now()
      const proof = await consistencyProofFrom(readNode, oldSize, size)
      consTimes.push((performance.now() - t) * 1000)
      consProofs.push({ oldSize, proof })
    }
    // check a few consistency proofs against old roots read from the same store (untimed)
    for (const { oldSize, proof } of consProofs.slice(0, 20)) {
      if (!verifyConsistency(oldSize, size, await rootFrom(readNode, oldSize), treeRoot, proof)) {
        throw new Error(`consistency proof from ${oldSize} does not verify`)
      }
    }

    const p = (xs: number[]) => `median ${round(percentile(xs, 50), 1)} µs, p99 ${round(percentile(xs, 99), 1)} µs`
    const build = `tree of ${size} leaves (${nodes} stored nodes) built in ${buildSeconds.toFixed(1)} s`
    return [
      figure(`inclusion proof from LevelDB at ${label} entries`, 'µs', incTimes, {
        note:
          `${samples} random leaves, inclusionProofFrom with one LevelDB get per subtree read ` +
          `(${incProofs[0].proof.length}-hash proofs); ${p(incTimes)}; ${build}; database reopened before measuring`,
      }),
      figure(`inclusion proof verification at ${label} entries`, 'µs', verifyTimes, {
        note: `verifyInclusion of the ${samples} proofs, ${verifyRepeats} times each; ${p(verifyTimes)}`,
      }),
      figure(`consistency proof from LevelDB at ${label} entries`, 'µs', consTimes, {
        note: `${samples} random old sizes up to ${size}, consistencyProofFrom; ${p(consTimes)}`,
      }),
    ]
  } finally {
    await store?.close()
    await rm(root, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// 3. key release round trip, with and without the audit log

interface Holder {
  gateway: EdgewardNode
  space: string
  grant: string
  latencies: number[]
}

async function keyRelease(quick: boolean): Promise<Figure[]> {
  const requests = quick ? 30 : 300
  const warmup = quick ? 5 : 20
  return withPeers(async peers => {
    const audited = await peers.node('gateway-audit')
    const plain = await peers.node('gateway-no-audit', { audit: false })
    const reader = await peers.node('reader', { bootstrap: [...audited.addresses(), ...plain.addresses()] })
    await waitFor('the reader to connect to both gateways', async () => {
      const connected = reader.connectedPeers()
      return connected.includes(audited.identity.peerId) && connected.includes(plain.identity.peerId) ? true : undefined
    })

    const setUp = async (gateway: EdgewardNode, name: string): Promise<Holder> => {
      const space = await gateway.createSpace(name)
      await reader.joinSpace(space)
      const t = Date.now()
      await gateway.data.publish(
        space,
        STREAM,
        [20.5, 20.7, 20.6, 20.9, 21.0].map((value, i) => ({ ts: t + i, value })),
      )
      const { record: g } = await gateway.policy.grant(space, {
        sub: reader.identity.principal.did,
        streams: [STREAM],
        forms: ['raw'],
        nbf: t - HOUR,
        exp: t + HOUR,
      })
      await waitFor(`the reader to receive space ${name}, its grant and readings`, async () => {
        const doc = reader.policy.document(space)
        if (!doc.hasGenesis || !doc.state.grants.has(g.id) || !doc.state.streams.has(STREAM)) return undefined
        return readingCount(await reader.data.storedReadings(space, STREAM)) === 5 ? true : undefined
      })
      // one read through the reader's own path (DataService.read asks the key holder)
      const read = await reader.data.read(space, STREAM)
      if (read.length !== 5) throw new Error(`reader decrypted ${read.length} of 5 readings`)
      return { gateway, space, grant: g.id, latencies: [] }
    }
    const withAudit = await setUp(audited, 'bench-audited')
    const withoutAudit = await setUp(plain, 'bench-not-audited')
    const auditLog = audited.audit!
    const logBefore = auditLog.size
    // how long the key holder waits on AuditService.append for each release it logs
    const appendTimes: number[] = []
    const append = auditLog.append.bind(auditLog)
    auditLog.append = async (e: AuditEntry) => {
      const t = performance.now()
      const index = await append(e)
      appendTimes.push(performance.now() - t)
      return index
    }

    const me = reader.identity
    // DataService.requestKeys, one holder: a fresh signed request each time, one stream each
    const ask = async (h: Holder): Promise<number> => {
      const t = performance.now()
      const req = createKeyRequest(me.principal, {
        space: h.space,
        stream: STREAM,
        form: 'raw',
        epochs: [0],
        grant: h.grant,
        device: me.device.bytes,
        nonce: randomBytes(16),
        ts: Date.now(),
      })
      const raw = await request(
        reader.libp2p,
        peerIdFromString(h.gateway.identity.peerId),
        KEYS_PROTOCOL,
        req.bytes,
        MAX_KEY_RESPONSE_BYTES,
      )
      const res = decodeKeyResponse(raw)
      const elapsed = performance.now() - t
      if (!res.ok) throw new Error(`key request refused: ${res.code}: ${res.reason}`)
      // untimed: the keys really open for this device
      const keys = decodeEpochKeys(await openSealed(me.sealing.secretKey, res.sealed, releaseInfo(req.bytes)))
      if (keys.length !== 1 || keys[0].epoch !== 0) throw new Error('unexpected key bundle')
      return elapsed
    }

    for (let i = 0; i < warmup + requests; i++) {
      // alternate which gateway goes first, so neither always follows the other
      const order = i % 2 === 0 ? [withAudit, withoutAudit] : [withoutAudit, withAudit]
      for (const h of order) {
        const ms = await ask(h)
        if (i >= warmup) h.latencies.push(ms)
      }
    }
    const logged = auditLog.size - logBefore
    if (logged < warmup + requests) throw new Error(`only ${logged} releases reached the audit log`)

    const a = withAudit.latencies
    const b = withoutAudit.latencies
    const med = (xs: number[]) => percentile(xs, 50)
    const f = versus('key release round trip with audit log', 'ms', a, 'key release round trip without audit log', b)
    f.note =
      `${requests} requests per gateway, interleaved, after ${warmup} warm-up each; reader-side time from ` +
      `createKeyRequest to decodeKeyResponse over TCP loopback, 3 nodes in one process; ` +
      `with audit: median ${round(med(a), 2)} ms, p99 ${round(percentile(a, 99), 2)} ms; ` +
      `without: median ${round(med(b), 2)} ms, p99 ${round(percentile(b, 99), 2)} ms; ` +
      `added by the audit log: ${round(med(a) - med(b), 2)} ms between the medians, ` +
      `${round(med(a.map((x, i) => x - b[i])), 2)} ms median of the paired differences; ` +
      `the audited key holder waited on AuditService.append a median ${round(med(appendTimes), 2)} ms ` +
      `(p99 ${round(percentile(appendTimes, 99), 2)} ms)`
    progress(f.note)
    return [f]
  })
}

export default async function audit(opts: SuiteOptions): Promise<Figure[]> {
  const out: Figure[] = []
  progress('durable appends ...')
  out.push(...(await appends(opts.quick)))
  progress('proofs from a stored tree ...')
  out.push(...(await proofs(opts.quick)))
  progress('key release round trip ...')
  out.push(...(await keyRelease(opts.quick)))
  return out
}
