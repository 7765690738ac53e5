/**
 * Receiving a space's readings topic: encrypted records gossiped by its key holders.
 *
 * Guarantees: a message is stored (not synced: lost, it is fetched again) and forwarded only
 * if it decodes within its size limit, is for the space of its topic, and is signed by a key
 * holder of that space (or, for a member's file or message, by the device its stream record
 * names); then each record is told to the listeners.
 *
 * Assumes: the policy document of the space says who its key holders are; until its genesis
 * has arrived, messages are ignored (neither forwarded nor penalised).
 *
 * Refuses (rejects, which lowers the sender's gossipsub score, and counts by reason): a
 * message that does not decode, and one not from a key holder of the space.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { decodeReadingsMessage, type EncryptedReading, readingCount } from '../../../protocols/data/reading.ts'
import { readingsTopic } from '../../../protocols/sync/messages.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'
import type { PolicyService } from '../policy.ts'
import type { RecordStore } from './record-store.ts'

/** What the intake uses: gossipsub (to subscribe and validate) and the metrics. */
export interface GossipIntakeComponents {
  libp2p: { services: { pubsub: Pick<EdgewardLibp2p['services']['pubsub'], 'topicValidators' | 'subscribe'> } }
  metrics: Metrics
}

/** The parts the intake works with, and who is told of each record stored. */
export interface GossipIntakeParts {
  policy: Pick<PolicyService, 'document'>
  records: RecordStore
  /** told of every record stored */
  stored: (r: EncryptedReading) => void
}

/** Validates and stores the readings gossiped on the topics of the spaces this node is in. */
export class GossipIntake {
  private readonly c: GossipIntakeComponents
  private readonly p: GossipIntakeParts

  constructor(components: GossipIntakeComponents, parts: GossipIntakeParts) {
    this.c = components
    this.p = parts
    components.metrics.describe('edgeward_readings_stored_total', 'encrypted readings stored, by source')
    components.metrics.describe('edgeward_readings_refused_total', 'gossiped readings refused, by reason')
  }

  /** Start receiving a space's readings (after create or join); once per space. */
  subscribe(space: string): void {
    const topic = readingsTopic(space)
    const pubsub = this.c.libp2p.services.pubsub
    if (pubsub.topicValidators.has(topic)) return
    pubsub.topicValidators.set(topic, async (_peer, msg) => this.validate(space, msg))
    pubsub.subscribe(topic)
  }

  private async validate(
    space: string,
    msg: { type: string; from?: { toString(): string }; data: Uint8Array },
  ): Promise<TopicValidatorResult> {
    const doc = this.p.policy.document(space)
    if (!doc.hasGenesis) return TopicValidatorResult.Ignore
    let records: EncryptedReading[]
    let bytes: Uint8Array[]
    try {
      ;({ records, bytes } = decodeReadingsMessage(msg.data))
    } catch (err) {
      this.c.metrics.inc('edgeward_readings_refused_total', { reason: (err as Error).name })
      return TopicValidatorResult.Reject
    }
    const from = msg.type === 'signed' ? msg.from?.toString() : undefined
    // a key holder gossips any stream; a member's object comes only from the device its record names
    const state = doc.state
    const publisher = (stream: string) => state.holders.includes(from!) || state.streams.get(stream)?.body.peer === from
    if (records[0].space !== space || from === undefined || !records.every(r => publisher(r.stream))) {
      this.c.metrics.inc('edgeward_readings_refused_total', { reason: 'not-from-a-key-holder' }, records.length)
      return TopicValidatorResult.Reject
    }
    // a reader's copy of ciphertext need not be synced: lost, it is fetched again
    await this.p.records.store(
      records.map((r, i) => [r, bytes[i]]),
      false,
    )
    this.c.metrics.inc('edgeward_readings_stored_total', { source: 'gossip' }, readingCount(records))
    for (const r of records) this.p.stored(r)
    return TopicValidatorResult.Accept
  }
}
