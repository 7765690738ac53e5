/** A suite of real nodes for custody: an owner, a reader and three custodians of one space (k = 2). */
import type { EdgewardNode, NodeOptions } from '../../node/node.ts'
import { grantTo, HOUR, suitePeers } from './peers.ts'
import { waitFor } from './wait.ts'

/**
 * Owner, reader and three custodians in one space; the owner names the custodians, k = 2.
 * `setUp` starts them and waits until everyone knows the set and the reader is connected to
 * every custodian; `grantReader` grants the reader STREAM for an hour; `dealt` waits for deals.
 */
export function custodySuite(prefix: string, custodianOptions: Omit<NodeOptions, 'dataDir'> = {}) {
  const peers = suitePeers(prefix)
  const s = {
    peers,
    owner: undefined as unknown as EdgewardNode,
    reader: undefined as unknown as EdgewardNode,
    custodians: [] as EdgewardNode[],
    space: '',
    /** wait until every custodian holds `count` deals and the owner has none unacknowledged */
    dealt: async (count: number) =>
      waitFor(`custodians to hold ${count} deals`, async () => {
        const held = await Promise.all(s.custodians.map(async c => (await c.custody.status()).held))
        const owner = await s.owner.custody.status()
        return held.every(h => h >= count) && owner.unacknowledged === 0 ? true : undefined
      }),
  }
  return Object.assign(s, {
    setUp: async () => {
      s.owner = await peers.node('owner')
      const bootstrap = { bootstrap: s.owner.addresses() }
      s.reader = await peers.node('reader', bootstrap)
      for (const name of ['c1', 'c2', 'c3']) {
        s.custodians.push(await peers.node(name, { ...bootstrap, ...custodianOptions }))
      }
      s.space = await s.owner.createSpace('plant-7')
      for (const n of [s.reader, ...s.custodians]) await n.joinSpace(s.space)
      await waitFor('everyone to receive the space', async () =>
        [s.reader, ...s.custodians].every(n => n.policy.document(s.space).hasGenesis) ? true : undefined,
      )
      const named = await Promise.all(s.custodians.map(c => s.owner.custody.describe(c.identity.peerId)))
      const { record: set } = await s.owner.policy.setCustodians(s.space, named, 2)
      await waitFor('everyone to know the custodian set', async () =>
        [s.reader, ...s.custodians].every(n => n.policy.document(s.space).state.custodianSet?.id === set.id)
          ? true
          : undefined,
      )
      // the reader reaches the custodians while the owner, its way to them, is there
      await waitFor('the reader to connect to every custodian', async () =>
        s.custodians.every(c => s.reader.connectedPeers().includes(c.identity.peerId)) ? true : undefined,
      )
    },
    grantReader: async () => {
      const now = Date.now()
      const g = await grantTo(s.owner, s.space, s.reader.identity.principal.did, { nbf: now - 1000, exp: now + HOUR })
      await waitFor('everyone to know the grant', async () =>
        [s.reader, ...s.custodians].every(n => n.policy.document(s.space).state.grants.has(g.id)) ? true : undefined,
      )
      return g
    },
  })
}
