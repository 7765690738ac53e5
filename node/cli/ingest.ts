/**
 * MQTT on the command line. `edgeward ingest` has the running node subscribe to a broker and
 * store what arrives in a space, and shows progress until Ctrl-C, when the node stops that
 * ingestion (storing and acknowledging what it received). `edgeward gateway` runs the node
 * like `start`, with an MQTT broker of its own on 127.0.0.1 whose messages it ingests.
 */
import { NAME_PATTERN } from '../../protocols/validate.ts'
import { UsageError } from '../errors.ts'
import type { EdgewardNode } from '../node.ts'
import type { IngestionInfo, IngestStats } from '../services/mqtt.ts'
import { ApiClient } from './client.ts'
import { runNode, type StartOptions } from './commands.ts'
import type { Output } from './output.ts'

/** `--map STREAM=TOPIC`... as {stream: topic filter}. */
export function parseMap(entries: string[]): Record<string, string> | undefined {
  if (entries.length === 0) return undefined
  const map: Record<string, string> = {}
  for (const e of entries) {
    const i = e.indexOf('=')
    const stream = e.slice(0, i)
    if (i <= 0 || i === e.length - 1) throw new UsageError(`--map takes STREAM=TOPIC, got ${e}`)
    if (!NAME_PATTERN.test(stream)) throw new UsageError(`--map: not a stream name: ${stream}`)
    if (stream in map) throw new UsageError(`--map names ${stream} twice`)
    map[stream] = e.slice(i + 1)
  }
  return map
}

/** `--mqtt-version` as the MQTT protocol level (4 for 3.1.1, or 5); UsageError otherwise. */
export function parseMqttVersion(v: string | undefined): 4 | 5 {
  if (v === undefined || v === '4') return 4
  if (v === '5') return 5
  throw new UsageError(`--mqtt-version must be 4 (MQTT 3.1.1) or 5, got ${v}`)
}

function errorCount(s: IngestStats): number {
  return Object.values(s.errors).reduce((a, b) => a + (b ?? 0), 0)
}

/** Resolves on SIGINT or SIGTERM (and stops listening for them). */
function untilSignal(): { stopped: Promise<void>; done: () => void } {
  let resolve!: () => void
  const stopped = new Promise<void>(r => (resolve = r))
  const stop = () => resolve()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return {
    stopped,
    done: () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    },
  }
}

/** `ingest SPACE --mqtt URL --topic T`: the running node ingests from a broker, with progress, until Ctrl-C. */
export async function ingest(
  dataDir: string,
  space: string,
  opts: { mqtt?: string; topic?: string; map: string[]; version?: string },
  o: Output,
): Promise<void> {
  if (opts.mqtt === undefined) throw new UsageError('ingest needs --mqtt URL (e.g. mqtt://127.0.0.1:1883)')
  if (opts.topic === undefined) throw new UsageError('ingest needs --topic PATTERN (e.g. sensors/#)')
  const map = parseMap(opts.map)
  const version = parseMqttVersion(opts.version)
  const client = await ApiClient.connect(dataDir)
  const signal = untilSignal()
  try {
    const started = await client.call<IngestionInfo>('POST', `/v1/spaces/${encodeURIComponent(space)}/ingest`, {
      url: opts.mqtt,
      topic: opts.topic,
      map,
      version,
    })
    const path = `/v1/ingest/${started.id}`
    if (o.json) o.out(JSON.stringify({ event: 'started', ...started }))
    else o.out(`ingesting ${started.topic} from ${started.url} into ${space} (ingestion ${started.id}); Ctrl-C to stop`)
    let last = started.stats
    let lastAt = performance.now()
    let stopping = false
    void signal.stopped.then(() => (stopping = true))
    while (!stopping) {
      await Promise.race([signal.stopped, new Promise(r => setTimeout(r, 1000))])
      if (stopping) break
      const now = await client.call<IngestionInfo>('GET', path)
      const at = performance.now()
      const seconds = (at - lastAt) / 1000
      const s = now.stats
      const okRate = (s.ok - last.ok) / seconds
      const errorRate = (errorCount(s) - errorCount(last)) / seconds
      if (o.json) o.out(JSON.stringify({ event: 'progress', okPerSecond: okRate, errorsPerSecond: errorRate, ...s }))
      else {
        const reasons = Object.entries(s.errors)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')
        o.out(
          `ok ${s.ok} (${okRate.toFixed(0)}/s)  errors ${errorCount(s)} (${errorRate.toFixed(0)}/s)${reasons ? ` [${reasons}]` : ''}  pending ${s.pending}${s.connected ? '' : '  (disconnected)'}`,
        )
      }
      last = s
      lastAt = at
    }
    const end = await client.call<IngestionInfo>('DELETE', path)
    if (o.json) o.out(JSON.stringify({ event: 'stopped', ...end }))
    else o.out(`stopped: ${end.stats.ok} stored, ${errorCount(end.stats)} refused, ${end.stats.pending} left unstored`)
  } finally {
    signal.done()
  }
}

/** The space this node owns with that name, or a new one. */
async function spaceNamed(node: EdgewardNode, name: string): Promise<{ space: string; created: boolean }> {
  for (const id of node.policy.spaces()) {
    const doc = node.policy.document(id)
    if (doc.hasGenesis && doc.state.genesis.body.name === name && doc.state.holders.includes(node.identity.peerId))
      return { space: id, created: false }
  }
  return { space: await node.createSpace(name), created: true }
}

/**
 * `start` with an embedded MQTT broker on 127.0.0.1:`mqttPort`, which accepts only clients
 * with the credentials kept in DIR/mqtt-credentials (made on first start); with `space`,
 * every topic it receives is stored into that space (topics `STREAM` or `ANYTHING/STREAM`)
 * before the broker acknowledges it.
 */
export async function gateway(
  dataDir: string,
  opts: StartOptions & { mqttPort: number; space?: string },
  o: Output,
): Promise<void> {
  await runNode(dataDir, opts, o, async (node, ingestions) => {
    const { EmbeddedBroker, mqttCredentials } = await import('../services/mqtt.ts')
    const { credentials, path, created } = await mqttCredentials(dataDir)
    const target = opts.space === undefined ? undefined : await spaceNamed(node, opts.space)
    const broker = await EmbeddedBroker.start(node, {
      port: opts.mqttPort,
      credentials,
      ...(target === undefined ? {} : { ingest: { space: target.space } }),
    })
    const lines = [
      `mqtt: ${broker.url}`,
      `mqtt credentials: ${path}${created ? ' (made now)' : ''}: user ${credentials.username}, the password is in the file`,
    ]
    if (broker.ingest !== undefined && target !== undefined) {
      ingestions.attach(broker.ingest)
      lines.push(
        `ingesting every topic into ${opts.space}: ${target.space}${target.created ? ' (created)' : ''}, acknowledged once stored`,
      )
    }
    return {
      info: {
        mqtt: broker.url,
        mqttCredentials: path,
        ...(target === undefined ? {} : { ingestSpace: target.space }),
      },
      lines,
      stop: () => broker.stop(),
    }
  })
}
