/**
 * The people of a browser test, each on a real `edgeward` process: their data directories
 * (`edgeward init`), their nodes started (the others knowing the first one's addresses, unless
 * told not to), a space the first one creates and the others join, synchronised, if asked; then
 * a signed-in browser page per person when a test wants one, through the one-time link, with
 * its script and console errors collected; and the end, where the browsers close, every node
 * stops cleanly and the temp dir goes.
 *
 * @example
 * let people: People<'owner' | 'reader'>
 * before(async () => {
 *   people = await startPeople('files', ['owner', 'reader'], { space: 'Design review' })
 * })
 * after(() => people?.stop())
 * it('…', async () => {
 *   const page = await people.signIn('owner', 'Files')
 *   …
 *   assert.deepEqual(people.errors, [])
 * })
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { initData, stopPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'
import { loginLink, openBrowser, screenshotDir } from './browser.ts'

type StartOptions = NonNullable<Parameters<typeof startPeer>[2]>

/** A did:key as the client shows a person nobody named: `did:key:z6Mk…abcd` (written here, not taken from the client, so that a test checks it). */
export const shortDid = (did: string): string => `did:key:${did.slice(8, 12)}…${did.slice(-4)}`

export interface PeopleOptions<N extends string> {
  /** a space, by name, that the first person creates with the CLI and every other joins; ready once all have it synchronised */
  space?: string
  /** the others start knowing the first one's addresses (default); false: they know nobody (an invitation carries them) */
  bootstrap?: boolean
  /** what every `startPeer` gets (a longer `timeoutMs`) */
  start?: StartOptions
  /** what one person's `startPeer` gets besides (a gateway's command and arguments) */
  startOf?: Partial<Record<N, StartOptions>>
  /** console errors every page may log and show in words itself (a refusal: `/status of 403/`) */
  allow?: RegExp
}

export interface SignInOptions {
  /** console errors this page may log, instead of the suite's `allow` */
  allow?: RegExp
  /** called with the page before it opens the link: to watch its requests from the first */
  watch?: (page: Page) => void
}

export interface People<N extends string> {
  root: string
  /** where screenshots go: docs/screenshots/ with UPDATE_SCREENSHOTS=1, else a folder of `root` */
  shots: string
  peers: Record<N, LocalPeer>
  dids: Record<N, string>
  /** the id of the space asked for, else '' */
  space: string
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

/** Start `names`, the first one first, in a temp dir named after `prefix`; see the module's example. */
export async function startPeople<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: PeopleOptions<N> = {},
): Promise<People<N>> {
  const root = await mkdtemp(join(tmpdir(), `edgeward-ui-${prefix}-`))
  const peers = {} as Record<N, LocalPeer>
  const dids = {} as Record<N, string>
  const browsers: (() => Promise<void>)[] = []
  const errors: string[] = []
  const stop = async () => {
    for (const close of browsers.splice(0)) await close()
    await stopPeers(
      names.map(n => peers[n]).filter(p => p !== undefined),
      root,
    )
  }

  const signIn = async (name: N, screen?: string, o: SignInOptions = {}): Promise<Page> => {
    const allow = o.allow ?? opts.allow
    const { context, close } = await openBrowser()
    browsers.push(close)
    const page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', err => errors.push(`${name}: ${err.message}`))
    page.on('console', m => {
      if (m.type() === 'error' && !(allow?.test(m.text()) ?? false)) errors.push(`${name}: ${m.text()}`)
    })
    o.watch?.(page)
    await page.goto((await loginLink(peers[name].dataDir)).url)
    await page.getByRole('heading', { level: 1, name: 'Your identity' }).waitFor()
    if (screen !== undefined) {
      await page.getByRole('link', { name: new RegExp(`^${screen}`) }).click()
      await page.getByRole('heading', { level: 1, name: screen }).waitFor()
    }
    return page
  }

  try {
    for (const name of names) dids[name] = await initData(join(root, name))
    const [first, ...others] = names
    peers[first] = await startPeer(first, join(root, first), { ...opts.start, ...opts.startOf?.[first] })
    const bootstrap = opts.bootstrap === false ? {} : { bootstrap: peers[first].info.addresses }
    for (const name of others)
      peers[name] = await startPeer(name, join(root, name), { ...opts.start, ...bootstrap, ...opts.startOf?.[name] })

    let space = ''
    if (opts.space !== undefined) {
      const created = await peers[first].cli(['space', 'create', opts.space])
      assert.equal(created.code, 0, created.stderr)
      space = created.stdout.trim()
      for (const name of others) {
        const joined = await peers[name].cli(['space', 'join', space])
        assert.equal(joined.code, 0, joined.stderr)
        await waitFor(`${name} to receive the space`, async () => {
          const s = JSON.parse((await peers[name].cli(['status', '--json'])).stdout)
          return s.spaces.find((x: { id: string; synchronised: boolean }) => x.id === space)?.synchronised
            ? true
            : undefined
        })
      }
    }

    const shots = screenshotDir(join(root, 'screenshots'))
    await mkdir(shots, { recursive: true })
    return { root, shots, peers, dids, space, errors, signIn, stop }
  } catch (err) {
    await stop().catch(() => undefined)
    throw err
  }
}
