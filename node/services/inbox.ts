/**
 * The inbox: everything shared with this node's person across its spaces — each object
 * (file, message) and stream a grant names for them, with who shared it, until when and
 * where it stands on the node's clock — and the access requests they filed that are still
 * waiting or were denied. Computed from the policy replicas and the requests kept here, so it
 * needs no state of its own; a version number changes whenever a policy record or a request
 * arrives, so that a client refetches only then.
 *
 * What it cannot say: an object's name, before this node opened it (names travel encrypted
 * with the content; the kind, file or message, is in the object's stream record).
 */

import type { OpenedRecord } from '../../crypto/signed.ts'
import { isObjectStream } from '../../protocols/data/objects.ts'
import type { Grant } from '../../protocols/policy/records.ts'
import type { Inbox, InboxItem, InboxKind, InboxState } from '../ui/contract-inbox.ts'
import type { ObjectsService } from './objects.ts'
import type { PolicyService } from './policy.ts'
import type { RequestsService } from './requests.ts'

/** What the inbox reads of its node. */
export interface InboxComponents {
  /** the person's did:key */
  me: string
  now: () => number
  policy: Pick<PolicyService, 'spaces' | 'document' | 'onRecords'>
  requests: Pick<RequestsService, 'list' | 'onRequest'>
  objects: Pick<ObjectsService, 'knownName' | 'namesVersion'>
  /** the name this person gave someone, if any */
  nameOf: (did: string) => string | undefined
}

/** The inbox of the node's person, and a version that changes with it. */
export class InboxService {
  private readonly c: InboxComponents
  private changes = 0
  private unsubscribe: (() => void)[] = []

  constructor(components: InboxComponents) {
    this.c = components
  }

  start(): void {
    this.unsubscribe = [this.c.policy.onRecords(() => this.changes++), this.c.requests.onRequest(() => this.changes++)]
  }

  stop(): void {
    for (const u of this.unsubscribe) u()
  }

  /** Changes whenever the inbox may have: a policy record or a request arrived, an object's name was learnt. */
  get version(): number {
    return this.changes + this.c.objects.namesVersion
  }

  /** Everything shared with this person, newest first. */
  async list(): Promise<Inbox> {
    const now = this.c.now()
    const version = this.version
    const items: InboxItem[] = []
    for (const space of this.c.policy.spaces()) {
      const doc = this.c.policy.document(space)
      if (!doc.hasGenesis) continue
      items.push(...this.sharedIn(space, now), ...(await this.askedIn(space)))
    }
    items.sort((a, b) => b.at - a.at || (a.key < b.key ? -1 : 1))
    return { me: this.c.me, now, version, items }
  }

  private named(did: string): { fromName?: string } {
    const name = this.c.nameOf(did)
    return name === undefined ? {} : { fromName: name }
  }

  private sharedIn(space: string, now: number): InboxItem[] {
    const state = this.c.policy.document(space).state
    const spaceName = state.genesis.body.name
    const out: InboxItem[] = []
    for (const g of state.grants.values()) {
      if (g.body.sub !== this.c.me) continue
      const status = state.grantStatus(g, now)
      for (const resource of g.body.streams) {
        const stream = state.streams.get(resource)
        const kind: InboxKind = isObjectStream(resource) ? (stream?.body.media ?? 'file') : 'stream'
        // an object whose record has not arrived yet is listed when it does
        if (kind !== 'stream' && stream === undefined) continue
        const name = kind === 'stream' ? undefined : this.c.objects.knownName(space, resource)
        out.push({
          key: `${space}/${g.id}/${resource}`,
          space,
          spaceName,
          kind,
          resource,
          ...(name === undefined ? {} : { name }),
          from: g.body.iss,
          ...this.named(g.body.iss),
          grant: g.id,
          at: g.body.nbf,
          notAfter: g.body.exp,
          state: stateOf(status.status, g, now),
          ...(status.reason === undefined ? {} : { why: status.reason }),
          download: g.body.download !== false,
          forward: g.body.forward ?? 'never',
        })
      }
    }
    return out
  }

  private async askedIn(space: string): Promise<InboxItem[]> {
    const state = this.c.policy.document(space).state
    const out: InboxItem[] = []
    for (const r of await this.c.requests.list(space)) {
      if (r.for !== this.c.me || r.status === 'approved') continue
      for (const resource of r.streams) {
        const stream = state.streams.get(resource)
        out.push({
          key: `${space}/request/${r.id}/${resource}`,
          space,
          spaceName: state.genesis.body.name,
          kind: isObjectStream(resource) ? (stream?.body.media ?? 'file') : 'stream',
          resource,
          from: state.owner,
          ...this.named(state.owner),
          at: r.at,
          state: r.status === 'pending' ? 'requested' : 'denied',
          ...(r.decisionReason === undefined ? {} : { why: r.decisionReason }),
          download: true,
          forward: 'never',
          request: r.id,
        })
      }
    }
    return out
  }
}

function stateOf(status: string, g: OpenedRecord<Grant>, now: number): InboxState {
  if (status === 'active') return 'active'
  if (status === 'revoked') return 'revoked'
  if (status === 'not-honoured') return 'not-honoured'
  if (status === 'pending' || now < g.body.nbf) return 'not-yet'
  return 'expired'
}
