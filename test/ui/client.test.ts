/**
 * The desktop client in a real browser (Debian's chromium, driven by playwright-core) against
 * a real `edgeward start` process, as a person uses it: the link `edgeward ui` prints opens
 * the app and leaves the address; the person sees their id, copies it (the clipboard holds
 * it), walks to Health from the keyboard and opens the details; a change on the node (a
 * space created from the CLI) reaches the open page by server-sent events without a reload;
 * a hidden window holds no event stream; every screen of the navigation opens from the
 * keyboard, built; every control of every screen has an accessible name; nothing is
 * fetched from anywhere but the node; a used link opens nothing. Screenshots go to
 * docs/screenshots/ for the README with UPDATE_SCREENSHOTS=1 (else to the test's own folder).
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { BrowserContext, Page } from 'playwright-core'
import { type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import { stopPeers } from '../support/local-peers.ts'
import { loginLink, namedControls, openBrowser, screenshotDir } from './browser.ts'

describe('desktop client in a browser', { timeout: 120_000 }, () => {
  let root = ''
  let shots = ''
  let peer: LocalPeer
  let context: BrowserContext
  let closeBrowser: () => Promise<void> = async () => {}
  let page: Page
  const errors: string[] = []
  const requests: string[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-ui-'))
    const dir = join(root, 'owner')
    const init = await runCli(['init', '--data', dir])
    assert.equal(init.code, 0, init.stderr)
    peer = await startPeer('owner', dir)
    shots = screenshotDir(join(root, 'screenshots'))
    await mkdir(shots, { recursive: true })
    ;({ context, close: closeBrowser } = await openBrowser())
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: peer.info.api })
    // counts the page's event streams, open and closed, to see what a hidden window keeps
    await context.addInitScript(`{
      const Native = window.EventSource
      window.eventSources = []
      window.EventSource = class extends Native {
        constructor(url, init) {
          super(url, init)
          window.eventSources.push(this)
        }
      }
    }`)
    page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', err => errors.push(err.message))
    page.on('console', m => {
      if (m.type() === 'error') errors.push(m.text())
    })
    page.on('request', r => requests.push(r.url()))
  })

  after(async () => {
    await closeBrowser()
    await stopPeers(peer === undefined ? [] : [peer], root)
  })

  it('opens from the one-time link on the identity screen, and the link leaves the address', async () => {
    const link = await loginLink(peer.dataDir)
    assert.match(link.url, /^http:\/\/127\.0\.0\.1:\d+\/#login=[\w-]{43}$/)
    await page.goto(link.url)
    await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
    assert.ok(!page.url().includes('login='), `the token left the address: ${page.url()}`)
    const cookies = await context.cookies(peer.info.api)
    assert.equal(cookies.length, 1)
    assert.equal(cookies[0].httpOnly, true)
    assert.equal(cookies[0].sameSite, 'Strict')
    assert.equal(await inPage(page, 'document.cookie'), '', 'the page itself cannot read the session cookie')
  })

  it('shows the person’s id and the device, and copies the id to the clipboard', async () => {
    const did = page.locator('#did')
    await did.waitFor()
    assert.equal(await did.textContent(), peer.info.did)
    assert.equal(await page.locator('#peer-id').textContent(), peer.info.peerId)
    assert.ok(await page.getByText('Development mode').isVisible(), 'keys stored unencrypted are said so')
    await page.getByRole('button', { name: 'Copy your id' }).click()
    await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor()
    assert.equal(await inPage(page, 'navigator.clipboard.readText()'), peer.info.did)
    await page.screenshot({ path: join(shots, 'identity.png') })
  })

  it('reaches Health from the keyboard and shows the indicator, with the details one click away', async () => {
    // from the top of a fresh page (the session cookie stays): the skip link first, then the screens
    await page.reload()
    await page.locator('#did').waitFor()
    await page.keyboard.press('Tab')
    assert.equal(await inPage(page, 'document.activeElement?.textContent'), 'Skip to content')
    let focused = ''
    for (let i = 0; i < 12 && !focused.startsWith('Health'); i++) {
      await page.keyboard.press('Tab')
      focused = (await inPage<string | undefined>(page, 'document.activeElement?.textContent')) ?? ''
    }
    assert.match(focused, /^Health/, 'the Health link is reachable with Tab')
    await page.keyboard.press('Enter')
    const heading = page.getByRole('heading', { level: 1, name: 'Health' })
    await heading.waitFor()
    // the screen moves focus to its heading once it has rendered: wait for it, with a deadline
    const focusedHeading = `document.activeElement?.tagName + ' ' + document.activeElement?.textContent`
    await page
      .waitForFunction(
        () => {
          const active = (globalThis as any).document.activeElement
          return `${active?.tagName} ${active?.textContent}` === 'H1 Health'
        },
        undefined,
        { timeout: 10_000 },
      )
      .catch(() => undefined)
    assert.equal(await inPage(page, focusedHeading), 'H1 Health', 'the new screen’s heading has focus')

    const verdict = page.locator('#verdict')
    assert.equal(await verdict.textContent(), 'Fine')
    assert.equal(await page.locator('#health-details').count(), 0, 'details closed at first')
    const toggle = page.getByRole('button', { name: 'Show details' })
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false')
    await toggle.click()
    const details = page.locator('#health-details')
    await details.waitFor()
    for (const title of ['Peers', 'Spaces', 'Key holders', 'Audit logs agree', 'Audit logs checked', 'Refused changes'])
      assert.equal(await details.getByRole('heading', { level: 3, name: title }).count(), 1, title)
    assert.equal(await page.getByRole('button', { name: 'Hide details' }).getAttribute('aria-expanded'), 'true')
    await page.screenshot({ path: join(shots, 'health.png'), fullPage: true })
  })

  it('updates by server-sent events when the node’s state changes, without a reload', async () => {
    await inPage(page, 'window.notReloaded = true')
    const created = await peer.cli(['space', 'create', 'plant-7'])
    assert.equal(created.code, 0, created.stderr)
    // a space and no peer: the node needs attention, and the open page says so by itself
    await page.locator('#verdict', { hasText: 'Needs attention' }).waitFor({ timeout: 10_000 })
    assert.match((await page.locator('.indicator-summary').textContent()) ?? '', /^No peer connected/)
    await page.getByText('plant-7: policy here').waitFor({ state: 'visible', timeout: 10_000 })
    assert.equal(await inPage(page, 'window.notReloaded'), true)
    assert.equal(await page.locator('.dot-attention').count(), 1, 'the navigation shows it too')
    await page.screenshot({ path: join(shots, 'health-attention.png'), fullPage: true })
  })

  it('keeps no event stream while the window is hidden, and opens one again when shown', async () => {
    const states = () => inPage<number[]>(page, 'window.eventSources.map(e => e.readyState)')
    const setVisibility = (state: 'hidden' | 'visible') =>
      inPage(
        page,
        `Object.defineProperty(document, 'visibilityState', { value: '${state}', configurable: true });
         document.dispatchEvent(new Event('visibilitychange'))`,
      )
    assert.equal((await states()).filter(s => s !== EventSourceClosed).length, 1, 'one stream while visible')
    await setVisibility('hidden')
    // a function, not a string: the client's CSP (no unsafe-eval) refuses a string to evaluate
    await page.waitForFunction(() => (globalThis as any).eventSources.every((e: any) => e.readyState === 2))
    await setVisibility('visible')
    await page.waitForFunction(() => (globalThis as any).eventSources.some((e: any) => e.readyState === 1))
    assert.equal((await states()).filter(s => s !== EventSourceClosed).length, 1, 'one stream again')
  })

  it('opens every screen of the navigation from the keyboard, each with its heading and built', async () => {
    for (const title of SCREEN_TITLES) {
      // from the top of a fresh page: the skip link, then the navigation's links in order
      await page.reload()
      await page.locator('main h1').waitFor()
      let focused = ''
      for (let i = 0; i < 12 && !focused.startsWith(title); i++) {
        await page.keyboard.press('Tab')
        focused = (await inPage<string>(page, `document.activeElement?.closest('nav a')?.textContent ?? ''`)) ?? ''
      }
      assert.ok(focused.startsWith(title), `the ${title} link is reachable with Tab`)
      await page.keyboard.press('Enter')
      await page.getByRole('heading', { level: 1, name: title }).waitFor()
      assert.equal(await page.getByText('Not built yet').count(), 0, `${title}: built`)
    }
  })

  it('gives every control an accessible name, on every screen', async () => {
    for (const screen of ['identity', 'health', 'inbox', 'spaces', 'files', 'messages', 'streams', 'access', 'audit']) {
      await inPage(page, `location.hash = '#/${screen}'`)
      await page.locator(`a[href="#/${screen}"][aria-current="page"]`).waitFor()
      if (screen === 'health' && (await page.getByRole('button', { name: 'Show details' }).count()) === 1)
        await page.getByRole('button', { name: 'Show details' }).click()
      await namedControls(page, 10, screen)
    }
  })

  it('asked nothing of anyone but the node, with no script error', async () => {
    const own = new URL(peer.info.api).origin
    assert.deepEqual(
      requests.filter(u => new URL(u).origin !== own),
      [],
      'every request went to the node',
    )
    assert.deepEqual(errors, [], 'no script or console errors')
  })

  it('opens nothing from a link used already, and says how to get a new one', async () => {
    const link = await loginLink(peer.dataDir)
    const other = await openBrowser()
    try {
      const first = other.context.pages()[0] ?? (await other.context.newPage())
      await first.goto(link.url)
      await first.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
      const second = await openBrowser()
      try {
        const p = second.context.pages()[0] ?? (await second.context.newPage())
        await p.goto(link.url)
        await p.getByRole('heading', { name: 'Open edgeward from your node' }).waitFor()
        assert.match((await p.getByRole('alert').textContent()) ?? '', /used already, or it expired/)
        await p.screenshot({ path: join(shots, 'sign-in.png') })
      } finally {
        await second.close()
      }
    } finally {
      await other.close()
    }
  })
})

const EventSourceClosed = 2

/** The navigation's screens, in its order (node/client/routes.ts). */
const SCREEN_TITLES = ['Inbox', 'Spaces', 'Files', 'Messages', 'Streams', 'Access', 'Audit', 'Health', 'Your identity']

/** Evaluate an expression in the page (a string: this file is type-checked without the DOM's types). */
function inPage<T = unknown>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>
}
