/**
 * The data plane from the command line, as real processes: a stream with an aggregate form,
 * an aggregate-only reader, and a reader that starts after the data was published and reads
 * it with --since (backfill).
 */
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { LocalPeer } from '../../node/cli/local-network.ts'
import { initAndStart, jsonLines as lines, stopPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

describe('forms and backfill from the command line', { timeout: 180_000 }, () => {
  let root: string
  const peers: LocalPeer[] = []
  let gw: LocalPeer
  let space: string
  const t0 = 1_800_000_000_000
  const peer = async (name: string, bootstrap?: string[]) => {
    const { peer: p, did } = await initAndStart(name, join(root, name), { bootstrap })
    peers.push(p)
    return { p, did }
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-data-cli-'))
    gw = (await peer('gw')).p
    space = (await gw.cli(['space', 'create', 'plant'])).stdout.trim()
    const created = await gw.cli(['stream', 'create', space, 'temp', '--aggregate', '1m', '--json'])
    assert.equal(created.code, 0, created.stderr)
    assert.deepEqual(JSON.parse(created.stdout).forms, ['raw', 'hashed', 'aggregate:1m'])
    const input = [
      [0, 10],
      [30_000, 20],
      [60_000, 40],
      [61_000, 50],
    ]
      .map(([dt, v]) => JSON.stringify({ ts: t0 + dt, value: v }))
      .join('\n')
    const pub = await gw.cli(['publish', space, 'temp'], { input })
    assert.equal(pub.code, 0, pub.stderr)
  })

  after(() => stopPeers(peers, root))

  it('a reader started after the data was published reads it with --since, and an aggregate-only grant gives aggregates only', async () => {
    // this reader did not exist while the readings were published
    const { p: late, did } = await peer('late', gw.info.addresses)
    assert.equal((await late.cli(['space', 'join', space])).code, 0)
    const g = await gw.cli([
      'grant',
      space,
      '--to',
      did,
      '--stream',
      'temp',
      '--form',
      'raw',
      '--form',
      'aggregate:1m',
      '--for',
      '1h',
    ])
    assert.equal(g.code, 0, g.stderr)
    const read = await waitFor('the late reader to read with --since', async () => {
      const r = await late.cli(['read', space, 'temp', '--since', String(t0 + 30_000)])
      return r.code === 0 && lines(r.stdout).length === 3 ? r : undefined
    })
    assert.deepEqual(
      lines(read.stdout).map(l => l.value),
      [20, 40, 50],
    )
    const agg = await late.cli(['read', space, 'temp', '--form', 'aggregate:1m'])
    assert.equal(agg.code, 0, agg.stderr)
    assert.deepEqual(lines(agg.stdout)[0].value, { count: 2, min: 10, max: 20, mean: 15, sum: 30, windowMs: 60_000 })

    const { p: analyst, did: analystDid } = await peer('analyst', gw.info.addresses)
    await analyst.cli(['space', 'join', space])
    assert.equal(
      (await gw.cli(['grant', space, '--to', analystDid, '--stream', 'temp', '--form', 'aggregate:1m', '--for', '1h']))
        .code,
      0,
    )
    const onlyAgg = await waitFor('the analyst to read aggregates', async () => {
      const r = await analyst.cli(['read', space, 'temp', '--form', 'aggregate:1m'])
      return r.code === 0 && lines(r.stdout).length === 1 ? r : undefined
    })
    assert.equal(lines(onlyAgg.stdout)[0].value.sum, 30)
    const raw = await analyst.cli(['read', space, 'temp'])
    assert.equal(raw.code, 3)
    assert.match(raw.stderr, /does not cover form raw/)
    const bad = await analyst.cli(['read', space, 'temp', '--form', 'aggregate:7x'])
    assert.equal(bad.code, 2)
  })
})
