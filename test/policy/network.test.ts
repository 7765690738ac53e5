/**
 * The policy plane on real peers in one process, over TCP on 127.0.0.1:
 * - a partition with the owner's gateway and a reader on one side and an admin (holding a
 *   delegation) and a reader on the other, grants and revocations written on both sides,
 *   then the heal: every peer converges on the same heads and the same answers;
 * - the conditions a key holder enforces at release: the data window (by epoch), the
 *   release limit (also across a restart of the key holder, and under concurrent requests),
 *   the allowed devices, and the purpose written into the audit trail.
 * Faults are injected through libp2p's public API only (connections aborted across the cut).
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { EdgewardNode } from '../../node/node.ts'
import type { KeyResponse } from '../../protocols/access/messages.ts'
import { decodeEntry } from '../../protocols/audit/entries.ts'
import {
  createDelegation,
  createGrant,
  createRevocation,
  createStream,
  type GrantFields,
  type RevocationTarget,
} from '../../protocols/policy/records.ts'
import { askKeys, keyRequest } from '../support/keys.ts'
import { cut, HOUR, losePolicyGossip, spaceWith, suitePeers } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { until, waitFor } from '../support/wait.ts'

const sorted = (xs: Iterable<string>): string[] => [...xs].sort()
const headsOf = (n: EdgewardNode, space: string): string =>
  n.policy.document(space).hasGenesis ? sorted(n.policy.document(space).heads()).join() : ''

async function write(node: EdgewardNode, space: string, entries: Parameters<EdgewardNode['policy']['write']>[1]) {
  const outcome = await node.policy.write(space, entries)
  assert.equal(outcome.status, 'applied')
}

function grantBy(node: EdgewardNode, space: string, subject: EdgewardNode, over: Partial<GrantFields> = {}) {
  const now = Date.now()
  return createGrant(
    node.identity.principal,
    {
      space,
      sub: subject.identity.principal.did,
      streams: ['temp'],
      forms: ['raw'],
      nbf: now - 1000,
      exp: now + HOUR,
      ...over,
    },
    now,
  )
}

function revocationBy(node: EdgewardNode, space: string, target: RevocationTarget) {
  return createRevocation(node.identity.principal, space, target, Date.now(), 'test')
}

describe('a partition with an admin on the far side, then the heal', { timeout: 60_000 }, () => {
  const peers = suitePeers()

  it('every peer converges on the same heads, records and answers', async () => {
    const opts = { redialIntervalMs: 300, syncIntervalMs: 2000 }
    const G = await peers.node('gateway', opts)
    const D = await peers.node('admin', { ...opts, bootstrap: G.addresses() })
    const R1 = await peers.node('r1', { ...opts, bootstrap: G.addresses() })
    const R2 = await peers.node('r2', { ...opts, bootstrap: [...G.addresses(), ...D.addresses()] })
    const all = [G, D, R1, R2]
    const space = await spaceWith(G, [D, R1, R2], 'partition')
    const now = Date.now()
    const delegation = createDelegation(
      G.identity.principal,
      { space, admin: D.identity.principal.did, streams: ['temp'], nbf: now - 1000, exp: now + HOUR },
      now,
    )
    const g1 = grantBy(G, space, R1)
    const g2 = grantBy(G, space, R2)
    const g3 = grantBy(G, space, R2, { streams: ['hum'] })
    await write(G, space, [
      { kind: 'stream', record: createStream(G.identity.principal, space, 'temp', HOUR, now) },
      { kind: 'stream', record: createStream(G.identity.principal, space, 'hum', HOUR, now) },
      { kind: 'delegation', record: delegation },
      { kind: 'grant', record: g1 },
      { kind: 'grant', record: g2 },
      { kind: 'grant', record: g3 },
    ])
    await until('every peer to have the delegation and the first grants', () =>
      all.every(n => headsOf(n, space) === headsOf(G, space)),
    )
    if (!D.connectedPeers().includes(R2.identity.peerId)) await D.libp2p.dial(peerIdFromString(R2.identity.peerId))

    const partition = await cut([G, R1], [D, R2])
    assert.ok(D.connectedPeers().includes(R2.identity.peerId), 'the admin and R2 still reach each other')

    // the owner's side: a new grant for R1, and the revocation of R2's grant on hum
    const g4 = grantBy(G, space, R1, { streams: ['hum'] })
    await write(G, space, [{ kind: 'grant', record: g4 }])
    await write(G, space, [{ kind: 'revocation', record: revocationBy(G, space, { grant: g3.id }) }])
    // the admin's side: a grant in its scope, one outside it, and the revocation of an owner grant in its scope
    const gD1 = grantBy(D, space, R2)
    const gD2 = grantBy(D, space, R1, { streams: ['hum'], forms: ['hashed'] })
    await write(D, space, [
      { kind: 'grant', record: gD1 },
      { kind: 'grant', record: gD2 },
    ])
    await write(D, space, [{ kind: 'revocation', record: revocationBy(D, space, { grant: g1.id }) }])

    await until('each side to converge on its own changes', () => {
      return headsOf(R1, space) === headsOf(G, space) && headsOf(R2, space) === headsOf(D, space)
    })
    assert.notEqual(headsOf(G, space), headsOf(D, space), 'the two sides diverged while cut')
    assert.equal(G.policy.document(space).state.grants.has(gD1.id), false)
    assert.equal(D.policy.document(space).state.grants.has(g4.id), false)

    const t0 = performance.now()
    const refused = partition.refused()
    partition.heal()
    await until('all four peers to converge after the heal', () =>
      all.every(n => headsOf(n, space) === headsOf(G, space)),
    )
    const ms = performance.now() - t0
    console.log(
      `# partition-heal: ${ms.toFixed(0)} ms to converge (4 peers, ${refused} connections refused during the partition)`,
    )

    const states = all.map(n => n.policy.document(space).state)
    for (const s of states) {
      assert.deepEqual(sorted(s.grants.keys()), sorted([g1.id, g2.id, g3.id, g4.id, gD1.id, gD2.id]))
      assert.deepEqual(sorted(s.revocations.keys()), sorted(states[0].revocations.keys()))
      assert.equal(s.revocations.size, 2)
      assert.deepEqual(sorted(s.delegations.keys()), [delegation.id])
    }
    const at = Date.now()
    const grid = (n: EdgewardNode) => {
      const s = n.policy.document(space).state
      const out: string[] = []
      for (const reader of [R1, R2]) {
        for (const stream of ['temp', 'hum']) {
          for (const form of ['raw', 'hashed']) {
            for (const t of [at, at + 2 * HOUR]) {
              const d = s.evaluateAccess(
                { subject: reader.identity.principal.did, device: reader.identity.device, stream, form },
                t,
              )
              out.push(d.allowed ? `allowed:${d.grant.id}` : `refused:${d.code}`)
            }
          }
        }
      }
      for (const g of [...s.grants.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
        out.push(`${g.id}:${s.grantStatus(g, at).status}`)
      }
      return out
    }
    const expected = grid(G)
    for (const n of all) assert.deepEqual(grid(n), expected)

    const answer = (subject: EdgewardNode, stream: string, form = 'raw') => {
      const d = G.policy
        .document(space)
        .state.evaluateAccess(
          { subject: subject.identity.principal.did, device: subject.identity.device, stream, form },
          at,
        )
      return d.allowed ? `allowed:${d.grant.id}` : `refused:${d.code}`
    }
    assert.equal(answer(R1, 'temp'), 'refused:revoked', "the admin's revocation of the owner's grant holds")
    assert.equal(answer(R1, 'hum'), `allowed:${g4.id}`, "the owner's grant made during the partition holds")
    assert.equal(answer(R1, 'hum', 'hashed'), 'refused:issuer-not-authorized', "the admin's grant outside its scope")
    assert.match(answer(R2, 'temp'), /^allowed:/)
    assert.equal(answer(R2, 'hum'), 'refused:revoked', "the owner's revocation made during the partition holds")
    const r2temp = G.policy.document(space).state.evaluateAccess(
      {
        subject: R2.identity.principal.did,
        device: R2.identity.device,
        stream: 'temp',
        form: 'raw',
        grantId: gD1.id,
      },
      at,
    )
    assert.equal(r2temp.allowed, true, "the admin's grant in its scope is honoured")
    // no change was refused (a sync stream broken by the cut is counted under source sync-request: not a change)
    for (const n of all) {
      const refused = Object.entries(n.metrics.snapshot().edgeward_policy_changes_refused_total ?? {}).filter(
        ([labels]) => !labels.includes('source="sync-request"'),
      )
      assert.deepEqual(refused, [], 'no peer refused a policy change')
    }
  })
})

describe('conditions enforced at key release', { timeout: 60_000 }, () => {
  const s = suiteNodes('conditions', ['G', 'R', 'other'], {
    space: 'conditions',
    startOf: { G: { epochMs: 1000, redialIntervalMs: 300 }, R: { redialIntervalMs: 300 } },
  })
  /** ms times taken around the publishing of each epoch's reading */
  const published: { before: number; after: number }[] = []

  before(async () => {
    // three readings in three epochs of one second each: wait for each epoch boundary
    for (let i = 0; i < 3; i++) {
      if (i > 0) {
        const last = published[i - 1].after
        await until(`epoch ${i} to be due`, () => Date.now() >= last + 1000)
      }
      const before = Date.now()
      await s.G.data.publish(s.space, 'temp', [{ ts: before, value: i + 1 }])
      published.push({ before, after: Date.now() })
    }
    assert.deepEqual(
      (await s.G.data.storedReadings(s.space, 'temp')).map(r => r.epoch),
      [0, 1, 2],
      'one reading in each of three epochs',
    )
    await waitFor('the readers to store the three readings', async () => {
      for (const n of [s.R, s.other]) if ((await n.data.storedReadings(s.space, 'temp')).length < 3) return undefined
      return true
    })
  })

  const refusal = async (node: EdgewardNode, stream: string): Promise<string> =>
    node.data.read(s.space, stream).then(
      rs => `read ${rs.map(r => r.value).join(',')}`,
      (err: Error & { code?: string }) => `${err.name}:${err.code}`,
    )

  /** Wait until `node` knows the grant `id` and stored the one reading of hum. */
  const knowsGrantAndHum = (node: EdgewardNode, id: string) =>
    waitFor('the reader to know its grant and the reading', async () =>
      node.policy.document(s.space).state.grants.has(id) &&
      (await node.data.storedReadings(s.space, 'hum')).length === 1
        ? true
        : undefined,
    )

  it('a data window covering only the second epoch releases only that epoch: the reader reads its reading only', async () => {
    // the second epoch began while its reading was published and ended when the third began
    const g = grantBy(s.G, s.space, s.R, { dataFrom: published[1].after, dataUntil: published[2].before })
    await write(s.G, s.space, [{ kind: 'grant', record: g }])
    await until('the reader to know its grant', () => s.R.policy.document(s.space).state.grants.has(g.id))
    const read = await s.R.data.read(s.space, 'temp')
    assert.deepEqual(
      read.map(r => [r.epoch, r.value]),
      [[1, 2]],
    )
  })

  it('a data window covering none of the data is refused with outside-data-window', async () => {
    const g = grantBy(s.G, s.space, s.other, { dataFrom: 1_000, dataUntil: 2_000 })
    await write(s.G, s.space, [{ kind: 'grant', record: g }])
    await until('the reader to know its grant', () => s.other.policy.document(s.space).state.grants.has(g.id))
    assert.equal(await refusal(s.other, 'temp'), 'AccessRefusedError:outside-data-window')
  })

  it('a grant usable only from another device is refused with device-not-allowed', async () => {
    await s.G.data.publish(s.space, 'hum', [{ ts: Date.now(), value: 40 }])
    const g = grantBy(s.G, s.space, s.R, { streams: ['hum'], devices: [s.other.identity.peerId] })
    await write(s.G, s.space, [{ kind: 'grant', record: g }])
    await knowsGrantAndHum(s.R, g.id)
    assert.equal(await refusal(s.R, 'hum'), 'AccessRefusedError:device-not-allowed')
  })

  it("the grant's purpose is written into the audit entry of every release under it", async () => {
    const purpose = 'boiler maintenance, ticket 4711'
    const g = grantBy(s.G, s.space, s.other, { streams: ['hum'], purpose })
    await write(s.G, s.space, [{ kind: 'grant', record: g }])
    await knowsGrantAndHum(s.other, g.id)
    const sizeBefore = s.G.audit!.size
    assert.equal(await refusal(s.other, 'hum'), 'read 40')
    const releases = []
    for (let i = sizeBefore; i < s.G.audit!.size; i++) {
      const entry = decodeEntry(await s.G.audit!.entry(i))
      if (entry.t === 'release') releases.push(entry)
    }
    assert.equal(releases.length, 1)
    assert.equal(releases[0].grant, g.id)
    assert.equal(releases[0].purpose, purpose)
    assert.equal(releases[0].subject, s.other.identity.principal.did)
  })

  describe('maxReleases, asked on the wire', () => {
    const ask = (grant: string, epochs = [0]) =>
      askKeys(s.R.libp2p, s.G.identity.peerId, keyRequest(s.R, { space: s.space, stream: 'temp', epochs, grant }).bytes)
    const outcome = (res: KeyResponse) => (res.ok ? 'released' : res.code)

    it('concurrent requests under a grant never get more releases than it allows', async () => {
      const g = grantBy(s.G, s.space, s.R, { maxReleases: 2 })
      await write(s.G, s.space, [{ kind: 'grant', record: g }])
      const outcomes = (await Promise.all([0, 1, 2, 3, 4, 5].map(() => ask(g.id)))).map(outcome)
      assert.deepEqual(
        outcomes.filter(o => o === 'released').length,
        2,
        `6 concurrent requests under maxReleases 2: ${outcomes.join(', ')}`,
      )
    })

    it('maxReleases 2: the third request is refused, and the count survives a restart of the key holder', async () => {
      const g = grantBy(s.G, s.space, s.R, { maxReleases: 2 })
      const unlimited = grantBy(s.G, s.space, s.R)
      await write(s.G, s.space, [
        { kind: 'grant', record: g },
        { kind: 'grant', record: unlimited },
      ])
      assert.equal(outcome(await ask(g.id)), 'released')
      assert.equal(outcome(await ask(g.id)), 'released')
      assert.equal(outcome(await ask(g.id)), 'max-releases')

      await s.peers.stop(s.G)
      s.G = await s.peers.start(s.peers.dir('G'), { epochMs: 1000, redialIntervalMs: 300 })
      await until('the restarted key holder and the reader to reconnect', () =>
        s.R.connectedPeers().includes(s.G.identity.peerId),
      )
      assert.equal(outcome(await ask(unlimited.id)), 'released', 'the restarted key holder answers')
      assert.equal(outcome(await ask(g.id)), 'max-releases', 'the count was kept across the restart')
    })
  })
})

describe("a reader's cached keys under a child grant it never received", { timeout: 60_000 }, () => {
  const peers = suitePeers()

  it('are dropped when the parent grant is revoked', async () => {
    const G = await peers.node('gateway')
    const B = await peers.node('forwarder', { bootstrap: G.addresses() })
    // C learns policy changes by gossip only during the test, and never talks to B directly
    const C = await peers.node('reader', { bootstrap: G.addresses(), syncIntervalMs: HOUR })
    const gate = (evt: CustomEvent<Connection>) => {
      if (evt.detail.remotePeer.toString() === B.identity.peerId) evt.detail.abort(new Error('not a neighbour'))
    }
    C.libp2p.addEventListener('connection:open', gate)
    try {
      await C.libp2p.hangUp(peerIdFromString(B.identity.peerId))
      const space = await spaceWith(G, [B, C], 'child-cache')
      await G.data.publish(space, 'temp', [{ ts: Date.now(), value: 7 }])
      const parent = grantBy(G, space, B, { forward: 'allowed' })
      await write(G, space, [{ kind: 'grant', record: parent }])
      await waitFor('B and C to know the parent grant and C the reading', async () =>
        B.policy.document(space).state.grants.has(parent.id) &&
        C.policy.document(space).state.grants.has(parent.id) &&
        (await C.data.storedReadings(space, 'temp')).length === 1
          ? true
          : undefined,
      )

      // the gossip message carrying B's child grant for C is lost on its way to C
      const gossip = losePolicyGossip(C, space)
      const kid = grantBy(B, space, C, { exp: parent.body.exp, parent: parent.id })
      await write(B, space, [{ kind: 'grant', record: kid }])
      await until(
        'the child grant to reach the key holder and be lost to C',
        () => G.policy.document(space).state.grants.has(kid.id) && gossip.lost() > 0,
      )
      gossip.restore()
      assert.equal(C.policy.document(space).state.grants.has(kid.id), false)

      // the key holder, which knows the child grant, releases the key under it
      assert.deepEqual(
        (await C.data.read(space, 'temp')).map(r => r.value),
        [7],
      )
      assert.equal(C.data.cachedKeyCount(), 1)

      const revocation = revocationBy(G, space, { grant: parent.id })
      await write(G, space, [{ kind: 'revocation', record: revocation }])
      await until('C to receive the revocation of the parent', () =>
        C.policy.document(space).state.revocations.has(revocation.id),
      )
      assert.equal(
        G.policy.document(space).state.grantStatus(kid, Date.now()).status,
        'not-honoured',
        'the key holder no longer honours the child',
      )
      await until(
        'C to drop the key released under the child of the revoked grant',
        () => C.data.cachedKeyCount() === 0,
        3_000,
      )
    } finally {
      C.libp2p.removeEventListener('connection:open', gate)
    }
  })
})
