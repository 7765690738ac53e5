/**
 * The Files screen in a real browser (Debian's chromium, through playwright-core) against two
 * real `edgeward` processes: the owner of a space (its key holder) and a reader who joined it.
 * The API lists a space's objects a page at a time and refuses a malformed recipient. The
 * owner drops a file on the page, shares it with the reader, view only, for 48 h: the reader's
 * CLI inbox has it, without download, and the owner's list shows it with the reader's state;
 * a file chosen with the button (the keyboard's path) is shared the same way. The reader's
 * browser lists both under "Shared with you", counting down, with Download only where the
 * grant allows it. Every control has an accessible name. Screenshots go to docs/screenshots/
 * with UPDATE_SCREENSHOTS=1 (else to the test's own folder).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { readApiToken } from '../../node/api-token.ts'
import { type LocalPeer, waitFor } from '../../node/cli/local-network.ts'
import type { Inbox } from '../../node/ui/contract-inbox.ts'
import type { ObjectList } from '../../node/ui/contract-objects.ts'
import { interactiveNames } from './browser.ts'
import { shortDid, suitePeople } from './people.ts'

const HOUR = 3_600_000

describe('Files screen in a browser', { timeout: 240_000 }, () => {
  const people = suitePeople('files', ['owner', 'reader'], { space: 'Design review' })
  const { peers, dids, errors } = people

  const inboxOf = async (p: LocalPeer): Promise<Inbox> => {
    const r = await p.cli(['inbox', '--json'])
    assert.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout)
  }

  const signedIn = (who: 'owner' | 'reader') => people.signIn(who, 'Files')

  it('refuses a share with a malformed recipient (400), and lists objects a page at a time', async () => {
    const token = await readApiToken(peers.owner.dataDir)
    const bad = await fetch(`${peers.owner.info.api}/v1/spaces/${people.space}/objects?to=bob&for=60000`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: 'hello',
    })
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /did:key/)

    for (const text of ['first', 'second', 'third']) {
      const r = await peers.owner.cli(['message', people.space, '--to', dids.reader, '--for', '1h', text])
      assert.equal(r.code, 0, r.stderr)
    }
    const api = await peers.owner.api()
    const all = await api.call<ObjectList>('GET', `/v1/spaces/${people.space}/objects`)
    assert.equal(all.objects.length, 3)
    assert.equal(all.next, undefined)
    const times = all.objects.map(o => o.createdAt)
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
      'newest first',
    )
    for (const o of all.objects) {
      assert.equal(o.media, 'message')
      assert.equal(o.creator, dids.owner)
      assert.equal(o.name, 'message')
      assert.equal(o.grants.length, 1)
      assert.equal(o.grants[0].subject, dids.reader)
      assert.equal(o.grants[0].status, 'active')
    }
    const first = await api.call<ObjectList>('GET', `/v1/spaces/${people.space}/objects?limit=2`)
    assert.deepEqual(
      first.objects.map(o => o.object),
      all.objects.slice(0, 2).map(o => o.object),
    )
    assert.equal(first.next, all.objects[1].object)
    const second = await api.call<ObjectList>('GET', `/v1/spaces/${people.space}/objects?limit=2&before=${first.next}`)
    assert.deepEqual(
      second.objects.map(o => o.object),
      [all.objects[2].object],
    )
    assert.equal(second.next, undefined)
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'before=nope'])
      await assert.rejects(api.call('GET', `/v1/spaces/${people.space}/objects?${q}`), /limit|before/)
  })

  it('shares a dropped file with the reader, view only, for 48 h', async () => {
    const page = await signedIn('owner')
    await page.getByRole('heading', { name: 'Share a file' }).waitFor()
    // a recipient that is not an id is refused where it is typed
    const to = page.getByRole('textbox', { name: 'Share with' })
    await to.fill('bob')
    await to.press('Enter')
    await page.getByRole('alert').filter({ hasText: 'is not a person' }).waitFor()
    await to.fill(dids.reader)
    await to.press('Enter')
    await page.getByRole('button', { name: `Remove ${shortDid(dids.reader)}` }).waitFor()

    // a drop as the browser makes it: a DataTransfer holding a File, made in the page (the test has no DOM)
    const dataTransfer = await page.evaluateHandle(`(() => {
      const dt = new DataTransfer()
      dt.items.add(new File(['Handover: valve V-12 stays shut until Monday.'], 'handover.txt', { type: 'text/plain' }))
      return dt
    })()`)
    await page.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer })
    await page.locator('#chosen-file').filter({ hasText: 'handover.txt' }).waitFor()
    await page.getByRole('radio', { name: '48 hours' }).check()
    assert.ok(await page.getByRole('radio', { name: 'View only' }).isChecked(), 'view only unless chosen otherwise')
    await page.getByRole('button', { name: 'Share', exact: true }).click()
    await page
      .getByRole('status')
      .filter({ hasText: `Shared handover.txt with ${shortDid(dids.reader)} for 48 hours.` })
      .waitFor({ timeout: 20_000 })

    const list = page.getByRole('list', { name: 'Files shared by you' })
    const row = list.getByRole('listitem').filter({ hasText: 'handover.txt' })
    await row.waitFor()
    assert.match(
      (await row.textContent()) ?? '',
      new RegExp(`${shortDid(dids.reader)}ActiveView onlyexpires in (2 d|1 d 23 h)`),
    )

    const shared = (
      await (await peers.owner.api()).call<ObjectList>('GET', `/v1/spaces/${people.space}/objects`)
    ).objects.find(o => o.name === 'handover.txt')
    assert.ok(shared !== undefined)
    const item = await waitFor('the file in the reader’s inbox', async () =>
      (await inboxOf(peers.reader)).items.find(i => i.resource === shared.object),
    )
    assert.equal(item.kind, 'file')
    assert.equal(item.download, false)
    assert.equal(item.state, 'active')
    assert.equal(item.from, dids.owner)
    assert.ok(Math.abs(item.notAfter! - (Date.now() + 48 * HOUR)) < 5 * 60_000, 'for 48 h')
  })

  it('shares a file chosen with the button, download allowed, for 1 h', async () => {
    const page = await signedIn('owner')
    await page.getByRole('button', { name: 'Choose file' }).waitFor()
    await page.getByTestId('file-input').setInputFiles({
      name: 'minutes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('Minutes of the design review.\n'.repeat(2000)),
    })
    await page.locator('#chosen-file').filter({ hasText: 'minutes.txt' }).waitFor()
    await page.getByRole('button', { name: `Add ${shortDid(dids.reader)}` }).click()
    await page.getByRole('radio', { name: '1 hour' }).check()
    await page.getByRole('radio', { name: 'Download' }).check()
    await page.getByLabel('Forwarding').selectOption('ask-owner')
    await page.getByRole('button', { name: 'Share', exact: true }).click()
    await page.getByRole('status').filter({ hasText: 'Shared minutes.txt' }).waitFor({ timeout: 20_000 })
    const row = page.getByRole('list', { name: 'Files shared by you' }).getByRole('listitem').filter({
      hasText: 'minutes.txt',
    })
    await row.waitFor()
    assert.match((await row.textContent()) ?? '', /ActiveDownloadexpires in (59 min|1 h)/)
    const names = await interactiveNames(page)
    assert.deepEqual(
      names.filter(n => n.name === ''),
      [],
      `every control has a name: ${JSON.stringify(names)}`,
    )
    await page.screenshot({ path: join(people.shots, 'files.png'), fullPage: true })
  })

  it('lists what was shared with the reader, counting down, with Download only where allowed', async () => {
    const page = await signedIn('reader')
    await page
      .getByText("Only the space's key holder, or a member its owner allowed to contribute, can share into it", {
        exact: false,
      })
      .waitFor()
    const list = page.getByRole('list', { name: 'Files shared with you' })
    await list.getByRole('listitem').nth(1).waitFor({ timeout: 20_000 })
    const rows = list.getByRole('listitem')
    assert.equal(await rows.count(), 2)
    const texts = await rows.allTextContents()
    assert.ok(
      texts.every(t => t.includes(`From ${shortDid(dids.owner)} in Design review`)),
      texts.join('\n'),
    )
    assert.ok(
      texts.some(t => /View onlyActiveexpires in (2 d|1 d 23 h)/.test(t)),
      texts.join('\n'),
    )
    // the view-only file has Open and no Download; the other has both
    assert.equal(await page.getByRole('link', { name: /^Download / }).count(), 1)
    assert.equal(await page.getByRole('button', { name: /^Open / }).count(), 2)
    assert.doesNotMatch((await page.locator('main').textContent()) ?? '', /[0-9a-f]{64}/, 'no space id to read')
    const names = await interactiveNames(page)
    assert.deepEqual(
      names.filter(n => n.name === ''),
      [],
    )
    await page.screenshot({ path: join(people.shots, 'files-shared-with-you.png'), fullPage: true })

    // the view-only file opens in the client's viewer, which offers no download
    await rows
      .filter({ hasText: 'View only' })
      .getByRole('button', { name: /^Open / })
      .click()
    const viewer = page.getByRole('dialog')
    await viewer.getByText('Handover: valve V-12 stays shut until Monday.').waitFor({ timeout: 20_000 })
    assert.match((await viewer.textContent()) ?? '', /View only: no download\./)
    await viewer.getByRole('button', { name: 'Close' }).click()
    await viewer.waitFor({ state: 'hidden' })
    assert.deepEqual(errors, [])
  })
})
