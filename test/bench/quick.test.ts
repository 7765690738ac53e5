/**
 * `npm run bench -- --quick`: every benchmark suite still runs (once, on small sizes) and
 * gives well-formed figures. No thresholds: the figures themselves are not judged here, and
 * the committed results files are left alone.
 */
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { Figure } from '../../bench/harness.ts'
import { runScript } from '../support/run-script.ts'

const benchDir = join(import.meta.dirname, '..', '..', 'bench')

type QuickFigure = Figure & { suite: string }

const run = (args: string[]) => runScript(join(benchDir, 'run.ts'), args)

describe('npm run bench -- --quick', { timeout: 600_000 }, () => {
  it('runs every suite and gives finite, ordered figures, writing no results file', async () => {
    const suites = (await readdir(benchDir))
      .filter(f => f.endsWith('.bench.ts'))
      .map(f => f.slice(0, -'.bench.ts'.length))
      .sort()
    assert.ok(suites.length >= 6, `suites found: ${suites.join(', ')}`)
    const before = await readFile(join(benchDir, 'results.json'), 'utf8')

    const r = await run(['--quick', '--json'])
    assert.equal(r.code, 0, r.stderr.slice(-4000))
    const out = JSON.parse(r.stdout) as { quick: boolean; results: QuickFigure[] }
    assert.equal(out.quick, true)
    assert.deepEqual([...new Set(out.results.map(f => f.suite))].sort(), suites, 'every bench file ran as a suite')
    for (const f of out.results) {
      const what = `${f.suite}: ${f.name}`
      assert.ok(f.name.length > 0 && f.unit.length > 0, what)
      for (const v of [f.median, f.min, f.max]) assert.ok(Number.isFinite(v) && v >= 0, `${what}: ${v}`)
      assert.ok(f.min <= f.median && f.median <= f.max, `${what}: min ${f.min} median ${f.median} max ${f.max}`)
      assert.ok(f.runs >= 1, what)
      if (f.baseline !== undefined) {
        assert.ok(Number.isFinite(f.baseline.median) && f.baseline.median > 0, `${what}: baseline`)
        assert.ok(Number.isFinite(f.ratio), `${what}: ratio`)
      }
    }
    assert.equal(await readFile(join(benchDir, 'results.json'), 'utf8'), before, '--quick writes no results')
    console.log(`# bench --quick: ${out.results.length} figures from ${suites.length} suites`)
  })

  it('--help tells the suites and options; an unknown suite exits 2', async () => {
    const help = await run(['--help'])
    assert.equal(help.code, 0)
    for (const w of ['--quick', '--only', '--json', 'data', 'sim']) assert.ok(help.stdout.includes(w), w)
    const bad = await run(['--only', 'nonesuch', '--quick'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /unknown suite nonesuch/)
  })
})
