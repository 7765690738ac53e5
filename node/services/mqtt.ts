/**
 * Gateway ingestion: MQTT messages become encrypted readings of a space, in one of two ways.
 * MqttIngest is a client of a broker (`edgeward ingest`, mosquitto or any other); BrokerIngest
 * is the embedded broker's own (`edgeward gateway --space`), which stores a device's message
 * before it answers the device (see BrokerIngest). Both parse, batch and store through
 * ReadingBatches. The embedded broker accepts only clients with its credentials.
 *
 * MqttIngest guarantees: a message is acknowledged to the broker (PUBACK, QoS 1) only after
 * the reading made from it is durable in the store, or, for a message that cannot be a
 * reading, after it has been counted as an error. Acknowledgements go out in the order the messages arrived
 * (MQTT 3.1.1 and 5 ask for that). The session is persistent (clean session off, a client id
 * stable across restarts), so a message received but not yet stored when the gateway
 * crashes or the connection drops is redelivered by the broker: delivery is at least once,
 * with no loss; a message stored but whose acknowledgement did not reach the broker is
 * stored again when redelivered.
 *
 * How: mqtt.js hands incoming messages to `handleMessage` one at a time and sends the PUBACK
 * when its callback succeeds. We answer that callback with a marker error, which lets the
 * client go on to the next message without acknowledging this one, and send the PUBACK
 * ourselves once the message's batch is stored. (`customHandleAcks` is MQTT 5 only and
 * holds every later message until the callback, which would make batches of one.) The
 * tests check the order "stored, then acknowledged" at the broker.
 *
 * Assumes: the node is a key holder of the space. Refuses (counts, acknowledges, never
 * stores): payloads that are not JSON, JSON that is not a number or an object, readings
 * that fail validation, topics that name no stream.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import type { Aedes, AuthenticateError, Client, PublishPacket } from 'aedes'
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt'
import { MAX_VALUE_JSON, type Reading, validateReadingInput } from '../../protocols/data/reading.ts'
import { ID_PATTERN, NAME_PATTERN } from '../../protocols/validate.ts'
import { DeadlineError, MqttError, NotFoundError, UnreachableError, UsageError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import type { IngestErrorReason, IngestionView, IngestStats } from '../ui/contract-streams.ts'
import type { DataService } from './data/index.ts'
import type { PolicyService } from './policy.ts'

const log = logger('edgeward:mqtt')

/** The API's types, written once in node/ui/contract-streams.ts; named here too for the CLI. */
export type { IngestErrorReason, IngestStats }

/** A payload bigger than this is refused before parsing. */
export const MAX_PAYLOAD_BYTES = MAX_VALUE_JSON + 256

/**
 * An MQTT payload as a reading: a JSON number is the value at `now`; an object with exactly a
 * numeric `ts` and a `value` is the reading as given; any other object is the value at `now`.
 */
export function readingFromPayload(
  payload: Uint8Array,
  now: number,
): { reading: Reading } | { error: IngestErrorReason; message: string } {
  if (payload.byteLength > MAX_PAYLOAD_BYTES) return { error: 'too-large', message: `${payload.byteLength} bytes` }
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (err) {
    return { error: 'not-json', message: (err as Error).message }
  }
  let input: unknown
  if (typeof parsed === 'number') input = { ts: now, value: parsed }
  else if (parsed != null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const keys = Object.keys(parsed)
    const given = keys.length === 2 && 'value' in parsed && 'ts' in parsed && typeof parsed.ts === 'number'
    input = given ? parsed : { ts: now, value: parsed }
  } else {
    return { error: 'not-a-reading', message: 'the payload must be a JSON number or object' }
  }
  try {
    return { reading: validateReadingInput(input) }
  } catch (err) {
    return { error: 'not-a-reading', message: (err as Error).message }
  }
}

/** Is `filter` a valid MQTT topic filter (`+` a whole level, `#` a whole last level)? */
export function isTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 1024 || filter.includes('\u0000')) return false
  const levels = filter.split('/')
  return levels.every(
    (l, i) => (l === '#' && i === levels.length - 1) || l === '+' || (!l.includes('#') && !l.includes('+')),
  )
}

/** Does a topic match an MQTT topic filter? Topics starting with `$` match no leading wildcard. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/**
 * The stream a topic feeds: with a map (stream -> topic filter), the first stream whose filter
 * matches; without one, the topic's last level, which must be a valid stream name.
 */
export function streamForTopic(
  topic: string,
  map: Record<string, string> | undefined,
): { stream: string } | { error: IngestErrorReason } {
  if (map !== undefined) {
    for (const [stream, filter] of Object.entries(map)) if (topicMatches(filter, topic)) return { stream }
    return { error: 'unmapped-topic' }
  }
  const last = topic.slice(topic.lastIndexOf('/') + 1)
  return NAME_PATTERN.test(last) ? { stream: last } : { error: 'bad-stream-name' }
}

export interface MqttIngestOptions {
  /** the space the readings go to (this node must be its key holder) */
  space: string
  /** the broker: mqtt://HOST:PORT (also mqtts, ws, wss) */
  url: string
  /** the MQTT topic filter to subscribe to, with `+` and `#` wildcards */
  topic: string
  /** stream -> topic filter; without it, a message's stream is its topic's last level */
  map?: Record<string, string>
  /** MQTT 3.1.1 (4, the default) or 5 */
  protocolVersion?: 4 | 5
  /** the broker's user name and password, if it asks for them (also taken from the URL: mqtt://USER:PASSWORD@HOST) */
  username?: string
  password?: string
  /** the MQTT client id of the persistent session (default: derived from space, url and topic) */
  clientId?: string
  /** a stream's batch is stored at the latest this long after its first message (default 50 ms) */
  flushIntervalMs?: number
  /** ... or as soon as it has this many readings (default 500) */
  maxBatch?: number
  /** unacknowledged messages held before the client stops reading from the broker (default 5000) */
  maxUnacked?: number
  /** how long the first connection may take (default 10 s) */
  connectTimeoutMs?: number
  /** how long stop() waits for batches to be stored; what is left is redelivered later (default 5 s) */
  stopTimeoutMs?: number
  /** MQTT 5: how long the broker keeps the session after a disconnect (default 1 day) */
  sessionExpirySeconds?: number
}

/** What MqttIngest needs of a node; an EdgewardNode is one. */
export interface IngestComponents {
  data: Pick<DataService, 'publish'>
  metrics: Metrics
  now?: () => number
}

/** The marker that tells mqtt.js to go on without acknowledging (see the module comment). */
class DeferredAck extends Error {
  static override name = 'DeferredAck'

  constructor(message = 'acknowledged once stored') {
    super(message)
    this.name = 'DeferredAck'
  }
}
const DEFERRED = new DeferredAck('acknowledged once stored')

/** A QoS 1 message waiting for its PUBACK. */
interface Delivery {
  messageId: number
  done: boolean
}

interface Batched {
  reading: Reading
  /** runs once the reading is durable */
  stored: () => void
}

const METRIC = 'edgeward_mqtt_messages_total'

/** Default client id: stable for the same (space, broker, topic), within MQTT 3.1.1's 23 characters. */
export function ingestClientId(...parts: string[]): string {
  return `edgeward${createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 15)}`
}

function emptyStats(): IngestStats {
  return { received: 0, ok: 0, errors: {}, pending: 0, unacked: 0, storageFailures: 0, connected: false, reconnects: 0 }
}

/**
 * MQTT messages as readings of one space: each message is parsed (or refused and counted),
 * batched per stream and stored, one store at a time per stream in arrival order, retried
 * with backoff until it is durable. Both ingestions use it: MqttIngest (a client of a broker)
 * and BrokerIngest (the embedded broker's own).
 */
class ReadingBatches {
  private readonly c: IngestComponents
  private readonly now: () => number
  private readonly space: string
  private readonly map: Record<string, string> | undefined
  private readonly flushIntervalMs: number
  private readonly maxBatch: number
  /** shared with the ingestion that owns these batches */
  private readonly s: IngestStats
  private readonly batches = new Map<string, Batched[]>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly flushing = new Map<string, Promise<void>>()
  /** drain() ran out of time: storage retries end */
  private abandoned = false
  private readonly retryWake = new Set<() => void>()

  constructor(
    c: IngestComponents,
    o: { space: string; map?: Record<string, string>; flushIntervalMs: number; maxBatch: number },
    stats: IngestStats,
  ) {
    this.c = c
    this.now = c.now ?? Date.now
    this.space = o.space
    this.map = o.map
    this.flushIntervalMs = o.flushIntervalMs
    this.maxBatch = o.maxBatch
    this.s = stats
    c.metrics.describe(METRIC, 'MQTT messages ingested: ok (stored) or error, by reason')
    c.metrics.describe('edgeward_mqtt_storage_failures_total', 'failed attempts to store a batch of MQTT readings')
  }

  /**
   * Take one message: `stored` runs once the reading made from it is durable, or at once
   * (before `take` returns) for a message that cannot be a reading, which is counted.
   */
  take(topic: string, payload: Uint8Array, stored: () => void): void {
    const target = streamForTopic(topic, this.map)
    const parsed = 'error' in target ? target : readingFromPayload(payload, this.now())
    if ('error' in parsed) {
      this.s.errors[parsed.error] = (this.s.errors[parsed.error] ?? 0) + 1
      this.c.metrics.inc(METRIC, { result: 'error', reason: parsed.error })
      log('refused a message on %s: %s', topic, parsed.error)
      stored()
      return
    }
    const stream = (target as { stream: string }).stream
    let batch = this.batches.get(stream)
    if (batch === undefined) {
      batch = []
      this.batches.set(stream, batch)
    }
    batch.push({ reading: parsed.reading, stored })
    this.s.pending++
    if (batch.length >= this.maxBatch) void this.flush(stream)
    else if (!this.timers.has(stream)) {
      this.timers.set(
        stream,
        setTimeout(() => this.flush(stream), this.flushIntervalMs),
      )
    }
  }

  /**
   * Store everything batched; true once it is, false if `timeoutMs` passed first (then
   * retries end, and a store that never succeeds never calls its `stored`).
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const streams = new Set([...this.batches.keys(), ...this.flushing.keys()])
    const all = Promise.all([...streams].map(s => this.flush(s)))
    let timer: NodeJS.Timeout | undefined
    const inTime = await Promise.race([
      all.then(() => true),
      new Promise<boolean>(resolve => {
        timer = setTimeout(() => resolve(false), timeoutMs)
      }),
    ])
    clearTimeout(timer)
    if (!inTime) {
      this.abandoned = true
      for (const wake of [...this.retryWake]) wake()
    }
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    return inTime
  }

  /** Store a stream's batched readings; one store at a time per stream, in arrival order. */
  private flush(stream: string): Promise<void> {
    clearTimeout(this.timers.get(stream))
    this.timers.delete(stream)
    const running = this.flushing.get(stream)
    if (running !== undefined) return running
    const run = (async () => {
      for (;;) {
        const batch = this.batches.get(stream) ?? []
        if (batch.length === 0 || this.abandoned) break
        const items = batch.splice(0, this.maxBatch)
        await this.store(stream, items)
      }
    })().finally(() => {
      this.flushing.delete(stream)
      if (this.batches.get(stream)?.length === 0) this.batches.delete(stream)
    })
    this.flushing.set(stream, run)
    return run
  }

  /** Store one batch, retrying with backoff until it is durable (or drain() gives up on it). */
  private async store(stream: string, items: Batched[]): Promise<void> {
    for (let backoff = 100; ; backoff = Math.min(backoff * 2, 5000)) {
      try {
        await this.c.data.publish(
          this.space,
          stream,
          items.map(i => i.reading),
        )
        break
      } catch (err) {
        this.s.storageFailures++
        this.s.lastError = (err as Error).message
        this.c.metrics.inc('edgeward_mqtt_storage_failures_total')
        log.error('could not store %d readings of %s (retrying): %s', items.length, stream, (err as Error).message)
        if (this.abandoned) return
        await new Promise<void>(resolve => {
          const wake = () => {
            clearTimeout(t)
            this.retryWake.delete(wake)
            resolve()
          }
          const t = setTimeout(wake, backoff)
          this.retryWake.add(wake)
        })
        if (this.abandoned) return
      }
    }
    this.s.pending -= items.length
    this.s.ok += items.length
    this.c.metrics.inc(METRIC, { result: 'ok' }, items.length)
    for (const i of items) i.stored()
  }
}

/** Subscribes to a broker and turns each message into a reading of a space. */
export class MqttIngest {
  readonly options: Readonly<Required<Pick<MqttIngestOptions, 'space' | 'url' | 'topic' | 'clientId'>>> & {
    map?: Record<string, string>
    protocolVersion: 4 | 5
  }
  private readonly maxUnacked: number
  private readonly stopTimeoutMs: number
  /** from the options, or taken out of the URL (so that the URL shown and the client id carry no password) */
  private readonly auth: { username?: string; password?: string }
  private readonly batches: ReadingBatches
  private client: MqttClient | undefined
  /** deliveries of the current connection, in arrival order: PUBACKs go out from the front */
  private acks: Delivery[] = []
  /** mqtt.js waits for this before reading the next message (too many unacknowledged) */
  private paused: (() => void) | undefined
  private stopping = false
  /** stop() ran out of time: nothing more is acknowledged */
  private abandoned = false
  private readonly s: IngestStats = emptyStats()

  private constructor(c: IngestComponents, opts: MqttIngestOptions) {
    const url = new URL(opts.url)
    this.auth = {
      ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
      ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
      ...(opts.username === undefined ? {} : { username: opts.username }),
      ...(opts.password === undefined ? {} : { password: opts.password }),
    }
    let bare = opts.url
    if (url.username !== '' || url.password !== '') {
      url.username = ''
      url.password = ''
      bare = url.href
    }
    this.options = {
      space: opts.space,
      url: bare,
      topic: opts.topic,
      ...(opts.map === undefined ? {} : { map: { ...opts.map } }),
      protocolVersion: opts.protocolVersion ?? 4,
      clientId: opts.clientId ?? ingestClientId(opts.space, bare, opts.topic, JSON.stringify(opts.map ?? {})),
    }
    this.maxUnacked = opts.maxUnacked ?? 5000
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 5000
    this.batches = new ReadingBatches(
      c,
      {
        space: opts.space,
        ...(opts.map === undefined ? {} : { map: opts.map }),
        flushIntervalMs: opts.flushIntervalMs ?? 50,
        maxBatch: opts.maxBatch ?? 500,
      },
      this.s,
    )
  }

  /** Check the options, connect, subscribe (QoS 1); resolves once subscribed. */
  static async start(c: IngestComponents, opts: MqttIngestOptions): Promise<MqttIngest> {
    checkIngestOptions(opts)
    const ingest = new MqttIngest(c, opts)
    await ingest.connect(opts)
    return ingest
  }

  private async connect(opts: MqttIngestOptions): Promise<void> {
    const { default: mqtt } = await import('mqtt')
    const o = this.options
    const clientOpts: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: o.protocolVersion,
      clean: false,
      reconnectPeriod: 1000,
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
      ...this.auth,
      ...(o.protocolVersion === 5
        ? { properties: { sessionExpiryInterval: opts.sessionExpirySeconds ?? 24 * 3600 } }
        : {}),
    }
    const client = mqtt.connect(o.url, clientOpts)
    this.client = client
    if (typeof (client as unknown as { _sendPacket?: unknown })._sendPacket !== 'function') {
      client.end(true)
      throw new MqttError('this version of mqtt.js cannot acknowledge after storage (no _sendPacket)')
    }
    client.handleMessage = (packet, callback) => this.onMessage(packet, callback)
    client.on('connect', connack => {
      this.s.connected = true
      log('connected to %s as %s (session present: %s)', o.url, o.clientId, connack.sessionPresent)
    })
    client.on('close', () => this.onClose())
    client.on('reconnect', () => {
      this.s.reconnects++
    })
    client.on('error', err => {
      this.s.lastError = err.message
      log('%s: %s', o.url, err.message)
    })
    try {
      await new Promise<void>((resolve, reject) => {
        const settle = (err?: Error) => {
          clearTimeout(timer)
          client.off('connect', onConnect)
          client.off('error', settle)
          if (err === undefined) resolve()
          else reject(err)
        }
        const onConnect = () => settle()
        const timer = setTimeout(
          () => settle(new DeadlineError(`no answer within ${clientOpts.connectTimeout} ms`)),
          clientOpts.connectTimeout,
        )
        client.on('connect', onConnect)
        client.on('error', settle)
      })
      const granted = await client.subscribeAsync(o.topic, { qos: 1 })
      const refused = granted.find(g => g.qos !== 1 && g.qos !== 0)
      if (refused !== undefined) throw new MqttError(`the broker refused the subscription to ${o.topic}`)
    } catch (err) {
      await client.endAsync(true)
      throw new UnreachableError(`could not ingest ${o.topic} from ${o.url}: ${(err as Error).message}`)
    }
    log('ingesting %s from %s into %s', o.topic, o.url, o.space)
  }

  private onMessage(packet: IPublishPacket, callback: (err?: Error) => void): void {
    this.s.received++
    const delivery =
      packet.qos > 0 && packet.messageId !== undefined ? { messageId: packet.messageId, done: false } : undefined
    if (this.stopping) {
      // left unacknowledged: the broker delivers it again to the next session
      if (delivery !== undefined) callback(DEFERRED)
      else callback()
      return
    }
    if (delivery !== undefined) {
      this.acks.push(delivery)
      this.s.unacked = this.acks.length
    }
    this.batches.take(packet.topic, packet.payload as Uint8Array, () => this.acknowledge(delivery))
    if (delivery === undefined) callback()
    else if (this.acks.length < this.maxUnacked) callback(DEFERRED)
    // too much unacknowledged: read on only when acknowledgements have caught up
    else this.paused = () => callback(DEFERRED)
  }

  private onClose(): void {
    this.s.connected = false
    // acknowledgements are per connection; what was not acknowledged is redelivered
    this.acks = []
    this.s.unacked = 0
    this.resume()
  }

  private resume(): void {
    const p = this.paused
    this.paused = undefined
    p?.()
  }

  /** Mark a delivery done and send every PUBACK that is now due, in arrival order. */
  private acknowledge(delivery: Delivery | undefined): void {
    if (delivery !== undefined) delivery.done = true
    if (this.abandoned) return
    const client = this.client!
    while (this.acks.length > 0 && this.acks[0].done) {
      const d = this.acks.shift()!
      // a PUBACK sent while not connected would be queued for a later session: never do that
      if (!client.connected) break
      ;(client as unknown as MqttInternals)._sendPacket({ cmd: 'puback', messageId: d.messageId, reasonCode: 0 })
    }
    this.s.unacked = this.acks.length
    if (this.paused !== undefined && this.acks.length < this.maxUnacked) this.resume()
  }

  stats(): IngestStats {
    return { ...this.s, errors: { ...this.s.errors } }
  }

  /**
   * Stop taking messages, store what is batched and acknowledge it (for at most
   * `stopTimeoutMs`), then disconnect. Anything left unacknowledged stays in the broker's
   * session and is delivered to the next ingestion with the same client id.
   */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.resume()
    const inTime = await this.batches.drain(this.stopTimeoutMs)
    if (!inTime) {
      log.error('stopping %s: %d readings not stored in time, left to be redelivered', this.options.url, this.s.pending)
      this.abandoned = true
    }
    // a graceful end sends the PUBACKs written so far, then DISCONNECT; the session stays on the broker
    await this.client?.endAsync(!inTime)
    this.s.connected = false
  }
}

/** mqtt.js's packet writer, which it keeps private; see the module comment. */
interface MqttInternals {
  _sendPacket(packet: { cmd: 'puback'; messageId: number; reasonCode: number }): void
}

function checkIngestOptions(o: MqttIngestOptions): void {
  if (!ID_PATTERN.test(o.space)) throw new UsageError(`not a space id: ${o.space}`)
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw new UsageError(`not a broker URL: ${o.url} (e.g. mqtt://127.0.0.1:1883)`)
  }
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(url.protocol))
    throw new UsageError(`the broker URL must be mqtt://, mqtts://, ws:// or wss://, got ${o.url}`)
  if (!isTopicFilter(o.topic)) throw new UsageError(`not an MQTT topic filter: ${o.topic}`)
  for (const [stream, filter] of Object.entries(o.map ?? {})) {
    if (!NAME_PATTERN.test(stream)) throw new UsageError(`not a stream name: ${stream}`)
    if (!isTopicFilter(filter)) throw new UsageError(`not an MQTT topic filter for ${stream}: ${filter}`)
  }
  if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5)
    throw new UsageError('the MQTT protocol version must be 4 (3.1.1) or 5')
}

/** One ingestion as the node's API lists it (`GET /v1/ingest`). */
export type IngestionInfo = IngestionView

/** What MqttIngestions needs of a node; an EdgewardNode is one. */
export interface IngestionsComponents extends IngestComponents {
  policy: Pick<PolicyService, 'holds'>
  identity: { peerId: string }
}

/** The ingestions a running node does, started and stopped through its local API. */
export class MqttIngestions {
  private readonly c: IngestionsComponents
  private readonly running = new Map<string, MqttIngest | BrokerIngest>()
  private readonly starting = new Set<string>()

  constructor(c: IngestionsComponents) {
    this.c = c
  }

  /** Start an ingestion into a space this node holds the keys of; resolves once subscribed. */
  async start(opts: Omit<MqttIngestOptions, 'clientId'>): Promise<IngestionInfo> {
    checkIngestOptions(opts)
    if (!this.c.policy.holds(opts.space)) throw new UsageError(`this node is not a key holder of space ${opts.space}`)
    const clientId = ingestClientId(
      this.c.identity.peerId,
      opts.space,
      opts.url,
      opts.topic,
      JSON.stringify(opts.map ?? {}),
    )
    // one session per client id: a second one would take the broker session from the first
    const taken = [...this.running.values()].some(i => i.options.clientId === clientId) || this.starting.has(clientId)
    if (taken) throw new UsageError(`an ingestion already takes ${opts.topic} from ${opts.url} into this space`)
    this.starting.add(clientId)
    try {
      const ingest = await MqttIngest.start(this.c, { ...opts, clientId })
      const id = randomBytes(6).toString('hex')
      this.running.set(id, ingest)
      return this.info(id, ingest)
    } finally {
      this.starting.delete(clientId)
    }
  }

  /** List the embedded broker's own ingestion with the others; it stops with the broker, not through stop(id). */
  attach(ingest: BrokerIngest): IngestionInfo {
    const id = randomBytes(6).toString('hex')
    this.running.set(id, ingest)
    return this.info(id, ingest)
  }

  list(): IngestionInfo[] {
    return [...this.running].map(([id, i]) => this.info(id, i))
  }

  get(id: string): IngestionInfo {
    const ingest = this.running.get(id)
    if (ingest === undefined) throw new NotFoundError(`no ingestion ${id}`)
    return this.info(id, ingest)
  }

  /** Stop one ingestion (storing and acknowledging what it received); returns its final stats. */
  async stop(id: string): Promise<IngestionInfo> {
    const ingest = this.running.get(id)
    if (ingest === undefined) throw new NotFoundError(`no ingestion ${id}`)
    // stopped alone, the broker could only refuse what devices publish
    if (ingest instanceof BrokerIngest)
      throw new UsageError(`ingestion ${id} is the gateway's own: it stops with the gateway`)
    this.running.delete(id)
    await ingest.stop()
    return this.info(id, ingest)
  }

  async stopAll(): Promise<void> {
    const all = [...this.running.values()]
    this.running.clear()
    await Promise.all(all.map(i => i.stop()))
  }

  private info(id: string, i: MqttIngest | BrokerIngest): IngestionInfo {
    return { id, ...i.options, stats: i.stats() }
  }
}

/** What a client must present to the embedded broker (MQTT 3.1.1 user name and password). */
export interface MqttCredentials {
  username: string
  password: string
}

/** Where the gateway keeps its broker's credentials, in its data directory (mode 0600). */
export const MQTT_CREDENTIALS_FILE = 'mqtt-credentials'

/** New credentials: a fixed user name and a random password (144 bits). */
export function newMqttCredentials(): MqttCredentials {
  return { username: 'edgeward', password: randomBytes(18).toString('base64url') }
}

/**
 * The embedded broker's credentials, from DIR/mqtt-credentials ({"username", "password"} as
 * JSON, readable by the owner only), made there on first use.
 */
export async function mqttCredentials(
  dataDir: string,
): Promise<{ credentials: MqttCredentials; path: string; created: boolean }> {
  const path = join(dataDir, MQTT_CREDENTIALS_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const credentials = newMqttCredentials()
    const tmp = `${path}.tmp`
    await rm(tmp, { force: true })
    await writeFile(tmp, `${JSON.stringify(credentials)}\n`, { mode: 0o600, flag: 'wx' })
    await rename(tmp, path)
    return { credentials, path, created: true }
  }
  let c: Partial<MqttCredentials>
  try {
    c = JSON.parse(text)
  } catch {
    c = {}
  }
  if (typeof c.username !== 'string' || c.username === '' || typeof c.password !== 'string' || c.password === '')
    throw new MqttError(`${path} holds no {"username", "password"}: fix it, or remove it to have new credentials made`)
  // a copy restored with looser permissions is tightened again
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600)
  return { credentials: { username: c.username, password: c.password }, path, created: false }
}

function sameSecret(given: Uint8Array, expected: string): boolean {
  const digest = (b: Uint8Array | string) => createHash('sha256').update(b).digest()
  return timingSafeEqual(digest(given), digest(expected))
}

/** Why the embedded broker refused a connection (the `reason` label of edgeward_mqtt_connections_refused_total). */
export type ConnectionRefusal = 'no-credentials' | 'bad-credentials'

export interface BrokerIngestOptions {
  /** the space the readings go to (this node must be its key holder) */
  space: string
  /** stream -> topic filter; without it, a message's stream is its topic's last level */
  map?: Record<string, string>
  /** a stream's readings are stored at most this many at a time (default 500) */
  maxBatch?: number
  /** how long stop() waits for what it took to be stored (default 5 s) */
  stopTimeoutMs?: number
}

/** An acknowledgement the broker holds until its message is stored. */
interface HeldAck {
  done: boolean
  release: (err?: Error | null) => void
}

/**
 * The embedded broker's own ingestion: what a device publishes becomes a reading of the
 * space before the broker acknowledges it. aedes runs its `authorizePublish` hook before it
 * writes the PUBACK of a QoS 1 message (and the PUBREC of a QoS 2 one); this answers that
 * hook only once the reading is durable, or once a message that cannot be a reading has
 * been counted. So a PUBACK from the embedded broker means "stored": a gateway killed at any
 * moment has every acknowledged reading on disk, and what it had not acknowledged the device
 * sends again. Answers go to each device in the order its messages arrived.
 *
 * A stream's readings are stored one batch at a time: what arrives while a store runs goes
 * into the next batch as soon as it ends (a group commit, with no timer to wait for).
 */
export class BrokerIngest {
  readonly options: {
    space: string
    url: string
    topic: string
    map?: Record<string, string>
    protocolVersion: 4
    clientId: string
  }
  private readonly batches: ReadingBatches
  private readonly stopTimeoutMs: number
  /** per device connection, acknowledgements in arrival order */
  private readonly held = new WeakMap<object, HeldAck[]>()
  private stopping = false
  private readonly s: IngestStats = emptyStats()

  constructor(c: IngestComponents, opts: BrokerIngestOptions & { url: string }) {
    if (!ID_PATTERN.test(opts.space)) throw new UsageError(`not a space id: ${opts.space}`)
    for (const [stream, filter] of Object.entries(opts.map ?? {})) {
      if (!NAME_PATTERN.test(stream)) throw new UsageError(`not a stream name: ${stream}`)
      if (!isTopicFilter(filter)) throw new UsageError(`not an MQTT topic filter for ${stream}: ${filter}`)
    }
    this.options = {
      space: opts.space,
      url: opts.url,
      topic: '#',
      ...(opts.map === undefined ? {} : { map: { ...opts.map } }),
      protocolVersion: 4,
      clientId: '',
    }
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 5000
    this.batches = new ReadingBatches(
      c,
      {
        space: opts.space,
        ...(opts.map === undefined ? {} : { map: opts.map }),
        flushIntervalMs: 0,
        maxBatch: opts.maxBatch ?? 500,
      },
      this.s,
    )
    this.s.connected = true
  }

  /** aedes' authorizePublish: answered once the message is stored (or refused and counted). */
  take(client: Client | null, packet: PublishPacket, answer: (err?: Error | null) => void): void {
    // not acknowledged: aedes closes the connection, and the device sends it again later
    if (this.stopping) {
      answer(new MqttError('the gateway is stopping'))
      return
    }
    this.s.received++
    // a will that aedes publishes for a client of an earlier run has no connection
    const key: object = client ?? this
    let queue = this.held.get(key)
    if (queue === undefined) {
      queue = []
      this.held.set(key, queue)
    }
    const ack: HeldAck = { done: false, release: answer }
    queue.push(ack)
    this.s.unacked++
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    this.batches.take(packet.topic, payload, () => {
      ack.done = true
      while (queue.length > 0 && queue[0].done) {
        this.s.unacked--
        queue.shift()!.release(null)
      }
    })
  }

  stats(): IngestStats {
    return { ...this.s, errors: { ...this.s.errors } }
  }

  /**
   * Refuse further messages; store and acknowledge what was taken (for at most
   * `stopTimeoutMs`). What is left unacknowledged the devices send again.
   */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    if (!(await this.batches.drain(this.stopTimeoutMs)))
      log.error('stopping the embedded broker: %d readings not stored in time, left unacknowledged', this.s.pending)
    this.s.connected = false
  }
}

export interface EmbeddedBrokerOptions {
  /** 127.0.0.1:`port` (default 1883; 0 picks a free port) */
  port?: number
  /** what every client must present: the broker accepts no anonymous or other client */
  credentials: MqttCredentials
  /** store what is published into this space before acknowledging it (see BrokerIngest) */
  ingest?: BrokerIngestOptions
}

/**
 * An MQTT broker (aedes, MQTT 3.1/3.1.1) inside the node, on 127.0.0.1 only. It accepts only
 * clients that present its credentials (refusals are counted by reason); with `ingest` it is
 * the gateway's ingestion, and acknowledges a message only once it is stored.
 */
export class EmbeddedBroker {
  readonly url: string
  readonly port: number
  /** the broker itself, for its events (tests watch its `ack`s) */
  readonly aedes: Aedes
  /** the broker's own ingestion, with `ingest` */
  readonly ingest: BrokerIngest | undefined
  private readonly server: Server
  private readonly sockets = new Set<Socket>()

  private constructor(aedes: Aedes, server: Server, port: number, ingest: BrokerIngest | undefined) {
    this.aedes = aedes
    this.server = server
    this.port = port
    this.url = `mqtt://127.0.0.1:${port}`
    this.ingest = ingest
    server.on('connection', s => {
      this.sockets.add(s)
      s.once('close', () => this.sockets.delete(s))
    })
  }

  /** Listen on 127.0.0.1:`port`; with `ingest`, store what is published into that space. */
  static async start(c: IngestComponents, opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const { Aedes: Broker } = await import('aedes')
    const refused = 'edgeward_mqtt_connections_refused_total'
    c.metrics.describe(refused, 'connections the embedded MQTT broker refused, by reason')
    const { username, password } = opts.credentials
    // the ingestion needs the broker's URL, which is known once it listens; nothing connects before
    let ingest: BrokerIngest | undefined
    const aedes = await Broker.createBroker({
      authenticate: (client, user, pass, done) => {
        const reason: ConnectionRefusal | undefined =
          user === undefined && pass === undefined
            ? 'no-credentials'
            : user === username && pass !== undefined && sameSecret(pass, password)
              ? undefined
              : 'bad-credentials'
        if (reason === undefined) return done(null, true)
        c.metrics.inc(refused, { reason })
        log('refused MQTT client %s: %s', client.id, reason)
        // CONNACK 4 (bad user name or password) or 5 (not authorized)
        const err = new MqttError(reason) as AuthenticateError
        ;(err as { returnCode: number }).returnCode = reason === 'bad-credentials' ? 4 : 5
        done(err, false)
      },
      authorizePublish: (client, packet, answer) => {
        if (packet.topic.startsWith('$SYS')) answer(new MqttError('$SYS topics are reserved'))
        else if (ingest === undefined) answer(null)
        else ingest.take(client, packet, answer)
      },
    })
    aedes.on('clientError', (client, err) => log('mqtt client %s: %s', client.id, err.message))
    const server = createServer(aedes.handle)
    const port = opts.port ?? 1883
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, '127.0.0.1', () => resolve())
      })
    } catch (err) {
      await new Promise<void>(resolve => aedes.close(() => resolve()))
      const e = err as NodeJS.ErrnoException
      throw new MqttError(
        e.code === 'EADDRINUSE'
          ? `127.0.0.1:${port} is in use: choose another --mqtt-port (0: any free port)`
          : e.message,
      )
    }
    const addr = server.address()
    const bound = typeof addr === 'object' && addr !== null ? addr.port : port
    if (opts.ingest !== undefined) ingest = new BrokerIngest(c, { ...opts.ingest, url: `mqtt://127.0.0.1:${bound}` })
    return new EmbeddedBroker(aedes, server, bound, ingest)
  }

  /** Stop the ingestion (storing and acknowledging what it took), then the broker. */
  async stop(): Promise<void> {
    await this.ingest?.stop()
    const closed = new Promise<void>(resolve => this.server.close(() => resolve()))
    await new Promise<void>(resolve => this.aedes.close(() => resolve()))
    for (const s of this.sockets) s.destroy()
    await closed
  }
}
