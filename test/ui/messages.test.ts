/**
 * The Messages screen in two real browsers (Debian's chromium, through playwright-core)
 * against two real `edgeward` processes: the owner of a space (its key holder) and a reader
 * who joined it. The owner writes to the reader in the composer (Enter sends, Shift+Enter is
 * a new line); the reader's open page shows the message, opened, without a reload; the owner
 * revokes it with the CLI, and the reader's page shows who revoked it and when instead of its
 * text. Every control has an accessible name. Screenshots go to docs/screenshots/ with
 * UPDATE_SCREENSHOTS=1 (else to the test's own folder).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import type { Inbox } from '../../node/ui/contract-inbox.ts'
import type { ObjectList } from '../../node/ui/contract-objects.ts'
import { interactiveNames } from './browser.ts'
import { shortDid, suitePeople } from './people.ts'

const inPage = (page: Page, expr: string) => page.evaluate(expr)

describe('Messages screen in two browsers', { timeout: 240_000 }, () => {
  const people = suitePeople('messages', ['owner', 'reader'], { space: 'Night shift' })
  const { peers, dids, errors } = people
  let ownerPage: Page
  let readerPage: Page

  async function messagesOf(who: 'owner' | 'reader'): Promise<Page> {
    const page = await people.signIn(who, 'Messages')
    await page.getByRole('heading', { level: 2, name: 'Night shift' }).waitFor()
    return page
  }

  before(async () => {
    ownerPage = await messagesOf('owner')
    readerPage = await messagesOf('reader')
  })

  it('the owner writes to the reader: Enter sends, Shift+Enter is a new line', async () => {
    await inPage(readerPage, 'window.notReloaded = true')
    const page = ownerPage
    await page.getByRole('textbox', { name: 'To' }).fill(dids.reader)
    await page.getByRole('textbox', { name: 'To' }).press('Enter')
    await page.getByLabel('Disappears after').selectOption({ label: '1 day' })
    const box = page.getByRole('textbox', { name: 'Message' })
    await box.fill('Pump 3 is back on line.')
    await box.press('Shift+Enter')
    await box.pressSequentially('Pressure holds at 4 bar.')
    assert.equal(await box.inputValue(), 'Pump 3 is back on line.\nPressure holds at 4 bar.')
    await box.press('Enter')
    const log = page.getByRole('log', { name: 'Messages in Night shift' })
    const mine = log.getByRole('listitem').filter({ hasText: 'Pump 3 is back on line.' })
    await mine.waitFor({ timeout: 20_000 })
    assert.equal(await box.inputValue(), '', 'the composer is cleared once sent')
    assert.match((await mine.textContent()) ?? '', new RegExp(`^You to ${shortDid(dids.reader)}`))
    assert.match((await mine.textContent()) ?? '', /Readable for (23 h 59 min|1 d)/)
    // what the node recorded: one message, to the reader, for a day
    const list = await (await peers.owner.api()).call<ObjectList>('GET', `/v1/spaces/${people.space}/objects`)
    assert.equal(list.objects.length, 1)
    assert.equal(list.objects[0].media, 'message')
    assert.deepEqual(
      list.objects[0].grants.map(g => g.subject),
      [dids.reader],
    )
  })

  it('the reader’s open page shows it, opened, without a reload', async () => {
    const log = readerPage.getByRole('log', { name: 'Messages in Night shift' })
    const item = log.getByRole('listitem').filter({ hasText: 'Pressure holds at 4 bar.' })
    await item.waitFor({ timeout: 30_000 })
    assert.equal(await inPage(readerPage, 'window.notReloaded'), true)
    assert.match((await item.textContent()) ?? '', new RegExp(`^${shortDid(dids.owner)}`))
    assert.match((await item.textContent()) ?? '', /Disappears in (23 h 59 min|1 d)/)
    assert.equal(
      await readerPage
        .getByText("Only the space's key holder, or a member its owner allowed to contribute, can share into it", {
          exact: false,
        })
        .count(),
      1,
      'the reader is told why there is no composer',
    )
    const names = await interactiveNames(readerPage)
    assert.deepEqual(
      names.filter(n => n.name === ''),
      [],
      `every control has a name: ${JSON.stringify(names)}`,
    )
    const ownerNames = await interactiveNames(ownerPage)
    assert.deepEqual(
      ownerNames.filter(n => n.name === ''),
      [],
      `every control has a name: ${JSON.stringify(ownerNames)}`,
    )
    assert.doesNotMatch((await readerPage.locator('main').textContent()) ?? '', /[0-9a-f]{64}/, 'no space id to read')
    await ownerPage.screenshot({ path: join(people.shots, 'messages.png') })
  })

  it('a revocation by the CLI replaces the text on the reader’s page with who revoked it and when', async () => {
    const list = await (await peers.owner.api()).call<ObjectList>('GET', `/v1/spaces/${people.space}/objects`)
    const grant = list.objects[0].grants[0].id
    const r = await peers.owner.cli(['revoke', people.space, '--grant', grant])
    assert.equal(r.code, 0, r.stderr)
    const log = readerPage.getByRole('log', { name: 'Messages in Night shift' })
    await log
      .getByRole('listitem')
      .filter({ hasText: `Revoked by ${shortDid(dids.owner)} at ` })
      .waitFor({ timeout: 30_000 })
    assert.equal(await log.getByText('Pressure holds at 4 bar.').count(), 0, 'the text is gone from the page')
    assert.equal(await inPage(readerPage, 'window.notReloaded'), true)
    const inbox = JSON.parse((await peers.reader.cli(['inbox', '--json'])).stdout) as Inbox
    assert.equal(inbox.items.find(i => i.grant === grant)?.state, 'revoked')
    await readerPage.screenshot({ path: join(people.shots, 'messages-revoked.png') })
    assert.deepEqual(errors, [])
  })
})
