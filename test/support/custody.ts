/** A suite of real nodes for custody: an owner, a reader and n custodians of one space (3, k = 2, unless told). */
import type { EdgewardNode, NodeOptions } from '../../node/node.ts'
import { grantTo, HOUR, type Peers, suitePeers } from './peers.ts'
import { waitFor } from './wait.ts'

/** An owner, a reader and n custodians (threshold k) started, in one space with its set; see `custodySuite`. */
export interface Custody {
  owner: EdgewardNode
  reader: EdgewardNode
  custodians: EdgewardNode[]
  space: string
  /** wait until every custodian holds `count` deals and the owner has none unacknowledged */
  dealt: (count: number) => Promise<unknown>
}

/** How many custodians, how many of them a key needs, and what the nodes' names start with (to run two suites in one `Peers`). */
export interface CustodyShape {
  /** custodians (default 3) */
  n?: number
  /** shares a key needs (default 2) */
  k?: number
  /** before each node's name: owner, reader, c1… (default none) */
  prefix?: string
}

/**
 * Start an owner, a reader and n custodians with `peers`, make a space they all have, name
 * the custodians (threshold k), and wait until everyone knows the set and the reader is
 * connected to every custodian (it reaches them while the owner, its way to them, is there).
 */
export async function custodySuiteIn(
  peers: Peers,
  custodianOptions: Omit<NodeOptions, 'dataDir'> = {},
  into: Partial<Custody> = {},
  { n: count = 3, k = 2, prefix = '' }: CustodyShape = {},
): Promise<Custody> {
  const s = into as Custody
  s.owner = await peers.node(`${prefix}owner`)
  const bootstrap = { bootstrap: s.owner.addresses() }
  s.reader = await peers.node(`${prefix}reader`, bootstrap)
  s.custodians = []
  for (let i = 1; i <= count; i++)
    s.custodians.push(await peers.node(`${prefix}c${i}`, { ...bootstrap, ...custodianOptions }))
  s.space = await s.owner.createSpace('plant-7')
  for (const n of [s.reader, ...s.custodians]) await n.joinSpace(s.space)
  await waitFor('everyone to receive the space', async () =>
    [s.reader, ...s.custodians].every(n => n.policy.document(s.space).hasGenesis) ? true : undefined,
  )
  const named = await Promise.all(s.custodians.map(c => s.owner.custody.describe(c.identity.peerId)))
  const { record: set } = await s.owner.policy.setCustodians(s.space, named, k)
  await waitFor('everyone to know the custodian set', async () =>
    [s.reader, ...s.custodians].every(n => n.policy.document(s.space).state.custodianSet?.id === set.id)
      ? true
      : undefined,
  )
  await waitFor('the reader to connect to every custodian', async () =>
    s.custodians.every(c => s.reader.connectedPeers().includes(c.identity.peerId)) ? true : undefined,
  )
  s.dealt = async (count: number) =>
    waitFor(`custodians to hold ${count} deals`, async () => {
      const held = await Promise.all(s.custodians.map(async c => (await c.custody.status()).held))
      const owner = await s.owner.custody.status()
      return held.every(h => h >= count) && owner.unacknowledged === 0 ? true : undefined
    })
  return s
}

/**
 * The custody nodes of the enclosing suite (custodySuiteIn): `setUp` starts them and fills the
 * returned object in place; `grantReader` grants the reader STREAM for an hour.
 */
export function custodySuite(prefix: string, custodianOptions: Omit<NodeOptions, 'dataDir'> = {}) {
  const peers = suitePeers(prefix)
  const s = { peers, custodians: [] as EdgewardNode[] } as Custody & { peers: Peers }
  return Object.assign(s, {
    setUp: async () => {
      await custodySuiteIn(peers, custodianOptions, s)
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
