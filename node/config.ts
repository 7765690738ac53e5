/**
 * The node's configuration in its data directory: `config.json`, a small JSON document, private
 * to its user (0600) and replaced atomically. `init` writes it, with a TCP port chosen once (free
 * at that moment, at random in the dynamic range) so that the node's address survives restarts;
 * a data directory made before it existed gets one at the next start.
 *
 * ```json
 * { "port": 51234, "listen": ["/ip4/0.0.0.0/tcp/51234"], "mdns": false }
 * ```
 *
 * `port`: the port of the default listen addresses (every interface, IPv4 and IPv6); `listen`
 * (optional): the multiaddrs to listen on instead; `relay` (optional, default false): serve
 * as a circuit relay, as `--relay` does; `mdns` (optional, default true): find peers
 * on the LAN by multicast DNS. A malformed file, an unknown key or a malformed multiaddr is
 * refused with a UsageError naming the file.
 */
import { existsSync } from 'node:fs'
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { NodeStateError, UsageError } from './errors.ts'

export interface NodeConfig {
  /** the TCP port of the default listen addresses, chosen once at `init` */
  port: number
  /** multiaddrs to listen on instead of every interface at `port` */
  listen?: string[]
  /** find peers on the LAN by mDNS (default true) */
  mdns?: boolean
  /** serve as a circuit relay for peers behind NAT, as `--relay` does (default false) */
  relay?: boolean
}

const CONFIG_FILE = 'config.json'
const KEYS = new Set(['port', 'listen', 'mdns', 'relay'])
/**
 * Where a node's port is chosen: the top of IANA's dynamic ports (RFC 6335) above Linux's
 * default ephemeral range (32768–60999), so that an outgoing connection of this machine never
 * holds a node's port while the node is stopped.
 */
export const DYNAMIC_PORTS = { min: 61000, max: 65535 }

/** Where a data directory keeps its configuration. */
export function configPath(dataDir: string): string {
  return join(dataDir, CONFIG_FILE)
}

/**
 * The multiaddrs of `values`, or a UsageError naming the first that is not one (`what`:
 * where they came from, such as `--listen`).
 */
export function checkMultiaddrs(values: string[], what: string): string[] {
  for (const a of values) {
    try {
      multiaddr(a)
    } catch (err) {
      throw new UsageError(`${what} ${a} is not a multiaddr (${(err as Error).message})`)
    }
  }
  return values
}

/** Check a parsed configuration document; `where` names it in errors. */
export function parseConfig(doc: unknown, where: string): NodeConfig {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`${where}: not a JSON object`)
  const o = doc as Record<string, unknown>
  const unknown = Object.keys(o).filter(k => !KEYS.has(k))
  if (unknown.length > 0)
    throw new UsageError(`${where}: unknown key ${unknown.join(', ')} (known: ${[...KEYS].join(', ')})`)
  if (!Number.isInteger(o.port) || (o.port as number) < 1 || (o.port as number) > 65535)
    throw new UsageError(`${where}: "port" must be a TCP port number (1 to 65535)`)
  const config: NodeConfig = { port: o.port as number }
  if (o.listen !== undefined) {
    if (!Array.isArray(o.listen) || o.listen.some(a => typeof a !== 'string'))
      throw new UsageError(`${where}: "listen" must be a list of multiaddrs`)
    config.listen = checkMultiaddrs(o.listen as string[], `${where}: listen`)
  }
  if (o.mdns !== undefined) {
    if (typeof o.mdns !== 'boolean') throw new UsageError(`${where}: "mdns" must be true or false`)
    config.mdns = o.mdns
  }
  if (o.relay !== undefined) {
    if (typeof o.relay !== 'boolean') throw new UsageError(`${where}: "relay" must be true or false`)
    config.relay = o.relay
  }
  return config
}

/** The data directory's configuration, or undefined when it has none (made before config.json existed). */
export async function readConfig(dataDir: string): Promise<NodeConfig | undefined> {
  const path = configPath(dataDir)
  if (!existsSync(path)) return undefined
  let doc: unknown
  try {
    doc = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    if (err instanceof SyntaxError) throw new UsageError(`${path}: not JSON (${err.message})`)
    throw err
  }
  return parseConfig(doc, path)
}

/** Write the configuration: private to its user, and whole or not at all (a temp file renamed over it). */
export async function writeConfig(dataDir: string, config: NodeConfig): Promise<void> {
  const path = configPath(dataDir)
  await writeFile(`${path}.tmp`, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
  await chmod(`${path}.tmp`, 0o600)
  await rename(`${path}.tmp`, path)
}

/**
 * The data directory's configuration; when it has none, a new one with a free port, written
 * (`created` says so, for the caller to tell the user).
 */
export async function loadOrCreateConfig(dataDir: string): Promise<{ config: NodeConfig; created: boolean }> {
  const existing = await readConfig(dataDir)
  if (existing !== undefined) return { config: existing, created: false }
  const config: NodeConfig = { port: await chooseFreePort() }
  await writeConfig(dataDir, config)
  return { config, created: true }
}

/**
 * What the node listens on: the `--listen` flags when given, else the configuration's `listen`,
 * else every interface, IPv4 and IPv6, at the configuration's port.
 */
export function listenAddresses(config: NodeConfig, flags: string[] = []): string[] {
  if (flags.length > 0) return flags
  if (config.listen !== undefined && config.listen.length > 0) return config.listen
  return [`/ip4/0.0.0.0/tcp/${config.port}`, `/ip6/::/tcp/${config.port}`]
}

/** Whether the node runs mDNS: not with `--no-mdns`, else as the configuration says (default on). */
export function isMdnsOn(config: NodeConfig, noMdnsFlag: boolean): boolean {
  return !noMdnsFlag && config.mdns !== false
}

/**
 * A TCP port in the dynamic range that is free right now on every interface, IPv4 and IPv6 (on
 * IPv6 only where the machine has it). `random` picks in [0, 1), for tests.
 */
export async function chooseFreePort(random: () => number = Math.random, attempts = 50): Promise<number> {
  for (let i = 0; i < attempts; i++) {
    const port = DYNAMIC_PORTS.min + Math.floor(random() * (DYNAMIC_PORTS.max - DYNAMIC_PORTS.min + 1))
    if ((await isFree(port, '0.0.0.0')) && (await isFree(port, '::'))) return port
  }
  throw new NodeStateError(
    `no free TCP port found in ${DYNAMIC_PORTS.min}-${DYNAMIC_PORTS.max} after ${attempts} tries`,
  )
}

/** Whether a TCP port can be bound on `host`; a host whose address family the machine lacks counts as free. */
function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false)
      else if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) resolve(true)
      else reject(err)
    })
    server.listen({ port, host, ipv6Only: host === '::', exclusive: true }, () => server.close(() => resolve(true)))
  })
}
