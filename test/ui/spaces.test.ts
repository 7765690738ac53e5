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
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import type { LocalPeer } from '../../node/cli/local-network.ts'
import { decodeInvite } from '../../protocols/invites.ts'
import { interactiveNames } from './browser.ts'
import { type People, startPeople } from './people.ts'

type Json = Record<string, any>
const NAME = 'Plant 7 sensors'

describe('Spaces screen in a browser', { timeout: 240_000 }, () => {
  let people: People<'owner' | 'guest'>
  let shots = ''
  let owner: LocalPeer
  let page: Page
  let guestPage: Page
  let code = ''
  let errors: string[] = []
  const assertNamed = async (p: Page) => {
    const unnamed = (await interactiveNames(p)).filter(c => c.name === '')
    assert.deepEqual(unnamed, [], 'every control has an accessible name')
  }

  before(async () => {
    // no bootstrap: the code is all the guest gets; refusals (400, 403, 503) the pages say in words
    people = await startPeople('spaces', ['owner', 'guest'], {
      bootstrap: false,
      start: { timeoutMs: 60_000 },
      allow: /status of (400|403|503)/,
    })
    ;({ shots, errors } = people)
    owner = people.peers.owner
  })

  after(() => people?.stop())

  it('the owner creates a space in the page; it shows as a card by its name, its id only under Details', async () => {
    page = await people.signIn('owner', 'Spaces')
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: owner.info.api })
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
    guestPage = await people.signIn('guest', 'Spaces')
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
