/**
 * What the Streams screen and the node's API agree on: the streams of a space with their forms
 * (`GET /v1/spaces/:space/streams`), the NDJSON lines of
 * `GET /v1/spaces/:space/streams/:stream/readings`, and the MQTT ingestions of `GET /v1/ingest`.
 * Written once, imported by the node (node/api.ts), the client and the tests. No imports: the
 * browser bundle includes this file.
 */

/** A stream of a space as its record defines it (objects, the `obj-…` streams, are not listed). */
export interface StreamInfo {
  name: string
  /** the forms its gateway produces: `raw` always, `hashed`, `aggregate:<window>` */
  forms: string[]
  /** how long one key epoch lasts, ms */
  epochMs: number
}

/** What `GET /v1/spaces/:space/streams` answers. */
export interface StreamList {
  space: string
  /** empty until the space has synchronised */
  streams: StreamInfo[]
}

/** One reading as the node decrypted it: a line of the readings' NDJSON. */
export interface ReadingLine {
  /** when it was measured, ms since the epoch */
  ts: number
  /**
   * raw: the value as published (a number, or an object); hashed: `{ commitment: <hex> }`;
   * aggregate: {@link AggregateValue}
   */
  value: unknown
  seq: number
  epoch: number
  /** raw form only: the salt of the reading's commitment in the hashed form (hex) */
  salt?: string
}

/** The value of a reading of an `aggregate:<window>` form: one closed window. */
export interface AggregateValue {
  count: number
  min: number
  max: number
  mean: number
  sum: number
  windowMs: number
}

/** The one line a read answers when the grant forbids download: the readings went to a viewer file on the node. */
export interface ViewerLine {
  /** the viewer file's path on the node */
  viewer: string
  /** ISO time when the file is removed */
  until: string
  count: number
}

/** The line that ends a `follow=1` read the node stopped (a revocation, a lease that ended…); also a refusal's body. */
export interface ErrorLine {
  error: { name: string; message: string; code?: string }
}

/** Why an MQTT message did not become a reading (the `reason` label of edgeward_mqtt_messages_total). */
export type IngestErrorReason = 'too-large' | 'not-json' | 'not-a-reading' | 'bad-stream-name' | 'unmapped-topic'

/** The counters of one MQTT ingestion, as the node keeps them. */
export interface IngestStats {
  /** messages received (a redelivered message counts again) */
  received: number
  /** messages stored as readings */
  ok: number
  /** messages refused, by reason */
  errors: Partial<Record<IngestErrorReason, number>>
  /** readings waiting in a batch or being stored */
  pending: number
  /** messages received and not yet acknowledged */
  unacked: number
  /** failed attempts to store a batch (each is retried) */
  storageFailures: number
  connected: boolean
  reconnects: number
  lastError?: string
}

/** One MQTT ingestion of the node, as `GET /v1/ingest` lists it. */
export interface IngestionView {
  id: string
  /** the space id the readings go to */
  space: string
  /** the broker's URL */
  url: string
  /** the topic filter subscribed to */
  topic: string
  map?: Record<string, string>
  protocolVersion: 4 | 5
  clientId: string
  stats: IngestStats
}

/** What `GET /v1/ingest` answers (404 when the node runs no MQTT ingestion service). */
export interface IngestionList {
  ingestions: IngestionView[]
}
