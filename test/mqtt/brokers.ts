/**
 * What the MQTT tests share: a gateway node in one process with an embedded broker (and its
 * credentials), a mosquitto of its own (own config, random port on 127.0.0.1) when it is
 * installed, MQTT publishers, and waiting for an ingestion to settle. Each `stop` ends what it started.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { createIdentity } from '../../node/identity.ts'
import { EdgewardNode } from '../../node/node.ts'
import {
  EmbeddedBroker,
  type EmbeddedBrokerOptions,
  type IngestComponents,
  MQTT_CREDENTIALS_FILE,
  type MqttCredentials,
  type MqttIngest,
  newMqttCredentials,
} from '../../node/services/mqtt.ts'
import { waitFor } from '../support/wait.ts'

export const MOSQUITTO = '/usr/sbin/mosquitto'
export const hasMosquitto = existsSync(MOSQUITTO)

/** Skip a mosquitto case where it is not installed, except in CI (which installs it: .ci/run), where that fails. */
export function needsMosquitto(t: { skip: (message: string) => void }): boolean {
  if (hasMosquitto) return true
  if (process.env.CI) throw new Error(`${MOSQUITTO} is missing: .ci/run installs it`)
  t.skip(`${MOSQUITTO} is not installed (.ci/run installs it)`)
  return false
}

/** A free TCP port on 127.0.0.1 (for a broker that cannot be told to pick one). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  const addr = server.address()
  await new Promise(resolve => server.close(resolve))
  assert.ok(addr !== null && typeof addr === 'object')
  return addr.port
}

async function accepts(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const s = createConnection({ port, host: '127.0.0.1' })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** mosquitto on a random port of 127.0.0.1, with its own config in its own temp dir; never the system service. */
export class Mosquitto {
  readonly url: string
  private readonly proc: ChildProcess
  private readonly dir: string
  log = ''

  private constructor(url: string, proc: ChildProcess, dir: string) {
    this.url = url
    this.proc = proc
    this.dir = dir
    proc.stderr?.on('data', d => (this.log += d))
    proc.stdout?.on('data', d => (this.log += d))
  }

  static async start(): Promise<Mosquitto> {
    const dir = await mkdtemp(join(tmpdir(), 'edgeward-mosquitto-'))
    const port = await freePort()
    const conf = join(dir, 'mosquitto.conf')
    await writeFile(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n`)
    const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    const m = new Mosquitto(`mqtt://127.0.0.1:${port}`, proc, dir)
    try {
      await waitFor('mosquitto to listen', async () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${m.log}`)
        return (await accepts(port)) ? true : undefined
      })
    } catch (err) {
      await m.stop()
      throw err
    }
    return m
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise(resolve => this.proc.once('exit', resolve))
      this.proc.kill('SIGTERM')
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** A started node with an identity in its own temp dir; `stop` removes the dir. */
export class GatewayNode {
  readonly node: EdgewardNode
  private readonly dir: string

  private constructor(node: EdgewardNode, dir: string) {
    this.node = node
    this.dir = dir
  }

  static async start(): Promise<GatewayNode> {
    const dir = await mkdtemp(join(tmpdir(), 'edgeward-mqtt-'))
    await createIdentity(dir, { now: Date.now() })
    const node = await EdgewardNode.create({ dataDir: dir })
    await node.start()
    return new GatewayNode(node, dir)
  }

  /** The readings stored in a stream, decrypted by the owner, as {ts, value}. */
  async stored(space: string, stream: string): Promise<{ ts: number; value: unknown }[]> {
    return (await this.node.data.read(space, stream)).map(r => ({ ts: r.ts, value: r.value }))
  }

  async stop(): Promise<void> {
    await this.node.stop()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** The credentials in a gateway's data directory (DIR/mqtt-credentials), as a device is given them. */
export async function credentialsIn(dataDir: string): Promise<MqttCredentials> {
  return JSON.parse(await readFile(join(dataDir, MQTT_CREDENTIALS_FILE), 'utf8'))
}

/** Start an embedded broker on a free port of 127.0.0.1 with new credentials, as the tests' gateways do. */
export async function startBroker(
  c: IngestComponents,
  opts: Omit<EmbeddedBrokerOptions, 'credentials' | 'port'> = {},
): Promise<EmbeddedBroker & { credentials: MqttCredentials }> {
  const credentials = newMqttCredentials()
  return Object.assign(await EmbeddedBroker.start(c, { port: 0, credentials, ...opts }), { credentials })
}

/**
 * Publish each [topic, payload] at QoS 1 in order, from a client of that protocol version
 * (with `auth`, the broker's user name and password), then disconnect.
 */
export async function publishAll(
  url: string,
  version: 4 | 5,
  messages: [string, string][],
  auth: Partial<MqttCredentials> = {},
): Promise<void> {
  const client = await mqtt.connectAsync(url, { protocolVersion: version, reconnectPeriod: 0, ...auth })
  try {
    for (const [topic, payload] of messages) await client.publishAsync(topic, payload, { qos: 1 })
  } finally {
    await client.endAsync()
  }
}

/** Wait until an ingestion has counted `n` messages (ok or error) and acknowledged all of them. */
export async function settled(ingest: MqttIngest, n: number): Promise<void> {
  await waitFor(
    `${n} messages stored or refused, and acknowledged`,
    async () => {
      const s = ingest.stats()
      const errors = Object.values(s.errors).reduce((a, b) => a + (b ?? 0), 0)
      return s.ok + errors >= n && s.unacked === 0 && s.pending === 0 ? true : undefined
    },
    15_000,
    10,
  )
}

/** Every TCP listener and connection a suite opened (brokers, clients, nodes) is closed. */
export function assertNoTcpLeft(): void {
  const tcp = process.getActiveResourcesInfo().filter(r => r.startsWith('TCP'))
  assert.deepEqual(tcp, [], 'every TCP listener and connection is closed')
}
