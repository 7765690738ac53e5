/**
 * The embedded broker's PUBACK means "stored": a real `edgeward gateway --space` process is
 * killed with SIGKILL at random moments while a QoS 1 publisher counts the PUBACKs it gets,
 * then started again on the same data directory, where the device sends again what was not
 * acknowledged. After the last restart every acknowledged message is among the readings the
 * gateway stored (a message stored whose PUBACK the kill cut off is sent again and stored
 * twice: duplicates are allowed and counted).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import mqtt from 'mqtt'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { initData } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'
import { credentialsIn } from './brokers.ts'

const KILLS = 5
/** messages a publisher keeps in flight (sent, not yet acknowledged) */
const WINDOW = 200

/**
 * A device as MQTT asks of one at QoS 1: it numbers its readings 0, 1, 2, ..., keeps WINDOW
 * of them in flight, and keeps each until its PUBACK arrives, sending again on its next
 * connection what was never acknowledged.
 */
class Device {
  next = 0
  readonly acked = new Set<number>()
  readonly unacked = new Set<number>()

  /** Connect; send what is unacknowledged, then (with `fresh`) new readings until the connection drops. */
  async run(url: string, auth: { username: string; password: string }, fresh: boolean): Promise<void> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clean: true, ...auth })
    const again = [...this.unacked].sort((a, b) => a - b)
    let inflight = 0
    let closed = false
    await new Promise<void>(resolve => {
      client.once('close', () => {
        closed = true
        resolve()
      })
      const send = () => {
        while (!closed && inflight < WINDOW) {
          let n = again.shift()
          if (n === undefined && !fresh) {
            if (inflight === 0) resolve()
            return
          }
          n ??= this.next++
          const sent = n
          this.unacked.add(sent)
          inflight++
          client.publish('plant/seq', String(sent), { qos: 1 }, err => {
            inflight--
            if (err == null) {
              this.unacked.delete(sent)
              this.acked.add(sent)
            }
            send()
          })
        }
      }
      send()
    })
    if (closed) client.end(true)
    else await client.endAsync()
  }
}

describe('the embedded broker under SIGKILL', { timeout: 60_000 }, () => {
  let root: string
  let gateway: LocalPeer | undefined

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-mqtt-crash-'))
    await initData(join(root, 'gw'))
  })

  after(async () => {
    gateway?.process.kill('SIGKILL')
    await rm(root, { recursive: true, force: true })
  })

  const start = () =>
    startPeer('gateway', join(root, 'gw'), { command: 'gateway', args: ['--mqtt-port', '0', '--space', 'plant'] })

  it('loses no acknowledged message when the gateway is killed while a QoS 1 publisher runs', async () => {
    const dataDir = join(root, 'gw')
    const device = new Device()
    for (let kill = 0; kill < KILLS; kill++) {
      const t0 = performance.now()
      gateway = await start()
      const startMs = performance.now() - t0
      const proc = gateway.process
      const url = (gateway.info as typeof gateway.info & { mqtt: string }).mqtt
      const ackedBefore = device.acked.size
      const publishing = device.run(url, await credentialsIn(dataDir), true)
      await waitFor('the first PUBACKs of this round', async () =>
        device.acked.size > ackedBefore + 100 ? true : undefined,
      )
      // a random moment in the stream of publishes
      await new Promise(r => setTimeout(r, 100 + Math.random() * 900))
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGKILL')
      await exited
      await publishing
      console.log(
        `# kill ${kill + 1}: started in ${startMs.toFixed(0)} ms, ${device.acked.size - ackedBefore} acknowledged this round, ${device.unacked.size} left unacknowledged`,
      )
    }

    gateway = await start()
    const space = (gateway.info as typeof gateway.info & { ingestSpace: string }).ingestSpace
    // what the last kill left unacknowledged the device sends again, as after every kill
    const url = (gateway.info as typeof gateway.info & { mqtt: string }).mqtt
    await device.run(url, await credentialsIn(dataDir), false)
    const api = await gateway.api()
    const stored = new Map<number, number>()
    for await (const r of api.lines(`/v1/spaces/${space}/streams/seq/readings`)) {
      const v = r.value as number
      stored.set(v, (stored.get(v) ?? 0) + 1)
    }
    const lost = [...device.acked].filter(n => !stored.has(n))
    const duplicates = [...stored.values()].reduce((a, c) => a + c - 1, 0)
    console.log(
      `# ${device.acked.size} acknowledged over ${KILLS} kills, ${stored.size} distinct stored, ${duplicates} duplicates (stored, PUBACK cut off, sent again), ${lost.length} acknowledged but lost`,
    )
    assert.equal(await gateway.stop(), 0, gateway.stderr)
    gateway = undefined
    assert.ok(device.acked.size > KILLS * 100, 'the device got acknowledgements in every round')
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged messages are not stored`)
    assert.equal(device.unacked.size, 0)
    assert.equal(stored.size, device.next, 'every reading the device sent is stored, at least once')
  })
})
