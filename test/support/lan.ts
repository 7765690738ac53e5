/**
 * A LAN of Linux network namespaces for the tests and the bench: one namespace per host, each
 * with an `eth0` on one Ethernet segment (a bridge in a namespace of its own, so nothing is
 * added to the machine's own network), IPv4 10.77.0.0/24 and IPv6 link-local, multicast
 * routed on it (mDNS). Peers run inside a host with `ip netns exec` (startPeer's `netns`).
 * `remove()` deletes every namespace it made, ending what still runs in them first; a LAN
 * left behind by a test process that was killed is removed by the next `createLan`.
 *
 * Needs root and iproute2's `ip`; without them `createLan` fails with a message that says so
 * (CI runs as root; test/setup.sh installs iproute2).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Lan {
  /** the namespaces of the hosts, one per host */
  hosts: string[]
  /** the IPv4 address of host i on the LAN */
  ipv4(i: number): string
  /** delete every namespace of the LAN (idempotent) */
  remove(): Promise<void>
}

let made = 0

async function ip(...args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout
  } catch (err) {
    const e = err as Error & { stderr?: string }
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`)
  }
}

/** Why this machine cannot make network namespaces, or undefined when it can. */
export function lanUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'they must run as root (CI does)'
  const hasIp = (process.env.PATH ?? '/usr/sbin:/sbin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])
    .some(dir => existsSync(`${dir}/ip`))
  if (!hasIp) return "iproute2's `ip` is missing (test/setup.sh installs it: apt-get install iproute2)"
  return undefined
}

/**
 * Make a LAN of `hosts` hosts (namespaces named after this process, so that runs side by side
 * do not meet). Options: `ipv6: false` turns IPv6 off in every host (a machine without it).
 */
export async function createLan(hosts: number, opts: { ipv6?: boolean } = {}): Promise<Lan> {
  const why = lanUnavailable()
  if (why !== undefined) throw new Error(`the LAN tests make Linux network namespaces: ${why}`)
  await removeLeftovers()
  const prefix = `ewlan-${process.pid}-${made++}`
  const hub = `${prefix}-hub`
  const names = Array.from({ length: hosts }, (_, i) => `${prefix}-${i}`)
  const created: string[] = []
  const remove = async () => {
    for (const ns of created.splice(0).reverse()) await removeNamespace(ns)
  }
  try {
    for (const ns of [hub, ...names]) {
      await ip('netns', 'add', ns)
      created.push(ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
    }
    await ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    await ip('-n', hub, 'link', 'set', 'br0', 'up')
    for (const [i, ns] of names.entries()) {
      if (opts.ipv6 === false)
        for (const scope of ['all', 'default'])
          await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${scope}.disable_ipv6=1`])
      // one veth pair per host: eth0 in the host, p<i> on the hub's bridge
      await ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', hub)
      await ip('-n', hub, 'link', 'set', `p${i}`, 'master', 'br0')
      await ip('-n', hub, 'link', 'set', `p${i}`, 'up')
      await ip('-n', ns, 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', 'eth0')
      await ip('-n', ns, 'link', 'set', 'eth0', 'up')
      // no default route in a host: multicast (mDNS, 224.0.0.251) needs one of its own
      await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    }
  } catch (err) {
    await remove()
    throw err
  }
  return { hosts: names, ipv4: i => `10.77.0.${i + 1}`, remove }
}

/** Namespaces of LANs whose process is gone (killed before it could remove them): ours by name, so removed. */
async function removeLeftovers(): Promise<void> {
  for (const line of (await ip('netns', 'list')).split('\n')) {
    const m = /^(ewlan-(\d+)-\S+)/.exec(line)
    if (m === null || isAlive(Number(m[2]))) continue
    await removeNamespace(m[1])
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** End what still runs in a namespace (only ours: we made it), then delete it. */
async function removeNamespace(ns: string): Promise<void> {
  const pids = (await ip('netns', 'pids', ns).catch(() => ''))
    .split('\n')
    .filter(l => /^\d+$/.test(l))
    .map(Number)
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
    }
  }
  await ip('netns', 'del', ns)
}
