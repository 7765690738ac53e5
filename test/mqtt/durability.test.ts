/**
 * Acknowledgement after storage, watched from the broker's side: the embedded broker reports
 * every PUBACK it receives (aedes' `ack` event, with the message acknowledged), and the node's
 * DataService.publish is wrapped to record what is durable when it returns. Delivery is at
 * least once: nothing acknowledged is ever missing from the store. A failed store is retried
 * before anything is acknowledged, and a message the ingestion never stored is redelivered by
 * the broker to the next session: each stored exactly once. A message stored whose PUBACK could
 * not be sent (the connection dropped) is redelivered and stored a second time.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Client, PublishPacket, PubrelPacket } from 'aedes'
import { MqttIngest } from '../../node/services/mqtt.ts'
import { waitFor } from '../support/wait.ts'
import { assertNoTcpLeft, GatewayNode, publishAll, settled, startBroker } from './brokers.ts'

describe('MQTT messages are acknowledged only once stored', { timeout: 60_000 }, () => {
  let gw: GatewayNode
  let broker: Awaited<ReturnType<typeof startBroker>>
  const running: MqttIngest[] = []
  /** payloads acknowledged to the broker, per client id, in the order the broker got the PUBACKs */
  const acked = new Map<string, string[]>()
  /** payloads (JSON of the value) durable in the store, by the wrapped publish */
  const stored = new Set<string>()
  /** acknowledgements the broker got for a payload not yet stored: must stay empty */
  const early: string[] = []
  let publish: GatewayNode['node']['data']['publish']
  /** what the next calls of publish do instead of storing, if anything */
  const faults: (() => Promise<never>)[] = []

  before(async () => {
    gw = await GatewayNode.start()
    broker = await startBroker(gw.node)
    publish = gw.node.data.publish
    gw.node.data.publish = async (space, stream, readings) => {
      const fault = faults.shift()
      if (fault !== undefined) return fault()
      const seqs = await publish.call(gw.node.data, space, stream, readings)
      for (const r of readings) stored.add(JSON.stringify(r.value))
      return seqs
    }
    broker.aedes.on('ack', (packet: PublishPacket | PubrelPacket, client: Client) => {
      if (!('payload' in packet)) return
      const payload = packet.payload.toString()
      if (!stored.has(payload)) early.push(payload)
      acked.set(client.id, [...(acked.get(client.id) ?? []), payload])
    })
  })

  after(async () => {
    for (const i of running) await i.stop()
    gw.node.data.publish = publish
    await broker?.stop()
    await gw?.stop()
    assertNoTcpLeft()
  })

  const start = async (opts: { space: string; topic: string; clientId: string; stopTimeoutMs?: number }) => {
    const ingest = await MqttIngest.start(gw.node, { url: broker.url, ...broker.credentials, ...opts })
    running.push(ingest)
    return ingest
  }
  /** An MQTT 3.1.1 client publishes `messages` (topic, payload) to the broker at QoS 1. */
  const send = (messages: [string, string][]) => publishAll(broker.url, 4, messages, broker.credentials)
  /**
   * Each store that `isHeld` says so of (by its space and stream) waits until `release()`;
   * `restore()` releases them and ends the hold.
   */
  const holdStores = (isHeld: (space: string, stream: string) => boolean) => {
    let release!: () => void
    const gate = new Promise<void>(r => (release = r))
    const wrapped = gw.node.data.publish
    gw.node.data.publish = async (sp, stream, readings) => {
      if (isHeld(sp, stream)) await gate
      return wrapped.call(gw.node.data, sp, stream, readings)
    }
    return {
      release,
      restore: () => {
        release()
        gw.node.data.publish = wrapped
      },
    }
  }
  const values = async (space: string, stream: string) =>
    (await gw.node.data.read(space, stream)).map(r => JSON.stringify(r.value))

  it('retries a failed store and acknowledges only after it succeeds: each message stored once', async () => {
    const space = await gw.node.createSpace('retry')
    const ingest = await start({ space, topic: 'retry/#', clientId: 'retry' })
    faults.push(() => Promise.reject(new Error('disk full')))
    await send([
      ['retry/temperature', '1'],
      ['retry/temperature', '2'],
      ['retry/temperature', '3'],
    ])
    await settled(ingest, 3)
    assert.equal(ingest.stats().storageFailures, 1, 'the first store failed')
    assert.equal(gw.node.metrics.total('edgeward_mqtt_storage_failures_total'), 1)
    assert.deepEqual(await values(space, 'temperature'), ['1', '2', '3'], 'stored exactly once each')
    await waitFor('the broker to get every PUBACK', async () => (acked.get('retry')?.length === 3 ? true : undefined))
    assert.deepEqual(acked.get('retry'), ['1', '2', '3'])
    assert.deepEqual(early, [], 'no message was acknowledged before it was stored')
  })

  it('acknowledges in arrival order across streams, even when a later stream is stored first', async () => {
    const space = await gw.node.createSpace('order')
    const ingest = await start({ space, topic: 'order/#', clientId: 'order' })
    const slow = holdStores((_, stream) => stream === 'slow')
    try {
      await send([
        ['order/slow', '10'],
        ['order/fast', '11'],
        ['order/fast', '12'],
      ])
      await waitFor('the fast stream to be stored', async () => (stored.has('12') ? true : undefined))
      assert.equal(acked.get('order'), undefined, 'nothing is acknowledged while the first message is not stored')
      slow.release()
      await settled(ingest, 3)
      await waitFor('the broker to get every PUBACK', async () => (acked.get('order')?.length === 3 ? true : undefined))
      assert.deepEqual(acked.get('order'), ['10', '11', '12'])
      assert.deepEqual(early, [])
    } finally {
      slow.restore()
    }
  })

  it('leaves what it had not stored when it dies to the broker, which redelivers it to the next session', async () => {
    const space = await gw.node.createSpace('crash')
    const opts = { space, topic: 'crash/#', clientId: 'crash', stopTimeoutMs: 200 }
    const first = await start(opts)
    // the store never answers: as if the process hung or died between receipt and storage
    faults.push(() => new Promise<never>(() => {}))
    await send([
      ['crash/pressure', '7'],
      ['crash/pressure', '8'],
      ['crash/pressure', '9'],
    ])
    await waitFor('the messages to reach the ingestion', async () => (first.stats().received === 3 ? true : undefined))
    await first.stop()
    assert.equal(first.stats().pending, 3, 'given up on after stopTimeoutMs')
    assert.equal(acked.get('crash'), undefined, 'nothing was acknowledged')
    assert.deepEqual(await gw.node.data.storedReadings(space, 'pressure'), [])

    const second = await start(opts)
    await settled(second, 3)
    assert.deepEqual(await values(space, 'pressure'), ['7', '8', '9'], 'redelivered and stored, once each')
    await waitFor('the broker to get every PUBACK', async () => (acked.get('crash')?.length === 3 ? true : undefined))
    assert.deepEqual(early, [])
  })

  it('after a dropped connection, gets what was not acknowledged again: stored at least once, none lost', async () => {
    const space = await gw.node.createSpace('drop')
    const ingest = await start({ space, topic: 'drop/#', clientId: 'drop' })
    let calls = 0
    // the first store finishes only after the connection is gone: its PUBACKs cannot be sent
    const first = holdStores(sp => sp === space && calls++ === 0)
    try {
      await send([
        ['drop/flow', '30'],
        ['drop/flow', '31'],
      ])
      await waitFor('the messages to arrive', async () => (ingest.stats().received === 2 ? true : undefined))
      const clients = (broker.aedes as unknown as { clients: Record<string, { close(): void }> }).clients
      clients.drop.close()
      await waitFor('the connection to drop', async () => (ingest.stats().connected ? undefined : true))
      first.release()
      await waitFor('the reconnection and the redelivery', async () =>
        ingest.stats().reconnects >= 1 && ingest.stats().received === 4 && ingest.stats().unacked === 0
          ? true
          : undefined,
      )
      await settled(ingest, 4)
      assert.deepEqual(
        await values(space, 'flow'),
        ['30', '31', '30', '31'],
        'stored before the drop, redelivered, stored again',
      )
      assert.deepEqual(acked.get('drop'), ['30', '31'], 'acknowledged once, on the new connection')
      assert.deepEqual(early, [])
    } finally {
      first.restore()
    }
  })

  it('stores and acknowledges what is batched when stopped in time', async () => {
    const space = await gw.node.createSpace('stop')
    const ingest = await start({ space, topic: 'stop/#', clientId: 'stop' })
    await send([['stop/level', '5']])
    await waitFor('the message to arrive', async () => (ingest.stats().received === 1 ? true : undefined))
    await ingest.stop()
    assert.equal(ingest.stats().ok, 1)
    assert.equal(ingest.stats().pending, 0)
    assert.deepEqual(await values(space, 'level'), ['5'])
    await waitFor('the broker to get the PUBACK', async () => (acked.get('stop')?.length === 1 ? true : undefined))
  })
})
