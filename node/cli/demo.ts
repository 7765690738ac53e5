/**
 * `edgeward demo`: three real peers as OS processes on 127.0.0.1 — a gateway and two
 * readers — and the whole story told step by step with the real commands: publish, grant,
 * read, refuse, revoke, refuse. Everything started is stopped at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ProcessExitError } from '../errors.ts'
import {
  type CliResult,
  isReadRefused,
  LOOPBACK_LISTEN,
  type LocalPeer,
  runCli,
  startPeer,
  waitFor,
} from './local-network.ts'

/** `demo`: three real peers as processes, and the story of grant, read, refusal and revocation told with the real commands. */
export async function runDemo(opts: { keep: boolean; json: boolean }): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'edgeward-demo-'))
  const peers: LocalPeer[] = []
  const say = (text: string) => process.stdout.write(`\n== ${text}\n`)
  const show = (who: string, args: string[], r: CliResult) => {
    process.stdout.write(`[${who}] $ edgeward ${args.join(' ')}\n`)
    for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n'))
      if (line !== '') process.stdout.write(`    ${line}\n`)
    process.stdout.write(`    (exit ${r.code})\n`)
  }
  const run = async (peer: LocalPeer, args: string[], input?: string, expect = 0): Promise<CliResult> => {
    const r = await peer.cli(args, { input })
    show(peer.name, args, r)
    if (r.code !== expect)
      throw new ProcessExitError(`${peer.name}: edgeward ${args[0]} exited ${r.code}, expected ${expect}`)
    return r
  }
  try {
    say('1. three peers, each its own process and data directory, over TCP on 127.0.0.1')
    const names = ['gateway', 'reader-a', 'reader-b']
    const dids: Record<string, string> = {}
    for (const name of names) {
      const r = await runCli(['init', '--data', join(root, name), '--json'])
      if (r.code !== 0) throw new ProcessExitError(`init ${name} failed: ${r.stderr}`)
      dids[name] = JSON.parse(r.stdout).did
    }
    // loopback only and no mDNS: the demo's peers must not find, nor be found by, other nodes on the LAN
    const local = { listen: LOOPBACK_LISTEN, mdns: false }
    const gateway = await startPeer('gateway', join(root, 'gateway'), local)
    peers.push(gateway)
    for (const name of names.slice(1))
      peers.push(await startPeer(name, join(root, name), { ...local, bootstrap: gateway.info.addresses }))
    const [, a, b] = peers
    for (const p of peers) process.stdout.write(`  ${p.name.padEnd(9)} ${p.info.peerId}  ${p.info.addresses[0]}\n`)

    say('2. the gateway creates a space; both readers join it')
    const space = (await run(gateway, ['space', 'create', 'plant-7'])).stdout.trim()
    await run(a, ['space', 'join', space])
    await run(b, ['space', 'join', space])

    say('3. the gateway publishes readings: encrypted on the gateway, only ciphertext is gossiped')
    const t = Date.now()
    const readings = [20.5, 20.7, 21.1].map((v, i) => JSON.stringify({ ts: t + i * 1000, value: v })).join('\n')
    await run(gateway, ['publish', space, 'temperature'], readings)
    for (const p of [a, b]) {
      await waitFor(`${p.name} to store the ciphertext`, async () => {
        const s = JSON.parse((await p.cli(['status', '--json'])).stdout)
        return (s.counters.edgeward_readings_stored_total?.['source="gossip"'] ?? 0) >= 3 ? true : undefined
      })
    }
    process.stdout.write('  both readers now hold the ciphertext in their LevelDB\n')

    say('4. the gateway grants reader A access to the stream for 48 hours')
    const grant = (
      await run(gateway, [
        'grant',
        space,
        '--to',
        dids['reader-a'],
        '--stream',
        'temperature',
        '--for',
        '48h',
        '--json',
      ])
    ).stdout
    const grantId = JSON.parse(grant).grant as string

    say('5. reader A reads: its key request passes the policy check, keys arrive sealed to its device')
    await waitFor('reader A to be allowed', async () =>
      (await a.cli(['read', space, 'temperature'])).code === 0 ? true : undefined,
    )
    await run(a, ['read', space, 'temperature'])

    say('6. reader B holds the same ciphertext but has no grant: refused')
    await run(b, ['read', space, 'temperature'], undefined, 3)

    say("7. the gateway revokes A's grant; A drops its keys as soon as the revocation arrives")
    await run(gateway, ['revoke', space, '--grant', grantId])
    const t0 = performance.now()
    const refusedAfter = await waitFor(
      'reader A to be refused',
      async () => ((await isReadRefused(a, space, 'temperature')) ? performance.now() - t0 : undefined),
      20_000,
      5,
    )
    await run(a, ['read', space, 'temperature'], undefined, 3)
    process.stdout.write(`  from the revoke command's return to A's first refusal: ${refusedAfter.toFixed(0)} ms\n`)

    say('8. readings published after the revocation are under a new key')
    await run(gateway, ['publish', space, 'temperature'], JSON.stringify({ ts: Date.now(), value: 22.4 }))
    await run(a, ['read', space, 'temperature'], undefined, 3)
    await run(gateway, ['read', space, 'temperature'])
    await run(a, ['status'])

    say("9. the auditor's proof: who held a key to what, for how long, checked offline")
    const reportFile = join(root, 'audit-report.json')
    await run(gateway, ['audit', 'report', space, '--subject', dids['reader-a'], '--out', reportFile])
    await run(gateway, ['audit', 'verify', reportFile])
    if (opts.json) process.stdout.write(`${JSON.stringify({ space, revokeToRefusalMs: Math.round(refusedAfter) })}\n`)
    say('done: policy enforced at the edge, temporary access, revocation, refusal, and an audit trail that proves it')
  } finally {
    await Promise.all(peers.map(p => p.stop()))
    if (opts.keep) process.stdout.write(`data directories kept in ${root}\n`)
    else await rm(root, { recursive: true, force: true })
  }
}
