/**
 * The embedded broker's PUBACK means "stored": a real `edgeward gateway --space` process is
 * killed with SIGKILL at random moments while a QoS 1 publisher counts the PUBACKs it gets,
 * then started again on the same data directory. After the last restart every acknowledged
 * message is among the readings the gateway stored (a message stored whose PUBACK the kill cut
 * off is sent again and may be stored twice: duplicates are allowed and counted).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import mqtt from 'mqtt'
import { type LocalPeer, runCli, startPeer, waitFor } from '../../node/cli/local-network.ts'
import { credentialsIn } from './brokers.ts'

const KILLS = 5
/** messages a publisher keeps in flight (sent, not yet acknowledged) */
const WINDOW = 200

/**
 * Publish 0, 1, 2, ... (from `first`) at QoS 1 with WINDOW in flight until the connection
 * drops; `acked` gets each number whose PUBACK arrived. Resolves with the next unsent number.
 */
async function publishUntilDropped(url: string, dataDir: string, first: number, acked: Set<number>): Promise<number> {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    clean: true,
    ...(await credentialsIn(dataDir)),
  })
  let next = first
  let inflight = 0
  const dropped = new Promise<void>(resolve => client.once('close', () => resolve()))
  let closed = false
  void dropped.then(() => (closed = true))
  const send = () => {
    while (!closed && inflight < WINDOW) {
      const n = next++
      inflight++
      client.publish('plant/seq', String(n), { qos: 1 }, err => {
        inflight--
        if (err === undefined || err === null) acked.add(n)
        send()
      })
    }
  }
  send()
  await dropped
  client.end(true)
  return next
}

describe('the embedded broker under SIGKILL', { timeout: 60_000 }, () => {
  let root: string
  let gateway: LocalPeer | undefined

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-mqtt-crash-'))
    const r = await runCli(['init', '--data', join(root, 'gw'), '--json'])
    assert.equal(r.code, 0, r.stderr)
  })

  after(async () => {
    gateway?.process.kill('SIGKILL')
    await rm(root, { recursive: true, force: true })
  })

  const start = () =>
    startPeer('gateway', join(root, 'gw'), { command: 'gateway', args: ['--mqtt-port', '0', '--space', 'plant'] })

  it('loses no acknowledged message when the gateway is killed while a QoS 1 publisher runs', async () => {
    const dataDir = join(root, 'gw')
    const acked = new Set<number>()
    let next = 0
    for (let kill = 0; kill < KILLS; kill++) {
      const t0 = performance.now()
      gateway = await start()
      const startMs = performance.now() - t0
      const proc = gateway.process
      const url = (gateway.info as typeof gateway.info & { mqtt: string }).mqtt
      const ackedBefore = acked.size
      const publishing = publishUntilDropped(url, dataDir, next, acked)
      await waitFor('the first PUBACKs of this round', async () => (acked.size > ackedBefore + 100 ? true : undefined))
      // a random moment in the stream of publishes
      await new Promise(r => setTimeout(r, 100 + Math.random() * 900))
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGKILL')
      await exited
      next = await publishing
      console.log(
        `# kill ${kill + 1}: started in ${startMs.toFixed(0)} ms, ${acked.size - ackedBefore} acknowledged this round, ${next} sent in all`,
      )
    }

    gateway = await start()
    const space = (gateway.info as typeof gateway.info & { ingestSpace: string }).ingestSpace
    const api = await gateway.api()
    const stored = new Map<number, number>()
    for await (const r of api.lines(`/v1/spaces/${space}/streams/seq/readings`)) {
      const v = r.value as number
      stored.set(v, (stored.get(v) ?? 0) + 1)
    }
    const lost = [...acked].filter(n => !stored.has(n))
    const duplicates = [...stored.values()].reduce((a, c) => a + c - 1, 0)
    console.log(
      `# ${acked.size} acknowledged over ${KILLS} kills, ${stored.size} distinct stored, ${duplicates} duplicates, ${lost.length} acknowledged but lost`,
    )
    assert.equal(await gateway.stop(), 0, gateway.stderr)
    gateway = undefined
    assert.ok(acked.size > KILLS * 100, 'the publisher got acknowledgements in every round')
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} acknowledged messages are not stored`)
  })
})
