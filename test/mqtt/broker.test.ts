/**
 * The embedded broker in one process, with real `mqtt` clients: it accepts only clients with
 * its credentials (kept in the data directory, readable by the owner only) and counts the
 * ones it refuses; with an ingestion of its own, a device's PUBACK leaves only once the
 * reading is stored, in the order the device sent its messages.
 */
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import mqtt from 'mqtt'
import { MqttIngest, MqttIngestions, mqttCredentials } from '../../node/services/mqtt.ts'
import { waitFor } from '../support/wait.ts'
import { assertNoTcpLeft, GatewayNode, publishAll, settled, startBroker } from './brokers.ts'

describe('the embedded broker', { timeout: 60_000 }, () => {
  let gw: GatewayNode
  let dir: string
  const stops: (() => Promise<void>)[] = []

  before(async () => {
    gw = await GatewayNode.start()
    dir = await mkdtemp(join(tmpdir(), 'edgeward-mqtt-credentials-'))
  })

  after(async () => {
    for (const stop of stops.reverse()) await stop()
    await gw?.stop()
    await rm(dir, { recursive: true, force: true })
    assertNoTcpLeft()
  })

  it('keeps its credentials in the data directory, readable by the owner only, made once', async () => {
    const first = await mqttCredentials(dir)
    assert.equal(first.created, true)
    assert.equal(first.path, join(dir, 'mqtt-credentials'))
    assert.equal((await stat(first.path)).mode & 0o777, 0o600)
    assert.equal(first.credentials.username, 'edgeward')
    assert.ok(first.credentials.password.length >= 24, 'a long random password')
    const again = await mqttCredentials(dir)
    assert.equal(again.created, false)
    assert.deepEqual(again.credentials, first.credentials)
    await chmod(first.path, 0o644)
    await mqttCredentials(dir)
    assert.equal((await stat(first.path)).mode & 0o777, 0o600, 'looser permissions are tightened')
    const broken = await mkdtemp(join(dir, 'broken-'))
    await writeFile(join(broken, 'mqtt-credentials'), '{"username": "x"}')
    await assert.rejects(mqttCredentials(broken), /holds no \{"username", "password"\}/)
  })

  it('refuses a client without credentials or with wrong ones (CONNACK 5 and 4), counted; accepts the right ones', async () => {
    const broker = await startBroker(gw.node)
    stops.push(() => broker.stop())
    const refusedBefore = gw.node.metrics.snapshot().edgeward_mqtt_connections_refused_total ?? {}
    const { username, password } = broker.credentials
    const refusals: [Record<string, string>, number][] = [
      [{}, 5],
      [{ username }, 4],
      [{ username, password: 'wrong' }, 4],
      [{ username: 'someone', password }, 4],
      [{ username: username.toUpperCase(), password }, 4],
    ]
    for (const [auth, code] of refusals) {
      await assert.rejects(
        mqtt.connectAsync(broker.url, { protocolVersion: 4, reconnectPeriod: 0, ...auth }),
        (err: Error & { code?: number }) => err.code === code,
        JSON.stringify(auth),
      )
    }
    const refused = gw.node.metrics.snapshot().edgeward_mqtt_connections_refused_total
    const delta = (k: string) => (refused[k] ?? 0) - (refusedBefore[k] ?? 0)
    assert.equal(delta('reason="no-credentials"'), 1)
    assert.equal(delta('reason="bad-credentials"'), 4)
    await publishAll(broker.url, 4, [['ok/temperature', '1']], broker.credentials)

    // a client of the broker (as `edgeward ingest` is) may give them in the URL, which is then shown without them
    const space = await gw.node.createSpace('creds')
    const url = new URL(broker.url)
    url.username = username
    url.password = password
    const ingest = await MqttIngest.start(gw.node, { space, url: url.href, topic: 'creds/#' })
    stops.push(() => ingest.stop())
    assert.equal(ingest.options.url, broker.url)
    await publishAll(broker.url, 4, [['creds/level', '3']], broker.credentials)
    await settled(ingest, 1)
  })

  it('with an ingestion of its own, acknowledges each message only once stored, in the order sent', async () => {
    const space = await gw.node.createSpace('own')
    const broker = await startBroker(gw.node, { ingest: { space } })
    stops.push(() => broker.stop())
    const ingest = broker.ingest!
    const publish = gw.node.data.publish
    let release!: () => void
    const held = new Promise<void>(r => (release = r))
    const storing: string[] = []
    const stored: string[] = []
    gw.node.data.publish = async (sp, stream, readings) => {
      storing.push(stream)
      if (stream === 'slow') await held
      const seqs = await publish.call(gw.node.data, sp, stream, readings)
      stored.push(...readings.map(r => `${stream}=${JSON.stringify(r.value)}`))
      return seqs
    }
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...broker.credentials,
    })
    try {
      const acked: string[] = []
      const sent = [
        ['plant/slow', '1'],
        ['plant/fast', '2'],
        ['plant/fast', 'not json'],
        ['plant/fast', '3'],
      ].map(([topic, payload]) =>
        client.publishAsync(topic, payload, { qos: 1 }).then(() => acked.push(`${topic}=${payload}`)),
      )
      await waitFor('the first store to start', async () => (storing.includes('slow') ? true : undefined))
      assert.deepEqual(acked, [], 'no PUBACK while the first message is not stored')
      assert.equal(ingest.stats().unacked, ingest.stats().received)
      release()
      await Promise.all(sent)
      assert.deepEqual(acked, ['plant/slow=1', 'plant/fast=2', 'plant/fast=not json', 'plant/fast=3'])
      assert.ok(stored.includes('slow=1') && stored.includes('fast=2') && stored.includes('fast=3'))
      assert.deepEqual(
        (await gw.stored(space, 'fast')).map(r => r.value),
        [2, 3],
      )
      const s = ingest.stats()
      assert.equal(s.ok, 3)
      assert.deepEqual(s.errors, { 'not-json': 1 })
      assert.equal(s.unacked, 0)
      assert.equal(s.pending, 0)
    } finally {
      release()
      gw.node.data.publish = publish
      await client.endAsync()
    }

    // listed with the node's ingestions, but it stops with the broker, not on its own
    const ingestions = new MqttIngestions(gw.node)
    const info = ingestions.attach(ingest)
    assert.equal(info.space, space)
    assert.equal(info.url, broker.url)
    assert.equal(info.stats.ok, 3)
    await assert.rejects(ingestions.stop(info.id), { name: 'UsageError' })
  })

  it('refuses what is published while its ingestion stops: never acknowledged, the device sends it again', async () => {
    const space = await gw.node.createSpace('stopping')
    const broker = await startBroker(gw.node, { ingest: { space } })
    stops.push(() => broker.stop())
    await publishAll(broker.url, 4, [['plant/level', '1']], broker.credentials)
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...broker.credentials,
    })
    await broker.ingest!.stop()
    let acked = false
    const closed = new Promise<void>(resolve => client.once('close', () => resolve()))
    client.publish('plant/level', '2', { qos: 1 }, err => (acked ||= err == null))
    await closed
    await client.endAsync(true)
    assert.equal(acked, false, 'no PUBACK: the broker closed the connection')
    assert.deepEqual(
      (await gw.stored(space, 'level')).map(r => r.value),
      [1],
    )
  })
})
