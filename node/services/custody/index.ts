/**
 * Custody: a space's data keys split k-of-n among custodian peers, so readers get keys while
 * the key holder is offline and no custodian can read or release alone. Assembled from parts
 * with one job each:
 * - CustodyStore (`store.ts`): the deals on disk, held and dealt;
 * - Dealer (`dealer.ts`): dealing each new data key, and handing custodians their deals;
 * - Custodian (`custodian.ts`): taking deals, and releasing shares after the policy check;
 * - CustodyReader (`reader.ts`): asking custodians and combining their shares.
 * The custodian set itself is a policy record (protocols/custody/records.ts), written by the
 * space's owner through the policy service; `describe` asks a peer for what the set names of it.
 */
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { CUSTODY_INFO_PROTOCOL, MAX_INFO_RESPONSE_BYTES } from '../../../protocols/custody/messages.ts'
import type { Custodian as CustodianEntry } from '../../../protocols/custody/records.ts'
import { openDeviceCert } from '../../../protocols/policy/records.ts'
import { UnreachableError } from '../../errors.ts'
import type { Store } from '../../store.ts'
import type { AuditService } from '../audit.ts'
import type { PolicyService } from '../policy.ts'
import { request } from '../stream-io.ts'
import { Custodian, type CustodianComponents, type CustodianOptions } from './custodian.ts'
import { Dealer, type DealerComponents } from './dealer.ts'
import { CustodyReader, type CustodyReaderComponents } from './reader.ts'
import { CustodyStore } from './store.ts'

export type { KeyDealer } from './dealer.ts'

const log = logger('edgeward:custody')

export type { CustodyKeys } from './reader.ts'

/** What custody uses of its node, together. */
export type CustodyComponents = CustodianComponents &
  DealerComponents &
  CustodyReaderComponents & { store: Pick<Store, 'db' | 'custody'> }

/** What custody reports in status. */
export interface CustodyStatus {
  /** deals this node holds a share of, as a custodian */
  held: number
  /** (deal, custodian) pairs this node dealt that are not acknowledged yet */
  unacknowledged: number
  /** keys this node dealt that fewer than k custodians acknowledged: only this node can give them out yet */
  belowThreshold: number
}

/** The custody service: the outer part that assembles the others. */
export class CustodyService {
  readonly dealer: Dealer
  readonly reader: CustodyReader
  private readonly custodian: Custodian
  private readonly store: CustodyStore
  private readonly c: CustodyComponents
  private sweep: NodeJS.Timeout | undefined
  private readonly policy: PolicyService
  private stopListening: (() => void) | undefined

  constructor(
    components: CustodyComponents,
    parts: { policy: PolicyService; audit: AuditService | undefined },
    opts: CustodianOptions = {},
  ) {
    this.c = components
    this.policy = parts.policy
    this.store = new CustodyStore(components)
    this.dealer = new Dealer(components, parts.policy, this.store)
    this.custodian = new Custodian(components, { ...parts, store: this.store }, opts)
    this.reader = new CustodyReader(components, parts.policy)
  }

  async start(): Promise<void> {
    await this.custodian.start()
    this.dealer.start()
    // a reader must reach the custodians when the key holder, its way to them, is gone: connect
    // once while it is there (the node then keeps their addresses and redials them)
    this.stopListening = this.policy.onRecords((space, records) => {
      if (records.some(r => r.kind === 'custodian-set')) this.connectCustodians(space)
    })
    let tick = 0
    this.sweep = setInterval(() => {
      this.custodian.sweep(this.c.now())
      // custodians not reached yet (their addresses come through the peers that know them)
      if (++tick % 10 === 0) this.connectAll()
    }, 1000)
    this.sweep.unref()
  }

  async stop(): Promise<void> {
    this.stopListening?.()
    clearInterval(this.sweep)
    await this.dealer.stop()
  }

  /**
   * Dial the custodians of every space's set that this node is not connected to. The node calls
   * it once it has dialled the peers it knew, not before: a dial by peer id to a custodian whose
   * address is not loaded yet looks it up, and the node's own dial of that peer would wait on it.
   */
  connectAll(): void {
    for (const space of this.policy.spaces()) this.connectCustodians(space)
  }

  /** Dial the custodians of the set in force that this node is not connected to (found through its peers). */
  private connectCustodians(space: string): void {
    const doc = this.policy.document(space)
    const set = doc.hasGenesis ? doc.state.custodianSet : undefined
    if (set === undefined) return
    const me = this.c.identity.peerId
    for (const { peer } of set.body.custodians) {
      if (peer === me) continue
      const id = peerIdFromString(peer)
      if (this.c.libp2p.getConnections(id).length > 0) continue
      this.c.libp2p.dial(id, { signal: AbortSignal.timeout(10_000) }).catch(err => {
        log('custodian %s not reached: %s', peer, (err as Error).message)
      })
    }
  }

  /**
   * What a custodian set names of `peer`: its peer id, its X25519 key and its principal, from
   * the device certificate it answers with (which must name that peer, and be in force).
   */
  async describe(peer: string): Promise<CustodianEntry> {
    let raw: Uint8Array
    try {
      raw = await request(
        this.c.libp2p,
        peerIdFromString(peer),
        CUSTODY_INFO_PROTOCOL,
        new Uint8Array(0),
        MAX_INFO_RESPONSE_BYTES,
      )
    } catch (err) {
      throw new UnreachableError(`custodian ${peer} did not answer: ${(err as Error).message}`)
    }
    const cert = openDeviceCert(raw)
    const now = this.c.now()
    if (cert.body.peer !== peer) throw new UnreachableError(`peer ${peer} answered with another peer's certificate`)
    if (now < cert.body.nbf || now >= cert.body.exp)
      throw new UnreachableError(`the certificate of ${peer} is not in force`)
    return { peer, xpk: cert.body.xpk, did: cert.body.iss }
  }

  /** Deals held and not yet acknowledged. */
  async status(): Promise<CustodyStatus> {
    const [held, waiting] = await Promise.all([this.store.heldCount(), this.store.unackedCount()])
    return { held, unacknowledged: waiting.pairs, belowThreshold: waiting.belowThreshold }
  }
}
