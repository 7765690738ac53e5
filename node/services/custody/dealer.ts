/**
 * The dealer: whoever makes a data key in a space that has custodians splits it k-of-n among
 * them (protocols/custody/deal.ts), stores the deal with the key, and hands each custodian
 * its deal on `/edgeward/custody/deal/1.0.0` until it acknowledges.
 *
 * Guarantees: a deal is made for every key made while the space has a custodian set in force,
 * in the same synced batch as the key (EpochKeys calls `deal`), so a crash never leaves a key
 * without its deal. Deals are sent as soon as the batch is durable, then again every few
 * seconds and whenever a peer connects, until each custodian acknowledged it (or refused it
 * for good: counted, and not sent again). A custodian passes each deal it takes on to the other
 * custodians of its set the same way, so one that was offline while the dealer was gets its
 * share from the others. The deal's time is the epoch's start, which
 * custodians take as the start of the epoch's data when they check a grant's data window.
 * Assumes: this node may deal keys of the space (it is a key holder of it); custodians check
 * that themselves.
 */

import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { dealKey } from '../../../protocols/custody/deal.ts'
import { CUSTODY_DEAL_PROTOCOL, decodeCustodyAnswer, MAX_ANSWER_BYTES } from '../../../protocols/custody/messages.ts'
import type { Identity } from '../../identity.ts'
import type { Metrics } from '../../metrics.ts'
import type { EdgewardLibp2p } from '../../network.ts'
import type { Store } from '../../store.ts'
import type { PolicyService } from '../policy.ts'
import { request } from '../stream-io.ts'
import type { CustodyStore, Unacked } from './store.ts'

const log = logger('edgeward:custody')

/** how often deals not yet acknowledged are sent again */
const RESEND_MS = 5_000
/** refusals after which a custodian is not asked again: it will not take this deal */
const FINAL_REFUSALS = new Set(['not-a-custodian', 'bad-share', 'conflicting-deal', 'not-a-dealer', 'malformed'])

type Batch = ReturnType<Store['db']['batch']>

/** What EpochKeys asks of custody when it makes a data key. */
export interface KeyDealer {
  /**
   * Add the deal of a new data key to `batch` when the space has custodians; the returned
   * function sends it, once the caller has written the batch durably.
   */
  deal(
    batch: Batch,
    at: { space: string; stream: string; form: string; epoch: number; start: number },
    key: Uint8Array,
  ): Promise<(() => void) | undefined>
}

/** What the dealer uses: the network, this node's identity, counters and the clock. */
export interface DealerComponents {
  libp2p: EdgewardLibp2p
  identity: Pick<Identity, 'principal'>
  metrics: Metrics
  now: () => number
}

/** The dealer's counters, with their help text. */
const METRICS = {
  edgeward_custody_deals_total: 'data keys this node dealt to custodians',
  edgeward_custody_deals_acknowledged_total: 'deals a custodian acknowledged to this dealer',
  edgeward_custody_deals_refused_total: 'deals a custodian refused this dealer, by reason',
  edgeward_custody_deals_passed_on_total: 'deals this custodian passed on to another custodian of its set',
}

/** Deals the keys this node makes, and sends the deals until each custodian has it. */
export class Dealer implements KeyDealer {
  private readonly c: DealerComponents
  private readonly policy: Pick<PolicyService, 'document' | 'spaces'>
  private readonly store: CustodyStore
  private sending: Promise<void> | undefined
  private again = false
  private timer: NodeJS.Timeout | undefined
  private readonly onConnect = () => this.kick()

  constructor(components: DealerComponents, policy: Pick<PolicyService, 'document' | 'spaces'>, store: CustodyStore) {
    this.c = components
    this.policy = policy
    this.store = store
    for (const [name, help] of Object.entries(METRICS)) components.metrics.describe(name, help)
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), RESEND_MS)
    this.timer.unref()
    this.c.libp2p.addEventListener('peer:connect', this.onConnect)
    this.kick()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.c.libp2p.removeEventListener('peer:connect', this.onConnect)
    await this.sending
  }

  async deal(
    batch: Batch,
    at: { space: string; stream: string; form: string; epoch: number; start: number },
    key: Uint8Array,
  ): Promise<(() => void) | undefined> {
    const set = this.policy.document(at.space).state.custodianSet
    if (set === undefined) return undefined
    const deal = await dealKey(key, set.body.custodians, set.body.k, {
      dealer: this.c.identity.principal,
      space: at.space,
      resource: { stream: at.stream, form: at.form, epoch: at.epoch },
      set: set.id,
      now: at.start,
    })
    this.store.addDealt(batch, deal)
    return () => {
      this.c.metrics.inc('edgeward_custody_deals_total')
      this.kick()
    }
  }

  /** Send what is not acknowledged, now (once more after the pass under way, if one is). */
  kick(): void {
    if (this.sending !== undefined) {
      this.again = true
      return
    }
    this.sending = (async () => {
      do {
        this.again = false
        await this.sendAll().catch(err => log.error('sending deals: %s', (err as Error).message))
      } while (this.again)
    })().finally(() => {
      this.sending = undefined
    })
  }

  private async sendAll(): Promise<void> {
    const pending = await this.store.unacked()
    // one custodian at a time per peer, all peers at once: a custodian that is down costs one timeout
    const byPeer = new Map<string, Unacked[]>()
    for (const u of pending) {
      const set = this.policy.document(u.deal.body.space).state.custodianSets.get(u.deal.body.set)
      const peer = set?.body.custodians[u.index]?.peer
      if (peer === undefined) continue
      byPeer.set(peer, [...(byPeer.get(peer) ?? []), u])
    }
    await Promise.all(
      [...byPeer].map(async ([peer, list]) => {
        for (const u of list) if (!(await this.send(peer, u))) return
      }),
    )
  }

  /** Hand one custodian its deal; false when it could not be reached (the rest for it wait). */
  private async send(peer: string, u: Unacked): Promise<boolean> {
    let answer: ReturnType<typeof decodeCustodyAnswer>
    try {
      const raw = await request(
        this.c.libp2p,
        peerIdFromString(peer),
        CUSTODY_DEAL_PROTOCOL,
        u.deal.bytes,
        MAX_ANSWER_BYTES,
      )
      answer = decodeCustodyAnswer(raw)
    } catch (err) {
      log('custodian %s unreachable: %s', peer, (err as Error).message)
      return false
    }
    if (answer.ok) {
      this.c.metrics.inc(
        u.list === 'unacked' ? 'edgeward_custody_deals_acknowledged_total' : 'edgeward_custody_deals_passed_on_total',
      )
      await this.store.acknowledged(u)
      return true
    }
    this.c.metrics.inc('edgeward_custody_deals_refused_total', { reason: answer.code })
    log('custodian %s refused deal %s: %s (%s)', peer, u.deal.id, answer.code, answer.reason)
    if (FINAL_REFUSALS.has(answer.code)) await this.store.acknowledged(u)
    return true
  }
}
