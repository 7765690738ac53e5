/**
 * What the client benchmark measures inside the page, on the page's own clocks: each function
 * runs in the browser (passed to `page.evaluate`, a function and not a string: the client's
 * CSP allows no eval) and answers numbers; this file is type-checked without the DOM's types,
 * hence `globalThis as any`. The page's `Date.now()` and the benchmark's read the same clock
 * of the same machine, so a time taken in the page compares with one taken here.
 */
import type { BrowserContext, Page } from 'playwright-core'

/**
 * Installed before any of the page's scripts: the time (performance.now(), from the
 * navigation's start) of the first frame that draws a heading inside `main`, as
 * `window.firstHeading` (a promise); and every event stream of a view the page opens, as
 * `window.viewStreams`, so that a revoke starts only once the open view listens for it, with
 * the time the node stamped on the last view's close (its clock when it dropped the key) as
 * `window.viewClosedByNode`.
 */
export const PAGE_PROBES = `{
  const Native = window.EventSource
  window.viewStreams = []
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init)
      if (!String(url).includes('/v1/views/')) return
      window.viewStreams.push(this)
      this.addEventListener('closed', e => {
        window.viewClosedByNode = JSON.parse(e.data).at
      })
    }
  }
  window.firstHeading = new Promise(resolve => {
    const seen = () => document.querySelector('main h1') !== null
    const done = () => requestAnimationFrame(() => resolve(performance.now()))
    if (seen()) return done()
    const o = new MutationObserver(() => {
      if (!seen()) return
      o.disconnect()
      done()
    })
    o.observe(document, { childList: true, subtree: true })
  })
}`

export async function withProbes(context: BrowserContext): Promise<void> {
  await context.addInitScript(PAGE_PROBES)
}

/** ms from the navigation's start to the first frame with the shell's heading. */
export function firstHeadingMs(page: Page): Promise<number> {
  return page.evaluate(() => (globalThis as any).firstHeading as Promise<number>)
}

/** Whether the last view the page opened has its event stream open (it hears a close at once). */
export function isViewListening(page: Page): Promise<boolean> {
  return page.evaluate(() => {
    const s = (globalThis as any).viewStreams as { readyState: number }[]
    return s.length > 0 && s[s.length - 1].readyState === 1
  })
}

/**
 * Watch for the viewer's "closed" notice from now on; `viewClosedAt` answers the page's
 * `Date.now()` when it entered the DOM.
 */
export async function watchViewClose(page: Page): Promise<void> {
  await page.evaluate(() => {
    const g = globalThis as any
    g.viewClosed = new Promise<number>(resolve => {
      const o = new g.MutationObserver(() => {
        if (g.document.querySelector('[data-testid="viewer-closed"]') === null) return
        const at = Date.now()
        o.disconnect()
        resolve(at)
      })
      o.observe(g.document.body, { childList: true, subtree: true })
    })
  })
}

/** When the page showed the view closed, and when the node says it closed it (both `Date.now()`). */
export function viewClosedAt(page: Page, timeoutMs: number): Promise<{ page: number; node: number }> {
  return page.evaluate(async ms => {
    const g = globalThis as any
    const shown = await Promise.race([
      g.viewClosed as Promise<number>,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`no close within ${ms} ms`)), ms)),
    ])
    return { page: shown, node: g.viewClosedByNode as number }
  }, timeoutMs)
}

/**
 * From the client on another screen: go to the Inbox and answer the ms until the first frame
 * that shows `total` items listed (the fetch of /v1/inbox, its parse, the filter and the rows
 * in view).
 */
export function openInboxMs(page: Page, total: number): Promise<number> {
  return page.evaluate(async n => {
    const g = globalThis as any
    const doc = g.document
    const ready = () =>
      doc.querySelector('.inbox-row') !== null &&
      (doc.querySelector('[data-testid="inbox-count"]')?.textContent ?? '').includes(`${n} of ${n} items`)
    const t0 = performance.now()
    const shown = new Promise<void>(resolve => {
      const o = new g.MutationObserver(() => {
        if (!ready()) return
        o.disconnect()
        resolve()
      })
      o.observe(doc.body, { childList: true, subtree: true, characterData: true })
    })
    g.location.hash = '#/inbox'
    await shown
    await new Promise(r => g.requestAnimationFrame(r))
    return performance.now() - t0
  }, total)
}

/**
 * Type `query` into the Inbox's filter (one input event, as the last keystroke or a paste
 * gives) and answer the ms until the first frame after the shown count changed; the count
 * must change (the benchmark alternates between a query and none).
 */
export function filterInboxMs(page: Page, query: string): Promise<number> {
  return page.evaluate(async q => {
    const g = globalThis as any
    const doc = g.document
    const input = doc.querySelector('input.inbox-filter')
    const count = doc.querySelector('[data-testid="inbox-count"]')
    const before = count.textContent
    const changed = new Promise<void>(resolve => {
      const o = new g.MutationObserver(() => {
        if (count.textContent === before) return
        o.disconnect()
        resolve()
      })
      o.observe(count, { childList: true, subtree: true, characterData: true })
    })
    const t0 = performance.now()
    input.value = q
    input.dispatchEvent(new g.Event('input', { bubbles: true }))
    await changed
    await new Promise(r => g.requestAnimationFrame(r))
    return performance.now() - t0
  }, query)
}
