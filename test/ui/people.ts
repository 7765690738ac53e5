/**
 * The people of a browser test, each on a real `edgeward` process: their data directories
 * (`edgeward init`), their nodes started (the others knowing the first one's addresses, unless
 * told not to), a space the first one creates and the others join, synchronised, if asked; then
 * a signed-in browser page per person when a test wants one, through the one-time link, with
 * its script and console errors collected; and the end, where the browsers close, every node
 * stops cleanly and the temp dir goes.
 *
 * @example
 * const people = suitePeople('files', ['owner', 'reader'], { space: 'Design review' })
 * const { peers, errors } = people
 * it('…', async () => {
 *   const page = await people.signIn('owner', 'Files')
 *   await peers.reader.cli(['inbox', '--json'])
 *   …
 *   assert.deepEqual(errors, [])
 * })
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before } from 'node:test'
import type { Page } from 'playwright-core'
import {
  type LocalPeers,
  type LocalPeersOptions,
  noLocalPeers,
  startLocalPeersInto,
  stopLocalPeers,
} from '../support/local-peers.ts'
import { loginLink, openBrowser, screenshotDir } from './browser.ts'

/** A did:key as the client shows a person nobody named: `did:key:z6Mk…abcd` (written here, not taken from the client, so that a test checks it). */
export const shortDid = (did: string): string => `did:key:${did.slice(8, 12)}…${did.slice(-4)}`

export interface PeopleOptions<N extends string> extends LocalPeersOptions<N> {
  /** console errors every page may log and show in words itself (a refusal: `/status of 403/`) */
  allow?: RegExp
}

export interface SignInOptions {
  /** console errors this page may log, instead of the suite's `allow` */
  allow?: RegExp
  /** called with the page before it opens the link: to watch its requests from the first */
  watch?: (page: Page) => void
}

export interface People<N extends string> extends LocalPeers<N> {
  /** where screenshots go: docs/screenshots/ with UPDATE_SCREENSHOTS=1, else a folder of `root` */
  shots: string
  /** script and console errors of every page opened, as "name: message" */
  errors: string[]
  /**
   * A browser of its own for `name` (their cookies would otherwise share 127.0.0.1), signed in
   * through a one-time link; on `screen` (a link of the navigation, by its title) when given,
   * else on Your identity.
   */
  signIn: (name: N, screen?: string, opts?: SignInOptions) => Promise<Page>
  /** Close every browser, stop every node (each must exit with 0) and remove `root`. */
  stop: () => Promise<void>
}

/** People whose nodes have not started yet: `start` starts them, in a temp dir named after `prefix`. */
function unstarted<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: PeopleOptions<N>,
): People<N> & { start: () => Promise<void> } {
  const browsers: (() => Promise<void>)[] = []
  const people = Object.assign(noLocalPeers<N>(), {
    shots: '',
    errors: [] as string[],
    start: async () => {
      await startLocalPeersInto(people, `ui-${prefix}`, names, opts)
      people.shots = screenshotDir(join(people.root, 'screenshots'))
      await mkdir(people.shots, { recursive: true })
    },
    stop: async () => {
      for (const close of browsers.splice(0)) await close()
      await stopLocalPeers(people)
    },
    signIn: async (name: N, screen?: string, o: SignInOptions = {}): Promise<Page> => {
      const allow = o.allow ?? opts.allow
      const { context, close } = await openBrowser()
      browsers.push(close)
      const page = context.pages()[0] ?? (await context.newPage())
      page.on('pageerror', err => people.errors.push(`${name}: ${err.message}`))
      page.on('console', m => {
        if (m.type() === 'error' && !(allow?.test(m.text()) ?? false)) people.errors.push(`${name}: ${m.text()}`)
      })
      o.watch?.(page)
      await page.goto((await loginLink(people.peers[name].dataDir)).url)
      await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
      if (screen !== undefined) {
        await page.getByRole('link', { name: new RegExp(`^${screen}`) }).click()
        await page.getByRole('heading', { level: 1, name: screen }).waitFor()
      }
      return page
    },
  })
  return people
}

/** Start `names`, the first one first, in a temp dir named after `prefix`; if a step fails, stop what started. */
export async function startPeople<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: PeopleOptions<N> = {},
): Promise<People<N>> {
  const people = unstarted(prefix, names, opts)
  try {
    await people.start()
  } catch (err) {
    await people.stop().catch(() => undefined)
    throw err
  }
  return people
}

/**
 * The people of the enclosing suite, started before its own `before` hooks and stopped after
 * its tests; see the module's example. `peers`, `dids` and `errors` are filled in place, so a
 * suite may take them apart at once; `root`, `shots` and `space` are read once its hooks ran.
 */
export function suitePeople<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: PeopleOptions<N> = {},
): People<N> {
  const people = unstarted(prefix, names, opts)
  before(() => people.start())
  after(() => people.stop())
  return people
}
