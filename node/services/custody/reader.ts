/**
 * The reader's side of custody: when no key holder of a space answers, it asks the space's
 * custodians, all at once, for their shares of the keys a read needs, and combines them.
 *
 * Guarantees: a key comes back only from k shares that each verify (protocols/custody:
 * the release answers this request, comes from the custodian at its index, is in force; the
 * share matches the deal's commitment; the key matches the deal's key commitment), of a deal
 * signed by the space's owner (or, for a member's own object, by that member: `mayDeal`) for
 * exactly the stream, form and epoch asked for, to a custodian set of the space. The answer
 * is taken as soon as every epoch has k good shares or is
 * decided; a custodian that is down costs nothing once k others answered. The key's lease is
 * the earliest lease of the shares used.
 *
 * Refuses: AccessRefusedError with the custodians' code when so many refused that fewer than
 * k could still answer (n - k + 1 refusals), UnreachableError otherwise when k good shares did
 * not come; the message counts who answered, refused and failed.
 */
import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes } from '../../../crypto/hash.ts'
import type { OpenedRecord } from '../../../crypto/signed.ts'
import { createKeyRequest, MAX_REQUEST_HEADS } from '../../../protocols/access/messages.ts'
import { requestHash } from '../../../protocols/audit/entries.ts'
import { combine, type IndexedShare } from '../../../protocols/custody/combine.ts'
import { type Deal, mayDeal, openDeal } from '../../../protocols/custody/deal.ts'
import {
  CUSTODY_RELEASE_PROTOCOL,
  decodeCustodyReleaseResponse,
  MAX_CUSTODY_EPOCHS,
  MAX_CUSTODY_RESPONSE_BYTES,
} from '../../../protocols/custody/messages.ts'
import { checkShareRelease, openReleasedShare, openShareRelease } from '../../../protocols/custody/release.ts'
import { AccessRefusedError, UnreachableError } from '../../errors.ts'
import type { CustodyFallback, CustodyKeys, KeyCacheComponents } from '../data/key-cache.ts'
import type { PolicyService } from '../policy.ts'
import { request } from '../stream-io.ts'

const log = logger('edgeward:custody')

/** What the custody reader uses: what the key cache it stands in for uses (network, identity, counters, clock). */
export type CustodyReaderComponents = KeyCacheComponents

export type { CustodyKeys } from '../data/key-cache.ts'

/** What one epoch has gathered so far. */
interface Gathered {
  deal: OpenedRecord<Deal>
  shares: IndexedShare[]
  lease: number[]
}

/** Asks custodians for shares and combines them into keys. */
export class CustodyReader implements CustodyFallback {
  private readonly c: CustodyReaderComponents
  private readonly policy: Pick<PolicyService, 'document'>

  constructor(components: CustodyReaderComponents, policy: Pick<PolicyService, 'document'>) {
    this.c = components
    this.policy = policy
    components.metrics.describe('edgeward_custody_keys_combined_total', 'data keys this reader combined from shares')
  }

  /** Whether the space has custodians to ask. */
  has(space: string): boolean {
    return this.policy.document(space).state.custodianSet !== undefined
  }

  /** The keys of `epochs` from the space's custodians; see the module comment. */
  async keys(space: string, stream: string, form: string, epochs: number[], grant?: string): Promise<CustodyKeys> {
    const out: CustodyKeys = { keys: new Map(), lease: Infinity, grant: '' }
    for (let i = 0; i < epochs.length; i += MAX_CUSTODY_EPOCHS) {
      const part = await this.ask(space, stream, form, epochs.slice(i, i + MAX_CUSTODY_EPOCHS), grant)
      for (const [e, k] of part.keys) out.keys.set(e, k)
      out.lease = Math.min(out.lease, part.lease)
      out.grant ||= part.grant
    }
    return out
  }

  private async ask(
    space: string,
    stream: string,
    form: string,
    epochs: number[],
    grant?: string,
  ): Promise<CustodyKeys> {
    const doc = this.policy.document(space)
    const state = doc.state
    const set = state.custodianSet
    if (set === undefined) throw new UnreachableError('no key holder of the space answered, and it has no custodians')
    const me = this.c.identity
    const req = createKeyRequest(me.principal, {
      space,
      stream,
      form,
      epochs,
      grant,
      device: me.device.bytes,
      nonce: randomBytes(16),
      ts: this.c.now(),
      heads: doc.heads().slice(0, MAX_REQUEST_HEADS),
    })
    const reqHash = requestHash(req.bytes)
    const { k, custodians } = set.body
    const n = custodians.length
    const gathered = new Map<number, Map<string, Gathered>>()
    const refusals: { code: string; reason: string }[] = []
    const failures: string[] = []
    let answered = 0
    /** the grant the first custodian that released named, if it is this reader's */
    let grantUsed = ''
    /** each epoch's key once combined, and the lease of the shares it was made of */
    const combinedKeys = new Map<number, { key: Uint8Array; lease: number }>()
    let settled = false
    /** the keys, once every epoch has k good shares of one deal, or k custodians answered without it */
    const settle = async (): Promise<CustodyKeys | undefined> => {
      const result: CustodyKeys = { keys: new Map(), lease: Infinity, grant: grantUsed }
      for (const epoch of epochs) {
        let made = combinedKeys.get(epoch)
        if (made === undefined) {
          const byDeal = gathered.get(epoch)
          const ready = [...(byDeal?.values() ?? [])].find(g => g.shares.length >= k)
          if (ready === undefined) {
            // k custodians answered and none released it: outside the grant's data window
            if (answered >= k && byDeal === undefined) {
              result.keys.set(epoch, undefined)
              continue
            }
            return undefined
          }
          const combined = await combine(ready.deal, ready.shares)
          if (!combined.ok) {
            log('epoch %d of %s: %s', epoch, stream, combined.reason)
            return undefined
          }
          made = { key: combined.key, lease: Math.min(...ready.lease) }
          combinedKeys.set(epoch, made)
        }
        result.keys.set(epoch, made.key)
        result.lease = Math.min(result.lease, made.lease)
      }
      return result
    }
    const take = async (index: number, raw: Uint8Array): Promise<void> => {
      const res = decodeCustodyReleaseResponse(raw)
      if (!res.ok) {
        refusals.push({ code: res.code, reason: res.reason })
        return
      }
      answered++
      if (grantUsed === '' && state.grants.get(res.grant)?.body.sub === me.principal.did) grantUsed = res.grant
      const now = this.c.now()
      for (const s of res.shares) {
        const deal = openDeal(s.deal)
        const r = deal.body.resource
        const dealSet = state.custodianSets.get(deal.body.set)
        if (
          !mayDeal(state, deal) ||
          dealSet === undefined ||
          !('stream' in r) ||
          r.stream !== stream ||
          r.form !== form ||
          !epochs.includes(r.epoch)
        ) {
          failures.push(`custodian ${index} sent a deal that is not of this request`)
          continue
        }
        const opened = openShareRelease(s.release)
        const problem = checkShareRelease(opened, { deal, set: dealSet, req: reqHash, now })
        if (problem !== undefined) {
          failures.push(`custodian ${index}: ${problem}`)
          continue
        }
        const share = await openReleasedShare(opened.release, me.sealing.secretKey)
        const byDeal = gathered.get(r.epoch) ?? new Map<string, Gathered>()
        gathered.set(r.epoch, byDeal)
        const g = byDeal.get(deal.id) ?? { deal, shares: [], lease: [] }
        byDeal.set(deal.id, g)
        g.shares.push(share)
        g.lease.push(opened.release.body.lease)
      }
    }
    const done = Promise.withResolvers<CustodyKeys>()
    let pending = n
    const finish = async () => {
      // answers after the keys were made are not looked at again
      if (settled) return
      const keys = await settle()
      if (keys !== undefined) {
        settled = true
        return done.resolve(keys)
      }
      if (--pending > 0 && refusals.length < n - k + 1) return
      settled = true
      const counts = `${answered} of ${n} custodians answered, ${refusals.length} refused, ${n - answered - refusals.length} failed (${k} needed)`
      if (refusals.length >= n - k + 1) {
        const first = refusals[0]
        return done.reject(new AccessRefusedError(first.code, `${first.reason} (${counts})`))
      }
      done.reject(
        new UnreachableError(
          `no key holder of the space answered, and too few custodians did: ${counts}${failures.length > 0 ? `; ${failures.join('; ')}` : ''}`,
        ),
      )
    }
    custodians.forEach((c, index) => {
      request(this.c.libp2p, peerIdFromString(c.peer), CUSTODY_RELEASE_PROTOCOL, req.bytes, MAX_CUSTODY_RESPONSE_BYTES)
        .then(raw => take(index, raw))
        .catch(err => {
          failures.push(`custodian ${index}: ${(err as Error).message}`)
        })
        .then(finish)
        .catch(err => done.reject(err as Error))
    })
    const keys = await done.promise
    for (const k of keys.keys.values()) if (k !== undefined) this.c.metrics.inc('edgeward_custody_keys_combined_total')
    return keys
  }
}
