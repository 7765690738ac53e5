/**
 * MQTT ingestion in one process: the payload and topic rules as tables, then a real node
 * (LevelDB, libp2p on loopback) ingesting from real brokers: the embedded aedes broker
 * (MQTT 3.1.1) and, when installed, mosquitto with MQTT 3.1.1 and 5. Real `mqtt` clients
 * publish numbers, {ts, value} readings, plain objects and malformed payloads; the owner
 * reads back exactly what was sent, and the refusals are counted by reason.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import mqtt from 'mqtt'
import { Metrics } from '../../node/metrics.ts'
import {
  isTopicFilter,
  MqttIngest,
  type MqttIngestOptions,
  readingFromPayload,
  streamForTopic,
  topicMatches,
} from '../../node/services/mqtt.ts'
import {
  assertNoTcpLeft,
  GatewayNode,
  hasMosquitto,
  Mosquitto,
  needsMosquitto,
  publishAll,
  settled,
  startBroker,
} from './brokers.ts'

const enc = (s: string) => new TextEncoder().encode(s)

describe('MQTT payloads and topics', () => {
  it('turns a payload into a reading, or names why not', () => {
    const now = 1_700_000_000_000
    const cases: [string, unknown][] = [
      ['21.5', { reading: { ts: now, value: 21.5 } }],
      ['-3', { reading: { ts: now, value: -3 } }],
      ['{"ts": 5, "value": 7}', { reading: { ts: 5, value: 7 } }],
      ['{"value": {"c": 1}, "ts": 9}', { reading: { ts: 9, value: { c: 1 } } }],
      ['{"bar": 1.2, "ok": true}', { reading: { ts: now, value: { bar: 1.2, ok: true } } }],
      ['{"ts": 5, "value": 7, "unit": "C"}', { reading: { ts: now, value: { ts: 5, value: 7, unit: 'C' } } }],
      ['{"ts": "yesterday", "value": 7}', { reading: { ts: now, value: { ts: 'yesterday', value: 7 } } }],
      ['{}', { reading: { ts: now, value: {} } }],
      ['not json', { error: 'not-json' }],
      ['', { error: 'not-json' }],
      ['[1,2]', { error: 'not-a-reading' }],
      ['"str"', { error: 'not-a-reading' }],
      ['null', { error: 'not-a-reading' }],
      ['true', { error: 'not-a-reading' }],
      ['{"ts": -1, "value": 1}', { error: 'not-a-reading' }],
      ['{"ts": 1.5, "value": 1}', { error: 'not-a-reading' }],
      ['{"ts": 1, "value": "hot"}', { error: 'not-a-reading' }],
      [`{"big": "${'x'.repeat(17_000)}"}`, { error: 'too-large' }],
      [`{"big": "${'x'.repeat(16_380)}"}`, { error: 'not-a-reading' }],
    ]
    for (const [payload, want] of cases) {
      const got = readingFromPayload(enc(payload), now)
      const shape = 'reading' in got ? { reading: got.reading } : { error: got.error }
      assert.deepEqual(shape, want, payload.slice(0, 60))
    }
    assert.deepEqual(
      (readingFromPayload(new Uint8Array([0xff, 0xfe]), now) as { error: string }).error,
      'not-json',
      'invalid UTF-8',
    )
  })

  it('matches topic filters and names streams by the last level or by a map', () => {
    const matches: [string, string, boolean][] = [
      ['#', 'a/b/c', true],
      ['#', '$SYS/broker', false],
      ['a/#', 'a', true],
      ['a/#', 'a/b/c', true],
      ['a/+', 'a/b', true],
      ['a/+', 'a/b/c', false],
      ['+/+/temp', 'site/1/temp', true],
      ['+/+/temp', 'site/1/hum', false],
      ['a/b', 'a/b', true],
      ['a/b', 'a/bc', false],
    ]
    for (const [f, t, want] of matches) assert.equal(topicMatches(f, t), want, `${f} ~ ${t}`)
    for (const f of ['#', 'a/#', '+', 'a/+/b', 'a']) assert.ok(isTopicFilter(f), f)
    for (const f of ['', 'a/#/b', 'a#', 'a/b+', '#/a']) assert.ok(!isTopicFilter(f), f)

    assert.deepEqual(streamForTopic('plant/line1/temperature', undefined), { stream: 'temperature' })
    assert.deepEqual(streamForTopic('temperature', undefined), { stream: 'temperature' })
    assert.deepEqual(streamForTopic('plant/bad name', undefined), { error: 'bad-stream-name' })
    assert.deepEqual(streamForTopic('plant/', undefined), { error: 'bad-stream-name' })
    const map = { boiler: 'site/+/temp', hall: 'site/#' }
    assert.deepEqual(streamForTopic('site/7/temp', map), { stream: 'boiler' }, 'the first filter that matches')
    assert.deepEqual(streamForTopic('site/7/hum', map), { stream: 'hall' })
    assert.deepEqual(streamForTopic('other/temp', map), { error: 'unmapped-topic' })
  })

  it('refuses bad options before connecting', async () => {
    const c = { data: { publish: async () => [] }, metrics: new Metrics() }
    const space = 'a'.repeat(64)
    const url = 'mqtt://127.0.0.1:1'
    const bad: MqttIngestOptions[] = [
      { space: 'nope', url, topic: '#' },
      { space, url: 'http://x', topic: '#' },
      { space, url: 'not a url', topic: '#' },
      { space, url, topic: 'a/#/b' },
      { space, url, topic: '#', map: { 'bad name': 'a' } },
      { space, url, topic: '#', map: { s: '' } },
      { space, url, topic: '#', protocolVersion: 3 as 4 | 5 },
    ]
    for (const o of bad) await assert.rejects(MqttIngest.start(c, o), { name: 'UsageError' }, JSON.stringify(o))
  })
})

describe('MQTT ingestion into a space', { timeout: 60_000 }, () => {
  let gw: GatewayNode
  let aedes: Awaited<ReturnType<typeof startBroker>>
  let mosquitto: Mosquitto | undefined
  const running: MqttIngest[] = []

  before(async () => {
    gw = await GatewayNode.start()
    aedes = await startBroker(gw.node)
    if (hasMosquitto) mosquitto = await Mosquitto.start()
  })

  after(async () => {
    for (const i of running) await i.stop()
    await aedes?.stop()
    await mosquitto?.stop()
    await gw?.stop()
    assertNoTcpLeft()
  })

  /** A new space and an ingestion into it of `PREFIX/#`, a topic prefix no other case publishes to. */
  const ingestFrom = async (
    url: string,
    version: 4 | 5,
    opts: { map?: Record<string, string>; maxBatch?: number } = {},
  ) => {
    const prefix = `case${running.length}`
    const space = await gw.node.createSpace(prefix)
    const ingest = await MqttIngest.start(gw.node, {
      space,
      url,
      topic: `${prefix}/#`,
      protocolVersion: version,
      ...authFor(url),
      ...opts,
    })
    running.push(ingest)
    return { space, ingest, prefix }
  }

  /** the embedded broker asks for its credentials; the tests' mosquitto takes anyone */
  const authFor = (url: string) => (url === aedes.url ? aedes.credentials : {})

  const brokers = (): [string, () => string, 4 | 5][] => [
    ['the embedded broker', () => aedes.url, 4],
    ['mosquitto', () => mosquitto!.url, 4],
    ['mosquitto', () => mosquitto!.url, 5],
  ]

  for (const [name, url, version] of brokers()) {
    it(`stores what is sent through ${name} with MQTT ${version === 4 ? '3.1.1' : '5'}, and counts the refusals`, async t => {
      if (name === 'mosquitto' && !needsMosquitto(t)) return
      const metricsBefore = gw.node.metrics.snapshot().edgeward_mqtt_messages_total ?? {}
      const { space, ingest, prefix } = await ingestFrom(url(), version)
      const T = 1_700_000_000_000
      const t0 = Date.now()
      await publishAll(
        url(),
        version,
        [
          [`${prefix}/line1/temperature`, '21.5'],
          [`${prefix}/line1/temperature`, JSON.stringify({ ts: T, value: 22 })],
          [`${prefix}/line1/pressure`, JSON.stringify({ bar: 1.2, ok: true })],
          [`${prefix}/line1/temperature`, JSON.stringify({ ts: T + 1, value: { c: 23, f: 73.4 } })],
          [`${prefix}/line1/temperature`, 'not json'],
          [`${prefix}/line1/temperature`, '[1,2]'],
          [`${prefix}/line1/temperature`, '"str"'],
          [`${prefix}/line1/pressure`, '{"ts": 3, "value": "hot"}'],
          [`${prefix}/line1/bad stream`, '1'],
          [`${prefix}/line1/temperature`, '-4'],
          ['elsewhere/temperature', '99'],
        ],
        authFor(url()),
      )
      await settled(ingest, 10)
      const t1 = Date.now()

      const temperature = await gw.stored(space, 'temperature')
      assert.deepEqual(
        temperature.map(r => r.value),
        [21.5, 22, { c: 23, f: 73.4 }, -4],
      )
      assert.equal(temperature[1].ts, T)
      assert.equal(temperature[2].ts, T + 1)
      for (const r of [temperature[0], temperature[3]])
        assert.ok(r.ts >= t0 && r.ts <= t1, 'a bare number is stamped on arrival')
      const pressure = await gw.stored(space, 'pressure')
      assert.deepEqual(
        pressure.map(r => r.value),
        [{ bar: 1.2, ok: true }],
      )
      assert.ok(pressure[0].ts >= t0 && pressure[0].ts <= t1)

      const s = ingest.stats()
      assert.equal(s.ok, 5)
      assert.equal(s.received, 10, 'the topic outside the subscription never arrived')
      assert.deepEqual(s.errors, { 'not-json': 1, 'not-a-reading': 3, 'bad-stream-name': 1 })
      assert.equal(s.storageFailures, 0)
      assert.ok(s.connected)
      const after = gw.node.metrics.snapshot().edgeward_mqtt_messages_total
      const delta = (k: string) => (after[k] ?? 0) - (metricsBefore[k] ?? 0)
      assert.equal(delta('result="ok"'), 5)
      assert.equal(delta('reason="not-json",result="error"'), 1)
      assert.equal(delta('reason="not-a-reading",result="error"'), 3)
      assert.equal(delta('reason="bad-stream-name",result="error"'), 1)
      assert.match(gw.node.metrics.prometheus(), /edgeward_mqtt_messages_total\{reason="not-json",result="error"\} \d+/)
    })
  }

  it('maps topics to streams when given a map, and counts unmapped topics', async () => {
    const { space, ingest, prefix } = await ingestFrom(aedes.url, 4, {
      map: { boiler: '+/+/temp', hall: '+/hall/#' },
    })
    await publishAll(
      aedes.url,
      4,
      [
        [`${prefix}/b1/temp`, '70'],
        [`${prefix}/hall/lux`, '300'],
        [`${prefix}/hall/temp`, '19'],
        [`${prefix}/b1/pressure`, '2'],
      ],
      aedes.credentials,
    )
    await settled(ingest, 4)
    assert.deepEqual(
      (await gw.stored(space, 'boiler')).map(r => r.value),
      [70, 19],
    )
    assert.deepEqual(
      (await gw.stored(space, 'hall')).map(r => r.value),
      [300],
    )
    assert.deepEqual(ingest.stats().errors, { 'unmapped-topic': 1 })
  })

  it('batches a burst per stream, at most maxBatch at a time, and stores every message of it once, in order', async () => {
    const { space, ingest, prefix } = await ingestFrom(aedes.url, 4, { maxBatch: 40 })
    const batches: number[] = []
    const publish = gw.node.data.publish
    gw.node.data.publish = (sp, stream, readings) => {
      if (sp === space) batches.push(readings.length)
      return publish.call(gw.node.data, sp, stream, readings)
    }
    const n = 400
    const messages: [string, string][] = []
    for (let i = 0; i < n; i++) messages.push([`${prefix}/${i % 2 === 0 ? 'a' : 'b'}`, String(i)])
    const t0 = performance.now()
    const client = await mqtt.connectAsync(aedes.url, { protocolVersion: 4, reconnectPeriod: 0, ...aedes.credentials })
    try {
      await Promise.all(messages.map(([topic, payload]) => client.publishAsync(topic, payload, { qos: 1 })))
    } finally {
      await client.endAsync()
    }
    await settled(ingest, n)
    const ms = performance.now() - t0
    gw.node.data.publish = publish
    console.log(
      `# ${n} MQTT messages stored and acknowledged in ${ms.toFixed(0)} ms (${((n / ms) * 1000).toFixed(0)}/s), in ${batches.length} batches`,
    )
    assert.ok(Math.max(...batches) <= 40, 'no batch is larger than maxBatch')
    assert.ok(batches.length < n / 2, 'messages were batched')
    const a = (await gw.stored(space, 'a')).map(r => r.value)
    const b = (await gw.stored(space, 'b')).map(r => r.value)
    assert.deepEqual(
      a,
      messages.filter((_, i) => i % 2 === 0).map(([, p]) => Number(p)),
      'in order, each once',
    )
    assert.deepEqual(
      b,
      messages.filter((_, i) => i % 2 === 1).map(([, p]) => Number(p)),
    )
  })

  it('is refused by the embedded broker with MQTT 5, which it does not speak, with a clear error', async () => {
    const space = await gw.node.createSpace('mqtt-v5')
    await assert.rejects(
      MqttIngest.start(gw.node, {
        space,
        url: aedes.url,
        topic: '#',
        protocolVersion: 5,
        connectTimeoutMs: 3000,
        ...aedes.credentials,
      }),
      /could not ingest # from mqtt:\/\/127\.0\.0\.1:\d+: .*(protocol|closed|no answer)/i,
    )
  })

  it('fails to start, with the reason, when no broker answers', async () => {
    const space = await gw.node.createSpace('mqtt-none')
    const closed = await startBroker(gw.node)
    const url = closed.url
    await closed.stop()
    await assert.rejects(
      MqttIngest.start(gw.node, { space, url, topic: '#' }),
      /could not ingest # from .*ECONNREFUSED/,
    )
  })
})
