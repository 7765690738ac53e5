/**
 * Whether this node is fine, from what its API already reports (`GET /v1/status` and the
 * Prometheus text of `GET /metrics`). The node decides and the client only shows: this is
 * where "fine", "needs attention" and "trouble" are defined. Pure: same input, same answer.
 */
import type {
  CheckId,
  CheckState,
  ClientState,
  CounterView,
  Health,
  HealthCheck,
  IdentityView,
  PeerView,
  SpaceRole,
  SpaceView,
} from './contract.ts'

/** The fields of `GET /v1/status` this module reads (node/api.ts `status()`). */
export interface NodeStatus {
  peerId: string
  did: string
  developmentMode: boolean
  addresses: string[]
  peers: string[]
  refusedPolicyChanges: number
  spaces: {
    id: string
    synchronised: boolean
    name?: string
    keyHolder?: boolean
    owner?: string
    role?: SpaceRole
    streams?: string[]
    /** the space's key holders (peer ids) and whether this node is connected to each */
    holders?: { peer: string; connected: boolean }[]
    /** the custodian set in force: any `threshold` of the custodians release a key when no key holder answers */
    custody?: { threshold: number; custodians: { peer: string; did?: string; connected: boolean }[] }
    /** this node may share files and messages into the space */
    mayShare?: boolean
  }[]
  audit?: {
    equivocations: { log: string; reason: string; seenAt: number }[]
    unverifiable: { log: string; acceptedSize: number; uncheckedSize: number; tries: number; since: number }[]
  }
}

/** One metric of the Prometheus text: its help line and its series. */
export interface Metric {
  name: string
  help: string
  series: { labels: string; value: number }[]
}

/** Parse the text `GET /metrics` answers (the format node/metrics.ts writes). */
export function parsePrometheus(text: string): Map<string, Metric> {
  const out = new Map<string, Metric>()
  const metric = (name: string): Metric => {
    let m = out.get(name)
    if (m === undefined) {
      m = { name, help: '', series: [] }
      out.set(name, m)
    }
    return m
  }
  for (const line of text.split('\n')) {
    const help = /^# HELP (\S+) (.*)$/.exec(line)
    if (help !== null) {
      metric(help[1]).help = help[2]
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const sample = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (sample === null) continue
    const value = Number(sample[3])
    if (Number.isFinite(value)) metric(sample[1]).series.push({ labels: sample[2] ?? '', value })
  }
  return out
}

const short = (id: string): string => (id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id)
const spaceName = (s: NodeStatus['spaces'][number]): string => s.name ?? `space ${short(s.id)}`
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

/** What each check is called on the screen. */
const TITLES: Record<CheckId, string> = {
  peers: 'Peers',
  spaces: 'Spaces',
  'key-holders': 'Key holders',
  equivocations: 'Audit logs agree',
  'audit-logs': 'Audit logs checked',
  'refused-changes': 'Refused changes',
}

/** A check with its title, in the field order the API answers. */
function check(id: CheckId, state: CheckState, summary: string, details: string[] = []): HealthCheck {
  return { id, title: TITLES[id], state, summary, details }
}

function peersCheck(s: NodeStatus): HealthCheck {
  const n = s.peers.length
  if (n > 0)
    return check(
      'peers',
      'ok',
      `${plural(n, 'peer')} connected.`,
      s.peers.map(p => `connected: ${p}`),
    )
  if (s.spaces.length === 0)
    return check('peers', 'ok', 'No peer connected, and this node is in no space yet: nothing to exchange.')
  return check('peers', 'attention', 'No peer connected: changes and readings wait here until one connects.')
}

function spacesCheck(s: NodeStatus): HealthCheck {
  const waiting = s.spaces.filter(sp => !sp.synchronised)
  if (s.spaces.length === 0) return check('spaces', 'ok', 'This node is in no space yet.')
  const details = s.spaces.map(sp => `${spaceName(sp)}: ${sp.synchronised ? 'policy here' : 'waiting for a peer'}`)
  if (waiting.length === 0)
    return check('spaces', 'ok', `${plural(s.spaces.length, 'space')}, each with its policy here.`, details)
  return check(
    'spaces',
    'attention',
    `${plural(waiting.length, 'space')} waiting for a peer that has the space's policy.`,
    details,
  )
}

/** How many of a space's custodians are connected, and whether that is enough to release a key. */
function custodiansConnected(sp: NodeStatus['spaces'][number]): { connected: number; enough: boolean } | undefined {
  if (sp.custody === undefined) return undefined
  const connected = sp.custody.custodians.filter(c => c.connected).length
  return { connected, enough: connected >= sp.custody.threshold }
}

/**
 * Reachability of each space's key holder, or of enough of its custodians to release a key
 * without it. `/v1/status` says whether this node holds a space's keys, not always which peer
 * does, so for a space held elsewhere the answer may be unknown (said plainly rather than
 * guessed from the number of peers).
 */
function keyHoldersCheck(s: NodeStatus): HealthCheck {
  const synced = s.spaces.filter(sp => sp.synchronised)
  const elsewhere = synced.filter(sp => sp.keyHolder !== true)
  const holderReachable = (sp: NodeStatus['spaces'][number]): boolean | undefined =>
    sp.holders === undefined ? undefined : sp.holders.some(h => h.connected)
  // a space's keys are in reach when a key holder is connected, or k of its custodians are
  const reachable = (sp: NodeStatus['spaces'][number]): boolean | undefined =>
    holderReachable(sp) === true || custodiansConnected(sp)?.enough === true ? true : holderReachable(sp)
  const custodyWords = (sp: NodeStatus['spaces'][number]): string => {
    const c = custodiansConnected(sp)
    if (c === undefined || sp.custody === undefined) return ''
    return `; ${c.connected} of ${sp.custody.custodians.length} custodians connected (${sp.custody.threshold} release a key)`
  }
  const details = synced.map(sp => {
    const held =
      sp.keyHolder === true
        ? 'this node holds the keys'
        : holderReachable(sp) === true
          ? 'key holder connected'
          : holderReachable(sp) === false
            ? `no key holder connected (${(sp.holders ?? []).map(h => short(h.peer)).join(', ')})`
            : 'held by another peer'
    return `${spaceName(sp)}: ${held}${custodyWords(sp)}`
  })
  if (elsewhere.length === 0) {
    const summary =
      synced.length === 0 ? 'No space whose keys are needed yet.' : 'This node holds the keys of its spaces.'
    return check('key-holders', 'ok', summary, details)
  }
  const cut = elsewhere.filter(sp => reachable(sp) === false)
  if (cut.length > 0)
    return check(
      'key-holders',
      'attention',
      `No key holder of ${plural(cut.length, 'space')} is connected${cut.some(sp => sp.custody !== undefined) ? ', nor enough custodians' : ''}: what you hold keys for stays readable until the keys' leases end; nothing new opens.`,
      details,
    )
  if (elsewhere.every(sp => reachable(sp) === true))
    return check(
      'key-holders',
      'ok',
      elsewhere.some(sp => holderReachable(sp) !== true)
        ? 'A key holder, or enough custodians to release keys, of every space is connected.'
        : 'A key holder of every space is connected.',
      details,
    )
  return check(
    'key-holders',
    'unknown',
    `Not known yet whether the key holder of ${plural(elsewhere.length, 'space')} is reachable.`,
    details,
  )
}

function equivocationsCheck(s: NodeStatus): HealthCheck {
  const ev = s.audit?.equivocations ?? []
  const details = ev.map(e => `log ${short(e.log)} at ${new Date(e.seenAt).toISOString()}: ${e.reason}`)
  if (ev.length === 0)
    return check('equivocations', 'ok', 'No evidence that a key holder showed two different histories.', details)
  return check(
    'equivocations',
    'trouble',
    `Evidence that ${plural(ev.length, 'audit log')} showed two histories that cannot both be true.`,
    details,
  )
}

function auditLogsCheck(s: NodeStatus): HealthCheck {
  const un = s.audit?.unverifiable ?? []
  const details = un.map(
    u =>
      `log ${short(u.log)}: no proof from size ${u.acceptedSize} to ${u.uncheckedSize} since ${new Date(u.since).toISOString()} (${plural(u.tries, 'try', 'tries')})`,
  )
  if (un.length === 0)
    return check('audit-logs', 'ok', 'Every audit log head this node received could be checked.', details)
  return check(
    'audit-logs',
    'attention',
    `${plural(un.length, 'audit log')} whose newest head could not be checked against the last one.`,
    details,
  )
}

function refusedChangesCheck(s: NodeStatus, metrics: Map<string, Metric>): HealthCheck {
  const n = s.refusedPolicyChanges
  const series = metrics.get('edgeward_policy_changes_refused_total')?.series ?? []
  const details = [...series].sort((a, b) => b.value - a.value).map(x => `${x.value}× ${x.labels}`)
  if (n === 0) return check('refused-changes', 'ok', 'No peer sent a policy change this node had to refuse.', details)
  return check(
    'refused-changes',
    'attention',
    `${plural(n, 'policy change')} refused: a peer sent changes the space's rules do not allow, and this node kept them out.`,
    details,
  )
}

const RANK: Record<CheckState, number> = { unknown: 0, ok: 0, attention: 1, trouble: 2 }

/** The indicator: the worst check decides; 'unknown' is shown but does not make a node unwell. */
export function assessHealth(s: NodeStatus, metricsText: string): Health {
  const metrics = parsePrometheus(metricsText)
  const checks = [
    peersCheck(s),
    spacesCheck(s),
    keyHoldersCheck(s),
    equivocationsCheck(s),
    auditLogsCheck(s),
    refusedChangesCheck(s, metrics),
  ]
  const worst = Math.max(...checks.map(c => RANK[c.state]))
  const failing = checks.filter(c => RANK[c.state] === worst && worst > 0)
  const counters: CounterView[] = [...metrics.values()]
    .map(m => ({
      name: m.name,
      help: m.help,
      total: m.series.reduce((sum, x) => sum + x.value, 0),
      top: [...m.series].sort((a, b) => b.value - a.value).slice(0, 5),
    }))
    .filter(c => c.total !== 0)
    .sort((a, b) => (a.name < b.name ? -1 : 1))
  if (worst === 0) {
    const peers = s.peers.length === 0 ? 'no peer needed yet' : `${plural(s.peers.length, 'peer')} connected`
    return { verdict: 'fine', summary: `Every check passed: ${peers}, nothing refused.`, checks, counters }
  }
  return {
    verdict: worst === 2 ? 'trouble' : 'attention',
    summary:
      failing.length === 1
        ? failing[0].summary
        : `${failing.length} checks: ${failing.map(c => c.title.toLowerCase()).join(', ')}.`,
    checks,
    counters,
  }
}

export function identityOf(s: NodeStatus): IdentityView {
  return { did: s.did, peerId: s.peerId, keysEncrypted: !s.developmentMode, addresses: s.addresses }
}

/** The spaces as the screens list them: named ones first, by name. */
export function spacesOf(s: NodeStatus): SpaceView[] {
  return s.spaces
    .map(x => ({
      id: x.id,
      ...(x.name === undefined ? {} : { name: x.name }),
      synchronised: x.synchronised,
      role: x.role ?? 'member',
      ...(x.owner === undefined ? {} : { owner: x.owner }),
      keyHolder: x.keyHolder === true,
      streams: (x.streams ?? []).filter(n => !n.startsWith('obj-')),
      mayShare: x.mayShare ?? x.keyHolder === true,
      ...(x.custody === undefined ? {} : { custody: x.custody }),
    }))
    .sort((a, b) => (a.name ?? '\uffff').localeCompare(b.name ?? '\uffff') || (a.id < b.id ? -1 : 1))
}

/**
 * The peers connected now, each with the person behind it where a space says: the owner of a
 * space it holds the keys of, or the person a custodian set names for it.
 */
export function peersOf(s: NodeStatus): PeerView[] {
  const people = new Map<string, string>()
  for (const sp of s.spaces) {
    for (const h of sp.holders ?? []) if (sp.owner !== undefined) people.set(h.peer, sp.owner)
    for (const c of sp.custody?.custodians ?? []) if (c.did !== undefined) people.set(c.peer, c.did)
  }
  return s.peers.map(peer => {
    const did = people.get(peer)
    return did === undefined ? { peer } : { peer, did }
  })
}

/**
 * The whole state the client shows; `inboxVersion` changes whenever what is shared with this
 * person does, `people` are the names they gave.
 */
export function clientState(
  s: NodeStatus,
  metricsText: string,
  extra: { inboxVersion: number; people: Record<string, string> } = { inboxVersion: 0, people: {} },
): ClientState {
  return {
    identity: identityOf(s),
    health: assessHealth(s, metricsText),
    spaces: spacesOf(s),
    inboxVersion: extra.inboxVersion,
    people: extra.people,
    peers: peersOf(s),
  }
}
