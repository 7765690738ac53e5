/**
 * The whole story in three browsers, each person on a real node process over 127.0.0.1, as
 * people do it: Ana (owner) creates a space and an invitation in her client; Ben pastes the
 * code (from the keyboard) and is in; Ana shares a PDF with Ben view only for 48 h by dropping
 * it on Files, and writes him a message; Ben finds both in his Inbox, reads the message, views
 * the PDF in the viewer and finds no way to download it (no control, and the node refuses the
 * plaintext to anything but the viewer); Cleo, in the space without a grant, cannot open it;
 * a second file shared with Ben for a few seconds runs out, Ben requests it again from his
 * Inbox and Ana approves it in her Access screen; Ana revokes the PDF in her Access screen and
 * Ben's open view closes within seconds, saying why; Ana's Audit shows Ben's held interval and
 * the report she exports verifies. Each names themselves once, and the invitation carries the
 * names: every screen says "Ana Ruiz" and "Ben Okafor", not ids. Every control of every screen
 * has an accessible name.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import { readApiToken } from '../../node/api-token.ts'
import { type LocalPeer, runCli } from '../../node/cli/local-network.ts'
import { waitFor } from '../support/wait.ts'
import { interactiveNames } from './browser.ts'
import { tinyPdf } from './pdf.ts'
import { type People, startPeople } from './people.ts'

const PEOPLE = ['ana', 'ben', 'cleo'] as const
type Who = (typeof PEOPLE)[number]

describe('the story in three browsers', { timeout: 300_000 }, () => {
  let people: People<Who>
  let root = ''
  let shots = ''
  let peers = {} as Record<Who, LocalPeer>
  let dids = {} as Record<Who, string>
  const pages = {} as Record<Who, Page>
  let errors: string[] = []
  let space = ''
  let pdf = { object: '', grant: '' }

  const json = async (who: Who, args: string[]) => {
    const r = await peers[who].cli([...args, '--json'])
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    return JSON.parse(r.stdout)
  }
  const inboxOf = async (who: Who) => (await json(who, ['inbox'])).items as any[]
  const go = async (who: Who, screen: string, heading: string) => {
    await pages[who].getByRole('link', { name: new RegExp(`^${screen}`) }).click()
    await pages[who].getByRole('heading', { level: 1, name: heading }).waitFor()
  }
  const noUnnamedControls = async (who: Who, where: string) =>
    assert.deepEqual(
      (await interactiveNames(pages[who])).filter(c => c.name === ''),
      [],
      `${who} on ${where}: every control has a name`,
    )

  before(async () => {
    // Ben and Cleo know nobody's address: the invitation carries Ana's. A refused request is
    // logged by the browser itself; the page shows it in words.
    people = await startPeople('story', PEOPLE, { bootstrap: false, allow: /status of 40[34]/ })
    ;({ root, shots, peers, dids, errors } = people)
    for (const who of PEOPLE) pages[who] = await people.signIn(who)
  })

  after(() => people?.stop())

  it('each names themselves on Your identity', async () => {
    for (const [who, name] of [
      ['ana', 'Ana Ruiz'],
      ['ben', 'Ben Okafor'],
    ] as const) {
      const page = pages[who]
      await page.getByRole('textbox', { name: 'Your name' }).fill(name)
      await page.getByRole('button', { name: 'Save' }).click()
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor()
    }
  })

  it('Ana creates a space and an invitation; Ben joins with the code, from the keyboard', async () => {
    const ana = pages.ana
    await go('ana', 'Spaces', 'Spaces')
    await ana.getByRole('textbox', { name: 'Name' }).fill('Plant 7 drawings')
    await ana.getByRole('button', { name: 'Create space' }).click()
    await ana.getByRole('heading', { level: 3, name: 'Plant 7 drawings' }).waitFor()
    space = (await json('ana', ['status'])).spaces.find((s: any) => s.name === 'Plant 7 drawings').id
    await ana.getByRole('button', { name: 'Invite someone to Plant 7 drawings' }).click()
    await ana.getByRole('form', { name: 'Invite someone to Plant 7 drawings' }).locator('button[type=submit]').click()
    const code = (await ana.locator('.copyable-value').first().textContent())?.trim() ?? ''
    assert.match(code, /^ew1-/)
    await noUnnamedControls('ana', 'Spaces')

    const ben = pages.ben
    await go('ben', 'Spaces', 'Spaces')
    const field = ben.getByRole('textbox', { name: 'Invite code' })
    await field.focus()
    await ben.keyboard.insertText(code)
    await ben.keyboard.press('Tab')
    await ben.keyboard.press('Enter')
    await ben.getByRole('heading', { level: 3, name: 'Plant 7 drawings' }).waitFor({ timeout: 30_000 })
    // the code carried Ana's name, the redemption Ben's: each knows the other by name now
    await waitFor('the names to arrive', async () => {
      const [onBen, onAna] = await Promise.all([json('ben', ['contacts']), json('ana', ['contacts'])])
      const has = (r: any, did: string, name: string) => r.contacts.some((c: any) => c.did === did && c.name === name)
      return has(onBen, dids.ana, 'Ana Ruiz') && has(onAna, dids.ben, 'Ben Okafor') ? true : undefined
    })
    // Cleo is in the space too, with no grant: by a code of her own, from the command line
    const cleoCode = (await json('ana', ['invite', space])).invite
    await json('cleo', ['join', cleoCode])
  })

  it('Ana shares a PDF view only for 48 h by dropping it on Files, and writes Ben a message', async () => {
    const ana = pages.ana
    await go('ana', 'Files', 'Files')
    const to = ana.getByRole('textbox', { name: 'Share with' })
    await to.fill(dids.ben)
    await to.press('Enter')
    const bytes = tinyPdf('Pump curve, line 7').toString('base64')
    const dataTransfer = await ana.evaluateHandle(`(() => {
      const bin = atob('${bytes}')
      const buf = new Uint8Array(bin.length)
      for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i)
      const dt = new DataTransfer()
      dt.items.add(new File([buf], 'pump-curve.pdf', { type: 'application/pdf' }))
      return dt
    })()`)
    await ana.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer })
    await ana.getByRole('radio', { name: '48 hours' }).check()
    assert.ok(await ana.getByRole('radio', { name: 'View only' }).isChecked())
    await ana.getByRole('button', { name: 'Share', exact: true }).click()
    await ana
      .getByRole('status')
      .filter({ hasText: /Shared pump-curve\.pdf/ })
      .waitFor({ timeout: 30_000 })
    const objects = await (await peers.ana.api()).call<any>('GET', `/v1/spaces/${space}/objects`)
    const shared = objects.objects.find((o: any) => o.name === 'pump-curve.pdf')
    pdf = { object: shared.object, grant: shared.grants[0].id }
    assert.equal(shared.grants[0].download, false)

    await go('ana', 'Messages', 'Messages')
    await ana.getByRole('textbox', { name: 'To' }).fill(dids.ben)
    await ana.getByRole('textbox', { name: 'To' }).press('Enter')
    await ana.getByRole('textbox', { name: 'Message' }).fill('The pump curves for the audit are in Files.')
    await ana.getByRole('textbox', { name: 'Message' }).press('Enter')
    await ana.getByText('The pump curves for the audit are in Files.').waitFor()
    await noUnnamedControls('ana', 'Messages')
  })

  it('Ben finds both in his Inbox without a reload, reads the message, and views the PDF: no way to download', async () => {
    const ben = pages.ben
    await go('ben', 'Inbox', 'Inbox')
    await ben.locator('.inbox-row[data-kind="file"][data-state="active"]').waitFor({ timeout: 30_000 })
    await ben.locator('.inbox-row[data-kind="message"]').waitFor()
    assert.match((await ben.locator('.inbox-row[data-kind="file"]').textContent()) ?? '', /Ana Ruiz · Plant 7 drawings/)
    await noUnnamedControls('ben', 'Inbox')
    await ben.screenshot({ path: join(shots, 'story-inbox.png') })

    await go('ben', 'Messages', 'Messages')
    await ben.getByText('The pump curves for the audit are in Files.').waitFor({ timeout: 30_000 })

    await go('ben', 'Inbox', 'Inbox')
    await ben.locator('.inbox-row[data-kind="file"]').getByRole('button', { name: /^Open/ }).click()
    const viewer = ben.getByRole('dialog', { name: /Viewer: pump-curve\.pdf/ })
    await ben.locator('.viewer-pdf[data-pages="1"] canvas').waitFor({ timeout: 30_000 })
    assert.match((await viewer.textContent()) ?? '', /View only: no download/)
    assert.equal(await viewer.locator('a[download], a[href^="blob:"]').count(), 0)
    assert.equal(await viewer.getByRole('button', { name: /download|save/i }).count(), 0)
    await noUnnamedControls('ben', 'the viewer')
    await ben.screenshot({ path: join(shots, 'story-viewer.png') })
    await viewer.getByRole('button', { name: 'Close' }).click()
    await viewer.waitFor({ state: 'hidden' })

    // the node gives that plaintext to nothing but the viewer: not to the token, not to a navigation
    const path = `/v1/spaces/${space}/objects/${pdf.object}/view`
    const r = await fetch(`${peers.ben.info.api}${path}`, {
      headers: { authorization: `Bearer ${await readApiToken(peers.ben.dataDir)}` },
    })
    assert.equal(r.status, 403)
    const opened = JSON.parse((await peers.ben.cli(['open', space, pdf.object, '--json'])).stdout)
    assert.ok(opened.viewer !== undefined && opened.object === pdf.object, 'the CLI gets a viewer file, not the bytes')
  })

  it('Cleo, in the space without a grant, cannot open it', async () => {
    await waitFor('Cleo to hold the object', async () =>
      (await json('cleo', ['status'])).spaces.find((s: any) => s.id === space)?.synchronised ? true : undefined,
    )
    const r = await peers.cleo.cli(['open', space, pdf.object])
    assert.equal(r.code, 3, r.stderr)
    assert.equal(r.stdout, '')
    await go('cleo', 'Inbox', 'Inbox')
    await pages.cleo.getByText('Nothing has been shared with you yet.').waitFor()
  })

  it('a file that ran out: Ben requests it again from his Inbox, Ana approves it in Access', async () => {
    const file = join(root, 'spec.txt')
    await writeFile(file, 'Valve V-12 spec, revision C')
    const spec = await json('ana', ['share', space, file, '--to', dids.ben, '--for', '3s'])
    const ben = pages.ben
    const row = ben.locator('.inbox-row[data-kind="file"]').filter({ hasText: /expired/ })
    await row.waitFor({ timeout: 30_000 })
    await row.getByRole('button', { name: /Request access/ }).click()
    const dialog = ben.getByRole('dialog', { name: /Request access/ })
    await dialog.getByLabel('Why do you need it?').fill('Needed for the valve audit on Monday')
    await dialog.getByRole('button', { name: 'Send request' }).click()
    await ben.locator('.inbox-row[data-state="requested"]').waitFor()

    const ana = pages.ana
    await go('ana', 'Access', 'Access')
    const approve = ana.getByRole('button', { name: /^Approve the request of/ })
    await approve.waitFor({ timeout: 30_000 })
    await approve.click()
    await waitFor('Ben’s new grant', async () =>
      (await inboxOf('ben')).some(i => i.resource === spec.object && i.state === 'active') ? true : undefined,
    )
    await ben.locator('.inbox-row[data-kind="file"][data-state="active"]').nth(1).waitFor({ timeout: 30_000 })
    await noUnnamedControls('ana', 'Access')
    await ana.getByText('Ben Okafor').first().waitFor()
    await ana.screenshot({ path: join(shots, 'story-access.png'), fullPage: true })
  })

  it('Ana revokes the PDF in Access: Ben’s open view closes within seconds and says why', async () => {
    const ben = pages.ben
    await ben
      .locator('.inbox-row[data-kind="file"]')
      .filter({ hasText: 'pump-curve.pdf' })
      .getByRole('button', { name: /^Open/ })
      .click()
    await ben.locator('.viewer-pdf[data-pages="1"] canvas').waitFor({ timeout: 30_000 })

    const ana = pages.ana
    await ana.reload()
    await ana.getByRole('heading', { level: 1, name: 'Access' }).waitFor()
    await ana.getByRole('button', { name: `Revoke grant ${pdf.grant.slice(0, 8)} of `, exact: false }).click()
    const dialog = ana.getByRole('dialog', { name: 'Revoke this grant?' })
    await dialog.getByRole('button', { name: 'Revoke grant' }).click()
    const started = Date.now()
    await ben.getByTestId('viewer-closed').waitFor({ timeout: 15_000 })
    const tookMs = Date.now() - started
    assert.match((await ben.getByTestId('viewer-closed').textContent()) ?? '', /revoked/)
    assert.equal(await ben.locator('.viewer-pdf canvas').count(), 0)
    assert.ok(tookMs < 15_000)
    await ben.screenshot({ path: join(shots, 'story-closed.png') })
  })

  it('Ana’s Audit shows Ben’s held interval; the report she exports verifies', async () => {
    const ana = pages.ana
    await go('ana', 'Audit', 'Audit')
    await ana
      .getByText(/held .* min/)
      .first()
      .waitFor({ timeout: 30_000 })
    await ana.getByRole('region', { name: 'Holdings of Ben Okafor' }).waitFor()
    await ana.screenshot({ path: join(shots, 'story-audit.png'), fullPage: true })
    const [download] = await Promise.all([
      ana.waitForEvent('download'),
      ana.getByRole('button', { name: 'Export report' }).click(),
    ])
    const exported = join(root, 'report.json')
    await download.saveAs(exported)
    const report = JSON.parse(await readFile(exported, 'utf8'))
    assert.ok(report.entries.length > 0)
    const verified = await runCli(['audit', 'verify', exported, '--space', space, '--owner', dids.ana])
    assert.equal(verified.code, 0, verified.stderr)
    await ana.setInputFiles('#report-file', exported)
    await ana
      .getByText(/verifies/)
      .first()
      .waitFor()
    await noUnnamedControls('ana', 'Audit')
    assert.deepEqual(errors, [])
  })
})
