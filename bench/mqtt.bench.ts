/**
 * MQTT to gossip: a sensor publishes readings at a fixed rate (QoS 1) to the gateway's
 * embedded broker; the gateway ingests, encrypts, stores durably and gossips them. Latency is
 * from the sensor's publish (the reading's own `ts`) to the gossip publish of its encrypted
 * reading, measured at 1 000 and 10 000 readings per second, with the rate actually achieved.
 */
import mqtt from 'mqtt'
import type { EdgewardNode } from '../node/node.ts'
import { EmbeddedBroker, MqttIngest } from '../node/services/mqtt.ts'
import { type Figure, figure, percentile, round, type SuiteOptions } from './harness.ts'
import { Peers } from './peers.ts'

const progress = (m: string) => process.stderr.write(`[bench:mqtt] ${m}\n`)

async function atRate(gw: EdgewardNode, space: string, url: string, rate: number, seconds: number): Promise<Figure[]> {
  const stream = `rate-${rate}`
  const latencies: number[] = []
  const off = gw.data.onReading(r => {
    if (r.stream !== stream || r.form !== 'raw') return
    const at = Date.now()
    void gw.data.decryptAll(space, stream, [r]).then(ds => {
      for (const d of ds) latencies.push(at - d.ts)
    })
  })
  const ingest = await MqttIngest.start(gw, { space, url, topic: `bench/${stream}` })
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true })
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
  await ingest.stop()
  const f = figure(`MQTT to gossip latency at ${rate} readings/s`, 'ms', latencies)
  f.note = `p50 ${round(percentile(latencies, 50))} ms, p99 ${round(percentile(latencies, 99))} ms; ${latencies.length} of ${total} readings through in ${round(doneSeconds, 1)} s (sent in ${round(sendSeconds, 1)} s): ${round(latencies.length / doneSeconds, 0)} readings/s achieved`
  progress(f.note)
  return [f, figure(`MQTT to gossip throughput asked ${rate}/s`, 'readings/s', [latencies.length / doneSeconds])]
}

export default async function mqttSuite(opts: SuiteOptions): Promise<Figure[]> {
  const peers = new Peers()
  await peers.init()
  const broker = await EmbeddedBroker.start({ port: 0 })
  try {
    const gw = await peers.node('gateway', { audit: false })
    await peers.node('reader', { bootstrap: gw.addresses() })
    const space = await gw.createSpace('bench')
    const out: Figure[] = []
    for (const rate of opts.quick ? [200] : [1000, 10_000]) {
      progress(`${rate} readings/s ...`)
      out.push(...(await atRate(gw, space, broker.url, rate, opts.quick ? 2 : 5)))
    }
    return out
  } finally {
    await broker.stop()
    await peers.stopAll()
  }
}
