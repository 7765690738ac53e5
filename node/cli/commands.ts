/**
 * The `edgeward` commands. Each takes parsed options and prints to stdout: a human line by
 * default, one JSON document (or NDJSON for streams) with --json. Errors are thrown as
 * typed errors; bin.ts turns them into one line and an exit code.
 */
import { rename, rm, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { isForm } from '../../protocols/policy/records.ts'
import type { ApiServer } from '../api.ts'
import { ensureApiToken } from '../api-token.ts'
import { UsageError } from '../errors.ts'
import type { EdgewardNode } from '../node.ts'
import type { MqttIngestions } from '../services/mqtt.ts'
import { auditStatusLines } from './audit.ts'
import { ApiClient, type NodeInfo, nodeInfoPath } from './client.ts'
import { parseDuration } from './duration.ts'
import { type Output, print } from './output.ts'

const passphrase = (): string | undefined => process.env.EDGEWARD_PASSPHRASE || undefined

/** `init`: create the identity in a data directory (principal, peer key, X25519 key). */
export async function init(dataDir: string, force: boolean, o: Output): Promise<void> {
  // the node's modules load only for the commands that need them, so the others start fast
  const { createIdentity } = await import('../identity.ts')
  const { loadOrCreateConfig } = await import('../config.ts')
  const id = await createIdentity(dataDir, { passphrase: passphrase(), force, now: Date.now() })
  // the port is chosen once: a forced init keeps the configuration, and so the node's address
  const { config } = await loadOrCreateConfig(dataDir)
  if (id.developmentMode) {
    o.err('warning: development mode: private keys are stored unencrypted (set EDGEWARD_PASSPHRASE to encrypt them)')
  }
  print(
    o,
    { did: id.principal.did, peerId: id.peerId, dataDir, port: config.port },
    `initialised ${dataDir}\ndid:    ${id.principal.did}\npeer:   ${id.peerId}\nport:   ${config.port} (TCP, kept in config.json)`,
  )
}

export interface StartOptions {
  /** multiaddrs to listen on (--listen): instead of the configuration's */
  listen: string[]
  bootstrap: string[]
  apiPort: number
  /** --no-mdns: find no peers on the LAN, whatever the configuration says */
  noMdns?: boolean
  /** --relay: serve as a circuit relay (with at most --relay-max-reservations slots) */
  relay?: boolean
  relayReservations?: number
  /** --relay-via: relays to reserve a slot on */
  relayVia?: string[]
}

/** What a command adds to a running node (the gateway's broker): info for node.json, lines to print, how to stop it. */
export interface NodeExtension {
  info: Record<string, unknown>
  lines: string[]
  stop: () => Promise<void>
}

/** `start`: run the node in the foreground until SIGINT or SIGTERM. */
export async function start(dataDir: string, opts: StartOptions, o: Output): Promise<void> {
  await runNode(dataDir, opts, o)
}

/**
 * Run the node in the foreground until SIGINT/SIGTERM: `start`, and `gateway` with its
 * extension. Writes DIR/node.json once the local API listens; on a signal, removes it and
 * stops the MQTT ingestions, the extension, the API and the node, in that order.
 */
export async function runNode(
  dataDir: string,
  opts: StartOptions,
  o: Output,
  extend?: (node: EdgewardNode, ingest: MqttIngestions) => Promise<NodeExtension>,
): Promise<void> {
  // listen for the end from the start: a SIGTERM that comes while the node starts, or the moment
  // node.json appears, stops it cleanly once it has started instead of killing the process
  const stopAsked = new Promise<void>(resolve => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  const config = await import('../config.ts')
  // before anything is written: a usage error is one line
  config.checkMultiaddrs(opts.listen, '--listen')
  config.checkMultiaddrs(opts.bootstrap, '--bootstrap')
  const { EdgewardNode } = await import('../node.ts')
  const { ApiServer: Server } = await import('../api.ts')
  const { MqttIngestions: Ingestions } = await import('../services/mqtt.ts')
  const { hasIdentity } = await import('../identity.ts')
  // without an identity, create() says to run init: no configuration is written there first
  const { config: conf, created } = hasIdentity(dataDir)
    ? await config.loadOrCreateConfig(dataDir)
    : { config: undefined, created: false }
  if (created && conf !== undefined)
    o.err(`${config.configPath(dataDir)} written: this node listens at TCP port ${conf.port} from now on`)
  const listen = conf === undefined ? opts.listen : config.listenAddresses(conf, opts.listen)
  const mdns = conf !== undefined && config.isMdnsOn(conf, opts.noMdns === true)
  const node = await EdgewardNode.create({
    dataDir,
    passphrase: passphrase(),
    listen: listen.length > 0 ? listen : undefined,
    bootstrap: opts.bootstrap,
    ...(mdns ? { network: { mdns: {} } } : {}),
    traversal: {
      relay: opts.relay === true || conf?.relay === true,
      relayVia: opts.relayVia ?? [],
      ...(opts.relayReservations === undefined ? {} : { relayReservations: opts.relayReservations }),
    },
  })
  const ingest = new Ingestions(node)
  let api: ApiServer | undefined
  let extension: NodeExtension | undefined
  const stopAll = async () => {
    await api?.close()
    await ingest.stopAll()
    await extension?.stop()
    await node.stop()
  }
  try {
    await node.start()
    extension = await extend?.(node, ingest)
    api = new Server(node, await ensureApiToken(dataDir), ingest)
    const url = await api.listen(opts.apiPort)
    const info: NodeInfo & Record<string, unknown> = {
      peerId: node.identity.peerId,
      did: node.identity.principal.did,
      addresses: node.addresses(),
      api: url,
      pid: process.pid,
      mdns,
      ...extension?.info,
    }
    // libp2p goes on with IPv4 alone when every IPv6 address fails to listen
    const isIp6 = (a: string) => a.startsWith('/ip6/')
    if (listen.some(isIp6) && !info.addresses.some(isIp6))
      o.err('warning: IPv6 is not available on this machine: listening on IPv4 only')
    await writeFile(`${nodeInfoPath(dataDir)}.tmp`, JSON.stringify(info, null, 2), { mode: 0o600 })
    await rename(`${nodeInfoPath(dataDir)}.tmp`, nodeInfoPath(dataDir))
    if (node.identity.developmentMode) o.err('warning: development mode: private keys are stored unencrypted')
    for (const b of node.unreachableBootstrap)
      o.err(`warning: cannot reach bootstrap peer ${b.address}: ${b.reason} (retrying every few seconds)`)
    print(
      o,
      info,
      [
        `node ${info.peerId} running`,
        `did:  ${info.did}`,
        ...info.addresses.map(a => `listening on ${a}`),
        `api:  ${url}`,
        ...(mdns ? ['finding peers on the LAN by mDNS (--no-mdns: not)'] : []),
        ...(extension?.lines ?? []),
      ].join('\n'),
    )
  } catch (err) {
    await stopAll()
    throw err
  }
  await stopAsked
  await rm(nodeInfoPath(dataDir), { force: true })
  await stopAll()
  o.err('node stopped')
}

/** `status`: the running node's peer, addresses, peers, spaces and audit log. */
export async function status(dataDir: string, o: Output): Promise<void> {
  const s = await (await ApiClient.connect(dataDir)).call<Record<string, any>>('GET', '/v1/status')
  const spaces = (s.spaces as Record<string, any>[])
    .map(sp =>
      sp.synchronised
        ? `  ${sp.id}  ${sp.name}  ${sp.keyHolder ? 'key holder' : 'reader'}  streams: ${sp.streams.join(',') || '-'}  grants: ${sp.grants}  revocations: ${sp.revocations}`
        : `  ${sp.id}  (waiting for a peer of the space)`,
    )
    .join('\n')
  print(
    o,
    s,
    `peer:   ${s.peerId}\ndid:    ${s.did}\naddresses:\n${s.addresses.map((a: string) => `  ${a}`).join('\n')}\nconnected peers: ${s.peers.length}\n${traversalLines(s.traversal).join('')}refused policy changes: ${s.refusedPolicyChanges}\ncached keys: ${s.cachedKeys}\nspaces:\n${spaces || '  (none)'}${s.audit === undefined ? '' : `\n${auditStatusLines(s.audit).join('\n')}`}`,
  )
}

/** The status's relay lines: serving, each reservation with its state, and the public addresses AutoNAT confirmed. */
function traversalLines(t: Record<string, any> | undefined): string[] {
  if (t === undefined) return []
  const lines: string[] = []
  if (t.relay) lines.push('relay: serving peers behind NAT\n')
  for (const r of t.reservations as Record<string, any>[]) {
    const until = r.expiresAt === undefined ? '' : ` until ${new Date(r.expiresAt).toISOString()}`
    lines.push(`relay ${r.relay}: ${r.state}${until}${r.reason === undefined ? '' : ` (${r.reason})`}\n`)
  }
  const pub = t.reachability.public as string[]
  lines.push(
    `reachable directly: ${pub.length > 0 ? pub.join(' ') : 'not confirmed (behind NAT, or not yet checked)'}\n`,
  )
  return lines
}

/** `space create NAME`: create a space this node owns; prints its id. */
export async function spaceCreate(dataDir: string, name: string, o: Output): Promise<void> {
  const r = await (await ApiClient.connect(dataDir)).call('POST', '/v1/spaces', { name })
  print(o, r, String(r.space))
}

/** `space join SPACE`: follow a space (its policy, and its records as allowed). */
export async function spaceJoin(dataDir: string, space: string, o: Output): Promise<void> {
  const r = await (await ApiClient.connect(dataDir)).call('POST', `/v1/spaces/${encodeURIComponent(space)}/join`)
  print(
    o,
    r,
    r.synchronised ? `joined ${space}` : `joined ${space} (its policy arrives when a peer of the space connects)`,
  )
}

/** Publish NDJSON readings from `input` in batches; every batch is stored durably before the next. */
export async function publish(
  dataDir: string,
  space: string,
  stream: string,
  input: NodeJS.ReadableStream,
  o: Output,
): Promise<void> {
  const client = await ApiClient.connect(dataDir)
  const path = `/v1/spaces/${encodeURIComponent(space)}/streams/${encodeURIComponent(stream)}/readings`
  let batch: string[] = []
  let lineNo = 0
  let batchStart = 1
  let total = 0
  const flush = async () => {
    if (batch.length === 0) return
    try {
      const r = await client.call<{ published: number }>('POST', path, batch.join('\n'))
      total += r.published
    } catch (err) {
      // the API numbers lines within the batch; say which line of the input it was
      const m = /^line (\d+): (.*)$/.exec((err as Error).message)
      if (err instanceof UsageError && m) {
        throw new UsageError(
          `line ${batchStart + Number(m[1]) - 1}: ${m[2]} (${total} readings before it were published)`,
        )
      }
      throw err
    }
    batchStart = lineNo + 1
    batch = []
  }
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    lineNo++
    batch.push(line)
    if (batch.length >= 1000) await flush()
  }
  await flush()
  print(o, { published: total }, `published ${total} readings to ${stream}`)
}

/** `stream create SPACE NAME`: create a stream with its epoch length and forms. */
export async function streamCreate(
  dataDir: string,
  space: string,
  name: string,
  opts: { epoch?: string; form: string[]; aggregate: string[] },
  o: Output,
): Promise<void> {
  for (const w of opts.aggregate) {
    if (!isForm(`aggregate:${w}`))
      throw new UsageError(`--aggregate takes a window of 1s to 366d such as 15m, 1h or 7d, got ${w}`)
  }
  // --aggregate adds to the default forms (raw and hashed); --form names them all (raw always)
  const base = opts.form.length > 0 ? opts.form : ['hashed']
  const forms =
    opts.form.length === 0 && opts.aggregate.length === 0 ? [] : [...base, ...opts.aggregate.map(w => `aggregate:${w}`)]
  const r = await (await ApiClient.connect(dataDir)).call('POST', `/v1/spaces/${encodeURIComponent(space)}/streams`, {
    name,
    epochMs: opts.epoch === undefined ? undefined : parseDuration(opts.epoch),
    forms: forms.length > 0 ? forms : undefined,
  })
  print(
    o,
    r,
    `stream ${r.stream}: forms ${(r.forms as string[]).join(', ')}; epochs of ${Math.round((r.epochMs as number) / 60_000)} min`,
  )
}

/** `retention SPACE STREAM`: how long this peer keeps the records of a stream. */
export async function retention(
  dataDir: string,
  space: string,
  stream: string,
  opts: { maxAge?: string; maxCount?: string },
  o: Output,
): Promise<void> {
  let maxCount: number | undefined
  if (opts.maxCount !== undefined) {
    maxCount = /^[1-9]\d*$/.test(opts.maxCount) ? Number(opts.maxCount) : Number.NaN
    if (!Number.isSafeInteger(maxCount)) throw new UsageError('--max-count must be a positive whole number')
  }
  const set = opts.maxAge !== undefined || maxCount !== undefined
  const r = await (await ApiClient.connect(dataDir)).call(
    set ? 'PUT' : 'GET',
    `/v1/spaces/${encodeURIComponent(space)}/streams/${encodeURIComponent(stream)}/retention`,
    set ? { maxAgeMs: opts.maxAge === undefined ? undefined : parseDuration(opts.maxAge), maxCount } : undefined,
  )
  const k = r.retention as { maxAgeMs?: number; maxCount?: number } | null
  const human =
    k === null
      ? `${stream}: everything is kept`
      : `${stream}: ${[k.maxAgeMs === undefined ? '' : `at most ${Math.round(k.maxAgeMs / 60_000)} min old`, k.maxCount === undefined ? '' : `at most ${k.maxCount} records per form`].filter(x => x !== '').join(', ')}`
  print(o, r, human)
}

/** `read SPACE STREAM`: the decrypted readings as NDJSON (or a viewer file under --no-download). */
export async function read(
  dataDir: string,
  space: string,
  stream: string,
  opts: { since?: string; follow: boolean; form?: string },
  o: Output,
): Promise<void> {
  let since = 0
  if (opts.since !== undefined) {
    since = /^\d+$/.test(opts.since) ? Number(opts.since) : Number.NaN
    if (!Number.isSafeInteger(since))
      throw new UsageError(`--since must be a time in ms since the epoch, got ${opts.since}`)
  }
  const client = await ApiClient.connect(dataDir)
  const q = `since=${since}${opts.follow ? '&follow=1' : ''}${opts.form === undefined ? '' : `&form=${encodeURIComponent(opts.form)}`}`
  for await (const line of client.lines(
    `/v1/spaces/${encodeURIComponent(space)}/streams/${encodeURIComponent(stream)}/readings?${q}`,
  )) {
    if (typeof line.viewer === 'string') {
      // the grant forbids download: the node wrote the readings to a viewer file instead
      print(o, line, `viewer: ${line.viewer}\nuntil:  ${line.until}\nreadings: ${line.count}`)
      return
    }
    o.out(JSON.stringify({ ts: line.ts, value: line.value, seq: line.seq, epoch: line.epoch }))
  }
}
