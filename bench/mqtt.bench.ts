/**
 * MQTT into the gateway, through its embedded broker (credentials, and the broker's own
 * ingestion, which stores a message before it sends the PUBACK).
 *
 * Each is measured on the gateway's path (PUBACK once stored) and, in the same run, on the
 * earlier path: the broker acknowledges on receipt, and an ingestion subscribed to it
 * as a client stores afterwards (what a SIGKILL could lose). Both are composed here from the
 * product's parts; no option of the product keeps the old path.
 *
 * Latency: a sensor publishes readings at a fixed rate (QoS 1); the gateway ingests, encrypts,
 * stores durably and gossips them. Measured from the sensor's publish (the reading's own `ts`)
 * to the gossip publish of its encrypted reading, at 1 000 and 10 000 readings per second,
 * with the rate actually achieved.
 *
 * Throughput: devices publish as fast as their PUBACKs let them (QoS 1, a window of messages
 * in flight each) until every reading is acknowledged and stored, in alternating rounds.
 */
import mqtt from 'mqtt'
import type { EdgewardNode } from '../node/node.ts'
import { EmbeddedBroker, MqttIngest, newMqttCredentials } from '../node/services/mqtt.ts'
import { Peers } from '../test/support/peers.ts'
import { type Figure, figure, percentile, round, type SuiteOptions, summarize, versus } from './harness.ts'

const progress = (m: string) => process.stderr.write(`[bench:mqtt] ${m}\n`)

const credentials = newMqttCredentials()

/** Latencies from publish to gossip of `seconds` of readings at `rate`, into stream `stream`, and the rate achieved. */
async function atRate(
  gw: EdgewardNode,
  space: string,
  url: string,
  stream: string,
  rate: number,
  seconds: number,
): Promise<{ latencies: number[]; achieved: number; note: string }> {
  const latencies: number[] = []
  const off = gw.data.onReading(r => {
    if (r.stream !== stream || r.form !== 'raw') return
    const at = Date.now()
    void gw.data.decryptAll(space, stream, [r]).then(ds => {
      for (const d of ds) latencies.push(at - d.ts)
    })
  })
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, ...credentials })
  const total = rate * seconds
  const t0 = performance.now()
  let sent = 0
  // publish in 10 ms ticks, as many as the rate asks for by then
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1)
    const tick: Promise<unknown>[] = []
    for (; sent < due; sent++)
      tick.push(client.publishAsync(`bench/${stream}`, JSON.stringify({ ts: Date.now(), value: sent }), { qos: 1 }))
    await Promise.all(tick)
    await new Promise(r => setTimeout(r, 10))
  }
  const sendSeconds = (performance.now() - t0) / 1000
  const deadline = Date.now() + 60_000
  while (latencies.length < total && Date.now() < deadline) await new Promise(r => setTimeout(r, 50))
  const doneSeconds = (performance.now() - t0) / 1000
  off()
  await client.endAsync()
  const achieved = latencies.length / doneSeconds
  const note = `p50 ${round(percentile(latencies, 50))} ms, p99 ${round(percentile(latencies, 99))} ms; ${latencies.length} of ${total} readings through in ${round(doneSeconds, 1)} s (sent in ${round(sendSeconds, 1)} s): ${round(achieved, 0)} readings/s achieved`
  return { latencies, achieved, note }
}

/** The gateway's path against the earlier path at one rate, one after the other. */
async function latencyAtRate(
  gw: EdgewardNode,
  space: string,
  urls: Urls,
  rate: number,
  quick: boolean,
): Promise<Figure[]> {
  const seconds = quick ? 2 : 5
  const stored = await atRate(gw, space, urls.durable, `rate-${rate}`, rate, seconds)
  const received = await atRate(gw, space, urls.early, `rate-${rate}-early`, rate, seconds)
  const f = versus(
    `MQTT to gossip latency at ${rate} readings/s`,
    'ms',
    stored.latencies,
    'PUBACK on receipt, stored by a subscribed ingestion (the earlier embedded path)',
    received.latencies,
  )
  f.note = `PUBACK once stored (the gateway): ${stored.note}. The earlier path: ${received.note}`
  progress(f.note)
  return [f, figure(`MQTT to gossip throughput asked ${rate}/s`, 'readings/s', [stored.achieved])]
}

/** The embedded broker as the gateway runs it, and the earlier path, on two ports. */
interface Urls {
  durable: string
  early: string
}

/** devices publishing at once, and the QoS 1 messages each keeps in flight */
const DEVICES = 4
const WINDOW = 100

/**
 * `count` readings from DEVICES devices (each its own stream, `PREFIX-dN`), each keeping
 * WINDOW unacknowledged; readings per second until all are acknowledged and `stored()` has
 * grown by `count`.
 */
async function saturate(
  url: string,
  prefix: string,
  count: number,
  stored: () => number,
): Promise<{ stored: number; acked: number }> {
  const clients = await Promise.all(
    Array.from({ length: DEVICES }, () => mqtt.connectAsync(url, { protocolVersion: 4, clean: true, ...credentials })),
  )
  const before = stored()
  const t0 = performance.now()
  try {
    await Promise.all(
      clients.map(
        (client, d) =>
          new Promise<void>((resolve, reject) => {
            const mine = Math.floor(count / DEVICES) + (d < count % DEVICES ? 1 : 0)
            let sent = 0
            let acked = 0
            const send = () => {
              while (sent < mine && sent - acked < WINDOW) {
                const value = sent++
                client.publish(`bench/${prefix}-d${d}`, String(value), { qos: 1 }, err => {
                  if (err) return reject(err)
                  if (++acked === mine) resolve()
                  else send()
                })
              }
            }
            if (mine === 0) resolve()
            else send()
          }),
      ),
    )
    const ackedSeconds = (performance.now() - t0) / 1000
    const deadline = Date.now() + 60_000
    while (stored() - before < count) {
      if (Date.now() > deadline) throw new Error(`${prefix}: ${stored() - before} of ${count} stored after 60 s`)
      await new Promise(r => setTimeout(r, 2))
    }
    return { stored: count / ((performance.now() - t0) / 1000), acked: count / ackedSeconds }
  } finally {
    await Promise.all(clients.map(c => c.endAsync()))
  }
}

async function throughput(stored: () => number, received: () => number, urls: Urls, quick: boolean): Promise<Figure[]> {
  // a small round first: streams made and code warmed before the measured rounds
  let count = 500
  const paths = {
    durable: () => saturate(urls.durable, 'stored', count, stored),
    early: () => saturate(urls.early, 'received', count, received),
  }
  await paths.durable()
  await paths.early()
  count = quick ? 1000 : 20_000
  const rounds = quick ? 1 : 7
  const durable: number[] = []
  const early: number[] = []
  /** on the earlier path, the devices' PUBACKs alone came faster than storage */
  const earlyAcked: number[] = []
  for (let r = 0; r < rounds; r++) {
    // alternate which goes first, so that neither always meets a warmer or colder machine
    const order = r % 2 === 0 ? (['durable', 'early'] as const) : (['early', 'durable'] as const)
    for (const p of order) {
      const r = await paths[p]()
      ;(p === 'durable' ? durable : early).push(r.stored)
      if (p === 'early') earlyAcked.push(r.acked)
    }
    progress(
      `round ${r + 1}: PUBACK once stored ${round(durable.at(-1)!, 0)}/s, on receipt ${round(early.at(-1)!, 0)}/s`,
    )
  }
  const f = versus(
    `embedded gateway, QoS 1 readings acknowledged and stored, PUBACK once stored (${DEVICES} devices, ${WINDOW} in flight each)`,
    'readings/s',
    durable,
    'PUBACK on receipt, stored after by a subscribed ingestion (the earlier embedded path)',
    early,
  )
  f.note = `${count} readings a round, ${rounds} rounds, alternating; each round ends when every reading is acknowledged and stored. PUBACK once stored: ${durable.map(v => round(v, 0)).join(', ')}; on receipt: ${early.map(v => round(v, 0)).join(', ')} (its PUBACKs alone, before storage caught up: median ${round(summarize(earlyAcked).median, 0)}/s)`
  progress(f.note)
  return [f]
}

export default async function mqttSuite(opts: SuiteOptions): Promise<Figure[]> {
  const peers = new Peers()
  await peers.init()
  const stops: (() => Promise<void>)[] = []
  try {
    const gw = await peers.node('gateway', { audit: false })
    await peers.node('reader', { bootstrap: gw.addresses() })
    const space = await gw.createSpace('bench')
    // the gateway's path: the broker stores before it acknowledges
    const durable = await EmbeddedBroker.start(gw, { port: 0, credentials, ingest: { space } })
    stops.push(() => durable.stop())
    // the earlier path: acknowledged on receipt, stored by a subscribed client afterwards
    const early = await EmbeddedBroker.start(gw, { port: 0, credentials })
    stops.push(() => early.stop())
    const ingest = await MqttIngest.start(gw, { space, url: early.url, topic: 'bench/#', ...credentials })
    stops.push(() => ingest.stop())
    const urls = { durable: durable.url, early: early.url }
    const out: Figure[] = []
    for (const rate of opts.quick ? [200] : [1000, 10_000]) {
      progress(`${rate} readings/s ...`)
      out.push(...(await latencyAtRate(gw, space, urls, rate, opts.quick)))
    }
    progress('throughput, PUBACK once stored against on receipt ...')
    const stored = () => durable.ingest!.stats().ok
    out.push(...(await throughput(stored, () => ingest.stats().ok, urls, opts.quick)))
    return out
  } finally {
    for (const stop of stops.reverse()) await stop()
    await peers.stopAll()
  }
}
