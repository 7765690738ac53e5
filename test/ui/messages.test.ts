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
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import type { LocalPeer } from '../../node/cli/local-network.ts'
import type { Inbox } from '../../node/ui/contract-inbox.ts'
import type { ObjectList } from '../../node/ui/contract-objects.ts'
import { interactiveNames } from './browser.ts'
import { type People, shortDid, startPeople } from './people.ts'

const inPage = (page: Page, expr: string) => page.evaluate(expr)

describe('Messages screen in two browsers', { timeout: 240_000 }, () => {
  let people: People<'owner' | 'reader'>
  let shots = ''
  let owner: LocalPeer
  let reader: LocalPeer
  let ownerDid = ''
  let readerDid = ''
  let space = ''
  let ownerPage: Page
  let readerPage: Page
  let errors: string[] = []

  async function messagesOf(who: 'owner' | 'reader'): Promise<Page> {
    const page = await people.signIn(who, 'Messages')
    await page.getByRole('heading', { level: 2, name: 'Night shift' }).waitFor()
    return page
  }

  before(async () => {
    people = await startPeople('messages', ['owner', 'reader'], { space: 'Night shift' })
    ;({ shots, space, errors } = people)
    ;({ owner, reader } = people.peers)
    ;({ owner: ownerDid, reader: readerDid } = people.dids)
    ownerPage = await messagesOf('owner')
    readerPage = await messagesOf('reader')
  })

  after(() => people?.stop())

  it('the owner writes to the reader: Enter sends, Shift+Enter is a new line', async () => {
    await inPage(readerPage, 'window.notReloaded = true')
    const page = ownerPage
    await page.getByRole('textbox', { name: 'To' }).fill(readerDid)
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
    assert.match((await mine.textContent()) ?? '', new RegExp(`^You to ${shortDid(readerDid)}`))
    assert.match((await mine.textContent()) ?? '', /Readable for (23 h 59 min|1 d)/)
    // what the node recorded: one message, to the reader, for a day
    const list = await (await owner.api()).call<ObjectList>('GET', `/v1/spaces/${space}/objects`)
    assert.equal(list.objects.length, 1)
    assert.equal(list.objects[0].media, 'message')
    assert.deepEqual(
      list.objects[0].grants.map(g => g.subject),
      [readerDid],
    )
  })

  it('the reader’s open page shows it, opened, without a reload', async () => {
    const log = readerPage.getByRole('log', { name: 'Messages in Night shift' })
    const item = log.getByRole('listitem').filter({ hasText: 'Pressure holds at 4 bar.' })
    await item.waitFor({ timeout: 30_000 })
    assert.equal(await inPage(readerPage, 'window.notReloaded'), true)
    assert.match((await item.textContent()) ?? '', new RegExp(`^${shortDid(ownerDid)}`))
    assert.match((await item.textContent()) ?? '', /Disappears in (23 h 59 min|1 d)/)
    assert.equal(
      await readerPage.getByText("Only the space's key holder can share into it today", { exact: false }).count(),
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
    await ownerPage.screenshot({ path: join(shots, 'messages.png') })
  })

  it('a revocation by the CLI replaces the text on the reader’s page with who revoked it and when', async () => {
    const list = await (await owner.api()).call<ObjectList>('GET', `/v1/spaces/${space}/objects`)
    const grant = list.objects[0].grants[0].id
    const r = await owner.cli(['revoke', space, '--grant', grant])
    assert.equal(r.code, 0, r.stderr)
    const log = readerPage.getByRole('log', { name: 'Messages in Night shift' })
    await log
      .getByRole('listitem')
      .filter({ hasText: `Revoked by ${shortDid(ownerDid)} at ` })
      .waitFor({ timeout: 30_000 })
    assert.equal(await log.getByText('Pressure holds at 4 bar.').count(), 0, 'the text is gone from the page')
    assert.equal(await inPage(readerPage, 'window.notReloaded'), true)
    const inbox = JSON.parse((await reader.cli(['inbox', '--json'])).stdout) as Inbox
    assert.equal(inbox.items.find(i => i.grant === grant)?.state, 'revoked')
    await readerPage.screenshot({ path: join(shots, 'messages-revoked.png') })
    assert.deepEqual(errors, [])
  })
})
