/**
 * Catch-up in batches, on real peers over TCP on 127.0.0.1: a page that carries one tampered
 * envelope among good ones applies the good ones and refuses and counts the bad one against
 * the peer that served it; the changes a node stored come back whole when it restarts (they
 * are read back by hash, not in the order they were written).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { createIdentity } from '../../node/identity.ts'
import { EdgewardNode } from '../../node/node.ts'
import { handle } from '../../node/services/stream-io.ts'
import type { AppliedRecord } from '../../protocols/policy/document.ts'
import { createGrant, createStream } from '../../protocols/policy/records.ts'
import {
  encodeSyncResponse,
  MAX_SYNC_REQUEST_BYTES,
  MAX_SYNC_RESPONSE_BYTES,
  POLICY_SYNC_PROTOCOL,
} from '../../protocols/sync/messages.ts'
import { flipSignatureBit, newPrincipal } from '../protocols/fixtures.ts'
import { waitFor } from '../support/wait.ts'

const HOUR = 3_600_000

describe('policy catch-up in batches', { timeout: 120_000 }, () => {
  let root = ''
  const running = new Set<EdgewardNode>()
  const start = async (dir: string, bootstrap: string[] = []) => {
    const node = await EdgewardNode.create({ dataDir: dir, bootstrap, syncIntervalMs: 60_000 })
    running.add(node)
    await node.start()
    return node
  }
  const stop = async (node: EdgewardNode) => {
    running.delete(node)
    await node.stop()
  }
  after(async () => {
    await Promise.all([...running].map(n => n.stop()))
    if (root !== '') await rm(root, { recursive: true, force: true })
  })

  it('a page with a tampered envelope: the good ones apply, the bad one is refused and counted; a restart keeps them', async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-catchup-'))
    const dirs = Object.fromEntries(
      await Promise.all(
        ['gateway', 'server', 'reader'].map(async name => {
          const dir = join(root, name)
          await createIdentity(dir, { now: Date.now() })
          return [name, dir] as const
        }),
      ),
    )
    const G = await start(dirs.gateway)
    const space = await G.createSpace('catch-up')
    const owner = G.identity.principal
    const now = Date.now()
    await G.policy.write(space, [{ kind: 'stream', record: createStream(owner, space, 'temp', HOUR, now) }])
    for (let i = 0; i < 40; i++) {
      const entries: AppliedRecord[] = Array.from({ length: 3 }, (_, k) => ({
        kind: 'grant',
        record: createGrant(
          owner,
          { space, sub: newPrincipal().did, streams: ['temp'], forms: ['raw'], nbf: now, exp: now + HOUR },
          now + i * 3 + k,
        ),
      }))
      await G.policy.write(space, entries)
    }
    const good = G.policy.document(space).allEnvelopes()
    const bad = flipSignatureBit(good[20], 5)
    await stop(G)

    // a peer that serves the whole history in one page, with a tampered copy of one change in it
    const S = await start(dirs.server)
    await S.libp2p.unhandle(POLICY_SYNC_PROTOCOL)
    await handle(
      S.libp2p,
      POLICY_SYNC_PROTOCOL,
      MAX_SYNC_REQUEST_BYTES,
      MAX_SYNC_RESPONSE_BYTES,
      async () => encodeSyncResponse({ envelopes: [...good.slice(0, 20), bad, ...good.slice(20)], more: false }),
      () => {},
    )
    const R = await start(dirs.reader, S.addresses())
    await R.joinSpace(space)
    await waitFor(
      'the reader to catch up',
      async () => (R.policy.document(space).size === good.length ? true : undefined),
      20_000,
    )
    const doc = R.policy.document(space)
    assert.equal(doc.state.grants.size, 120)
    assert.equal(doc.waiting, 0)
    const refused = R.metrics.snapshot().edgeward_policy_changes_refused_total ?? {}
    const entries = Object.entries(refused)
    assert.equal(entries.length, 1, JSON.stringify(refused))
    assert.match(entries[0][0], /InvalidSignatureError/)
    assert.match(entries[0][0], new RegExp(S.libp2p.peerId.toString()))
    assert.equal(entries[0][1], 1)
    const heads = [...doc.heads()].sort()

    await stop(R)
    await stop(S)
    const again = await start(dirs.reader)
    const reloaded = again.policy.document(space)
    assert.deepEqual([...reloaded.heads()].sort(), heads)
    assert.equal(reloaded.state.grants.size, 120)
    assert.equal(reloaded.size, good.length)
    assert.equal(reloaded.waiting, 0)
  })
})
