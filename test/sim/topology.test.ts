/**
 * The simulator's pure parts: seeded topologies (degree, connectivity, sites, repeatability),
 * the link model's latencies, percentiles and the CDF, and the SVG chart.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { lineChart, niceTicks } from '../../sim/chart.ts'
import { LinkModel } from '../../sim/link.ts'
import { mulberry32 } from '../../sim/random.ts'
import { cdf, percentile, summarize } from '../../sim/stats.ts'
import { buildTopology, linkRule, neighbours } from '../../sim/topology.ts'

function isConnected(n: number, links: [number, number][]): boolean {
  const adj = neighbours(n, links)
  const seen = new Set([0])
  const queue = [0]
  while (queue.length > 0) for (const q of adj[queue.shift()!]) if (!seen.has(q) && seen.add(q)) queue.push(q)
  return seen.size === n
}

describe('topology', () => {
  it('a random graph has about the chosen degree, is connected, and is the same for the same seed', () => {
    for (const [n, degree] of [
      [12, 3],
      [100, 6],
      [300, 4],
    ]) {
      const t = buildTopology(n, { kind: 'random', degree }, mulberry32(7))
      const degrees = neighbours(n, t.links).map(x => x.length)
      const mean = degrees.reduce((a, b) => a + b, 0) / n
      assert.ok(mean >= degree - 1 && mean <= degree + 0.5, `mean degree ${mean} for degree ${degree}`)
      assert.ok(Math.min(...degrees) >= 1)
      assert.ok(isConnected(n, t.links), 'every peer reaches every other')
      assert.ok(
        t.links.every(([a, b]) => a < b),
        'links are (lower, higher) pairs',
      )
      assert.equal(new Set(t.links.map(l => l.join('-'))).size, t.links.length, 'no duplicate links')
      assert.deepEqual(buildTopology(n, { kind: 'random', degree }, mulberry32(7)), t)
    }
    const a = buildTopology(50, { kind: 'random', degree: 4 }, mulberry32(1))
    const b = buildTopology(50, { kind: 'random', degree: 4 }, mulberry32(2))
    assert.notDeepEqual(a.links, b.links, 'another seed, another graph')
  })

  it('sites: dense inside a site, a few bridges between each pair of sites', () => {
    const n = 40
    const t = buildTopology(n, { kind: 'sites', sites: 4, degree: 20, bridges: 2 }, mulberry32(3))
    assert.deepEqual(
      [0, 1, 2, 3].map(s => t.site.filter(x => x === s).length),
      [10, 10, 10, 10],
    )
    const inside = t.links.filter(([a, b]) => t.site[a] === t.site[b]).length
    const between = t.links.filter(([a, b]) => t.site[a] !== t.site[b]).length
    assert.equal(inside, 4 * 45, 'a full mesh inside each site of 10')
    assert.ok(between >= 1 && between <= 6 * 2, `${between} links between sites`)
    assert.ok(isConnected(n, t.links))
  })

  it('a strict topology lets two peers connect when it links them or one is public; an open one lets any two', () => {
    const t = { links: [[1, 2]] as [number, number][], site: [0, 0, 0, 0] }
    const strict = linkRule(t, [0], true)
    assert.equal(strict(2, 1), true, 'linked, either way round')
    assert.equal(strict(3, 0), true, 'with the public peer')
    assert.equal(strict(1, 3), false)
    assert.equal(linkRule(t, [0], false)(1, 3), true)
  })

  it('links inside a site and between sites get their latencies', () => {
    const links = new LinkModel({ latencyMs: 5, interSiteLatencyMs: 40 }, [0, 0, 1])
    assert.equal(links.latencyOf(0, 1), 5)
    assert.equal(links.latencyOf(1, 2), 40)
    assert.equal(links.latencyOf(2, 1), 40)
  })
})

describe('stats and charts', () => {
  it('percentiles by nearest rank, missing peers kept out of the percentiles but below 1 in the CDF', () => {
    const times = [40, 10, 30, undefined, 20]
    const s = summarize(times)
    assert.deepEqual([s.count, s.missing, s.p50, s.max], [4, 1, 20, 40])
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9)
    assert.deepEqual(cdf(times), [
      [10, 0.2],
      [20, 0.4],
      [30, 0.6],
      [40, 0.8],
    ])
  })

  it('draws a self-contained SVG with escaped labels', () => {
    assert.deepEqual(niceTicks(87), [0, 20, 40, 60, 80, 100])
    const svg = lineChart({
      title: 'a <b> & c',
      xLabel: 'ms',
      yLabel: 'fraction',
      yMax: 1,
      series: [
        {
          name: 'x',
          color: '#000',
          points: [
            [5, 0.5],
            [9, 1],
          ],
          step: true,
        },
      ],
    })
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.ok(svg.includes('a &lt;b&gt; &amp; c'))
    assert.ok(!svg.includes('<script') && !svg.includes('href'), 'nothing to load')
  })
})
