/**
 * Custody: a key release from k = 2 of 3 custodians (the request to all three at once, two
 * shares verified and combined) against the same release from the key holder, in the same run
 * between the same real nodes over TCP loopback; and how long after a new data key is made
 * every custodian has acknowledged its deal.
 */

import { custodySuiteIn } from '../test/support/custody.ts'
import { askKeys, keyRequest, openRelease } from '../test/support/keys.ts'
import { grantTo, HOUR, STREAM, withPeers } from '../test/support/peers.ts'
import { waitFor } from '../test/support/wait.ts'
import { type Figure, figure, percentile, type SuiteOptions, versus } from './harness.ts'

export default async function custody(opts: SuiteOptions): Promise<Figure[]> {
  const rounds = opts.quick ? 2 : 200
  const deals = opts.quick ? 2 : 30
  return withPeers(async peers => {
    const s = await custodySuiteIn(peers)
    const now = Date.now()
    const g = await grantTo(s.owner, s.space, s.reader.identity.principal.did, { nbf: now - 1000, exp: now + HOUR })
    await waitFor('everyone to know the grant', async () =>
      [s.reader, ...s.custodians].every(n => n.policy.document(s.space).state.grants.has(g.id)) ? true : undefined,
    )

    // how long until every custodian acknowledged the deal of a new key (a new stream's first reading)
    const acked: number[] = []
    for (let i = 0; i < deals; i++) {
      const stream = `deal-${i}`
      const t = performance.now()
      await s.owner.data.publish(s.space, stream, [{ ts: Date.now(), value: i }])
      await waitFor(
        'every custodian to acknowledge',
        async () => ((await s.owner.custody.status()).unacknowledged === 0 ? true : undefined),
        30_000,
        2,
      )
      acked.push(performance.now() - t)
    }

    await s.owner.data.publish(s.space, STREAM, [{ ts: Date.now(), value: 1 }])
    await s.dealt(deals + 1)
    const holder: number[] = []
    const custodians: number[] = []
    for (let i = 0; i < rounds; i++) {
      let t = performance.now()
      const req = keyRequest(s.reader, { space: s.space, stream: STREAM, grant: g.id })
      const res = await askKeys(s.reader.libp2p, s.owner.identity.peerId, req.bytes)
      if (!res.ok) throw new Error(`the key holder refused: ${res.reason}`)
      await openRelease(s.reader, res, req.bytes)
      holder.push(performance.now() - t)
      t = performance.now()
      const got = await s.reader.custody.reader.keys(s.space, STREAM, 'raw', [0], g.id)
      if (got.keys.get(0) === undefined) throw new Error('the custodians gave no key')
      custodians.push(performance.now() - t)
    }
    const note = `${rounds} releases each, alternating; 3 custodians on loopback, each logging its release (synced) before its share leaves`
    return [
      versus('key release from 2 of 3 custodians', 'ms', custodians, 'from the key holder', holder),
      {
        ...figure('deal acknowledged by all 3 custodians, after a new key', 'ms', acked),
        note: `p99 ${Math.round(percentile(acked, 99))} ms over ${deals} new streams (publish, deal, three acknowledgements)`,
      },
    ].map(f => (f.note === undefined ? { ...f, note } : f))
  })
}
