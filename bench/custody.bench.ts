/**
 * Custody, each figure beside its baseline from the same run, between real nodes in one
 * process over TCP loopback:
 * - a key release's round trip from k = 2 of 3 and from k = 3 of 5 custodians (the request to
 *   all of them at once, k shares verified and combined), against the same release from the
 *   key holder, and the key holder's against a bare echo on the same connection (the floor);
 * - releases per second, one at a time (2 of 3, 3 of 5) and with several in flight (2 of 3),
 *   custodians against the key holder;
 * - what dealing costs the key holder: a new data key (a new stream's first reading, its key
 *   split k-of-n and the deal in the same synced batch) and a shared file, each against the
 *   same in a space without custodians; and how long until all custodians acknowledged a deal;
 * - how long after the owner's node dies a reader first reads a stream whose keys it does not
 *   hold yet, through the custodians.
 */

import { randomBytes } from '../crypto/hash.ts'
import type { EdgewardNode } from '../node/node.ts'
import { handle, request } from '../node/services/stream-io.ts'
import { policyTopic, readingsTopic } from '../protocols/sync/messages.ts'
import { type Custody, custodySuiteIn } from '../test/support/custody.ts'
import { askKeys, keyRequest, openRelease } from '../test/support/keys.ts'
import { grantTo, HOUR, joinSpace, type Peers, publish, STREAM, withPeers } from '../test/support/peers.ts'
import { waitFor } from '../test/support/wait.ts'
import { type Figure, figure, percentile, type SuiteOptions, summarize, versus } from './harness.ts'

/** a trivial request/response protocol: the answer is the request */
const ECHO_PROTOCOL = '/edgeward-bench/echo/1.0.0'
const ECHO_MAX_BYTES = 64 * 1024
/** the streams whose keys the reader first asks for after the owner died */
const AFTER_KILL = 'after-kill-'
const MiB = 1024 * 1024

const p99 = (samples: number[]) => `p99 ${Math.round(percentile(samples, 99))} ms`

export default async function custody(opts: SuiteOptions): Promise<Figure[]> {
  const q = opts.quick
  const rounds = q ? 2 : 150
  const deals = q ? 1 : 30
  /** throughput: batches of each kind, and releases per batch */
  const batches = q ? 1 : 6
  const perBatch = q ? 4 : 40
  const inFlight = 8
  const files = q ? 1 : 12
  const fileBytes = q ? 64 * 1024 : MiB
  const kills = q ? 1 : 5
  return withPeers(async peers => {
    const s = await custodySuiteIn(peers)
    const wide = await custodySuiteIn(peers, {}, {}, { n: 5, k: 3, prefix: 'wide-' })
    const now = Date.now()
    const window = { nbf: now - 1000, exp: now + HOUR }
    const streams = [STREAM, `${AFTER_KILL}*`]
    const g = await grantTo(s.owner, s.space, s.reader.identity.principal.did, window, { streams })
    const gw = await grantTo(wide.owner, wide.space, wide.reader.identity.principal.did, window)
    await waitFor('everyone to know the grants', async () =>
      [s.reader, ...s.custodians].every(n => n.policy.document(s.space).state.grants.has(g.id)) &&
      [wide.reader, ...wide.custodians].every(n => n.policy.document(wide.space).state.grants.has(gw.id))
        ? true
        : undefined,
    )
    // the baseline of dealing: a space with the same members and no custodian set
    const plain = await s.owner.createSpace('no-custodians')
    await joinSpace([s.reader, ...s.custodians], plain)

    // dealing one new data key: a new stream's first reading, in the space with custodians and
    // in one without; then how long until every custodian acknowledged the deal
    const dealing: number[] = []
    const noDealing: number[] = []
    const acked: number[] = []
    // which space goes first turns each time
    const withoutCustodians = async (i: number) => {
      const t = performance.now()
      await s.owner.data.publish(plain, `epoch-${i}`, [{ ts: Date.now(), value: i }])
      noDealing.push(performance.now() - t)
    }
    for (let i = 0; i < deals; i++) {
      if (i % 2 === 0) await withoutCustodians(i)
      const t = performance.now()
      await s.owner.data.publish(s.space, `epoch-${i}`, [{ ts: Date.now(), value: i }])
      dealing.push(performance.now() - t)
      await allAcknowledged(s.owner)
      acked.push(performance.now() - t)
      if (i % 2 === 1) await withoutCustodians(i)
    }

    // dealing a file's key: the same file shared in both spaces, which first turning each time
    const file = randomBytes(fileBytes)
    const shareTime = async (space: string, i: number) => {
      const t = performance.now()
      await s.owner.objects.share(space, chunksOf(file), {
        to: s.reader.identity.principal.did,
        durationMs: HOUR,
        name: `bench-${i}`,
      })
      const took = performance.now() - t
      await allAcknowledged(s.owner)
      return took
    }
    const fileDealt: number[] = []
    const fileNotDealt: number[] = []
    for (let i = 0; i < files; i++) {
      if (i % 2 === 0) fileNotDealt.push(await shareTime(plain, i))
      fileDealt.push(await shareTime(s.space, i))
      if (i % 2 === 1) fileNotDealt.push(await shareTime(plain, i))
    }

    await s.owner.data.publish(s.space, STREAM, [{ ts: Date.now(), value: 1 }])
    await wide.owner.data.publish(wide.space, STREAM, [{ ts: Date.now(), value: 1 }])
    await allAcknowledged(s.owner)
    await allAcknowledged(wide.owner)

    // one release each way, the echo first; the order turns each round
    await handle(
      s.owner.libp2p,
      ECHO_PROTOCOL,
      ECHO_MAX_BYTES,
      ECHO_MAX_BYTES,
      async body => body,
      () => {},
    )
    const echoBody = keyRequest(s.reader, { space: s.space, stream: STREAM, grant: g.id }).bytes
    const ownerPeer = s.owner.libp2p.peerId
    const echo = async () => {
      await request(s.reader.libp2p, ownerPeer, ECHO_PROTOCOL, echoBody, ECHO_MAX_BYTES)
    }
    const fromHolder = async () => {
      const req = keyRequest(s.reader, { space: s.space, stream: STREAM, grant: g.id })
      const res = await askKeys(s.reader.libp2p, s.owner.identity.peerId, req.bytes)
      if (!res.ok) throw new Error(`the key holder refused: ${res.reason}`)
      await openRelease(s.reader, res, req.bytes)
    }
    const fromCustodians = (c: Custody, grant: string) => async () => {
      const got = await c.reader.custody.reader.keys(c.space, STREAM, 'raw', [0], grant)
      if (got.keys.get(0) === undefined) throw new Error('the custodians gave no key')
    }
    const ways = { echo, holder: fromHolder, two: fromCustodians(s, g.id), three: fromCustodians(wide, gw.id) }
    const times = { echo: [] as number[], holder: [] as number[], two: [] as number[], three: [] as number[] }
    const order = Object.keys(ways) as (keyof typeof ways)[]
    for (let i = 0; i < rounds; i++) {
      for (let j = 0; j < order.length; j++) {
        const way = order[(i + j) % order.length]
        const t = performance.now()
        await ways[way]()
        times[way].push(performance.now() - t)
      }
    }

    // releases per second, one at a time and `inFlight` at once, custodians and key holder in turn
    const rate = async (release: () => Promise<void>, concurrency: number) => {
      let next = 0
      const t = performance.now()
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next++ < perBatch) await release()
        }),
      )
      return perBatch / ((performance.now() - t) / 1000)
    }
    const rates = {
      holder1: [] as number[],
      two1: [] as number[],
      three1: [] as number[],
      holderN: [] as number[],
      twoN: [] as number[],
    }
    for (let i = 0; i < batches; i++) {
      rates.holder1.push(await rate(fromHolder, 1))
      rates.two1.push(await rate(ways.two, 1))
      rates.three1.push(await rate(ways.three, 1))
      rates.holderN.push(await rate(fromHolder, inFlight))
      rates.twoN.push(await rate(ways.two, inFlight))
    }

    const afterKill = await readsAfterKill(peers, s, kills)

    const loopback = 'on loopback, each custodian logging its release (synced) before its share leaves'
    const roundsNote = `${rounds} rounds of echo, key holder, 2 of 3, 3 of 5 in turn`
    const rateNote = (n: number) =>
      `${batches} batches of ${perBatch} releases, ${n} in flight from one reader; custodians and the key holder decide one request of a subject at a time`
    const extra = (a: number[], b: number[]) => Math.round(summarize(a).median - summarize(b).median)
    return [
      {
        ...versus('key release from 2 of 3 custodians', 'ms', times.two, 'from the key holder', times.holder),
        note: `${p99(times.two)} (key holder ${p99(times.holder)}); ${roundsNote}; ${loopback}`,
      },
      {
        ...versus('key release from 3 of 5 custodians', 'ms', times.three, 'from the key holder', times.holder),
        note: `${p99(times.three)}; another reader, owner and 5 custodians in the same process; ${roundsNote}`,
      },
      {
        ...versus(
          'key release from the key holder',
          'ms',
          times.holder,
          'bare echo on the same connection',
          times.echo,
        ),
        note: `echo ${p99(times.echo)}: the same framing and request size, answered at once; ${roundsNote}`,
      },
      {
        ...versus(
          'key releases per second from 2 of 3 custodians, one at a time',
          '/s',
          rates.two1,
          'from the key holder',
          rates.holder1,
        ),
        note: rateNote(1),
      },
      {
        ...versus(
          'key releases per second from 3 of 5 custodians, one at a time',
          '/s',
          rates.three1,
          'from the key holder',
          rates.holder1,
        ),
        note: rateNote(1),
      },
      {
        ...versus(
          `key releases per second from 2 of 3 custodians, ${inFlight} in flight`,
          '/s',
          rates.twoN,
          'from the key holder',
          rates.holderN,
        ),
        note: rateNote(inFlight),
      },
      {
        ...versus(
          'new data key dealt to 2 of 3 custodians (publish opening a stream)',
          'ms',
          dealing,
          'in a space with the same members, no custodians',
          noDealing,
        ),
        note: `dealing adds ${extra(dealing, noDealing)} ms (median); ${p99(dealing)}; ${deals} new streams each, the stream record and the key's synced batch included (the deal leaves once publish returned)`,
      },
      {
        ...versus(
          `file of ${fileBytes / 1024} KiB shared, its key dealt to 2 of 3 custodians`,
          'ms',
          fileDealt,
          'in a space with the same members, no custodians',
          fileNotDealt,
        ),
        note: `dealing adds ${extra(fileDealt, fileNotDealt)} ms (median); ${files} files each, with its grant to the reader; every node runs in this one process, so the custodians taking and checking the deal (and passing it on to each other) while the file's chunks are sealed share its CPU`,
      },
      {
        ...figure('deal acknowledged by all 3 custodians, after a new key', 'ms', acked),
        note: `${p99(acked)} over ${deals} new streams (publish, deal, three acknowledgements)`,
      },
      {
        ...figure("owner's node killed: until the reader's first read through 2 of 3 custodians", 'ms', afterKill.took),
        note: `${kills} kills (${afterKill.failures.join(', ')} failed reads before the first that returned); a kill, as kill -9 would: the owner's connections aborted with nothing sent first, no new one made or taken, its listeners and transports removed (the OS then refuses dials to its port), and the owner restarts between kills; to the first data.read returning readings of a stream whose keys the reader did not hold`,
      },
    ]
  })
}

/** Wait until every custodian acknowledged every deal `owner` made. */
async function allAcknowledged(owner: EdgewardNode): Promise<void> {
  await waitFor(
    'every custodian to acknowledge',
    async () => ((await owner.custody.status()).unacknowledged === 0 ? true : undefined),
    30_000,
    2,
  )
}

async function* chunksOf(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += 64 * 1024) yield bytes.subarray(i, i + 64 * 1024)
}

/**
 * Each time: the owner publishes a new stream the reader stores but holds no keys of, then its
 * node dies (its connections aborted, its listeners and transports removed, with nothing sent
 * first); the time until the reader's first read of that stream returns. The owner then
 * restarts on its data and the reader reconnects to it. `s.owner` is the last one started.
 */
async function readsAfterKill(
  peers: Peers,
  s: Custody,
  kills: number,
): Promise<{ took: number[]; failures: number[] }> {
  const took: number[] = []
  /** reads that failed before the first that returned, per kill */
  const failures: number[] = []
  for (let i = 0; i < kills; i++) {
    const stream = `${AFTER_KILL}${i}`
    await publish(s.owner, [s.reader], s.space, stream, [i])
    await allAcknowledged(s.owner)
    const killed = s.owner
    const combined = s.reader.metrics.total('edgeward_custody_keys_combined_total')
    const t = performance.now()
    kill(killed)
    await (killed.libp2p as unknown as Internals).components.transportManager.removeAll()
    const failed: string[] = []
    for (;;) {
      // until the reader turns to the custodians, a read fails for want of the owner: counted, then again
      const read = await s.reader.data.read(s.space, stream).catch((err: Error) => {
        failed.push(`${err.name}: ${err.message}`)
        return []
      })
      if (read.length > 0) break
      if (performance.now() - t > 60_000) throw new Error(`no read a minute after the kill: ${failed.at(-1)}`)
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    took.push(performance.now() - t)
    failures.push(failed.length)
    if (s.reader.metrics.total('edgeward_custody_keys_combined_total') === combined)
      throw new Error('the read after the kill took no key from the custodians')
    await peers.stop(killed)
    if (i === kills - 1) break
    s.owner = await peers.start(peers.dir('owner'))
    // connected is not enough: readings published before the owner knows the reader subscribes
    // to the space's topics do not reach it by gossip (it would fetch them later)
    const owner = s.owner
    await waitFor('the owner to see the reader subscribe to the space again', async () =>
      [policyTopic(s.space), readingsTopic(s.space)].every(topic =>
        owner.libp2p.services.pubsub.getSubscribers(topic).some(p => p.toString() === s.reader.identity.peerId),
      )
        ? true
        : undefined,
    )
  }
  return { took, failures }
}

/** What a kill reaches of libp2p beyond its public interface: where it keeps its gater and transports. */
interface Internals {
  components: {
    connectionGater: Record<'denyDialPeer' | 'denyDialMultiaddr' | 'denyInboundConnection', () => Promise<boolean>>
    transportManager: { removeAll(): Promise<void> }
  }
}

/**
 * Kill a node as kill -9 would, as far as its peers can tell: from now on it makes and takes
 * no connection (its own redials included), and every connection it has is aborted, nothing
 * sent first. The caller then removes its listeners and transports, so the OS refuses dials.
 */
function kill(node: EdgewardNode): void {
  const gater = (node.libp2p as unknown as Internals).components.connectionGater
  const deny = async () => true
  gater.denyDialPeer = deny
  gater.denyDialMultiaddr = deny
  gater.denyInboundConnection = deny
  // a dial already under way when it died
  node.libp2p.addEventListener('connection:open', evt => evt.detail.abort(new Error('killed')))
  for (const c of node.libp2p.getConnections()) c.abort(new Error('killed'))
}
