/**
 * The Spaces screen in a real browser (Debian's chromium, through playwright-core) against
 * two real `edgeward` processes that know nothing of each other: the owner creates a space in
 * the page, makes an invite that gives a stream for 48 hours, and copies the code; the guest,
 * in a browser of its own, pastes it and sees the space appear by its name, with the access it
 * got in words. Pasting a damaged code, or the same single-use code again, is said in words.
 * A space's id shows only under Details. Every control has an accessible name. Screenshots
 * go to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (else to the test's own folder).
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { BrowserContext, Page } from 'playwright-core'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { decodeInvite } from '../../protocols/invites.ts'
import { initData, stopPeers } from '../support/local-peers.ts'
import { interactiveNames, loginLink, openBrowser, screenshotDir } from './browser.ts'

type Json = Record<string, any>
const NAME = 'Plant 7 sensors'

describe('Spaces screen in a browser', { timeout: 240_000 }, () => {
  let root = ''
  let shots = ''
  let owner: LocalPeer
  let guest: LocalPeer
  const browsers: { context: BrowserContext; close: () => Promise<void> }[] = []
  let page: Page
  let guestPage: Page
  let code = ''
  const errors: string[] = []

  const watch = (p: Page) => {
    p.on('pageerror', err => errors.push(err.message))
    p.on('console', m => {
      if (m.type() === 'error' && !/status of (400|403|503)/.test(m.text())) errors.push(m.text())
    })
  }
  const assertNamed = async (p: Page) => {
    const unnamed = (await interactiveNames(p)).filter(c => c.name === '')
    assert.deepEqual(unnamed, [], 'every control has an accessible name')
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-ui-spaces-'))
    await initData(join(root, 'owner'))
    await initData(join(root, 'guest'))
    owner = await startPeer('owner', join(root, 'owner'), { timeoutMs: 60_000 })
    // no --bootstrap: the code is all the guest gets
    guest = await startPeer('guest', join(root, 'guest'), { timeoutMs: 60_000 })
    shots = screenshotDir(join(root, 'screenshots'))
    await mkdir(shots, { recursive: true })
    // a browser each: their cookies would otherwise share 127.0.0.1
    for (let i = 0; i < 2; i++) browsers.push(await openBrowser())
    await browsers[0].context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: owner.info.api })
    page = browsers[0].context.pages()[0] ?? (await browsers[0].context.newPage())
    guestPage = browsers[1].context.pages()[0] ?? (await browsers[1].context.newPage())
    watch(page)
    watch(guestPage)
  })

  after(async () => {
    for (const b of browsers) await b.close()
    await stopPeers(
      [owner, guest].filter(p => p !== undefined),
      root,
    )
  })

  it('the owner creates a space in the page; it shows as a card by its name, its id only under Details', async () => {
    await page.goto((await loginLink(owner.dataDir)).url)
    await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
    await page.getByRole('link', { name: 'Spaces' }).click()
    await page.getByRole('heading', { level: 1, name: 'Spaces' }).waitFor()
    await page.getByText('No space yet').waitFor()
    await page.getByRole('textbox', { name: 'Name' }).fill(NAME)
    await page.getByRole('button', { name: 'Create space' }).click()
    await page.getByRole('heading', { level: 3, name: NAME }).waitFor()
    const space = ((await (await owner.api()).call<Json>('GET', '/v1/status')).spaces as Json[])[0].id as string
    assert.ok(!(await page.getByText(space).isVisible()), 'the id is not shown outside Details')
    await page.getByText('Details').click()
    assert.ok(await page.getByText(space).isVisible(), 'Details shows the id')
    await page.getByText('Details').click()
    // a stream to give access to
    await (await owner.api()).call(
      'POST',
      `/v1/spaces/${space}/streams/temp/readings`,
      JSON.stringify({ ts: Date.now(), value: 21 }),
    )
    await page.getByText('1 stream: temp').waitFor()
  })

  it('makes an invite that gives temp for 48 hours, and copies the code', async () => {
    await page.getByRole('button', { name: `Invite someone to ${NAME}` }).click()
    await page.getByRole('checkbox', { name: 'Also give access to streams' }).check()
    await page.getByRole('checkbox', { name: 'temp' }).check()
    await page.getByRole('combobox', { name: 'Access lasts' }).selectOption({ label: '48 hours from joining' })
    await assertNamed(page)
    await page.getByRole('button', { name: 'Make invite code' }).click()
    await page.getByRole('button', { name: `Copy the invite code for ${NAME}` }).click()
    await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor()
    code = await page.evaluate('navigator.clipboard.readText()')
    assert.match(code, /^ew1-[\w-]+$/)
    assert.equal(decodeInvite(code).name, NAME)
    await page.getByText('gives temp for 48 hours from joining').waitFor()
    await page.screenshot({ path: join(shots, 'spaces-invite.png') })
  })

  it('the guest pastes the code and sees the space appear by its name, with its access in words', async () => {
    await guestPage.goto((await loginLink(guest.dataDir)).url)
    await guestPage.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
    await guestPage.getByRole('link', { name: 'Spaces' }).click()
    await guestPage.getByText('No space yet').waitFor()
    await guestPage.getByRole('textbox', { name: 'Invite code' }).fill('ew1-thisisnotacode')
    await guestPage.getByRole('button', { name: 'Join' }).click()
    await guestPage.getByRole('alert').filter({ hasText: 'not a complete invite code' }).waitFor()

    await guestPage.getByRole('textbox', { name: 'Invite code' }).fill(code)
    await guestPage.getByRole('button', { name: 'Join' }).click()
    await guestPage
      .getByRole('status')
      .filter({ hasText: `You joined ${NAME}. You can read temp until` })
      .waitFor()
    await guestPage.getByRole('heading', { level: 3, name: NAME }).waitFor({ timeout: 30_000 })
    await guestPage.getByText('Member · 1 stream: temp').waitFor()
    assert.equal(await guestPage.getByRole('button', { name: `Invite someone to ${NAME}` }).count(), 0)
    await assertNamed(guestPage)
    await guestPage.screenshot({ path: join(shots, 'spaces.png') })

    // the same single-use code again
    await guestPage.getByRole('textbox', { name: 'Invite code' }).fill(code)
    await guestPage.getByRole('button', { name: 'Join' }).click()
    await guestPage.getByRole('alert').filter({ hasText: 'already been used' }).waitFor()
    await guestPage.screenshot({ path: join(shots, 'spaces-used.png') })
    assert.deepEqual(errors, [], 'no errors in the pages')
  })
})
