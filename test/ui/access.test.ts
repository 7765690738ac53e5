/**
 * The Access screen in a real browser against two real `edgeward start` processes, an owner and
 * a reader: the owner grants the reader a stream from the CLI and the reader asks for another;
 * the owner's browser shows the grant with its countdown and the request with its reason,
 * approves it for a duration other than the one asked (the grant the node issued ends when
 * chosen), sees the reader's next request arrive by itself (the state's `inboxVersion`),
 * cancels a revocation with Escape (nothing revoked), revokes through the confirmation dialog
 * (the node lists the grant as revoked), and denies the next request with a reason that the
 * reader's own `edgeward requests` shows. A plain member is told what the screen is for. Every
 * control has an accessible name. Screenshots: docs/screenshots/access*.png with
 * UPDATE_SCREENSHOTS=1.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import type { LocalPeer } from '../../node/cli/local-network.ts'
import type { AccessRequestView, GrantsListing, GrantView, RequestsListing } from '../../node/ui/contract-access.ts'
import { jsonOutput as json } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'
import { namedControls, settled } from './browser.ts'
import { shortDid, suitePeople } from './people.ts'

const HOUR = 3_600_000

describe('Access screen in a browser, owner and reader as real processes', { timeout: 180_000 }, () => {
  const people = suitePeople('access', ['owner', 'reader'], { start: { timeoutMs: 60_000 } })
  const { peers, dids, errors } = people
  let space = ''
  let tempGrant = ''
  let humRequest = ''
  let pressureRequest = ''
  let page: Page

  const grantsOn = async (p: LocalPeer): Promise<GrantView[]> =>
    (await (await p.api()).call<GrantsListing>('GET', `/v1/spaces/${space}/grants`)).grants
  const requestsOn = async (p: LocalPeer): Promise<AccessRequestView[]> =>
    (await (await p.api()).call<RequestsListing>('GET', `/v1/spaces/${space}/requests`)).requests
  /** The reader asks with the CLI for `streams` for `duration`, giving `reason`: the request's id. */
  const readerRequests = async (streams: string[], duration: string, reason: string): Promise<string> => {
    const args = ['request', space, ...streams.flatMap(s => ['--stream', s]), '--for', duration, '--reason', reason]
    return json(await peers.reader.cli([...args, '--json'])).request
  }
  const requestCard = (reason: string) => page.locator('li.access-request', { hasText: reason })
  const revokeTempButton = () => page.getByRole('button', { name: `Revoke grant ${tempGrant.slice(0, 8)} of ` })

  before(async () => {
    // setup that is not under test goes through the local API
    const api = await peers.owner.api()
    space = (await api.call<{ space: string }>('POST', '/v1/spaces', { name: 'plant-7' })).space
    const t = Date.now()
    for (const stream of ['temp', 'hum', 'pressure', 'flow'])
      await api.call('POST', `/v1/spaces/${space}/streams/${stream}/readings`, JSON.stringify({ ts: t, value: 1 }))
    await (await peers.reader.api()).call('POST', `/v1/spaces/${space}/join`)
    await waitFor('the reader to know the four streams', async () => {
      const s = (await (await peers.reader.api()).call<any>('GET', '/v1/status')).spaces.find(
        (x: any) => x.id === space,
      )
      return s?.synchronised && s.streams.length === 4 ? true : undefined
    })

    // what is under test in the browser starts from what the CLI did
    tempGrant = json(
      await peers.owner.cli(['grant', space, '--to', dids.reader, '--stream', 'temp', '--for', '3h', '--json']),
    ).grant
    // a short one, whose countdown shows its seconds
    json(await peers.owner.cli(['grant', space, '--to', dids.reader, '--stream', 'flow', '--for', '9m', '--json']))
    humRequest = await readerRequests(['hum'], '30m', 'calibration check')
    await waitFor('the owner to receive the request', async () =>
      (await requestsOn(peers.owner)).some(r => r.id === humRequest) ? true : undefined,
    )

    page = await people.signIn('owner', 'Access')
  })

  it('shows who holds each stream through which grant, with a live countdown, and the request with its reason', async () => {
    const temp = page.getByRole('table', { name: 'temp' })
    const row = temp.getByRole('row').filter({ has: revokeTempButton() })
    await row.waitFor()
    assert.equal(await row.locator('.person-did').textContent(), shortDid(dids.reader), 'the person by a short did')
    assert.equal(await row.locator('.person-did').getAttribute('title'), dids.reader, 'the whole did in the title')
    assert.ok(!((await page.locator('main').textContent()) ?? '').includes(space), 'the space id is never shown')
    assert.equal(await row.locator('.badge').textContent(), 'Active')
    const countdown = row.locator('.access-countdown')
    assert.match((await countdown.textContent()) ?? '', /^ends in (2 h 5\d min|3 h)$/)
    assert.match((await row.textContent()) ?? '', /Download.*No forwarding/)
    // live: a countdown under ten minutes shows its seconds, and they go down without a reload
    const flow = page.getByRole('table', { name: 'flow' }).locator('.access-countdown')
    const seconds = async () => {
      const m = /^ends in (\d) min (\d\d) s$/.exec((await flow.textContent()) ?? '')
      assert.ok(m !== null, `a countdown in minutes and seconds: ${await flow.textContent()}`)
      return Number(m[1]) * 60 + Number(m[2])
    }
    const first = await seconds()
    await waitFor('the countdown to tick', async () => ((await seconds()) < first ? true : undefined), 5_000)
    assert.equal(await page.getByRole('table', { name: 'hum' }).count(), 0, 'nobody holds hum yet')
    assert.ok(await page.getByText('nobody has access now').first().isVisible())

    const card = requestCard('calibration check')
    await card.waitFor()
    assert.match((await card.textContent()) ?? '', /For hum \(raw\), 30 min/)
    assert.equal(await card.getByLabel('Grant for').inputValue(), String(30 * 60_000), 'as asked, at first')
  })

  it('approves the request for a duration the owner chose: the grant the node issued ends then', async () => {
    const card = requestCard('calibration check')
    await card.getByLabel('Grant for').selectOption({ label: '8 hours' })
    await card.getByRole('button', { name: /^Approve the request of/ }).click()
    await page.locator('.access-said-ok', { hasText: /^Approved:/ }).waitFor()
    const approved = (await requestsOn(peers.owner)).find(r => r.id === humRequest)
    assert.equal(approved?.status, 'approved')
    const grant = (await grantsOn(peers.owner)).find(g => g.id === approved?.grant)
    assert.ok(grant !== undefined, 'the approval issued a grant')
    assert.deepEqual(grant.streams, ['hum'])
    assert.equal(grant.subject, dids.reader)
    assert.equal(
      Date.parse(grant.notAfter) - Date.parse(grant.notBefore),
      8 * HOUR,
      'eight hours, not the 30 min asked',
    )
    assert.equal(grant.status, 'active')
    // the screen fetched again after its own action: the new grant, and the decision below
    await page
      .getByRole('table', { name: 'hum' })
      .getByText(/^ends in 7 h 59 min$/)
      .waitFor()
    await page.getByRole('table', { name: 'Decided requests' }).getByText('Approved').waitFor()
    assert.equal(await requestCard('calibration check').count(), 0, 'no longer waiting')
  })

  it('shows a request filed meanwhile by itself, from the node’s pushed state', async () => {
    pressureRequest = await readerRequests(['pressure'], '2h', 'leak hunt')
    await requestCard('leak hunt').waitFor({ timeout: 30_000 })
    assert.equal(await page.locator('.access-tile-attention .access-tile-value').textContent(), '1')
    await page.screenshot({ path: join(people.shots, 'access.png'), fullPage: true })
  })

  it('Escape cancels a revocation: the dialog takes focus, says what will happen, and nothing is revoked', async () => {
    await revokeTempButton().click()
    const dialog = page.getByRole('dialog', { name: 'Revoke this grant?' })
    await dialog.waitFor()
    assert.match(
      (await dialog.textContent()) ?? '',
      /loses access to temp now\. What they already opened they may have kept/,
    )
    assert.equal(
      await inPage(page, `document.activeElement?.closest('dialog') !== null`),
      true,
      'focus is in the dialog',
    )
    assert.equal(await inPage(page, 'document.activeElement?.textContent'), 'Cancel', 'on the safe choice')
    await page.keyboard.press('Tab')
    assert.equal(await inPage(page, `document.activeElement?.closest('dialog') !== null`), true, 'Tab stays in it')
    await page.screenshot({ path: join(people.shots, 'access-revoke.png') })
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
    const opener = await revokeTempButton().getAttribute('aria-label')
    assert.equal(
      await settled(page, 'document.activeElement?.getAttribute("aria-label")', opener),
      opener,
      'focus is back on the button that opened it',
    )
    assert.equal((await grantsOn(peers.owner)).find(g => g.id === tempGrant)?.status, 'active', 'nothing was revoked')
  })

  it('revokes the grant through the confirmation dialog', async () => {
    await revokeTempButton().click()
    const dialog = page.getByRole('dialog', { name: 'Revoke this grant?' })
    await dialog.getByLabel(/^Reason/).fill('project over')
    await dialog.getByRole('button', { name: 'Revoke grant' }).click()
    await dialog.waitFor({ state: 'detached' })
    await page.locator('.access-said-ok', { hasText: /^Revoked grant/ }).waitFor()
    const revoked = (await grantsOn(peers.owner)).find(g => g.id === tempGrant)
    assert.equal(revoked?.status, 'revoked')
    await page.getByRole('table', { name: 'temp' }).getByText('Revoked', { exact: true }).waitFor()
    assert.equal(await revokeTempButton().count(), 0, 'a revoked grant offers no revoke')
  })

  it('denies a request only with a reason, which the reader sees in its own requests', async () => {
    const card = requestCard('leak hunt')
    await card.getByRole('button', { name: /^Deny the request of/ }).click()
    const dialog = page.getByRole('dialog', { name: 'Deny this request?' })
    await dialog.waitFor()
    const reason = dialog.getByLabel(/^Reason/)
    assert.equal(await inPage(page, 'document.activeElement?.tagName'), 'TEXTAREA', 'focus on the reason it needs')
    await dialog.getByRole('button', { name: 'Deny request' }).click()
    assert.equal(await reason.getAttribute('aria-invalid'), 'true', 'no reason, no denial')
    assert.equal((await requestsOn(peers.owner)).find(r => r.id === pressureRequest)?.status, 'pending')
    await reason.fill('pressure data is not part of the audit')
    await dialog.getByRole('button', { name: 'Deny request' }).click()
    await dialog.waitFor({ state: 'detached' })
    await page.getByRole('table', { name: 'Decided requests' }).getByText('Denied').waitFor()

    const seen = await waitFor('the reader to see the denial', async () => {
      const r = json(await peers.reader.cli(['requests', space, '--json'])).requests.find(
        (q: AccessRequestView) => q.id === pressureRequest,
      )
      return r?.status === 'denied' ? (r as AccessRequestView) : undefined
    })
    assert.equal(seen.decisionReason, 'pressure data is not part of the audit')
    const text = (await peers.reader.cli(['requests', space])).stdout
    assert.match(text, /denied .*-> pressure data is not part of the audit/)
    await page.screenshot({ path: join(people.shots, 'access-decided.png'), fullPage: true })
  })

  it('approves part of a request: only the streams left ticked are granted', async () => {
    const id = await readerRequests(['pressure', 'flow'], '1h', 'pump trial')
    const card = requestCard('pump trial')
    await card.waitFor({ timeout: 30_000 })
    await card.getByRole('checkbox', { name: 'flow' }).uncheck()
    await card.getByRole('button', { name: /^Approve the request of/ }).click()
    await page.locator('.access-said-ok', { hasText: /has access to pressure until/ }).waitFor()
    const approved = (await requestsOn(peers.owner)).find(r => r.id === id)
    const grant = (await grantsOn(peers.owner)).find(g => g.id === approved?.grant)
    assert.deepEqual(grant?.streams, ['pressure'], 'flow was left out')
  })

  it('gives every control an accessible name', async () => {
    await namedControls(page, 12)
  })

  it('tells a plain member what the screen is for and where to ask', async () => {
    const p = await people.signIn('reader', 'Access')
    await p.getByRole('heading', { name: 'You manage no space' }).waitFor()
    assert.match((await p.locator('main').textContent()) ?? '', /member of plant-7.*ask its owner from your Inbox/)
  })

  it('had no script error', () => {
    assert.deepEqual(errors, [])
  })
})

/** Evaluate an expression in the page (a string: this file is type-checked without the DOM's types). */
function inPage<T = unknown>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>
}
