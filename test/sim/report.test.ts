/**
 * The simulator's report in a real browser (Debian's chromium, driven by playwright-core): a
 * small `revoke` run through the command line writes report.html, which opens from disk with
 * no network and no script errors, and shows its charts (SVG with plotted lines, laid out at a
 * visible size) and the checks that held.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'
import { runScript } from '../support/run-script.ts'

const CHROMIUM = '/usr/bin/chromium'
const root = join(import.meta.dirname, '..', '..')

const sim = (args: string[]) => runScript(join(root, 'sim', 'run.ts'), args, ['--expose-gc'])

describe('simulator report in a browser', { timeout: 180_000 }, () => {
  let dir = ''
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true })
  })

  it('opens from disk and shows the propagation charts and the checks', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is installed (npm test's setup installs Debian's chromium)`)
    dir = await mkdtemp(join(tmpdir(), 'edgeward-report-'))
    const run = await sim(['--scenario', 'revoke', '--peers', '6', '--degree', '3', '--seed', '5', '--out', dir])
    assert.equal(run.code, 0, run.stderr.slice(-3000))
    const results = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8'))
    assert.equal(results.params.scenario, 'revoke')

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      const errors: string[] = []
      const requests: string[] = []
      page.on('pageerror', err => errors.push(err.message))
      page.on('console', m => {
        if (m.type() === 'error') errors.push(m.text())
      })
      page.on('request', r => requests.push(r.url()))
      await page.goto(pathToFileURL(join(dir, 'report.html')).href)

      assert.match(await page.title(), /^edgeward simulation: revoke, 6 peers/)
      const charts = await page.$$eval('svg', svgs =>
        svgs.map(s => {
          const box = s.getBoundingClientRect()
          return {
            width: box.width,
            height: box.height,
            plotted: s.querySelectorAll('path, polyline, rect, circle').length,
            text: s.textContent ?? '',
          }
        }),
      )
      assert.ok(charts.length >= 2, `charts: ${charts.length}`)
      for (const c of charts) {
        assert.ok(c.width > 100 && c.height > 50, `a chart laid out at ${c.width}×${c.height}`)
        assert.ok(c.plotted > 0, 'a chart with something plotted')
      }
      const body = (await page.locator('body').textContent()) ?? ''
      assert.match(body, /Checks/)
      assert.match(body, /every peer applied the revocation/)
      assert.deepEqual(errors, [], 'no script or console errors')
      assert.ok(
        requests.every(u => u.startsWith('file:') || u.startsWith('data:')),
        `self-contained, asked only for: ${requests.join(' ')}`,
      )
    } finally {
      await browser.close()
    }
  })
})
