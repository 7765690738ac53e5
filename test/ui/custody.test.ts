/**
 * Custodians in real browsers (Debian's chromium, through playwright-core) against five real
 * `edgeward` processes in one space: its owner, three custodian devices and a member the owner
 * granted, on the command line, the right to contribute. The owner names the custodians on the
 * Spaces screen as a person would (ticks two devices connected now, pastes the third's peer
 * id; a bad id and a device that is not online are said in words; the meaning is confirmed
 * first); the set shows on the member's page with who is connected; the member, now allowed to
 * share, sends a message from the Messages screen; a custodian's identity screen says it is
 * one; and with the owner stopped, the member's Health screen still counts the space's keys in
 * reach, through its custodians. Every control has an accessible name; no script errors.
 * Screenshots go to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (else to the test's own folder).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Page } from 'playwright-core'
import type { ObjectList } from '../../node/ui/contract-objects.ts'
import { jsonOutput } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'
import { interactiveNames, settled } from './browser.ts'
import { suitePeople } from './people.ts'

type Json = Record<string, any>
const SPACE = 'Plant 7'
/** a peer id as the client shows it in short (written here, not taken from the client, so that the test checks it) */
const shortPeer = (peer: string): string => `${peer.slice(0, 8)}…${peer.slice(-6)}`
const escaped = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const NAMES = { c1: 'Hall 3 gateway', c2: 'Backup server', c3: 'Lena’s desktop', member: 'Marta', owner: 'Olaf' }

describe('Custodians in the desktop client', { timeout: 300_000 }, () => {
  // a custodian that is not online when named is a 503 the page says in words
  const people = suitePeople('custody', ['owner', 'c1', 'c2', 'c3', 'member'], { space: SPACE, allow: /status of 503/ })
  const { peers, dids, errors } = people
  let ownerPage: Page
  let memberPage: Page

  const assertNamed = async (page: Page) => {
    const names = await interactiveNames(page)
    assert.deepEqual(
      names.filter(n => n.name === ''),
      [],
      `every control has an accessible name: ${JSON.stringify(names)}`,
    )
  }
  /** what has the focus on the owner's page: a checkbox, or a button by its words */
  const focused = (expected: string): Promise<unknown> =>
    settled(
      ownerPage,
      "document.activeElement?.type === 'checkbox' ? 'checkbox' : (document.activeElement?.textContent ?? '')",
      expected,
    )
  const statusOf = async (name: 'owner' | 'member'): Promise<Json> =>
    (await peers[name].api()).call<Json>('GET', '/v1/status')
  const spaceIn = (status: Json): Json => (status.spaces as Json[]).find(s => s.id === people.space)!

  it('the member, granted to contribute on the command line, may not share yet: the space has no custodians', async () => {
    // the names each gives the others, as a person does on Your identity or with `contact set`
    for (const [who, to] of [
      ['owner', ['c1', 'c2', 'c3', 'member']],
      ['member', ['c1', 'c2', 'c3', 'owner']],
    ] as const) {
      for (const n of to) jsonOutput(await peers[who].cli(['contact', 'set', dids[n], NAMES[n], '--json']))
    }
    jsonOutput(
      await peers.owner.cli(['grant', people.space, '--to', dids.member, '--for', '30d', '--contribute', '--json']),
    )
    await waitFor('the member to know its grant', async () =>
      ((await (await peers.member.api()).call<Json>('GET', `/v1/spaces/${people.space}/grants`)).grants as Json[])
        .length > 0
        ? true
        : undefined,
    )
    assert.equal(spaceIn(await statusOf('member')).mayShare, false, 'no custodians: the member may not share')
    assert.equal(spaceIn(await statusOf('owner')).mayShare, true, 'the key holder may')
  })

  it('the owner names three custodians on the Spaces screen, a bad id and an unreachable device said in words', async () => {
    ownerPage = await people.signIn('owner', 'Spaces')
    // tall enough for the card and its form in one screenshot
    await ownerPage.setViewportSize({ width: 1180, height: 1200 })
    const card = ownerPage.getByRole('article', { name: SPACE })
    await card
      .getByText("None yet: the space's keys are released only while its key holder is online", { exact: false })
      .waitFor()
    await card.getByRole('button', { name: `Name the custodians of ${SPACE}` }).press('Enter')
    const form = card.getByRole('form', { name: `Custodians of ${SPACE}` })
    assert.equal(await focused('checkbox'), 'checkbox', 'the form takes the focus, on its first device')
    // the devices connected now, c1 ticked with the mouse and c2 from the keyboard; c3's peer id pasted, as its person sent it
    const deviceOf = (c: 'c1' | 'c2') =>
      form.getByRole('checkbox', { name: new RegExp(escaped(shortPeer(peers[c].info.peerId))) })
    await deviceOf('c1').check()
    await deviceOf('c2').press('Space')
    assert.equal(await deviceOf('c2').isChecked(), true)
    const paste = form.getByRole('textbox', { name: 'Other custodians: peer ids, one per line' })
    await paste.fill('not-a-peer-id')
    await form.getByRole('button', { name: 'Review…' }).press('Enter')
    await form.getByRole('alert').filter({ hasText: '“not-a-peer-id” is not a peer id' }).waitFor()

    // a real peer id whose device is not online: the node cannot ask it for its certificate
    const offline = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    await paste.fill(offline)
    assert.equal(await form.getByRole('combobox').inputValue(), '2', 'a majority of 3 by default')
    await form.getByRole('button', { name: 'Review…' }).click()
    await card.getByRole('button', { name: 'Name 3 custodians' }).click()
    await card
      .getByRole('alert')
      .filter({ hasText: `${shortPeer(offline)} could not be reached` })
      .waitFor({ timeout: 60_000 })
    await card.getByRole('button', { name: 'Back' }).click()
    assert.equal(await focused('Review…'), 'Review…', 'back in the form, on its Review button')

    await paste.fill(peers.c3.info.peerId)
    await form
      .getByRole('combobox', { name: 'How many together release a key' })
      .selectOption({ label: 'any 2 of 3 (a majority)' })
    await assertNamed(ownerPage)
    await ownerPage.screenshot({ path: join(people.shots, 'custody-form.png') })
    await form.getByRole('button', { name: 'Review…' }).click()
    await card
      .getByRole('status')
      .filter({ hasText: 'Any 2 of these 3 together can release keys; fewer learn nothing.' })
      .waitFor()
    await card.getByText('This applies to keys made from now on', { exact: false }).waitFor()
    await ownerPage.screenshot({ path: join(people.shots, 'custody-confirm.png') })
    await card.getByRole('button', { name: 'Name 3 custodians' }).click()

    await card.getByText('2 of 3 custodians release keys while the owner is offline.').waitFor({ timeout: 30_000 })
    assert.equal(
      await focused('Change custodians…'),
      'Change custodians…',
      'the focus is back on the button that opened the form',
    )
    const list = card.getByRole('list', { name: `Custodians of ${SPACE}` })
    for (const c of ['c1', 'c2', 'c3'] as const)
      await list.getByRole('listitem').filter({ hasText: NAMES[c] }).filter({ hasText: 'Connected' }).waitFor()
    const custody = await (await peers.owner.api()).call<Json>('GET', `/v1/spaces/${people.space}/custody`)
    assert.equal(custody.set.threshold, 2)
    assert.deepEqual(
      (custody.set.custodians as Json[]).map(c => c.peer).sort(),
      [peers.c1.info.peerId, peers.c2.info.peerId, peers.c3.info.peerId].sort(),
    )
    await card.getByText('Details').click()
    await card.getByText('Custody on this device').waitFor()
    await assertNamed(ownerPage)
    await ownerPage.screenshot({ path: join(people.shots, 'custody-spaces.png') })
  })

  it('the set shows on the member’s page, with who is connected, and no way to change it', async () => {
    memberPage = await people.signIn('member', 'Spaces')
    const card = memberPage.getByRole('article', { name: SPACE })
    await card.getByText('2 of 3 custodians release keys while the owner is offline.').waitFor({ timeout: 30_000 })
    const list = card.getByRole('list', { name: `Custodians of ${SPACE}` })
    for (const c of ['c1', 'c2', 'c3'] as const)
      await list
        .getByRole('listitem')
        .filter({ hasText: NAMES[c] })
        .filter({ hasText: 'Connected' })
        .waitFor({ timeout: 30_000 })
    assert.equal(await card.getByRole('button', { name: /custodians of/ }).count(), 0, 'only the owner names them')
    await assertNamed(memberPage)
    await memberPage.screenshot({ path: join(people.shots, 'custody-member.png') })
  })

  it('the member, allowed to contribute, sends a message from the Messages screen', async () => {
    await waitFor('the member to be allowed to share', async () =>
      spaceIn(await statusOf('member')).mayShare === true ? true : undefined,
    )
    await memberPage.getByRole('link', { name: 'Messages' }).click()
    await memberPage.getByRole('heading', { level: 2, name: SPACE }).waitFor()
    await memberPage.getByText('keys kept by 3 custodians', { exact: false }).waitFor()
    await memberPage.getByRole('textbox', { name: 'To' }).fill(dids.owner)
    await memberPage.getByRole('textbox', { name: 'To' }).press('Enter')
    const box = memberPage.getByRole('textbox', { name: 'Message' })
    await box.fill('Valve 12 replaced; readings back to normal.')
    await box.press('Enter')
    const log = memberPage.getByRole('log', { name: `Messages in ${SPACE}` })
    await log.getByRole('listitem').filter({ hasText: 'Valve 12 replaced' }).waitFor({ timeout: 30_000 })
    assert.equal(await box.inputValue(), '', 'the composer is cleared once sent')
    const mine = await (await peers.member.api()).call<ObjectList>('GET', `/v1/spaces/${people.space}/objects`)
    const message = mine.objects.find(o => o.media === 'message' && o.creator === dids.member)
    assert.ok(message, 'the member’s node recorded its message')
    assert.deepEqual(
      message.grants.map(g => g.subject),
      [dids.owner],
    )
    await assertNamed(memberPage)
    await memberPage.screenshot({ path: join(people.shots, 'custody-message.png') })
  })

  it('a custodian’s identity screen gives its peer id to copy and says what it keeps', async () => {
    const page = await people.signIn('c1')
    const device = page.getByRole('region', { name: 'This device' })
    await device.getByText(peers.c1.info.peerId).waitFor()
    await device.getByRole('button', { name: "Copy this device's peer id" }).waitFor()
    await device
      .getByText('To make this device a custodian of a space, its owner names this peer id', { exact: false })
      .waitFor()
    await device.getByText(`of ${SPACE}`).waitFor()
    await assertNamed(page)
    await page.screenshot({ path: join(people.shots, 'custody-identity.png') })
  })

  it('with the owner stopped, the member’s Health counts the keys in reach through the custodians', async () => {
    // the owner's page goes first: its node's event stream would end mid-way
    await ownerPage.close()
    assert.equal(await peers.owner.stop(), 0)
    await memberPage.getByRole('link', { name: /^Health/ }).click()
    await memberPage.getByRole('heading', { level: 1, name: 'Health' }).waitFor()
    await memberPage.getByRole('button', { name: 'Show details' }).click()
    const check = memberPage
      .getByRole('listitem')
      .filter({ has: memberPage.getByRole('heading', { name: 'Key holders' }) })
    await check.getByText(`${SPACE}: no key holder connected`, { exact: false }).waitFor({ timeout: 30_000 })
    await check.getByText('3 of 3 custodians connected (2 release a key)', { exact: false }).waitFor()
    assert.equal(await check.locator('.pill').textContent(), 'OK')
    await check.getByText('A key holder, or enough custodians to release keys, of every space is connected.').waitFor()
    await assertNamed(memberPage)
    await memberPage.screenshot({ path: join(people.shots, 'custody-health.png') })
    assert.deepEqual(errors, [], 'no errors in the pages')
  })
})
