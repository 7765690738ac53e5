/**
 * Forms at the edge: the gateway produces raw, hashed and aggregate forms, each under its
 * own keys; an aggregate-only reader gets correct aggregates and never a raw value or key;
 * a holder of the hashed form can check a claimed reading with the salt from the raw form.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { EdgewardNode } from '../../node/node.ts'
import { aggregateReading, closeIfDue, verifyCommitment } from '../../protocols/data/forms.ts'
import { readingCount } from '../../protocols/data/reading.ts'
import { grantTo, joinSpace, suitePeers, waitForGrant } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

describe('aggregation rules', () => {
  it('aggregates by reading time, closes a window when a later one starts, and leaves late readings out', () => {
    let open: ReturnType<typeof aggregateReading>['open'] | undefined
    const closed = []
    for (const [ts, v] of [
      [0, 1],
      [500, 3],
      [999, 2],
      [1000, 10],
      [400, 99],
      [2500, 4],
    ] as const) {
      const res = aggregateReading(open, 1000, ts, v)
      if (ts === 400) assert.equal(res.late, true)
      open = res.open
      closed.push(...res.closed)
    }
    assert.deepEqual(closed, [
      { start: 0, windowMs: 1000, count: 3, min: 1, max: 3, sum: 6, mean: 2 },
      { start: 1000, windowMs: 1000, count: 1, min: 10, max: 10, sum: 10, mean: 10 },
    ])
    assert.deepEqual(closeIfDue(open, 1000, 3099, 100).closed, [])
    assert.equal(closeIfDue(open, 1000, 3100, 100).closed[0].sum, 4)
  })
})

describe('forms over real peers', { timeout: 60_000 }, () => {
  const peers = suitePeers('forms')
  let gw: EdgewardNode
  let reader: EdgewardNode
  let space: string
  const t0 = 1_800_000_000_000

  before(async () => {
    gw = await peers.node('gw')
    reader = await peers.node('reader', { bootstrap: gw.addresses() })
    space = await gw.createSpace('plant')
    await gw.data.createStream(space, 'temp', { forms: ['hashed', 'aggregate:1m'] })
    await joinSpace([reader], space)
    // three windows of one minute, by reading time; the third stays open
    const values = [
      [0, 20],
      [20_000, 22],
      [59_999, 24],
      [60_000, 30],
      [90_000, 10],
      [125_000, 5],
    ]
    await gw.data.publish(
      space,
      'temp',
      values.map(([dt, v]) => ({ ts: t0 + dt, value: v })),
    )
    await waitFor('the reader to store every form', async () =>
      readingCount(await reader.data.storedReadings(space, 'temp', 'aggregate:1m')) === 2 ? true : undefined,
    )
  })

  it('gives an aggregate-only reader correct aggregates, and neither raw values nor raw keys', async () => {
    const now = Date.now()
    const grant = await grantTo(
      gw,
      space,
      reader.identity.principal.did,
      { nbf: now - 1000, exp: now + 3600_000 },
      { streams: ['temp'], forms: ['aggregate:1m'], iat: now },
    )
    await waitForGrant([reader], space, grant.id)
    const aggregates = await reader.data.read(space, 'temp', 0, 'aggregate:1m')
    assert.deepEqual(
      aggregates.map(a => a.value),
      [
        { count: 3, min: 20, max: 24, mean: 22, sum: 66, windowMs: 60_000 },
        { count: 2, min: 10, max: 30, mean: 20, sum: 40, windowMs: 60_000 },
      ],
    )
    assert.deepEqual(
      aggregates.map(a => a.ts),
      [t0, t0 + 60_000],
    )
    await assert.rejects(reader.data.read(space, 'temp', 0, 'raw'), {
      name: 'AccessRefusedError',
      code: 'form-not-covered',
    })
    await assert.rejects(reader.data.read(space, 'temp', 0, 'hashed'), {
      name: 'AccessRefusedError',
      code: 'form-not-covered',
    })
    // the reader holds keys for the aggregate form only
    assert.equal(reader.data.cachedKeyCount(), 1)
    assert.equal(gw.metrics.total('edgeward_key_releases_total'), 1)
  })

  it('lets a holder of the hashed form check a claimed reading against its commitment', async () => {
    const raw = await gw.data.read(space, 'temp', 0, 'raw')
    const hashed = await gw.data.read(space, 'temp', 0, 'hashed')
    assert.equal(hashed.length, raw.length)
    for (const [i, h] of hashed.entries()) {
      const commitment = (h.value as { commitment: string }).commitment
      assert.equal(h.ts, raw[i].ts)
      assert.ok(raw[i].salt instanceof Uint8Array)
      assert.equal(verifyCommitment(commitment, raw[i].ts, raw[i].value, raw[i].salt!), true)
      assert.equal(
        verifyCommitment(commitment, raw[i].ts, (raw[i].value as number) + 1, raw[i].salt!),
        false,
        'a wrong value',
      )
      assert.equal(verifyCommitment(commitment, raw[i].ts, raw[i].value, new Uint8Array(16)), false, 'without the salt')
    }
  })

  it('closes an aggregate window when its time is up without a later reading', async () => {
    const now = Date.now()
    await gw.data.createStream(space, 'hum', { forms: ['aggregate:1m'] })
    await gw.data.publish(space, 'hum', [{ ts: now - 70_000, value: 7 }])
    assert.deepEqual(await gw.data.read(space, 'hum', 0, 'aggregate:1m'), [], 'no later reading closed it')
    // the window of `now - 70s` ended at least 10 s ago: the next sweep (each second) closes it
    const agg = await waitFor('the open window to be closed by time', async () => {
      const a = await gw.data.read(space, 'hum', 0, 'aggregate:1m')
      return a.length > 0 ? a : undefined
    })
    assert.deepEqual(
      agg.map(a => a.value),
      [{ count: 1, min: 7, max: 7, mean: 7, sum: 7, windowMs: 60_000 }],
    )
  })
})
