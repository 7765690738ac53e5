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
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import { type LocalPeer, startPeer, waitFor } from '../../node/cli/local-network.ts'
import type { Inbox } from '../../node/ui/contract-inbox.ts'
import type { ObjectList } from '../../node/ui/contract-objects.ts'
import { initData, stopPeers } from '../support/local-peers.ts'
import { interactiveNames, loginLink, openBrowser, screenshotDir } from './browser.ts'

const short = (did: string) => `did:key:${did.slice(8, 12)}…${did.slice(-4)}`
const inPage = (page: Page, expr: string) => page.evaluate(expr)

describe('Messages screen in two browsers', { timeout: 240_000 }, () => {
  let root = ''
  let shots = ''
  let owner: LocalPeer
  let reader: LocalPeer
  let ownerDid = ''
  let readerDid = ''
  let space = ''
  let ownerPage: Page
  let readerPage: Page
  const browsers: (() => Promise<void>)[] = []
  const errors: string[] = []

  async function messagesOf(peer: LocalPeer): Promise<Page> {
    const { context, close } = await openBrowser()
    browsers.push(close)
    const page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', err => errors.push(`${peer.name}: ${err.message}`))
    page.on('console', m => {
      if (m.type() === 'error') errors.push(`${peer.name}: ${m.text()}`)
    })
    await page.goto((await loginLink(peer.dataDir)).url)
    await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
    await page.getByRole('link', { name: 'Messages' }).click()
    await page.getByRole('heading', { level: 1, name: 'Messages' }).waitFor()
    await page.getByRole('heading', { level: 2, name: 'Night shift' }).waitFor()
    return page
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-ui-messages-'))
    ownerDid = await initData(join(root, 'owner'))
    readerDid = await initData(join(root, 'reader'))
    owner = await startPeer('owner', join(root, 'owner'))
    const created = await owner.cli(['space', 'create', 'Night shift'])
    assert.equal(created.code, 0, created.stderr)
    space = created.stdout.trim()
    reader = await startPeer('reader', join(root, 'reader'), { bootstrap: owner.info.addresses })
    assert.equal((await reader.cli(['space', 'join', space])).code, 0)
    await waitFor('the reader to receive the space', async () => {
      const s = JSON.parse((await reader.cli(['status', '--json'])).stdout)
      return s.spaces.find((x: { id: string; synchronised: boolean }) => x.id === space)?.synchronised
        ? true
        : undefined
    })
    shots = screenshotDir(join(root, 'screenshots'))
    await mkdir(shots, { recursive: true })
    ownerPage = await messagesOf(owner)
    readerPage = await messagesOf(reader)
  })

  after(async () => {
    for (const close of browsers) await close()
    await stopPeers(
      [owner, reader].filter(p => p !== undefined),
      root,
    )
  })

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
    assert.match((await mine.textContent()) ?? '', new RegExp(`^You to ${short(readerDid)}`))
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
    assert.match((await item.textContent()) ?? '', new RegExp(`^${short(ownerDid)}`))
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
      .filter({ hasText: `Revoked by ${short(ownerDid)} at ` })
      .waitFor({ timeout: 30_000 })
    assert.equal(await log.getByText('Pressure holds at 4 bar.').count(), 0, 'the text is gone from the page')
    assert.equal(await inPage(readerPage, 'window.notReloaded'), true)
    const inbox = JSON.parse((await reader.cli(['inbox', '--json'])).stdout) as Inbox
    assert.equal(inbox.items.find(i => i.grant === grant)?.state, 'revoked')
    await readerPage.screenshot({ path: join(shots, 'messages-revoked.png') })
    assert.deepEqual(errors, [])
  })
})
