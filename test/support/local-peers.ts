/**
 * A suite of real peer processes: a data directory `edgeward init` made (and a peer started on
 * it), a few named peers started together in a temp dir, the first one's addresses known to the
 * others, in a space the first one made and the others joined, if asked; or peers a suite
 * starts and stops one at a time; the JSON lines a command printed, and the end of the suite,
 * where every node stops, with exit code 0, and its files go.
 *
 * @example
 * describe('…', () => {
 *   const { peers, dids } = suiteLocalPeers('audit-cli', ['gateway', 'a'])
 *   it('…', async () => {
 *     await peers.a.cli(['read', …])
 *   })
 * })
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { type CliResult, type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import { waitFor } from './wait.ts'

type StartOptions = NonNullable<Parameters<typeof startPeer>[2]>

/** `edgeward init --json` on `dataDir`, which must succeed; the did of the principal it made. */
export async function initData(dataDir: string): Promise<string> {
  const r = await runCli(['init', '--data', dataDir, '--json'])
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout).did
}

/** `edgeward init` on `dataDir`, then `edgeward start` on it: the running peer and the did of its principal. */
export async function initAndStart(
  name: string,
  dataDir: string,
  opts?: Parameters<typeof startPeer>[2],
): Promise<{ peer: LocalPeer; did: string }> {
  const did = await initData(dataDir)
  return { peer: await startPeer(name, dataDir, opts), did }
}

/** The JSON value a command printed, which must have exited with 0. */
export function jsonOutput(r: CliResult): Record<string, any> {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** The JSON values of a command's output, one a line (`read`, `grants --json`, …); blank lines are skipped. */
export function jsonLines(stdout: string): any[] {
  return stdout
    .trim()
    .split('\n')
    .filter(l => l !== '')
    .map(l => JSON.parse(l))
}

/**
 * Stop every peer, then what `beforeRemove` stops (a broker the peers used), remove `root`, and
 * fail unless every peer exited with 0.
 */
export async function stopPeers(
  peers: LocalPeer[],
  root: string,
  beforeRemove: () => Promise<unknown> = async () => {},
): Promise<void> {
  const codes = await Promise.all(peers.map(p => p.stop()))
  await beforeRemove()
  await rm(root, { recursive: true, force: true })
  assert.deepEqual(
    codes,
    codes.map(() => 0),
    'every node shuts down cleanly',
  )
}

/** Peers a suite starts and stops one at a time, each in a folder of `root`. */
export interface RunningPeers {
  /** the suite's temp dir, made before the suite's own `before` hooks run */
  root: string
  /** `peer`, which the suite started: it is stopped after the suite's tests if it still runs */
  add<P extends LocalPeer>(peer: P): P
  /** stop `peer` now, which must exit with 0 */
  stop(peer: LocalPeer): Promise<void>
}

/**
 * A temp dir named after `prefix` for the peers the enclosing suite starts and stops itself;
 * after its tests, the ones still running stop as `stopPeers` says (with `beforeRemove`).
 */
export function suiteRunningPeers(prefix: string, beforeRemove?: () => Promise<unknown>): RunningPeers {
  const running = new Set<LocalPeer>()
  const suite: RunningPeers = {
    root: '',
    add: peer => {
      running.add(peer)
      return peer
    },
    stop: async peer => {
      running.delete(peer)
      assert.equal(await peer.stop(), 0, `${peer.name} stops cleanly: ${peer.stderr}`)
    },
  }
  before(async () => {
    suite.root = await mkdtemp(join(tmpdir(), `edgeward-${prefix}-`))
  })
  after(() => stopPeers([...running], suite.root, beforeRemove))
  return suite
}

/** Named peer processes in a temp dir of their own. */
export interface LocalPeers<N extends string> {
  /** the temp dir; each peer's data directory is the folder of its name */
  root: string
  peers: Record<N, LocalPeer>
  dids: Record<N, string>
  /** the id of the space asked for, else '' */
  space: string
}

export interface LocalPeersOptions<N extends string> {
  /** a space, by name, that the first peer creates with the CLI and every other joins; ready once all have it synchronised */
  space?: string
  /** the others start knowing the first one's addresses (default); false: they know nobody (an invitation carries them) */
  bootstrap?: boolean
  /** what every `startPeer` gets (a longer `timeoutMs`) */
  start?: StartOptions
  /** what one peer's `startPeer` gets besides (a gateway's command and arguments) */
  startOf?: Partial<Record<N, StartOptions>>
}

/** Peers none of which started yet, to fill. */
export function noLocalPeers<N extends string>(): LocalPeers<N> {
  return { root: '', peers: {} as Record<N, LocalPeer>, dids: {} as Record<N, string>, space: '' }
}

/**
 * `edgeward init` for each of `names` in a new temp dir named after `prefix`, `edgeward start`
 * for the first, then for the others together; then the space asked for. `local` is filled as
 * peers start, so that `stopLocalPeers` stops the ones that did when a later one fails.
 */
export async function startLocalPeersInto<N extends string>(
  local: LocalPeers<N>,
  prefix: string,
  names: readonly N[],
  opts: LocalPeersOptions<N>,
): Promise<void> {
  local.root = await mkdtemp(join(tmpdir(), `edgeward-${prefix}-`))
  for (const name of names) local.dids[name] = await initData(join(local.root, name))
  const [first, ...others] = names
  const { peers } = local
  peers[first] = await startPeer(first, join(local.root, first), { ...opts.start, ...opts.startOf?.[first] })
  const bootstrap = opts.bootstrap === false ? {} : { bootstrap: peers[first].info.addresses }
  const started = await Promise.allSettled(
    others.map(name =>
      startPeer(name, join(local.root, name), { ...opts.start, ...bootstrap, ...opts.startOf?.[name] }),
    ),
  )
  for (const r of started) if (r.status === 'fulfilled') peers[r.value.name as N] = r.value
  for (const r of started) if (r.status === 'rejected') throw r.reason

  if (opts.space === undefined) return
  const created = await peers[first].cli(['space', 'create', opts.space])
  assert.equal(created.code, 0, created.stderr)
  local.space = created.stdout.trim()
  for (const name of others) {
    const joined = await peers[name].cli(['space', 'join', local.space])
    assert.equal(joined.code, 0, joined.stderr)
    await waitFor(`${name} to receive the space`, async () => {
      const s = JSON.parse((await peers[name].cli(['status', '--json'])).stdout)
      return s.spaces.find((x: { id: string; synchronised: boolean }) => x.id === local.space)?.synchronised
        ? true
        : undefined
    })
  }
}

/** Start `names` as `startLocalPeersInto` says; if a step fails, stop what started and throw. */
export async function startLocalPeers<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: LocalPeersOptions<N> = {},
): Promise<LocalPeers<N>> {
  const local = noLocalPeers<N>()
  try {
    await startLocalPeersInto(local, prefix, names, opts)
  } catch (err) {
    await stopLocalPeers(local).catch(() => undefined)
    throw err
  }
  return local
}

/** Stop every peer that started (each must exit with 0) and remove the temp dir. */
export async function stopLocalPeers(local: LocalPeers<string>): Promise<void> {
  if (local.root === '') return
  await stopPeers(Object.values(local.peers), local.root)
}

/**
 * The peers of the enclosing suite, started before its own `before` hooks and stopped after its
 * tests: `peers` and `dids` are filled in place, so a suite may take them apart at once; `root`
 * and `space` are read once its hooks ran.
 */
export function suiteLocalPeers<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: LocalPeersOptions<N> = {},
): LocalPeers<N> {
  const local = noLocalPeers<N>()
  before(() => startLocalPeersInto(local, prefix, names, opts))
  after(() => stopLocalPeers(local))
  return local
}
