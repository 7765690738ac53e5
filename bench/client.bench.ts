/**
 * The desktop client in a real browser (Debian's headless chromium), each person on a real
 * `edgeward start` process: an owner and a reader on 127.0.0.1.
 * - Revoke → view closes: the reader has a view-only file open in the in-app viewer; the
 *   owner revokes its grant through the owner's local API. From the revoke call's start, the
 *   time until the reader's node drops the key (the time it stamps on the view's close event;
 *   its /v1/inbox, polled, as a check), and until the reader's page shows the viewer closed
 *   (seen in the page by a MutationObserver, on the same machine clock). A fresh share each round.
 * - First load: bytes of HTML, JS and CSS and the time from navigation start to the first frame
 *   with the shell's heading, cold (a new browser profile, opened from a login link) and warm
 *   (the same tab reloaded, with its session), against a static page of the same size served
 *   by node:http on 127.0.0.1, in the same browsers.
 * - A large Inbox: opening the screen and filtering it with 10 000 items shared with the
 *   reader (real grants of the owner's, 64 stream prefixes each), against 100 items.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import type { ApiClient } from '../node/cli/client.ts'
import { type LocalPeer, startPeer } from '../node/cli/local-network.ts'
import type { LoginLink } from '../node/ui/contract.ts'
import type { Inbox } from '../node/ui/contract-inbox.ts'
import { initData, stopPeers } from '../test/support/local-peers.ts'
import { waitFor } from '../test/support/wait.ts'
import { openBrowser } from '../test/ui/browser.ts'
import {
  filterInboxMs,
  firstHeadingMs,
  isViewListening,
  openInboxMs,
  viewClosedAt,
  watchViewClose,
  withProbes,
} from './client-page.ts'
import { type Figure, figure, percentile, round, type Suite, summarize, versus } from './harness.ts'

const HOUR = 3_600_000
/** how often the reader's inbox is asked while a revocation travels */
const POLL_MS = 5
const WAIT_MS = 30_000

/** A one-time login link for the client of `peer`, from its API with the bearer token (no CLI start). */
async function loginUrl(api: ApiClient): Promise<string> {
  return (await api.call<LoginLink>('POST', '/ui/links')).url
}

async function inboxOf(api: ApiClient): Promise<Inbox> {
  return api.call<Inbox>('GET', '/v1/inbox')
}

const kib = (bytes: number) => round(bytes / 1024, 1)

interface People {
  owner: LocalPeer
  reader: LocalPeer
  ownerApi: ApiClient
  readerApi: ApiClient
  readerDid: string
  space: string
}

/** Revoke → the reader's node knows → the reader's open view closes, `rounds` times. */
async function revokeToClose(p: People, page: Page, rounds: number): Promise<Figure[]> {
  const dropped: number[] = []
  const listed: number[] = []
  const close: number[] = []
  const overhead: number[] = []
  const call: number[] = []
  for (let i = 0; i < rounds; i++) {
    const name = `note-${i}.txt`
    const shared = await p.ownerApi.upload<{ object: string; grant: string }>(
      `/v1/spaces/${p.space}/objects?to=${encodeURIComponent(p.readerDid)}&for=${HOUR}&download=false&name=${name}`,
      (async function* () {
        yield new TextEncoder().encode(`Round ${i}: ${randomBytes(16).toString('hex')}\n`)
      })(),
    )
    const itemState = async () => (await inboxOf(p.readerApi)).items.find(x => x.resource === shared.object)?.state
    await waitFor('the share to reach the reader', async () => ((await itemState()) === 'active' ? true : undefined))
    // the page's list refreshes when the node's inbox changes: wait until it shows this share, the only active file
    const files = page.locator('.inbox-row[data-kind="file"]')
    const active = files.and(page.locator('[data-state="active"]'))
    await waitFor('the page to list the share', async () =>
      (await files.count()) === i + 1 && (await active.count()) === 1 ? true : undefined,
    )
    await active.getByRole('button', { name: /^Open / }).click()
    await page.locator('.viewer-text').waitFor({ timeout: WAIT_MS })
    await waitFor('the view to listen for its close', async () => ((await isViewListening(page)) ? true : undefined))
    await watchViewClose(page)

    const started = Date.now()
    let answered = 0
    const revoked = p.ownerApi
      .call('POST', `/v1/spaces/${p.space}/revocations`, { grant: shared.grant, reason: 'superseded' })
      .then(() => (answered = Date.now()))
    const inInbox = await waitFor(
      'the revocation to reach the reader',
      async () => ((await itemState()) === 'revoked' ? Date.now() : undefined),
      WAIT_MS,
      POLL_MS,
    )
    const closed = await viewClosedAt(page, WAIT_MS)
    await revoked
    dropped.push(closed.node - started)
    listed.push(inInbox - started)
    close.push(closed.page - started)
    overhead.push(closed.page - closed.node)
    call.push(answered - started)
    await page.getByRole('button', { name: 'Close' }).click()
    await page.locator('dialog.viewer').waitFor({ state: 'detached', timeout: WAIT_MS })
  }
  const spread = (s: number[]) => `p50 ${summarize(s).median} ms, p99 ${percentile(s, 99)} ms`
  const how = `${rounds} revokes through the owner's API, each of a fresh view-only text file open in the reader's viewer; times from the revoke call's start, on one machine clock`
  const a = figure("revoke → the reader's node drops the key and closes the view (its own time stamp)", 'ms', dropped, {
    note: `${how}; the reader node's clock as it sends the view's close event; ${spread(dropped)}; its /v1/inbox, asked every ${POLL_MS} ms, says revoked at ${spread(listed)}; the revoke call answers at ${spread(call)}`,
  })
  const c = versus(
    "revoke → the reader's open view shows it closed",
    'ms',
    close,
    "the reader's node dropping the key",
    dropped,
  )
  c.note = `${how}; closed when the "access revoked" notice entered the page's DOM; ${spread(close)}; what the page adds (close event to notice shown) per revoke: ${spread(overhead)}`
  return [a, c]
}

/** A static page of `bytes` bytes with one heading in `main`, padded with a comment. */
function staticPage(bytes: number): string {
  const head =
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>bare</title></head>\n<body><main><h1>Bare page</h1></main>\n<!-- '
  const tail = ' -->\n</body></html>\n'
  return head + 'x'.repeat(Math.max(0, bytes - head.length - tail.length)) + tail
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Bytes (headers and body) of the HTML, JS and CSS responses a page has finished so far. */
function countBytes(page: Page): { total: () => Promise<number>; files: () => string[] } {
  const done: Promise<{ url: string; bytes: number }>[] = []
  page.on('requestfinished', r => {
    if (!['document', 'script', 'stylesheet'].includes(r.resourceType())) return
    done.push(r.sizes().then(s => ({ url: r.url(), bytes: s.responseHeadersSize + s.responseBodySize })))
  })
  let seen: { url: string; bytes: number }[] = []
  return {
    total: async () => {
      seen = await Promise.all(done)
      return seen.reduce((n, f) => n + f.bytes, 0)
    },
    files: () => seen.map(f => `${new URL(f.url).pathname.replace(/^\/$/, 'the HTML page')} ${kib(f.bytes)} KiB`),
  }
}

/** The client's first load, cold and warm, against a static page of the same size from node:http. */
async function firstLoad(p: People, rounds: number): Promise<Figure[]> {
  // the node builds its bundle on the first request: not part of any load measured here
  await fetch(`${p.reader.info.api}/ui/app.js`)
  const cold: number[] = []
  const warm: number[] = []
  const bytes: number[] = []
  const warmBytes: number[] = []
  const bareCold: number[] = []
  const bareWarm: number[] = []
  let files: string[] = []
  let page = ''
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    res.end(page)
  })
  const bare = await listen(server)
  try {
    for (let i = 0; i < rounds; i++) {
      // the client: a new browser profile opened from a login link, then the same tab reloaded (its session)
      {
        const b = await openBrowser()
        try {
          await withProbes(b.context)
          const first = b.context.pages()[0] ?? (await b.context.newPage())
          const counted = countBytes(first)
          await first.goto(await loginUrl(p.readerApi))
          cold.push(await firstHeadingMs(first))
          bytes.push(await counted.total())
          files = counted.files()
          const counted2 = countBytes(first)
          await first.reload()
          warm.push(await firstHeadingMs(first))
          warmBytes.push(await counted2.total())
        } finally {
          await b.close()
        }
      }
      page = staticPage(bytes[0])
      // the baseline: the same, for a static page of as many bytes
      {
        const b = await openBrowser()
        try {
          await withProbes(b.context)
          const first = b.context.pages()[0] ?? (await b.context.newPage())
          await first.goto(bare)
          bareCold.push(await firstHeadingMs(first))
          await first.reload()
          bareWarm.push(await firstHeadingMs(first))
        } finally {
          await b.close()
        }
      }
    }
  } finally {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  }
  const baseName = 'a static page of as many bytes, one heading, from node:http on 127.0.0.1'
  const b = figure('client first load: HTML + JS + CSS transferred (headers and bodies)', 'KiB', bytes.map(kib), {
    note: `${files.join(', ')}; chunks loaded later (the PDF viewer) and the API's own calls not counted; a second load transfers ${kib(warmBytes[0])} KiB again (the node sends everything no-store)`,
  })
  const c = versus(
    'client first load, cold (new browser profile, login link): navigation start → first frame with the heading',
    'ms',
    cold,
    `${baseName}, cold`,
    bareCold,
  )
  c.note = `${rounds} rounds, each in a chromium just started with an empty profile; the client's time includes redeeming the login link`
  const w = versus(
    'client load, warm (the same tab reloaded, session cookie): navigation start → first frame with the heading',
    'ms',
    warm,
    `${baseName}, warm`,
    bareWarm,
  )
  w.note = `${rounds} rounds, the tab of the cold load reloaded; the client's time includes checking its session`
  return [b, c, w]
}

/** Grant the reader stream prefixes until its inbox lists `total` items; 64 prefixes per grant. */
async function fillInbox(p: People, total: number, next: { i: number }): Promise<number> {
  const have = (await inboxOf(p.readerApi)).items.length
  const wanted: string[] = []
  for (let n = have; n < total; n++) wanted.push(`meter-${next.i++}.*`)
  const grants: Promise<unknown>[] = []
  for (let k = 0; k < wanted.length; k += 64) {
    grants.push(
      p.ownerApi.call('POST', `/v1/spaces/${p.space}/grants`, {
        to: p.readerDid,
        streams: wanted.slice(k, k + 64),
        until: Date.now() + 24 * HOUR,
      }),
    )
    // a few at once: the owner signs and writes each in turn anyway
    if (grants.length >= 8) await Promise.all(grants.splice(0))
  }
  await Promise.all(grants)
  await waitFor(
    `the reader's inbox to list ${total} items`,
    async () => ((await inboxOf(p.readerApi)).items.length >= total ? true : undefined),
    120_000,
    200,
  )
  return Math.ceil(wanted.length / 64)
}

/** Open the Inbox `rounds` times and filter it `rounds` times; the page is on the Inbox afterwards. */
async function inboxTimes(page: Page, total: number, rounds: number): Promise<{ open: number[]; filter: number[] }> {
  const open: number[] = []
  const filter: number[] = []
  for (let i = 0; i < rounds; i++) {
    await page.evaluate(() => {
      ;(globalThis as any).location.hash = '#/identity'
    })
    await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
    open.push(await openInboxMs(page, total))
  }
  for (let i = 0; i < rounds; i++) {
    filter.push(await filterInboxMs(page, 'meter-7'))
    await filterInboxMs(page, '')
  }
  return { open, filter }
}

async function largeInbox(p: People, page: Page, quick: boolean): Promise<Figure[]> {
  const small = quick ? 20 : 100
  const large = quick ? 500 : 10_000
  const rounds = quick ? 1 : 9
  const next = { i: 0 }
  await fillInbox(p, small, next)
  const base = await inboxTimes(page, small, rounds)
  const t0 = performance.now()
  const grants = await fillInbox(p, large, next)
  const fillMs = performance.now() - t0
  const big = await inboxTimes(page, large, rounds)
  let listMs = performance.now()
  await inboxOf(p.readerApi)
  listMs = performance.now() - listMs
  const n = (x: number) => x.toLocaleString('en')
  const made = `items are real grants of the owner's to the reader, 64 stream prefixes each (${grants} grants made in ${round(fillMs / 1000, 1)} s, synchronised to the reader), plus what the revokes above left`
  const o = versus(
    `Inbox of ${n(large)} items: open the screen until the first frame shows them all listed`,
    'ms',
    big.open,
    `${n(small)} items`,
    base.open,
  )
  o.note = `${rounds} rounds from another screen, including the reader node's answer to /v1/inbox (alone ${round(listMs, 1)} ms at ${n(large)}); ${made}`
  const f = versus(
    `Inbox of ${n(large)} items: filter it (one input event) until the shown count changes, next frame`,
    'ms',
    big.filter,
    `${n(small)} items`,
    base.filter,
  )
  f.note = `${rounds} rounds; the filter "meter-7" leaves about one item in nine; rows are drawn only in view`
  return [o, f]
}

const client: Suite = async ({ quick }) => {
  const root = await mkdtemp(join(tmpdir(), 'edgeward-bench-client-'))
  const peers: LocalPeer[] = []
  try {
    await initData(join(root, 'owner'))
    const readerDid = await initData(join(root, 'reader'))
    const owner = await startPeer('owner', join(root, 'owner'))
    peers.push(owner)
    const reader = await startPeer('reader', join(root, 'reader'), { bootstrap: owner.info.addresses })
    peers.push(reader)
    const ownerApi = await owner.api()
    const readerApi = await reader.api()
    const { space } = await ownerApi.call<{ space: string }>('POST', '/v1/spaces', { name: 'Plant 7' })
    await readerApi.call('POST', `/v1/spaces/${space}/join`)
    await waitFor('the reader to synchronise', async () => {
      const s = await readerApi.call<{ spaces: { id: string; synchronised: boolean }[] }>('GET', '/v1/status')
      return s.spaces.find(x => x.id === space)?.synchronised ? true : undefined
    })
    const p: People = { owner, reader, ownerApi, readerApi, readerDid, space }

    const load = await firstLoad(p, quick ? 1 : 7)

    const b = await openBrowser()
    try {
      await withProbes(b.context)
      const page = b.context.pages()[0] ?? (await b.context.newPage())
      await page.goto(await loginUrl(readerApi))
      await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
      await page.evaluate(() => {
        ;(globalThis as any).location.hash = '#/inbox'
      })
      await page.getByRole('heading', { level: 1, name: 'Inbox' }).waitFor()
      const revoke = await revokeToClose(p, page, quick ? 2 : 15)
      const inbox = await largeInbox(p, page, quick)
      return [...revoke, ...load, ...inbox]
    } finally {
      await b.close()
    }
  } finally {
    await stopPeers(peers, root)
  }
}

export default client
