/**
 * Catch-up spreads hop by hop: on a line of peers A — B — C (C never connected to A, no
 * periodic catch-up), changes A wrote while B was away reach C as soon as B catches up with
 * A: B's catch-up brought new changes, so B asks its other peers for theirs, its request
 * carries its heads, and C, seeing heads it lacks, catches up from B in turn.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createIdentity } from '../../node/identity.ts'
import { EdgewardNode } from '../../node/node.ts'
import { createGrant } from '../../protocols/policy/records.ts'
import { joinSpace } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const HOUR = 3_600_000
/** no periodic catch-up and no redial during the test: only connections and catch-ups spread changes */
const QUIET = { syncIntervalMs: HOUR, redialIntervalMs: HOUR }

describe('policy catch-up spreads hop by hop', { timeout: 90_000 }, () => {
  let root = ''
  const nodes: EdgewardNode[] = []

  after(async () => {
    await Promise.all(nodes.map(n => n.stop()))
    if (root !== '') await rm(root, { recursive: true, force: true })
  })

  it('changes written while B was cut off reach C, which only B links to, once B reconnects to A', async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-spread-'))
    const dirs: Record<string, string> = {}
    const peerIds: Record<string, string> = {}
    for (const name of ['a', 'b', 'c']) {
      dirs[name] = join(root, name)
      peerIds[name] = (await createIdentity(dirs[name], { now: Date.now() })).peerId
    }
    // who may not be connected to whom: A and C never; A and B while `cut`
    let cut = false
    const blocked = (me: string, other: string): boolean => {
      const pair = [me, other].sort().join()
      return pair === ['a', 'c'].sort().join() || (cut && pair === ['a', 'b'].sort().join())
    }
    const nameOf = (id: PeerId) => Object.keys(peerIds).find(n => peerIds[n] === id.toString()) ?? ''
    const start = async (name: string): Promise<EdgewardNode> => {
      const deny = (id: PeerId) => blocked(name, nameOf(id))
      const n = await EdgewardNode.create({
        dataDir: dirs[name],
        ...QUIET,
        network: {
          connectionGater: {
            denyDialPeer: async id => deny(id),
            denyInboundEncryptedConnection: async id => deny(id),
            denyOutboundEncryptedConnection: async id => deny(id),
          },
        },
      })
      await n.start()
      nodes.push(n)
      return n
    }
    const [a, b, c] = [await start('a'), await start('b'), await start('c')]
    await b.libp2p.dial(multiaddr(a.addresses()[0]))
    await c.libp2p.dial(multiaddr(b.addresses()[0]))
    const space = await a.createSpace('line')
    await joinSpace([b, c], space)

    cut = true
    await b.libp2p.hangUp(peerIdFromString(peerIds.a))
    await waitFor('A and B to be apart', async () => (a.connectedPeers().length === 0 ? true : undefined))
    const now = Date.now()
    const grants = [1, 2, 3].map(i =>
      createGrant(
        a.identity.principal,
        { space, sub: c.identity.principal.did, streams: [`s${i}`], forms: ['raw'], nbf: now, exp: now + HOUR },
        now,
      ),
    )
    for (const g of grants) await a.policy.write(space, [{ kind: 'grant', record: g }])
    assert.ok(
      grants.every(g => !c.policy.document(space).state.grants.has(g.id)),
      'nothing reached C while B was cut off',
    )

    cut = false
    await b.libp2p.dial(multiaddr(a.addresses()[0]))
    await waitFor(
      'C to have every grant A wrote',
      async () => (grants.every(g => c.policy.document(space).state.grants.has(g.id)) ? true : undefined),
      30_000,
    )
    assert.deepEqual(c.policy.document(space).heads().sort(), a.policy.document(space).heads().sort())
    assert.ok(!c.connectedPeers().includes(peerIds.a), 'C got them through B, never from A')
  })
})
