#!/usr/bin/env node
/**
 * `edgeward`: the command line. Exit codes: 0 success, 1 error, 2 bad usage, 3 access refused.
 * User-facing output goes to stdout, diagnostics to stderr; stack traces only with --verbose.
 */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { AbortError, DialError, TimeoutError } from '@libp2p/interface'
import { InvalidDidError } from '../../crypto/errors.ts'
import { ID_PATTERN } from '../../protocols/validate.ts'
import { AccessRefusedError, UsageError } from '../errors.ts'
import * as cmd from './commands.ts'
import type { Output } from './output.ts'
import * as policy from './policy-commands.ts'

const HELP = `edgeward — edge-first data governance on a peer-to-peer network

usage: edgeward <command> [options]

commands:
  init [--force]                         create the identity and the data directory
  start [--listen MA]... [--bootstrap MA]... [--api-port N] [--no-mdns]
                                         run the node in the foreground until SIGINT/SIGTERM; it listens on
                                         every interface (IPv4 and IPv6) at the port init chose (DIR/config.json),
                                         or on --listen; finds peers on the LAN by mDNS unless --no-mdns
    [--relay [--relay-max-reservations N]] [--relay-via MA]...
                                         --relay: serve as a circuit relay for peers behind NAT (128 slots of
                                         1 h; a relayed connection carries 16 MiB for 10 min at most);
                                         --relay-via: reserve a slot on that relay (/…/p2p/PEER), so that
                                         peers reach this node through it (status shows the reservation)
  gateway [start options] [--mqtt-port N] [--space NAME]
                                         start, with an MQTT broker (3.1.1) on 127.0.0.1:N (default 1883,
                                         0: any free port); with --space, every topic (STREAM or .../STREAM)
                                         is ingested into the space of that name (created if this node owns none)
  status                                 peer id, did, addresses, connected peers, spaces
  space create NAME                      create a space owned by this node; prints its id
  space join SPACE_ID                    join a space as a reader
  invite SPACE [--for DURATION] [--uses N] [--stream S]... [--access DURATION] [--no-download]
                                         an invite code (ew1-…) to pass on: the space (by name or id), this
                                         node's addresses, valid --for (default 7d) and --uses times (default
                                         1); with --stream (owner or admin), it grants those streams for
                                         --access (default 7d) from joining
  join INVITE                            join the space of an invite code: dial the inviter, redeem it, wait
                                         until the space has synchronised; prints its name, owner and access
  stream create SPACE NAME [--epoch DURATION] [--form hashed]... [--aggregate WINDOW]...
                                         define a stream: its key epochs (default 1h) and the forms the
                                         gateway produces (raw always; hashed by default; aggregate:15m ...)
  ingest SPACE --mqtt URL --topic PATTERN [--map STREAM=TOPIC]... [--mqtt-version 4|5]
                                         have the running node subscribe (QoS 1) and store each message as a
                                         reading (stream: the topic's last level, or --map); acknowledged to
                                         the broker once stored; progress every second until Ctrl-C
  retention SPACE STREAM [--max-age DURATION] [--max-count N]
                                         how much of a stream this peer keeps (shows it without options)
  publish SPACE STREAM                   publish NDJSON readings {"ts": <ms>, "value": <number|object>} from stdin
  grant SPACE --to DID (--for DURATION | --until TIME) [--from TIME] [--stream S|PREFIX*]... [--form F]...
        [--data-from TIME] [--data-until TIME] [--no-download] [--forward never|ask-owner|allowed]
        [--device PEER]... [--max-releases N] [--purpose TEXT] [--parent GRANT] [--contribute]
                                         grant access; prints the grant id and its end. --contribute: DID may
                                         share files and messages, and publish streams named m-…, of its own
                                         into the space (their keys go to the custodians, so it needs them),
                                         and grant people access to them
  revoke SPACE (--grant ID | --subject DID | --device PEER | --delegation ID) [--reason TEXT]
                                         revoke a grant, every grant of a subject, a device, or an admin
  grants SPACE                           every grant with its state (active, expired, revoked, pending) and why
  delegate SPACE --to DID [--stream S]... (--for DURATION | --until TIME)
                                         make DID an admin who may grant and revoke on those streams
  custody SPACE [--custodian PEER --custodian PEER... --threshold K]
                                         the space's custodians: k of them together release a key while the
                                         key holder is offline, fewer learn nothing; with options (owner),
                                         names them (each must be reachable) for keys made from now on
  request SPACE --for DURATION --reason TEXT [--stream S]... [--form F]... [--on-behalf-of DID --via GRANT]
                                         ask the owner for access (or, holding an ask-owner grant, for someone else)
  requests SPACE                         access requests with their outcome (pending, approved, denied)
  approve SPACE REQUEST [--for DURATION] [--stream S]... [--readmit]
                                         grant what a request asks for, or only the streams named
                                         (--readmit: a revoked subject)
  deny SPACE REQUEST --reason TEXT       refuse a request, with a reason the requester sees
  read SPACE STREAM [--since MS] [--follow] [--form F]
                                         decrypted readings (of form F, default raw) as NDJSON; exit 3 when refused;
                                         a view-only grant (--no-download) gives the path of a viewer file instead,
                                         removed when the lease ends or a revocation arrives (no --follow)
  audit report SPACE [--subject DID] [--resource STREAM] [--from T] [--until T] --out FILE
                                         on the key holder: entries with inclusion proofs against a
                                         signed tree head, and who held a key for how long; with
                                         custodians, each one's entries against its own head (those
                                         that do not answer named) and who held k shares for how long
  audit verify FILE [--space ID] [--owner DID]
                                         check a report offline, every log in it; prints the space, owner
                                         and key holder it vouches for; exit 1 naming the first failure
                                         or a mismatch
  share SPACE FILE --to DID [--to DID]... [--for DURATION] [--no-download] [--forward never|ask-owner|allowed]
                                         store FILE as an object (encrypted here, in chunks) and grant DID
                                         (default for 7d); prints the object and grant ids
  message SPACE --to DID [--to DID]... [--for DURATION] TEXT
                                         send a short message to DID the same way
  open SPACE OBJECT [--out FILE]         the object's plaintext (to stdout or FILE) once verified against
                                         its manifest; when the grant forbids download, the path of a viewer
                                         file and when it is deleted; exit 3 when refused
  access SPACE OBJECT                    who holds or asked for access: grants, requests, key releases
  inbox                                  everything shared with you across spaces (files, messages, streams),
                                         newest first, with its state (active, expired, revoked, requested...)
  contacts                               the names you gave people
  contact set DID NAME | contact remove DID
                                         name someone (with your own did: the name you go by, which your invitations carry)
  demo                                   run a local network of real peers and tell the story
  ui [--no-open] [start options]         the desktop client: attaches to the node running on DIR, or runs one
                                         in the foreground as start does (until Ctrl-C); opens a one-time
                                         login link (one session, 2 minutes) in an app window of Chromium or
                                         Chrome, else the default browser ($BROWSER, xdg-open), and prints it

options for every command:
  --data DIR     data directory (default ~/.edgeward)
  --json         machine-readable output on stdout
  --verbose      stack traces on errors
  -h, --help     this help

environment:
  EDGEWARD_PASSPHRASE   encrypts the private keys at rest (without it: development mode, with a warning)

exit codes: 0 success, 1 error, 2 bad usage, 3 access refused
`

const OPTIONS = {
  data: { type: 'string' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  force: { type: 'boolean', default: false },
  listen: { type: 'string', multiple: true, default: [] as string[] },
  bootstrap: { type: 'string', multiple: true, default: [] as string[] },
  'api-port': { type: 'string' },
  'mqtt-port': { type: 'string' },
  mqtt: { type: 'string' },
  topic: { type: 'string' },
  map: { type: 'string', multiple: true, default: [] as string[] },
  'mqtt-version': { type: 'string' },
  to: { type: 'string', multiple: true, default: [] as string[] },
  stream: { type: 'string', multiple: true, default: [] as string[] },
  for: { type: 'string' },
  until: { type: 'string' },
  grant: { type: 'string' },
  subject: { type: 'string' },
  since: { type: 'string' },
  form: { type: 'string', multiple: true, default: [] as string[] },
  'data-from': { type: 'string' },
  'data-until': { type: 'string' },
  'no-download': { type: 'boolean', default: false },
  forward: { type: 'string' },
  device: { type: 'string', multiple: true, default: [] as string[] },
  'max-releases': { type: 'string' },
  purpose: { type: 'string' },
  parent: { type: 'string' },
  delegation: { type: 'string' },
  reason: { type: 'string' },
  'on-behalf-of': { type: 'string' },
  via: { type: 'string' },
  epoch: { type: 'string' },
  aggregate: { type: 'string', multiple: true, default: [] as string[] },
  'max-age': { type: 'string' },
  'max-count': { type: 'string' },
  follow: { type: 'boolean', default: false },
  readmit: { type: 'boolean', default: false },
  keep: { type: 'boolean', default: false },
  resource: { type: 'string' },
  from: { type: 'string' },
  out: { type: 'string' },
  space: { type: 'string' },
  owner: { type: 'string' },
  'no-open': { type: 'boolean', default: false },
  'no-mdns': { type: 'boolean', default: false },
  relay: { type: 'boolean', default: false },
  'relay-via': { type: 'string', multiple: true, default: [] as string[] },
  'relay-max-reservations': { type: 'string' },
  uses: { type: 'string' },
  access: { type: 'string' },
  custodian: { type: 'string', multiple: true, default: [] as string[] },
  contribute: { type: 'boolean', default: false },
  threshold: { type: 'string' },
} satisfies ParseArgsConfig['options']

/** The options of a running node about NAT: serving as a relay, reserving a slot on one. */
const RELAY_OPTIONS = ['relay', 'relay-via', 'relay-max-reservations'] as const

/** Which options each command takes, beyond --data, --json, --verbose and --help. */
const ALLOWED = {
  init: ['force'],
  start: ['listen', 'bootstrap', 'api-port', 'no-mdns', ...RELAY_OPTIONS],
  gateway: ['listen', 'bootstrap', 'api-port', 'no-mdns', ...RELAY_OPTIONS, 'mqtt-port', 'space'],
  ingest: ['mqtt', 'topic', 'map', 'mqtt-version'],
  status: [],
  space: [],
  publish: [],
  grant: [
    'to',
    'stream',
    'form',
    'for',
    'from',
    'until',
    'data-from',
    'data-until',
    'no-download',
    'forward',
    'device',
    'max-releases',
    'purpose',
    'parent',
    'contribute',
  ],
  revoke: ['grant', 'subject', 'device', 'delegation', 'reason'],
  grants: [],
  delegate: ['to', 'stream', 'for', 'from', 'until'],
  custody: ['custodian', 'threshold'],
  request: ['stream', 'form', 'for', 'reason', 'on-behalf-of', 'via'],
  requests: [],
  approve: ['for', 'readmit', 'stream'],
  deny: ['reason'],
  read: ['since', 'follow', 'form'],
  share: ['to', 'for', 'no-download', 'forward'],
  message: ['to', 'for'],
  open: ['out'],
  access: [],
  inbox: [],
  contacts: [],
  contact: [],
  stream: ['epoch', 'form', 'aggregate'],
  retention: ['max-age', 'max-count'],
  demo: ['keep'],
  ui: ['no-open', 'listen', 'bootstrap', 'api-port', 'no-mdns', ...RELAY_OPTIONS],
  invite: ['for', 'uses', 'stream', 'access', 'no-download'],
  join: [],
  audit: ['subject', 'resource', 'from', 'until', 'out', 'space', 'owner'],
} as const satisfies Record<string, readonly (keyof typeof OPTIONS)[]>

/** `max-releases` as a command's options name it: `maxReleases`. */
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S

/** The values of the options `keys`, named as the command's function takes them (`--max-releases` as `maxReleases`). */
function optionsOf<V, K extends keyof V & string>(values: V, keys: readonly K[]): { [P in K as CamelCase<P>]: V[P] } {
  return Object.fromEntries(keys.map(k => [k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), values[k]])) as {
    [P in K as CamelCase<P>]: V[P]
  }
}

function port(value: string | undefined, fallback: number, name: string): number {
  const n = value === undefined ? fallback : Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${name} must be a port number`)
  return n
}

/** --relay, --relay-max-reservations and --relay-via (the node checks each relay's address as it starts). */
function relayOptions(v: { relay: boolean; 'relay-via': string[]; 'relay-max-reservations'?: string }): {
  relay: boolean
  relayVia: string[]
  relayReservations?: number
} {
  const max = v['relay-max-reservations']
  if (max === undefined) return { relay: v.relay, relayVia: v['relay-via'] }
  if (!v.relay) throw new UsageError('--relay-max-reservations needs --relay')
  const n = /^[1-9]\d{0,5}$/.test(max) ? Number(max) : Number.NaN
  if (!Number.isSafeInteger(n)) throw new UsageError('--relay-max-reservations must be a whole number from 1')
  return { relay: v.relay, relayVia: v['relay-via'], relayReservations: n }
}

function positionals(list: string[], count: number, usage: string): string[] {
  if (list.length !== count) throw new UsageError(`usage: edgeward ${usage}`)
  if (list.some(a => a === '')) throw new UsageError(`an argument is empty: usage: edgeward ${usage}`)
  return list
}

/** positionals() whose first is SPACE. */
/** The value of an option that takes one value, though the parser lets it repeat (as `--to` does for share). */
function one(values: string[], flag: string, command: string): string | undefined {
  if (values.length > 1) throw new UsageError(`${command} takes one ${flag} (got ${values.length})`)
  return values[0]
}

function withSpace(list: string[], count: number, usage: string): string[] {
  const args = positionals(list, count, usage)
  spaceId(args[0])
  return args
}

/** A SPACE argument: the space's id as `space create` printed it. */
function spaceId(text: string): string {
  if (!ID_PATTERN.test(text))
    throw new UsageError(`not a space id: ${JSON.stringify(text)} (64 hex characters, as \`space create\` prints)`)
  return text
}

/**
 * `--for -5h`, `--max-releases -1`: an option's value that starts with a dash is taken as
 * `--for=-5h`, so that the command's own check refuses it in one line (parseArgs would
 * take it for an option and answer with three lines of its own).
 */
function joinDashValues(argv: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const option = a.startsWith('--') ? OPTIONS[a.slice(2) as keyof typeof OPTIONS] : undefined
    const next = argv[i + 1]
    if (option?.type === 'string' && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${a}=${next}`)
      i++
    } else out.push(a)
  }
  return out
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; args: string[] }>>
  try {
    parsed = parseArgs({ args: joinDashValues(argv), options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const v = parsed.values
  const [command, ...rest] = parsed.positionals
  running = command
  if (v.help || command === undefined || command === 'help') {
    process.stdout.write(HELP)
    return command === undefined && !v.help ? 2 : 0
  }
  const allowed: readonly string[] | undefined = (ALLOWED as Record<string, readonly string[]>)[command]
  if (allowed === undefined) throw new UsageError(`unknown command ${command} (see edgeward --help)`)
  for (const key of Object.keys(v)) {
    if (['data', 'json', 'verbose', 'help'].includes(key)) continue
    const value = v[key as keyof typeof v]
    const isSet = Array.isArray(value) ? value.length > 0 : value !== undefined && value !== false
    if (isSet && !allowed.includes(key)) throw new UsageError(`${command} does not take --${key}`)
  }
  const dataDir = resolve(v.data ?? join(homedir(), '.edgeward'))
  const o: Output = {
    json: v.json,
    // once a reader closed the pipe (see onBrokenPipe), what is left to say goes nowhere
    out: line => void (closed.has(process.stdout) || process.stdout.write(`${line}\n`)),
    err: line => void (closed.has(process.stderr) || process.stderr.write(`${line}\n`)),
  }
  switch (command) {
    case 'init':
      positionals(rest, 0, 'init [--force]')
      await cmd.init(dataDir, v.force, o)
      return 0
    case 'start': {
      positionals(rest, 0, 'start [--listen MA] [--bootstrap MA] [--api-port N]')
      const apiPort = port(v['api-port'], 0, '--api-port')
      await cmd.start(
        dataDir,
        { listen: v.listen, bootstrap: v.bootstrap, apiPort, noMdns: v['no-mdns'], ...relayOptions(v) },
        o,
      )
      return 0
    }
    case 'gateway': {
      positionals(rest, 0, 'gateway [--listen MA] [--bootstrap MA] [--api-port N] [--mqtt-port N] [--space NAME]')
      const { gateway } = await import('./ingest.ts')
      const opts = {
        listen: v.listen,
        bootstrap: v.bootstrap,
        apiPort: port(v['api-port'], 0, '--api-port'),
        noMdns: v['no-mdns'],
        ...relayOptions(v),
        mqttPort: port(v['mqtt-port'], 1883, '--mqtt-port'),
      }
      await gateway(dataDir, v.space === undefined ? opts : { ...opts, space: v.space }, o)
      return 0
    }
    case 'ingest': {
      const [space] = withSpace(
        rest,
        1,
        'ingest SPACE --mqtt URL --topic PATTERN [--map STREAM=TOPIC]... [--mqtt-version 4|5]',
      )
      const { ingest } = await import('./ingest.ts')
      await ingest(dataDir, space, { mqtt: v.mqtt, topic: v.topic, map: v.map, version: v['mqtt-version'] }, o)
      return 0
    }
    case 'status':
      positionals(rest, 0, 'status')
      await cmd.status(dataDir, o)
      return 0
    case 'space': {
      const [sub, arg] = positionals(rest, 2, 'space (create NAME | join SPACE_ID)')
      if (sub === 'create') await cmd.spaceCreate(dataDir, arg, o)
      else if (sub === 'join') await cmd.spaceJoin(dataDir, spaceId(arg), o)
      else throw new UsageError('usage: edgeward space (create NAME | join SPACE_ID)')
      return 0
    }
    case 'invite': {
      const [space] = positionals(
        rest,
        1,
        'invite SPACE [--for DURATION] [--uses N] [--stream S]... [--access DURATION] [--no-download]',
      )
      const invites = await import('./invites.ts')
      await invites.invite(dataDir, space, optionsOf(v, ALLOWED.invite), o)
      return 0
    }
    case 'join': {
      const [code] = positionals(rest, 1, 'join INVITE')
      const invites = await import('./invites.ts')
      await invites.join(dataDir, code, o)
      return 0
    }
    case 'stream': {
      const [sub, space, name] = positionals(
        rest,
        3,
        'stream create SPACE NAME [--epoch DURATION] [--aggregate WINDOW]...',
      )
      if (sub !== 'create') throw new UsageError('usage: edgeward stream create SPACE NAME')
      await cmd.streamCreate(dataDir, spaceId(space), name, optionsOf(v, ALLOWED.stream), o)
      return 0
    }
    case 'retention': {
      const [space, stream] = withSpace(rest, 2, 'retention SPACE STREAM [--max-age DURATION] [--max-count N]')
      await cmd.retention(dataDir, space, stream, optionsOf(v, ALLOWED.retention), o)
      return 0
    }
    case 'publish': {
      const [space, stream] = withSpace(rest, 2, 'publish SPACE STREAM < readings.ndjson')
      await cmd.publish(dataDir, space, stream, process.stdin, o)
      return 0
    }
    case 'grant': {
      const [space] = withSpace(rest, 1, 'grant SPACE --to DID (--for DURATION | --until TIME) [options]')
      await policy.grant(dataDir, space, { ...optionsOf(v, ALLOWED.grant), to: one(v.to, '--to', 'grant') }, o)
      return 0
    }
    case 'revoke': {
      const [space] = withSpace(rest, 1, 'revoke SPACE (--grant ID | --subject DID | --device PEER | --delegation ID)')
      await policy.revoke(dataDir, space, optionsOf(v, ALLOWED.revoke), o)
      return 0
    }
    case 'grants': {
      const [space] = withSpace(rest, 1, 'grants SPACE')
      await policy.grants(dataDir, space, o)
      return 0
    }
    case 'delegate': {
      const [space] = withSpace(rest, 1, 'delegate SPACE --to DID [--stream S]... (--for DURATION | --until TIME)')
      await policy.delegate(dataDir, space, { ...optionsOf(v, ALLOWED.delegate), to: one(v.to, '--to', 'delegate') }, o)
      return 0
    }
    case 'custody': {
      const [space] = withSpace(rest, 1, 'custody SPACE [--custodian PEER --custodian PEER... --threshold K]')
      await policy.custody(dataDir, space, optionsOf(v, ALLOWED.custody), o)
      return 0
    }
    case 'request': {
      const [space] = withSpace(rest, 1, 'request SPACE --for DURATION --reason TEXT [--stream S]...')
      await policy.request(dataDir, space, optionsOf(v, ALLOWED.request), o)
      return 0
    }
    case 'requests': {
      const [space] = withSpace(rest, 1, 'requests SPACE')
      await policy.requests(dataDir, space, o)
      return 0
    }
    case 'approve':
    case 'deny': {
      const [space, id] = withSpace(rest, 2, `${command} SPACE REQUEST`)
      await policy.decide(
        dataDir,
        space,
        id,
        command === 'approve',
        { for: v.for, reason: v.reason, readmit: v.readmit, stream: v.stream },
        o,
      )
      return 0
    }
    case 'share': {
      const [space, file] = withSpace(
        rest,
        2,
        'share SPACE FILE --to DID [--to DID]... [--for DURATION] [--no-download]',
      )
      const objects = await import('./objects.ts')
      await objects.share(dataDir, space, resolve(file), optionsOf(v, ALLOWED.share), o)
      return 0
    }
    case 'message': {
      if (rest.length < 2)
        throw new UsageError('usage: edgeward message SPACE --to DID [--to DID]... [--for DURATION] TEXT')
      const objects = await import('./objects.ts')
      await objects.message(dataDir, spaceId(rest[0]), rest.slice(1).join(' '), optionsOf(v, ALLOWED.message), o)
      return 0
    }
    case 'contacts':
    case 'contact': {
      const objects = await import('./objects.ts')
      await objects.contacts(dataDir, command === 'contacts' ? ['list', ...rest] : rest, o)
      return 0
    }
    case 'inbox': {
      if (rest.length > 0) throw new UsageError('usage: edgeward inbox')
      const objects = await import('./objects.ts')
      await objects.inbox(dataDir, o)
      return 0
    }
    case 'open': {
      const [space, object] = withSpace(rest, 2, 'open SPACE OBJECT [--out FILE]')
      const objects = await import('./objects.ts')
      await objects.open(
        dataDir,
        space,
        object,
        { out: v.out === undefined ? undefined : resolve(v.out) },
        o,
        process.stdout,
      )
      return 0
    }
    case 'access': {
      const [space, object] = withSpace(rest, 2, 'access SPACE OBJECT')
      const objects = await import('./objects.ts')
      await objects.access(dataDir, space, object, o)
      return 0
    }
    case 'read': {
      const [space, stream] = withSpace(rest, 2, 'read SPACE STREAM [--since MS] [--follow]')
      if (v.form.length > 1) throw new UsageError('read takes one --form')
      await cmd.read(dataDir, space, stream, { since: v.since, follow: v.follow, form: v.form[0] }, o)
      return 0
    }
    case 'audit': {
      const { auditReport, auditVerify } = await import('./audit.ts')
      const [sub, arg] = positionals(rest, 2, 'audit (report SPACE --out FILE | verify FILE)')
      if (sub === 'report') {
        await auditReport(
          dataDir,
          spaceId(arg),
          { subject: v.subject, resource: v.resource, from: v.from, until: v.until, out: v.out },
          o,
        )
      } else if (sub === 'verify') {
        await auditVerify(arg, { space: v.space, owner: v.owner }, o)
      } else {
        throw new UsageError('usage: edgeward audit (report SPACE --out FILE | verify FILE)')
      }
      return 0
    }
    case 'ui': {
      positionals(rest, 0, 'ui [--no-open] [--listen MA] [--bootstrap MA] [--api-port N]')
      const { ui } = await import('./ui.ts')
      const apiPort = port(v['api-port'], 0, '--api-port')
      await ui(
        dataDir,
        {
          listen: v.listen,
          bootstrap: v.bootstrap,
          apiPort,
          noMdns: v['no-mdns'],
          ...relayOptions(v),
          open: !v['no-open'],
        },
        o,
      )
      return 0
    }
    case 'demo': {
      positionals(rest, 0, 'demo')
      const { runDemo } = await import('./demo.ts')
      await runDemo({ keep: v.keep, json: v.json })
      return 0
    }
  }
  throw new UsageError(`unknown command ${command}`)
}

const EXIT: Record<string, number> = { [UsageError.name]: 2, [AccessRefusedError.name]: 3, [InvalidDidError.name]: 2 }

/** the command main() runs, once its arguments parsed */
let running: string | undefined
/** stdout and stderr, once closed by their reader */
const closed = new Set<NodeJS.WritableStream>()

/**
 * Our output closed by its reader (`edgeward read … | head`) is not a failure: a command ends
 * quietly, with exit code 0; `ingest` stops as on Ctrl-C, so that the node ends that ingestion;
 * a node (start, gateway, demo) keeps running, as it writes to stdout only when it starts.
 */
function onBrokenPipe(stream: NodeJS.WritableStream, err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPIPE') throw err
  // each write to a closed pipe fails again: the first failure decides
  if (closed.size > 0) {
    closed.add(stream)
    return
  }
  closed.add(stream)
  if (running === 'start' || running === 'gateway' || running === 'demo' || running === 'ui') return
  if (running === 'ingest') process.kill(process.pid, 'SIGINT')
  else process.exit(0)
}
process.stdout.on('error', err => onBrokenPipe(process.stdout, err))
process.stderr.on('error', err => onBrokenPipe(process.stderr, err))

const verbose = process.argv.includes('--verbose')

// A running node must not die of a network failure that a library leaves unhandled in the
// background (libp2p's dial queue can reject a dial nobody waits for): say so on stderr, go on.
const longRunning = process.argv.slice(2).some(a => ['start', 'gateway', 'demo', 'ingest', 'ui'].includes(a))
/**
 * Failures of a dial that libp2p can surface outside any caller; anything else still ends the
 * process. libp2p does not export its NoValidAddressesError, so that one is named by its string.
 */
const BACKGROUND_DIAL_FAILURES = new Set(['NoValidAddressesError', DialError.name, AbortError.name, TimeoutError.name])
if (longRunning) {
  process.on('unhandledRejection', err => {
    process.stderr.write(`edgeward: warning: unhandled background failure: ${(err as Error)?.message ?? String(err)}\n`)
  })
  process.on('uncaughtException', err => {
    if (!BACKGROUND_DIAL_FAILURES.has(err.name)) throw err
    process.stderr.write(`edgeward: warning: background dial failure: ${err.message}\n`)
  })
}
main(process.argv.slice(2)).then(
  code => {
    process.exitCode = code
  },
  (thrown: unknown) => {
    const err = thrown instanceof Error ? thrown : new Error(String(thrown))
    const prefix = err.name === AccessRefusedError.name ? 'refused' : 'error'
    // one line, whatever a library put in its message
    const message = err.message.trim().replace(/\s*\n\s*/g, ' ')
    if (!closed.has(process.stderr)) process.stderr.write(`edgeward: ${prefix}: ${message}\n`)
    if (verbose) process.stderr.write(`${err.stack}\n`)
    process.exitCode = EXIT[err.name] ?? 1
  },
)
