/**
 * Bad input to the CLI, as a user meets it with real `edgeward` processes: one line on stderr
 * and the right exit code (0 ok, 1 error, 2 bad usage), never node's own text; a command that
 * reports an error has written nothing; a closed pipe ends a command quietly; a bootstrap
 * peer that cannot be dialled is named in one line when the node starts. One node owns a
 * space with a stream of readings; a plain MQTT broker (aedes) gives an ingestion something
 * to take from.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BIN, type CliResult, LOOPBACK_FLAGS, type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { createIdentity } from '../../node/identity.ts'
import { freePort } from '../mqtt/brokers.ts'
import { stopPeers } from '../support/local-peers.ts'
import { runToExit, startEdgeward } from '../support/run-script.ts'
import { waitFor } from '../support/wait.ts'

type Json = Record<string, any>

/** stderr is exactly one line of ours, and stdout is empty */
function assertOneLine(r: CliResult, code: number, pattern?: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter(l => l !== '')
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0], /^edgeward: error: /)
  if (pattern !== undefined) assert.match(lines[0], pattern)
  assert.equal(r.stdout, '')
}

describe('bad input to the CLI: one line, the right exit code, nothing written', { timeout: 120_000 }, () => {
  let root: string
  let gateway: LocalPeer
  let space: string
  let did: string
  let otherPeer: string
  let broker: { url: string; server: Server; close: () => Promise<void> }
  const peers: LocalPeer[] = []
  const cli = (args: string[]) => gateway.cli(args)
  const grantIds = async (): Promise<string[]> =>
    (await (await gateway.api()).call<Json>('GET', `/v1/spaces/${space}/grants`)).grants.map((g: Json) => g.id)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-cli-input-'))
    did = (await createIdentity(join(root, 'gateway'), { now: Date.now() })).principal.did
    otherPeer = (await createIdentity(join(root, 'other'), { now: Date.now() })).peerId
    gateway = await startPeer('gateway', join(root, 'gateway'), { timeoutMs: 60_000 })
    peers.push(gateway)
    const { Aedes } = await import('aedes')
    const aedes = await Aedes.createBroker()
    const server = createServer(aedes.handle)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    broker = {
      url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
      server,
      close: async () => {
        await new Promise<void>(resolve => aedes.close(() => resolve()))
        await new Promise(resolve => server.close(resolve))
      },
    }
    const api = await gateway.api()
    space = (await api.call<Json>('POST', '/v1/spaces', { name: 'plant-7' })).space
    const t = 1_764_000_000_000
    const ndjson = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ ts: t + i, value: i })).join('\n')
    await api.call('POST', `/v1/spaces/${space}/streams/temp/readings`, ndjson)
  })

  after(() => stopPeers(peers, root, async () => broker?.close()))

  it('grant --data-until past the Date range: exit 2 in one line, no grant written, grants still lists', async () => {
    const before = await grantIds()
    const r = await cli(['grant', space, '--to', did, '--for', '1h', '--data-until', '9000000000000000'])
    assertOneLine(r, 2, /--data-until/)
    const listed = await cli(['grants', space, '--json'])
    assert.equal(listed.code, 0, listed.stderr)
    assert.deepEqual(
      JSON.parse(listed.stdout).grants.map((g: Json) => g.id),
      before,
    )
  })

  it('grant --until past the Date range: exit 2 in one line, and it wrote nothing', async () => {
    const before = await grantIds()
    const r = await cli(['grant', space, '--to', did, '--until', '9000000000000000'])
    assertOneLine(r, 2, /--until/)
    assert.deepEqual(await grantIds(), before)
    const listed = await cli(['grants', space])
    assert.equal(listed.code, 0, listed.stderr)
  })

  it('the API refuses such a grant too (400, not 500), and writes nothing', async () => {
    const before = await grantIds()
    const api = await gateway.api()
    for (const body of [
      { to: did, until: Date.now() + 3_600_000, dataUntil: 9_000_000_000_000_000 },
      { to: did, until: 9_000_000_000_000_000 },
      { to: did, until: Date.now() + 3_600_000, forms: ['aggregate:0m'] },
    ]) {
      await assert.rejects(api.call('POST', `/v1/spaces/${space}/grants`, body), { name: 'UsageError' })
    }
    assert.deepEqual(await grantIds(), before)
  })

  it('stream create --aggregate 0m: exit 2 in one line, and the stream can then be created as meant', async () => {
    assertOneLine(await cli(['stream', 'create', space, 'pressure', '--aggregate', '0m']), 2, /--aggregate/)
    assertOneLine(await cli(['stream', 'create', space, 'pressure', '--form', 'aggregate:0m']), 2)
    const ok = await cli(['stream', 'create', space, 'pressure', '--aggregate', '15m', '--json'])
    assert.equal(ok.code, 0, ok.stderr)
    assert.deepEqual(JSON.parse(ok.stdout).forms, ['raw', 'hashed', 'aggregate:15m'])
  })

  const USAGE: [string, (s: string) => string[], RegExp][] = [
    ['a negative duration', s => ['grant', s, '--to', 'DID', '--for', '-5h'], /must be positive/],
    ['a negative count', s => ['grant', s, '--to', 'DID', '--for', '1h', '--max-releases', '-1'], /--max-releases/],
    ['a negative retention count', s => ['retention', s, 'temp', '--max-count', '-1'], /--max-count/],
    ['a negative retention age', s => ['retention', s, 'temp', '--max-age', '-1h'], /must be positive/],
    ['a negative --since', s => ['read', s, 'temp', '--since', '-5'], /--since/],
    ['an option without its value', s => ['grant', s, '--to', '--for', '1h'], /--to/],
    ['an empty space id', () => ['space', 'join', ''], /empty|space id/],
    ['an empty space id to grants', () => ['grants', ''], /empty|space id/],
    ['a space id that is not one', () => ['grants', 'plant-7'], /not a space id/],
    ['an empty stream name', s => ['read', s, ''], /empty/],
    [
      'an ingestion map without =',
      s => ['ingest', s, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', 'a/#', '--map', 'boiler'],
      /--map/,
    ],
    [
      'an ingestion map without a stream',
      s => ['ingest', s, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', 'a/#', '--map', '=a/b'],
      /--map/,
    ],
    [
      'an ingestion map without a topic',
      s => ['ingest', s, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', 'a/#', '--map', 'boiler='],
      /--map/,
    ],
    [
      'an ingestion map to a bad topic filter',
      s => ['ingest', s, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', 'a/#', '--map', 'boiler=a/#/b'],
      /topic filter/,
    ],
  ]
  for (const [name, args, pattern] of USAGE) {
    it(`${name}: exit 2, one line`, async () => {
      const r = await cli(args(space).map(a => (a === 'DID' ? did : a)))
      assertOneLine(r, 2, pattern)
    })
  }

  it('ingest from an MQTT broker that does not answer: exit 1, one line naming the broker', async () => {
    const port = await freePort()
    const r = await cli(['ingest', space, '--mqtt', `mqtt://127.0.0.1:${port}`, '--topic', 'a/#'])
    assertOneLine(r, 1, new RegExp(`127\\.0\\.0\\.1:${port}`))
  })

  it('the API answers an unreachable broker with 503 (UnreachableError), not 500', async () => {
    const port = await freePort()
    await assert.rejects(
      (await gateway.api()).call('POST', `/v1/spaces/${space}/ingest`, {
        url: `mqtt://127.0.0.1:${port}`,
        topic: 'a/#',
      }),
      { name: 'UnreachableError' },
    )
  })

  /** Run `edgeward ARGS`, take its first line of stdout, then close the pipe as `| head -1` does. */
  const firstLineThenClose = (args: string[]) =>
    new Promise<{ line: string; code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
      (resolve, reject) => {
        const p = spawn(process.execPath, [BIN, ...args, '--data', gateway.dataDir], {
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        let out = ''
        let line: string | undefined
        let stderr = ''
        p.stderr.on('data', d => (stderr += d))
        p.stdout.on('data', d => {
          out += d
          const nl = out.indexOf('\n')
          if (line !== undefined || nl < 0) return
          line = out.slice(0, nl)
          p.stdout.destroy()
        })
        p.on('error', reject)
        p.on('close', (code, signal) => resolve({ line: line ?? '', code, signal, stderr }))
      },
    )

  it('read … | head -1: the first reading, then a quiet exit 0 (no EPIPE stack trace)', async () => {
    const r = await firstLineThenClose(['read', space, 'temp'])
    assert.deepEqual(JSON.parse(r.line).value, 0)
    assert.equal(r.stderr, '')
    assert.equal(r.code, 0)
  })

  it('ingest … | head -1: stops as on Ctrl-C, so the node ends that ingestion, and exits 0 quietly', async () => {
    const r = await firstLineThenClose(['ingest', space, '--mqtt', broker.url, '--topic', 'site/#'])
    assert.match(r.line, /^ingesting site\/# from /, r.stderr)
    assert.equal(r.stderr, '')
    assert.equal(r.code, 0)
    const running = await (await gateway.api()).call<Json>('GET', '/v1/ingest')
    assert.deepEqual(running.ingestions, [])
  })

  it('start --bootstrap with something that is not a multiaddr: exit 2, one line, no node', async () => {
    await createIdentity(join(root, 'misconfigured'), { now: Date.now() })
    // a node that started anyway would run until stopped: the deadline ends it, and the test fails
    const r = await runToExit(
      ['start', '--bootstrap', 'not-an-address', '--data', join(root, 'misconfigured')],
      undefined,
      30_000,
    )
    assertOneLine({ ...r, ms: 0 }, 2, /--bootstrap not-an-address/)
  })

  it('start --bootstrap an address no one answers: the node starts and says so in one line', async () => {
    const port = await freePort()
    const address = `/ip4/127.0.0.1/tcp/${port}/p2p/${otherPeer}`
    await createIdentity(join(root, 'lonely'), { now: Date.now() })
    // a process of its own: the warning comes right after the first line, which startPeer keeps for itself
    const node = startEdgeward(['start', ...LOOPBACK_FLAGS, '--bootstrap', address, '--data', join(root, 'lonely')])
    try {
      const warning = await waitFor(
        'the warning about the bootstrap peer',
        async () => node.stderr.split('\n').find(l => l.includes(address)),
        30_000,
      )
      assert.match(warning, /^warning: cannot reach bootstrap peer \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+: \S/)
      assert.equal(node.stderr.split('\n').filter(l => l.includes(address)).length, 1, node.stderr)
      assert.match(node.stdout, /^node \w+ running\n/, 'and the node runs')
    } finally {
      node.child.kill('SIGTERM')
    }
    assert.equal(await node.exited, 0, node.stderr)
  })
})
