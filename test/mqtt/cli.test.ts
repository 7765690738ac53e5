/**
 * MQTT ingestion as a user meets it, with real `edgeward` processes over TCP on 127.0.0.1:
 * `edgeward gateway --mqtt-port 0 --space plant` runs a node with its own broker and ingests
 * every topic into `plant`; a reader process joins, is granted, and reads what an MQTT client
 * published. Then `edgeward ingest` against a mosquitto of its own (MQTT 5, with --map) shows
 * progress, and on SIGINT stops the ingestion in the node.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readApiToken } from '../../node/api-token.ts'
import { BIN, type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { initData, jsonLines as lines, stopPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'
import { credentialsIn, Mosquitto, needsMosquitto, publishAll } from './brokers.ts'

describe('edgeward gateway and edgeward ingest across real processes', { timeout: 90_000 }, () => {
  let root: string
  const peers: Record<string, LocalPeer> = {}
  const dids: Record<string, string> = {}
  let mosquitto: Mosquitto | undefined
  let ingestProc: ChildProcess | undefined

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-mqtt-cli-'))
    await Promise.all(
      ['gateway', 'reader'].map(async name => {
        dids[name] = await initData(join(root, name))
      }),
    )
  })

  after(async () => {
    ingestProc?.kill('SIGKILL')
    await stopPeers(Object.values(peers), root, async () => mosquitto?.stop())
  })

  it('gateway: an MQTT client publishes to the embedded broker, a granted reader reads the values', async () => {
    peers.gateway = await startPeer('gateway', join(root, 'gateway'), {
      command: 'gateway',
      args: ['--mqtt-port', '0', '--space', 'plant'],
    })
    const info = peers.gateway.info as typeof peers.gateway.info & {
      mqtt: string
      ingestSpace: string
      mqttCredentials: string
    }
    assert.match(info.mqtt, /^mqtt:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(info.mqttCredentials, join(root, 'gateway', 'mqtt-credentials'), 'the output says where they are')
    assert.equal((await stat(info.mqttCredentials)).mode & 0o777, 0o600)
    const credentials = await credentialsIn(join(root, 'gateway'))
    await assert.rejects(publishAll(info.mqtt, 4, [['plant/temperature', '1']]), /not authorized/i)
    assert.notEqual(info.mqtt, 'mqtt://127.0.0.1:1883', '--mqtt-port 0 picks a free port')
    const space = info.ingestSpace
    assert.match(space, /^[0-9a-f]{64}$/)

    peers.reader = await startPeer('reader', join(root, 'reader'), { bootstrap: peers.gateway.info.addresses })
    assert.equal((await peers.reader.cli(['space', 'join', space])).code, 0)
    const reader = await peers.reader.api()
    await waitFor('the reader to receive the space', async () => {
      const s = await reader.call<{ spaces: { id: string; synchronised: boolean }[] }>('GET', '/v1/status')
      return s.spaces.find(x => x.id === space)?.synchronised ? true : undefined
    })

    const T = Date.now() - 60_000
    await publishAll(
      info.mqtt,
      4,
      [
        ['plant/line1/temperature', '20.5'],
        ['plant/line1/temperature', JSON.stringify({ ts: T, value: 21 })],
        ['temperature', JSON.stringify({ ts: T + 1, value: { c: 22 } })],
        ['plant/line1/temperature', 'oops'],
      ],
      credentials,
    )
    const gw = await peers.gateway.api()
    await waitFor('the gateway to store 3 readings and refuse 1', async () => {
      const { ingestions } = await gw.call<{ ingestions: { stats: { ok: number; errors: Record<string, number> } }[] }>(
        'GET',
        '/v1/ingest',
      )
      const s = ingestions[0]?.stats
      return s?.ok === 3 && s.errors['not-json'] === 1 ? true : undefined
    })
    const token = await readApiToken(join(root, 'gateway'))
    const res = await fetch(`${peers.gateway.info.api}/metrics`, { headers: { authorization: `Bearer ${token}` } })
    const metrics = await res.text()
    assert.match(metrics, /edgeward_mqtt_messages_total\{result="ok"\} 3/)
    assert.match(metrics, /edgeward_mqtt_messages_total\{reason="not-json",result="error"\} 1/)
    assert.match(metrics, /edgeward_mqtt_connections_refused_total\{reason="no-credentials"\} 1/)

    const g = await peers.gateway.cli(['grant', space, '--to', dids.reader, '--stream', 'temperature', '--for', '1h'])
    assert.equal(g.code, 0, g.stderr)
    const r = await peers.reader.cli(['read', space, 'temperature'])
    assert.equal(r.code, 0, r.stderr)
    const read = lines(r.stdout)
    assert.deepEqual(
      read.map(l => l.value),
      [20.5, 21, { c: 22 }],
    )
    assert.equal(read[1].ts, T)
    assert.equal(read[2].ts, T + 1)
  })

  it('gateway: restarted with the same --space, it ingests into the space it already owns', async () => {
    const credentials = await credentialsIn(join(root, 'gateway'))
    const before = (peers.gateway.info as unknown as { ingestSpace: string }).ingestSpace
    assert.equal(await peers.gateway.stop(), 0)
    peers.gateway = await startPeer('gateway', join(root, 'gateway'), {
      command: 'gateway',
      args: ['--mqtt-port', '0', '--space', 'plant'],
    })
    assert.equal((peers.gateway.info as unknown as { ingestSpace: string }).ingestSpace, before)
    const restarted = peers.gateway.info as unknown as { mqtt: string }
    await publishAll(restarted.mqtt, 4, [['plant/temperature', '1']], credentials)
    assert.deepEqual(await credentialsIn(join(root, 'gateway')), credentials, 'the credentials are kept')
    const s = await (await peers.gateway.api()).call<{ spaces: unknown[] }>('GET', '/v1/status')
    assert.equal(s.spaces.length, 1, 'no second space named plant')
  })

  it('ingest: reports usage errors and an unreachable broker in one line', async () => {
    const space = (peers.gateway.info as unknown as { ingestSpace: string }).ingestSpace
    const cases: [string[], number, RegExp][] = [
      [['ingest', space, '--topic', '#'], 2, /needs --mqtt/],
      [['ingest', space, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', '#', '--map', 'x'], 2, /STREAM=TOPIC/],
      [['ingest', space, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', 'a/#/b'], 2, /not an MQTT topic filter/],
      [['ingest', space, '--mqtt', 'mqtt://127.0.0.1:1', '--topic', '#'], 1, /could not ingest # .*ECONNREFUSED/],
      [['gateway', '--mqtt-port', 'x'], 2, /--mqtt-port must be a port/],
    ]
    const results = await Promise.all(cases.map(([args]) => peers.gateway.cli(args)))
    cases.forEach(([args, code, message], i) => {
      const r = results[i]
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line')
    })
  })

  it('ingest: from mosquitto with MQTT 5 and a map, with progress, until SIGINT stops it in the node', async t => {
    if (!needsMosquitto(t)) return
    mosquitto = await Mosquitto.start()
    const gw = await peers.gateway.api()
    const { space } = await gw.call<{ space: string }>('POST', '/v1/spaces', { name: 'boilers' })
    const proc = spawn(
      process.execPath,
      [
        BIN,
        'ingest',
        space,
        '--mqtt',
        mosquitto.url,
        '--topic',
        'site/#',
        '--map',
        'boiler=site/+/temp',
        '--map',
        'hall=site/hall/#',
        '--mqtt-version',
        '5',
        '--json',
        '--data',
        join(root, 'gateway'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    ingestProc = proc
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', d => (stdout += d))
    proc.stderr.on('data', d => (stderr += d))
    const exited = new Promise<number | null>(resolve => proc.once('exit', code => resolve(code)))
    const events = () => (stdout.endsWith('\n') ? lines(stdout) : lines(stdout.slice(0, stdout.lastIndexOf('\n') + 1)))
    await waitFor(`the ingestion to start (${stderr})`, async () =>
      events().some(e => e.event === 'started') ? true : undefined,
    )
    assert.equal(events()[0].protocolVersion, 5)

    await publishAll(mosquitto.url, 5, [
      ['site/b1/temp', '70.5'],
      ['site/hall/lux', JSON.stringify({ lux: 300 })],
      ['site/b2/temp', JSON.stringify({ ts: 1_700_000_000_000, value: 71 })],
      ['site/b1/pressure', '2'],
      ['site/b1/temp', '[]'],
    ])
    await waitFor(`progress to show 3 stored and 2 refused (${stderr})`, async () =>
      events().some(
        e =>
          e.event === 'progress' && e.ok === 3 && e.errors['unmapped-topic'] === 1 && e.errors['not-a-reading'] === 1,
      )
        ? true
        : undefined,
    )
    proc.kill('SIGINT')
    assert.equal(await exited, 0, stderr)
    ingestProc = undefined
    const last = events().at(-1)
    assert.equal(last.event, 'stopped')
    assert.equal(last.stats.ok, 3)
    const { ingestions } = await gw.call<{ ingestions: { space: string }[] }>('GET', '/v1/ingest')
    assert.deepEqual(
      ingestions.filter(i => i.space === space),
      [],
      'SIGINT stopped the ingestion in the node',
    )

    const boiler = lines((await peers.gateway.cli(['read', space, 'boiler'])).stdout)
    assert.deepEqual(
      boiler.map(l => l.value),
      [70.5, 71],
    )
    assert.equal(boiler[1].ts, 1_700_000_000_000)
    const hall = []
    for await (const l of gw.lines(`/v1/spaces/${space}/streams/hall/readings`)) hall.push(l.value)
    assert.deepEqual(hall, [{ lux: 300 }])
  })
})
