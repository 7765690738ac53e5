/**
 * Real networks behind NAT on one Linux machine: network namespaces joined by veth pairs,
 * NAT by nftables, made and removed by the tests themselves (root, `ip` and `nft` needed; CI
 * runs as root and test/setup.sh installs iproute2 and nftables).
 *
 *   public (11.77.0.0/24, a bridge; the relay listens on 11.77.0.1)
 *     ├── router A: wan 11.77.0.10, lan 10.77.1.1, NAT ── host A 10.77.1.2 (the reader)
 *     └── router B: wan 11.77.0.20, lan 10.77.2.1, NAT ── host B 10.77.2.2 (the gateway)
 *
 * The public side uses addresses libp2p does not take for private ones (AutoNAT and DCUtR
 * ignore private addresses); the namespaces reach nothing outside themselves.
 *
 * Two kinds of NAT on the routers:
 * - `endpoint-independent`: masquerade `persistent` (one mapping per inside address, whatever
 *   the destination; Linux keeps the source port when it can) and filtering that is
 *   endpoint-independent too: a packet to a mapped port reaches the inside host from anyone
 *   (full cone, with a fixed port mapping: the ports 1024-65535 map to the one host). Node.js
 *   cannot dial from its listening port (no SO_REUSEPORT), so a TCP hole punch needs the
 *   listening port mapped: this is the NAT under which js-libp2p upgrades a relayed connection.
 * - `symmetric`: masquerade `random` (a new random port per connection), nothing unsolicited
 *   comes in: a peer behind it is reached through a relay only.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import type { NodeInfo } from '../../node/cli/client.ts'
import { BIN, type CliResult, LocalPeer, runCli, startedInfo } from '../../node/cli/local-network.ts'

const run = promisify(execFile)

export type NatKind = 'endpoint-independent' | 'symmetric'

/** The public network's addresses. */
export const PUBLIC = { relay: '11.77.0.1', routerA: '11.77.0.10', routerB: '11.77.0.20' } as const

/** One LAN behind its router: the namespaces and the inside host's address. */
export interface Lan {
  router: string
  host: string
  hostIp: string
  /** the router's public address: what peers outside see this LAN's host come from */
  publicIp: string
}

/** A lab: the public namespace (the relay's) and two LANs behind NAT. */
export interface NatLab {
  nat: NatKind
  pub: string
  a: Lan
  b: Lan
  /** every namespace of the lab, for cleanup */
  namespaces: string[]
  /** Delete every namespace (their veths and NAT go with them); run it in `after`, whatever happened. */
  remove(): Promise<void>
}

/** Why this machine cannot run the lab, or undefined when it can. */
export async function labUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the NAT tests need root (network namespaces): run them as root, as CI does'
  for (const tool of ['ip', 'nft']) {
    try {
      await run(tool, ['-V'])
    } catch {
      return `the NAT tests need \`${tool}\` (Debian: ${tool === 'ip' ? 'iproute2' : 'nftables'}; test/setup.sh installs it as root)`
    }
  }
  return undefined
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args)
}

/** Load an nftables ruleset into a namespace. */
async function nft(ns: string, ruleset: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] })
    let err = ''
    p.stderr.on('data', d => (err += d))
    p.on('error', reject)
    p.on('close', code => (code === 0 ? resolve() : reject(new Error(`nft in ${ns}: ${err.trim()}`))))
    p.stdin.end(ruleset)
  })
}

function natRules(kind: NatKind, hostIp: string): string {
  // forward what the inside starts and what answers it; for the full-cone NAT, also what comes
  // to a mapped port (dnat)
  const filter = `table ip filter {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" accept
    ${kind === 'endpoint-independent' ? 'ct status dnat accept' : ''}
  }
}`
  const nat =
    kind === 'endpoint-independent'
      ? `table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat;
    iifname "wan" tcp dport 1024-65535 dnat to ${hostIp}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "wan" masquerade persistent
  }
}`
      : `table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "wan" masquerade random
  }
}`
  return `${filter}\n${nat}\n`
}

/**
 * Make the lab with `nat` on both routers. Fails with a clear message when this machine
 * cannot (not root, no `ip` or `nft`); on a failure half-way, removes what it made.
 */
export async function createNatLab(nat: NatKind): Promise<NatLab> {
  const why = await labUnavailable()
  if (why !== undefined) throw new Error(why)
  const id = randomBytes(3).toString('hex')
  const name = (part: string) => `ew${id}-${part}`
  const lab: NatLab = {
    nat,
    pub: name('pub'),
    a: { router: name('rta'), host: name('a'), hostIp: '10.77.1.2', publicIp: PUBLIC.routerA },
    b: { router: name('rtb'), host: name('b'), hostIp: '10.77.2.2', publicIp: PUBLIC.routerB },
    namespaces: [],
    remove: async () => {
      for (const ns of [...lab.namespaces].reverse()) {
        await ip('netns', 'del', ns).catch(() => undefined)
      }
      const left = (await run('ip', ['netns', 'list'])).stdout.split('\n').filter(l => l.startsWith(`ew${id}-`))
      if (left.length > 0) throw new Error(`network namespaces left behind: ${left.join(', ')}`)
    },
  }
  try {
    for (const ns of [lab.pub, lab.a.router, lab.a.host, lab.b.router, lab.b.host]) {
      await ip('netns', 'add', ns)
      lab.namespaces.push(ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
    }
    await ip('-n', lab.pub, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', lab.pub, 'addr', 'add', `${PUBLIC.relay}/24`, 'dev', 'br0')
    await ip('-n', lab.pub, 'link', 'set', 'br0', 'up')
    for (const [lan, n] of [
      [lab.a, 1],
      [lab.b, 2],
    ] as const) {
      const up = `up${n}`
      await ip('link', 'add', 'wan', 'netns', lan.router, 'type', 'veth', 'peer', 'name', up, 'netns', lab.pub)
      await ip('-n', lab.pub, 'link', 'set', up, 'master', 'br0', 'up')
      await ip('-n', lan.router, 'addr', 'add', `${lan.publicIp}/24`, 'dev', 'wan')
      await ip('-n', lan.router, 'link', 'set', 'wan', 'up')
      await ip('link', 'add', 'lan', 'netns', lan.router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan.host)
      await ip('-n', lan.router, 'addr', 'add', `10.77.${n}.1/24`, 'dev', 'lan')
      await ip('-n', lan.router, 'link', 'set', 'lan', 'up')
      await ip('-n', lan.host, 'addr', 'add', `${lan.hostIp}/24`, 'dev', 'eth0')
      await ip('-n', lan.host, 'link', 'set', 'eth0', 'up')
      await ip('-n', lan.host, 'route', 'add', 'default', 'via', `10.77.${n}.1`)
      await run('ip', ['netns', 'exec', lan.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
      await nft(lan.router, natRules(nat, lan.hostIp))
    }
  } catch (err) {
    await lab.remove().catch(() => undefined)
    throw err
  }
  return lab
}

/** A node running in a network namespace: its commands run there too (its API listens on that namespace's 127.0.0.1). */
export class NsPeer extends LocalPeer {
  readonly ns: string

  constructor(ns: string, name: string, dataDir: string, proc: ChildProcess, info: NodeInfo) {
    super(name, dataDir, proc, info)
    this.ns = ns
  }

  override cli(args: string[], opts: { input?: string } = {}): Promise<CliResult> {
    return nsCli(this.ns, [...args, '--data', this.dataDir], opts)
  }

  /** `status --json`, parsed. */
  async status(): Promise<Record<string, any>> {
    const r = await this.cli(['status', '--json'])
    if (r.code !== 0) throw new Error(`status of ${this.name} failed: ${r.stderr}`)
    return JSON.parse(r.stdout)
  }
}

/** Run one `edgeward` command in namespace `ns`. */
export function nsCli(ns: string, args: string[], opts: { input?: string } = {}): Promise<CliResult> {
  return runCli(args, { ...opts, netns: ns })
}

/** Start `edgeward start` in namespace `ns` on an initialised data directory (no mDNS), and wait until it listens. */
export async function startNsPeer(
  ns: string,
  name: string,
  dataDir: string,
  args: string[],
  timeoutMs = 20_000,
): Promise<NsPeer> {
  // `ip netns exec` execs the program: the child is the node itself, and its signals reach it
  const proc = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, BIN, 'start', '--data', dataDir, '--json', '--no-mdns', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const { info, stderr } = await startedInfo(proc, name, timeoutMs)
  const peer = new NsPeer(ns, name, dataDir, proc, info)
  peer.stderr = stderr
  proc.stderr.on('data', d => (peer.stderr += d))
  return peer
}
