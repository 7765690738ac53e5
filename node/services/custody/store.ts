/**
 * What custody keeps on disk, in the `custody` sublevel (node/store.ts), whose layout is here
 * and only here:
 * - `held!<space>!<stream>!<form>!<epoch>` -> [index, deal]: a deal this node holds a share of
 *   as a custodian (its index in the deal's set, and the signed deal, which carries the share
 *   sealed to this node's X25519 key)
 * - `dealt!<space>!<stream>!<form>!<epoch>` -> the signed deal this node made as a dealer
 * - `unacked!<space>!<stream>!<form>!<epoch>!<index>` -> nothing: custodian `index` has not
 *   acknowledged that deal yet
 * - `forward!<space>!<stream>!<form>!<epoch>!<index>` -> nothing: a held deal this custodian
 *   passes on to custodian `index` of its set, which may have been offline when the dealer was
 *   not (the deal carries every custodian's sealed share)
 * - `releases!<grant>` -> shares this custodian released under a grant (for its release limit)
 *
 * Guarantees: a held deal is written synced before the custodian acknowledges it; a dealt deal
 * and its unacknowledged entries go in the caller's batch with the data key they deal, so a
 * key is never stored without its deal (or the reverse). The first deal held for a resource is
 * kept: another for the same resource replaces it only when the caller says the first is void.
 * Assumes: the caller verified the deals (signature, set, its own share) before storing them.
 */
import { decodeCanonical, encodeCanonical } from '../../../crypto/encoding.ts'
import type { OpenedRecord } from '../../../crypto/signed.ts'
import { type CustodyResource, type Deal, MAX_DEAL_BYTES, openDeal } from '../../../protocols/custody/deal.ts'
import { DURABLE, pad, type Store } from '../../store.ts'

type Batch = ReturnType<Store['db']['batch']>

/** A deal this node holds a share of, and its index in the deal's set. */
export interface HeldDeal {
  index: number
  deal: OpenedRecord<Deal>
}

/** A custodian that has not acknowledged a deal yet: one dealt here, or one held here and passed on. */
export interface Unacked {
  deal: OpenedRecord<Deal>
  index: number
  list: 'unacked' | 'forward'
}

/** What the custody store uses: its sublevel and batches. */
export interface CustodyStoreComponents {
  store: Pick<Store, 'db' | 'custody'>
}

/** Where a deal's resource is kept: `<space>!<stream>!<form>!<epoch>`. */
function resourceKey(space: string, r: CustodyResource): string {
  if ('object' in r) return `${space}!object!${r.object}`
  return `${space}!${r.stream}!${r.form}!${pad(r.epoch)}`
}

/** The custody sublevel, read and written here only. */
export class CustodyStore {
  private readonly c: CustodyStoreComponents

  constructor(components: CustodyStoreComponents) {
    this.c = components
  }

  private get db() {
    return this.c.store.custody
  }

  /** The deal held (as a custodian) for one epoch of a stream's form, if any. */
  async held(space: string, stream: string, form: string, epoch: number): Promise<HeldDeal | undefined> {
    const raw = await this.db.get(`held!${resourceKey(space, { stream, form, epoch })}`)
    if (raw === undefined) return undefined
    const [index, bytes] = decodeCanonical(raw, MAX_DEAL_BYTES + 64) as [number, Uint8Array]
    return { index, deal: openDeal(bytes) }
  }

  /**
   * Keep a deal this custodian holds a share of, synced; false when one for its resource is held
   * already (unless `replace`: the caller found the one held void).
   */
  async hold(deal: OpenedRecord<Deal>, index: number, replace = false): Promise<boolean> {
    const key = resourceKey(deal.body.space, deal.body.resource)
    if (!replace && (await this.db.get(`held!${key}`)) !== undefined) return false
    // with it, the other custodians it is to be passed on to, in one synced batch
    const batch = this.c.store.db.batch()
    const at = { sublevel: this.db } as never
    batch.put(`held!${key}`, encodeCanonical([index, deal.bytes]), at)
    for (let i = 0; i < deal.body.n; i++) if (i !== index) batch.put(`forward!${key}!${pad(i)}`, new Uint8Array(0), at)
    await batch.write(DURABLE)
    return true
  }

  /** Deals held as a custodian, in all. */
  async heldCount(): Promise<number> {
    let n = 0
    for await (const _ of this.db.keys({ gte: 'held!', lt: 'held!~' })) n++
    return n
  }

  /** Add a deal this node made, and one unacknowledged entry per custodian, to `batch`. */
  addDealt(batch: Batch, deal: OpenedRecord<Deal>): void {
    const key = resourceKey(deal.body.space, deal.body.resource)
    const at = { sublevel: this.db } as never
    batch.put(`dealt!${key}`, deal.bytes, at)
    for (let i = 0; i < deal.body.n; i++) batch.put(`unacked!${key}!${pad(i)}`, new Uint8Array(0), at)
  }

  /** The deals some custodian has not acknowledged yet, dealt here or passed on from here (at most `limit` of each). */
  async unacked(limit = 1024): Promise<Unacked[]> {
    const out: Unacked[] = []
    for (const list of ['unacked', 'forward'] as const) {
      const deals = new Map<string, OpenedRecord<Deal> | undefined>()
      for await (const k of this.db.keys({ gte: `${list}!`, lt: `${list}!~`, limit })) {
        const cut = k.lastIndexOf('!')
        const key = k.slice(list.length + 1, cut)
        if (!deals.has(key)) deals.set(key, await this.dealAt(list, key))
        const deal = deals.get(key)
        if (deal !== undefined) out.push({ deal, index: Number(k.slice(cut + 1)), list })
      }
    }
    return out
  }

  private async dealAt(list: Unacked['list'], key: string): Promise<OpenedRecord<Deal> | undefined> {
    if (list === 'unacked') {
      const raw = await this.db.get(`dealt!${key}`)
      return raw === undefined ? undefined : openDeal(raw)
    }
    const raw = await this.db.get(`held!${key}`)
    return raw === undefined
      ? undefined
      : openDeal((decodeCanonical(raw, MAX_DEAL_BYTES + 64) as [number, Uint8Array])[1])
  }

  /** Custodian `u.index` acknowledged `u.deal` (or refused it for good): it is not sent again. */
  async acknowledged(u: Unacked): Promise<void> {
    await this.db.del(`${u.list}!${resourceKey(u.deal.body.space, u.deal.body.resource)}!${pad(u.index)}`, DURABLE)
  }

  /**
   * Unacknowledged (deal, custodian) pairs, in all, and the keys dealt here that fewer than k
   * custodians have acknowledged (which only this node can give out yet).
   */
  async unackedCount(): Promise<{ pairs: number; belowThreshold: number }> {
    const perDeal = new Map<string, number>()
    for await (const k of this.db.keys({ gte: 'unacked!', lt: 'unacked!~' })) {
      const key = k.slice('unacked!'.length, k.lastIndexOf('!'))
      perDeal.set(key, (perDeal.get(key) ?? 0) + 1)
    }
    let pairs = 0
    let belowThreshold = 0
    for (const [key, waiting] of perDeal) {
      pairs += waiting
      const raw = await this.db.get(`dealt!${key}`)
      if (raw === undefined) continue
      const { k, n } = openDeal(raw).body
      if (n - waiting < k) belowThreshold++
    }
    return { pairs, belowThreshold }
  }

  /** Shares this custodian released under a grant so far. */
  async releaseCount(grant: string): Promise<number> {
    const v = await this.db.get(`releases!${grant}`)
    return v === undefined ? 0 : (decodeCanonical(v, 16) as number)
  }

  /** Store, synced, the number of releases made under a grant. */
  async setReleaseCount(grant: string, count: number): Promise<void> {
    await this.db.put(`releases!${grant}`, encodeCanonical(count), DURABLE)
  }
}
