/**
 * Gossip of the key holder's stored records on a space's readings topic.
 *
 * Guarantees: records go out in the order they were stored, once stored, without holding up
 * the publish that stored them (the caller's next publish encrypts and syncs while these go
 * out). What is waiting when the sender comes round shares messages, up to
 * MAX_READINGS_PER_MESSAGE records and about MAX_READINGS_MESSAGE_BYTES each. `drain` waits
 * until nothing is waiting.
 *
 * Assumes: gossip is best effort: a reader that missed a record fetches it (backfill). A
 * failure to publish is counted and logged, never thrown.
 */
import { logger } from '@libp2p/logger'
import {
  encodeReadingsMessage,
  MAX_READINGS_MESSAGE_BYTES,
  MAX_READINGS_PER_MESSAGE,
} from '../../../protocols/data/reading.ts'
import { readingsTopic } from '../../../protocols/sync/messages.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'

const log = logger('edgeward:keys')

/** What the outbox uses: gossipsub (to publish) and the metrics. */
export interface OutboxComponents {
  libp2p: { services: { pubsub: Pick<EdgewardLibp2p['services']['pubsub'], 'publish'> } }
  metrics: Metrics
}

/** Stored records waiting to be gossiped, per space, each space with one sender at a time. */
export class Outbox {
  private readonly c: OutboxComponents
  /** records stored and not yet gossiped, per space, in the order they were stored */
  private readonly waiting = new Map<string, { records: Uint8Array[]; bytes: number }>()
  /** the sender of each space with records waiting */
  private readonly sending = new Map<string, Promise<void>>()

  constructor(components: OutboxComponents) {
    this.c = components
    components.metrics.describe(
      'edgeward_readings_gossip_failures_total',
      'stored records this key holder failed to gossip (readers fetch them)',
    )
  }

  /** Bytes of a space's records waiting to be gossiped. */
  bytes(space: string): number {
    return this.waiting.get(space)?.bytes ?? 0
  }

  /** Wait until every record queued has been sent (or failed). */
  async drain(): Promise<void> {
    while (this.sending.size > 0) await Promise.all(this.sending.values())
  }

  /** Queue stored records of a space for gossip; resolves once they (and those queued before) are sent. */
  send(space: string, records: Uint8Array[]): Promise<void> {
    let total = 0
    for (const r of records) total += r.byteLength
    const queued = this.waiting.get(space)
    if (queued !== undefined) {
      queued.records.push(...records)
      queued.bytes += total
      return this.sending.get(space)!
    }
    const box = { records, bytes: total }
    this.waiting.set(space, box)
    const run = (async () => {
      // after the I/O callbacks: the caller's next publish has started by then
      await new Promise(resolve => setImmediate(resolve))
      while (box.records.length > 0) {
        const batch = box.records
        box.records = []
        box.bytes = 0
        let pending: Uint8Array[] = []
        let size = 0
        const flush = async () => {
          if (pending.length === 0) return
          const message = encodeReadingsMessage(pending)
          const count = pending.length
          pending = []
          size = 0
          try {
            await this.c.libp2p.services.pubsub.publish(readingsTopic(space), message)
          } catch (err) {
            this.c.metrics.inc('edgeward_readings_gossip_failures_total', {}, count)
            log.error('gossiping %d records of space %s: %s', count, space, (err as Error).message)
          }
        }
        for (const bytes of batch) {
          if (pending.length >= MAX_READINGS_PER_MESSAGE || size + bytes.byteLength > MAX_READINGS_MESSAGE_BYTES - 4096)
            await flush()
          pending.push(bytes)
          size += bytes.byteLength + 4
        }
        await flush()
      }
      this.waiting.delete(space)
      this.sending.delete(space)
    })()
    this.sending.set(space, run)
    return run
  }
}
