/**
 * The node's configuration (node/config.ts): a table of documents accepted and refused, the
 * file written whole and private and read back, a port chosen free in the dynamic range and
 * kept, what the node listens on (flags, then the file, then every interface at the port) and
 * whether it runs mDNS; and through the real CLI: `init` writes the file, `start` on a data
 * directory made before it writes one and says so, a malformed multiaddr in `--listen`,
 * `--bootstrap` or the file is one line on stderr and exit 2.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { LOOPBACK_LISTEN, runCli, startPeer } from '../../node/cli/local-network.ts'
import {
  chooseFreePort,
  configPath,
  DYNAMIC_PORTS,
  isMdnsOn,
  listenAddresses,
  loadOrCreateConfig,
  type NodeConfig,
  parseConfig,
  readConfig,
  writeConfig,
} from '../../node/config.ts'
import { UsageError } from '../../node/errors.ts'
import { createIdentity } from '../../node/identity.ts'

describe('configuration', () => {
  let root = ''
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-config-'))
  })
  after(() => rm(root, { recursive: true, force: true }))

  it('accepts a port, a listen list and mdns; refuses anything else in one line naming the file', () => {
    const accepted: [unknown, NodeConfig][] = [
      [{ port: 50000 }, { port: 50000 }],
      [
        { port: 50000, relay: true },
        { port: 50000, relay: true },
      ],
      [
        { port: 50000, listen: ['/ip4/0.0.0.0/tcp/4001'], mdns: false },
        { port: 50000, listen: ['/ip4/0.0.0.0/tcp/4001'], mdns: false },
      ],
      [
        { port: 1, listen: [] },
        { port: 1, listen: [] },
      ],
    ]
    for (const [doc, want] of accepted) assert.deepEqual(parseConfig(doc, 'c.json'), want)
    const refused: [unknown, RegExp][] = [
      [[], /not a JSON object/],
      [null, /not a JSON object/],
      [{}, /"port" must be a TCP port/],
      [{ port: 0 }, /"port" must be a TCP port/],
      [{ port: 65536 }, /"port" must be a TCP port/],
      [{ port: '4001' }, /"port" must be a TCP port/],
      [{ port: 50000, mnds: false }, /unknown key mnds/],
      [{ port: 50000, listen: '/ip4/0.0.0.0/tcp/1' }, /"listen" must be a list/],
      [{ port: 50000, listen: [1] }, /"listen" must be a list/],
      [{ port: 50000, listen: ['/ip4/300.0.0.1/tcp/1'] }, /listen \/ip4\/300.0.0.1\/tcp\/1 is not a multiaddr/],
      [{ port: 50000, listen: ['ip4/1.2.3.4'] }, /is not a multiaddr/],
      [{ port: 50000, mdns: 'no' }, /"mdns" must be true or false/],
      [{ port: 50000, relay: 1 }, /"relay" must be true or false/],
    ]
    for (const [doc, message] of refused) {
      assert.throws(
        () => parseConfig(doc, 'c.json'),
        (err: Error) => err.name === UsageError.name && /^c\.json: /.test(err.message) && message.test(err.message),
        JSON.stringify(doc),
      )
    }
  })

  it('is written whole and private, read back, and absent until written', async () => {
    const dir = join(root, 'rw')
    await mkdir(dir, { mode: 0o700 })
    assert.equal(await readConfig(dir), undefined)
    const config = { port: 51234, listen: ['/ip4/127.0.0.1/tcp/51234'], mdns: false }
    await writeConfig(dir, config)
    assert.deepEqual(await readConfig(dir), config)
    assert.equal((await stat(configPath(dir))).mode & 0o777, 0o600)
    assert.deepEqual(await readdir(dir), ['config.json'], 'no temp file left')
    await writeFile(configPath(dir), '{"port": 5')
    await assert.rejects(readConfig(dir), (err: Error) => err.name === UsageError.name && /not JSON/.test(err.message))
  })

  it('chooses a free port in the dynamic range once, and keeps it', async () => {
    const dir = join(root, 'keep')
    await mkdir(dir, { mode: 0o700 })
    const first = await loadOrCreateConfig(dir)
    assert.equal(first.created, true)
    assert.ok(first.config.port >= DYNAMIC_PORTS.min && first.config.port <= DYNAMIC_PORTS.max, `${first.config.port}`)
    const second = await loadOrCreateConfig(dir)
    assert.deepEqual(second, { config: first.config, created: false })
  })

  it('skips a port that is taken', async () => {
    const busy = await chooseFreePort()
    const server: Server = createServer()
    await new Promise<void>(resolve => server.listen({ port: busy, host: '0.0.0.0' }, resolve))
    try {
      const span = DYNAMIC_PORTS.max - DYNAMIC_PORTS.min + 1
      // the first pick is the busy port, the second the one after it (or the one before, at the top)
      const other = busy === DYNAMIC_PORTS.max ? busy - 1 : busy + 1
      const picks = [busy, other].map(p => (p - DYNAMIC_PORTS.min + 0.5) / span)
      let i = 0
      const port = await chooseFreePort(() => picks[Math.min(i++, 1)])
      assert.equal(port, other)
    } finally {
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('listens on the flags, else the configured list, else every interface at the port', () => {
    const config = { port: 50123 }
    assert.deepEqual(listenAddresses(config), ['/ip4/0.0.0.0/tcp/50123', '/ip6/::/tcp/50123'])
    assert.deepEqual(listenAddresses({ ...config, listen: [] }), ['/ip4/0.0.0.0/tcp/50123', '/ip6/::/tcp/50123'])
    assert.deepEqual(listenAddresses({ ...config, listen: ['/ip4/10.0.0.2/tcp/4001'] }), ['/ip4/10.0.0.2/tcp/4001'])
    assert.deepEqual(
      listenAddresses({ ...config, listen: ['/ip4/10.0.0.2/tcp/4001'] }, LOOPBACK_LISTEN),
      LOOPBACK_LISTEN,
    )
  })

  it('runs mDNS unless --no-mdns or "mdns": false', () => {
    const table: [NodeConfig, boolean, boolean][] = [
      [{ port: 1 }, false, true],
      [{ port: 1, mdns: true }, false, true],
      [{ port: 1, mdns: false }, false, false],
      [{ port: 1 }, true, false],
      [{ port: 1, mdns: true }, true, false],
    ]
    for (const [config, flag, on] of table) assert.equal(isMdnsOn(config, flag), on, JSON.stringify({ config, flag }))
  })
})

describe('configuration through the CLI', () => {
  let root = ''
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-config-cli-'))
  })
  after(() => rm(root, { recursive: true, force: true }))

  it('init writes config.json, private, with a port in the dynamic range, and keeps it on --force', async () => {
    const dir = join(root, 'init')
    const r = await runCli(['init', '--data', dir, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const config = JSON.parse(await readFile(configPath(dir), 'utf8'))
    assert.equal(JSON.parse(r.stdout).port, config.port, 'init says which port')
    assert.ok(config.port >= DYNAMIC_PORTS.min && config.port <= DYNAMIC_PORTS.max)
    assert.equal((await stat(configPath(dir))).mode & 0o777, 0o600)
    const again = await runCli(['init', '--force', '--data', dir, '--json'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(JSON.parse(await readFile(configPath(dir), 'utf8')).port, config.port, 'a forced init keeps the port')
  })

  it('start on a data directory made before config.json writes one and says so', async () => {
    const dir = join(root, 'older')
    await createIdentity(dir, { now: Date.now() })
    assert.equal(existsSync(configPath(dir)), false)
    const peer = await startPeer('older', dir)
    try {
      const config = await readConfig(dir)
      assert.ok(config !== undefined, 'config.json written')
      assert.match(
        peer.stderr,
        new RegExp(`config\\.json written: this node listens at TCP port ${config.port} from now on`),
      )
    } finally {
      assert.equal(await peer.stop(), 0)
    }
    const again = await startPeer('older', dir)
    assert.equal(await again.stop(), 0)
    assert.doesNotMatch(again.stderr, /config\.json written/, 'said once, when written')
  })

  it('a malformed multiaddr in --listen, --bootstrap or config.json: one line, exit 2', async () => {
    const dir = join(root, 'malformed')
    assert.equal((await runCli(['init', '--data', dir])).code, 0)
    const cases: [string[], RegExp][] = [
      [['--listen', 'tcp/4001'], /^edgeward: error: --listen tcp\/4001 is not a multiaddr/],
      [
        ['--listen', '/ip4/0.0.0.0/tcp/1', '--listen', '/ip4/1.2.3.4.5/tcp/1'],
        /--listen \/ip4\/1.2.3.4.5\/tcp\/1 is not/,
      ],
      [['--bootstrap', '/ip4/1.2.3/tcp/1'], /^edgeward: error: --bootstrap \/ip4\/1.2.3\/tcp\/1 is not a multiaddr/],
    ]
    for (const [args, message] of cases) {
      const r = await runCli(['start', '--data', dir, ...args])
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      const lines = r.stderr.split('\n').filter(l => l !== '' && !l.startsWith('warning: development mode'))
      assert.equal(lines.length, 1, r.stderr)
      assert.match(lines[0], message)
    }
    const config = JSON.parse(await readFile(configPath(dir), 'utf8'))
    await writeFile(configPath(dir), JSON.stringify({ ...config, listen: ['/ip4/0.0.0.0/tcp/x'] }))
    const r = await runCli(['start', '--data', dir, '--listen', LOOPBACK_LISTEN[0]])
    assert.equal(r.code, 2, r.stderr)
    const lines = r.stderr.split('\n').filter(l => l !== '')
    assert.equal(lines.length, 1, r.stderr)
    assert.match(lines[0], /config\.json: listen \/ip4\/0.0.0.0\/tcp\/x is not a multiaddr/)
  })
})
