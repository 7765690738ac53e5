/**
 * The Audit screen in a real browser against real `edgeward start` processes: an owner (the
 * key holder) and a reader. The reader reads a stream (then the owner revokes it) and opens a
 * shared file, through the CLI, so the owner's log holds real key releases. The owner's
 * browser shows the reader's row with each held interval in minutes; exports the report, which
 * `edgeward audit verify` accepts; a report file dropped on the screen verifies, a tampered
 * copy shows its first failure. The reader's node keeps no log for the space and says so.
 * POST /v1/audit/verify refuses a body that is not JSON. Screenshots go to docs/screenshots/
 * with UPDATE_SCREENSHOTS=1.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import { fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import { readApiToken } from '../../node/api-token.ts'
import { type LocalPeer, runCli } from '../../node/cli/local-network.ts'
import type { AuditReportFile } from '../../node/ui/contract-audit.ts'
import { waitFor } from '../support/wait.ts'
import { namedControls } from './browser.ts'
import { type People, shortDid, startPeople } from './people.ts'

const STREAM = 'temperature'

/** `did:key:z6Mk…abcd`, as the screen shows a person. */

describe('the Audit screen in a browser', { timeout: 180_000 }, () => {
  let people: People<'owner' | 'reader'>
  let root = ''
  let shots = ''
  let peers: People<'owner' | 'reader'>['peers']
  let dids: People<'owner' | 'reader'>['dids']
  let space = ''
  let page: Page
  let exported = ''
  let errors: string[] = []

  const status = async (p: LocalPeer) => (await p.api()).call<Record<string, any>>('GET', '/v1/status')
  const spaceStatus = async (p: LocalPeer) => (await status(p)).spaces.find((s: { id: string }) => s.id === space)
  const storedFromGossip = async (p: LocalPeer): Promise<number> =>
    (await status(p)).counters.edgeward_readings_stored_total?.['source="gossip"'] ?? 0
  const ok = (r: { code: number; stderr: string }) => assert.equal(r.code, 0, r.stderr)

  before(async () => {
    people = await startPeople('audit', ['owner', 'reader'])
    ;({ root, shots, peers, dids, errors } = people)

    // the owner's space; the reader joins it and gets readings and a file
    const created = await peers.owner.cli(['space', 'create', 'plant-9'])
    ok(created)
    space = created.stdout.trim()
    ok(await peers.reader.cli(['space', 'join', space]))
    await waitFor('the reader to receive the space', async () =>
      (await spaceStatus(peers.reader))?.synchronised ? true : undefined,
    )
    const t = Date.now()
    const input = [0, 1, 2].map(i => JSON.stringify({ ts: t + i, value: 20 + i })).join('\n')
    ok(await peers.owner.cli(['publish', space, STREAM], { input }))
    await waitFor('the reader to store the readings', async () =>
      (await storedFromGossip(peers.reader)) >= 3 ? true : undefined,
    )
    const g = await peers.owner.cli(['grant', space, '--to', dids.reader, '--stream', STREAM, '--for', '1h', '--json'])
    ok(g)
    const grant = JSON.parse(g.stdout).grant as string
    const file = join(root, 'inspection.txt')
    await writeFile(file, 'pump 3: seal replaced\n')
    const before = await storedFromGossip(peers.reader)
    const shared = await peers.owner.cli(['share', space, file, '--to', dids.reader, '--for', '2h', '--json'])
    ok(shared)
    const object = JSON.parse(shared.stdout) as { object: string; chunks: number }
    await waitFor('the reader to receive its grants and the file', async () =>
      (await spaceStatus(peers.reader))?.grants === 2 && (await storedFromGossip(peers.reader)) >= before + 2
        ? true
        : undefined,
    )

    // key releases: the stream (revoked at once after) and the file (its lease runs on)
    const read = await peers.reader.cli(['read', space, STREAM])
    ok(read)
    assert.equal(read.stdout.trim().split('\n').length, 3)
    ok(await peers.reader.cli(['open', space, object.object, '--out', join(root, 'opened.txt')]))
    ok(await peers.owner.cli(['revoke', space, '--grant', grant]))
  })

  after(() => people?.stop())

  it("shows the reader's row with each held interval in minutes", async () => {
    page = await people.signIn('owner', 'Audit')
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: peers.owner.info.api })
    assert.equal(await page.getByLabel('Space').locator('option:checked').textContent(), 'plant-9')

    const reader = page.getByRole('region', { name: `Holdings of ${shortDid(dids.reader)}` })
    await reader.waitFor({ timeout: 15_000 })
    assert.equal(
      await reader.locator('.audit-timeline-who').getAttribute('title'),
      dids.reader,
      'the whole id in the title',
    )
    const rows = reader.locator('.audit-timeline-row')
    assert.equal(await rows.count(), 2, 'a row for the stream and one for the file')
    const streamRow = rows.filter({ hasText: STREAM })
    assert.match(
      (await streamRow.locator('.audit-timeline-text').textContent()) ?? '',
      /^held \d+(\.\d+)? min, \d\d:\d\d(:\d\d)?–\d\d:\d\d(:\d\d)?, ended by revocation$/,
    )
    const fileRow = rows.filter({ hasText: 'file or message' })
    assert.match(
      (await fileRow.locator('.audit-timeline-text').textContent()) ?? '',
      /^held \d+(\.\d+)? min, .*still held/,
    )
    assert.equal(await reader.locator('.audit-timeline-bar').count(), 2, 'one bar per interval')

    // the filter by item leaves one row; by person, the reader alone
    await page.getByLabel('Item').selectOption(STREAM)
    assert.equal(await page.locator('.audit-timeline-row').count(), 1)
    await page.getByLabel('Item').selectOption('')
    await page.getByLabel('Person').selectOption(dids.reader)
    assert.equal(await page.locator('.audit-timeline-row').count(), 2)
    await page.getByLabel('Person').selectOption('')
  })

  it('exports the report as a file that `edgeward audit verify` accepts', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export report' }).click(),
    ])
    assert.match(download.suggestedFilename(), /^audit-plant-9-\d{8}-\d{4}\.json$/)
    exported = join(root, download.suggestedFilename())
    await download.saveAs(exported)
    const report = JSON.parse(await readFile(exported, 'utf8')) as AuditReportFile
    assert.equal(report.query.space, space)
    assert.ok(report.holdings.some(h => h.subject === dids.reader && h.resource === STREAM))
    assert.doesNotMatch(await readFile(exported, 'utf8'), /seal replaced/, 'no plaintext in the report')
    const verified = await runCli(['audit', 'verify', exported, '--space', space, '--owner', dids.owner])
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(verified.stdout, /^verified: \d+ entries/)
    await page
      .getByRole('status')
      .filter({ hasText: /Saved audit-plant-9/ })
      .waitFor()
  })

  it('a report file given to the screen verifies, and says what it covers', async () => {
    await page.setInputFiles('#report-file', exported)
    const verdict = page.locator('#verify-result .audit-verdict-ok')
    await verdict.waitFor({ timeout: 10_000 })
    assert.match((await verdict.locator('.audit-verdict-title').textContent()) ?? '', /verifies$/)
    const facts = (await verdict.locator('.audit-verdict-facts').textContent()) ?? ''
    assert.match(facts, /plant-9 \(one of your spaces; its id and owner were checked\)/)
    assert.match(facts, /\d+ log entries, each proven in the log of size \d+/)
    assert.match(facts, /1 person holding keys to 2 items/)
    await page.screenshot({ path: join(shots, 'audit.png'), fullPage: true })
  })

  it('a tampered copy dropped on the screen shows the first failure', async () => {
    const report = JSON.parse(await readFile(exported, 'utf8')) as AuditReportFile
    const i = report.entries.length - 1
    const bytes = fromBase64url(report.entries[i].entry)
    bytes[bytes.byteLength >> 1] ^= 0x10
    report.entries[i].entry = toBase64url(bytes)
    const text = JSON.stringify(report, null, 2)
    // a real drop: a DataTransfer holding the file, dropped on the drop zone
    const transfer = await page.evaluateHandle(t => {
      // a function, not a string: the client's CSP (no unsafe-eval) refuses a string to evaluate
      const g = globalThis as any
      const dt = new g.DataTransfer()
      dt.items.add(new g.File([t], 'tampered.json', { type: 'application/json' }))
      return dt
    }, text)
    await page.dispatchEvent('.audit-drop', 'drop', { dataTransfer: transfer })
    const verdict = page.locator('#verify-result .audit-verdict-bad')
    await verdict.waitFor({ timeout: 10_000 })
    assert.equal(await verdict.locator('.audit-verdict-title').textContent(), '✕ tampered.json does not verify')
    assert.equal(
      await verdict.locator('.audit-verdict-failure').textContent(),
      `entry ${i} (log index ${report.entries[i].index}): inclusion proof does not verify against the tree head`,
    )
    await page.screenshot({ path: join(shots, 'audit-tampered.png'), fullPage: true })
  })

  it('gives every control of the screen an accessible name', async () => {
    const controls = await namedControls(page, 10)
    for (const name of ['Export report', 'Choose a report file…', `Copy the full id of ${shortDid(dids.reader)}`])
      assert.ok(
        controls.some(c => c.role === 'button' && c.name === name),
        name,
      )
  })

  it("says on the reader's node that it keeps no audit log for the space, and what to do", async () => {
    // the node without a log answers 404, which the browser logs and the page says in words
    const other = await people.signIn('reader', undefined, { allow: /status of 404/ })
    try {
      await other.evaluate(() => {
        ;(globalThis as any).location.hash = '#/audit'
      })
      await other.getByRole('heading', { level: 3, name: 'This node keeps no audit log for this space' }).waitFor()
      assert.ok(await other.getByText('edgeward audit report SPACE --out FILE').isVisible())
      await other.screenshot({ path: join(shots, 'audit-no-log.png'), fullPage: true })
    } finally {
      await other.close()
    }
  })

  it('POST /v1/audit/verify refuses a body that is not JSON (400), and answers a bad report with its failure', async () => {
    const token = await readApiToken(peers.owner.dataDir)
    const post = (body: string, query = '') =>
      fetch(`${peers.owner.info.api}/v1/audit/verify${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      })
    for (const body of ['not json', '[1,2]', '']) {
      const res = await post(body)
      assert.equal(res.status, 400, body)
      assert.equal(((await res.json()) as any).error.name, 'UsageError')
    }
    const text = await readFile(exported, 'utf8')
    const pinned = await post(text, `?space=${space}&owner=${encodeURIComponent(dids.owner)}`)
    assert.equal(pinned.status, 200)
    const answer = (await pinned.json()) as any
    assert.equal(answer.ok, true)
    assert.deepEqual(answer.space, { id: space, name: 'plant-9' })
    assert.equal(answer.owner, dids.owner)
    assert.equal(answer.keyHolder, peers.owner.info.peerId)
    assert.equal(answer.pinned, true)
    const other = await post(text, `?owner=${encodeURIComponent(dids.reader)}`)
    assert.deepEqual(await other.json(), {
      ok: false,
      failure: `report is for a space of another owner: ${dids.owner}, not ${dids.reader}`,
    })
    assert.equal((await post(text, '?space=nope')).status, 400)
  })

  it('had no script error', () => {
    assert.deepEqual(errors, [])
  })
})
