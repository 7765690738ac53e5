/**
 * The policy-plane commands: grant (every field of the grant model), revoke, grants,
 * delegate, and access requests (request, requests, approve, deny).
 */
import { UsageError } from '../errors.ts'
import { ApiClient } from './client.ts'
import { parseDuration, parseTimeArg } from './duration.ts'
import { type Output, print } from './output.ts'

const DID = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/

async function call(dataDir: string, method: string, path: string, body?: unknown): Promise<Record<string, any>> {
  return (await ApiClient.connect(dataDir)).call(method, path, body)
}

const spacePath = (space: string) => `/v1/spaces/${encodeURIComponent(space)}`

function needDid(value: string | undefined, flag: string): string {
  if (value === undefined) throw new UsageError(`needs ${flag} DID`)
  if (!DID.test(value)) throw new UsageError(`${flag} is not a did:key: ${value}`)
  return value
}

/** The end of a validity window: exactly one of --for DURATION (from --from or now) or --until TIME. */
function validity(
  opts: { for?: string; from?: string; until?: string },
  what: string,
): { from?: number; until: number } {
  if ((opts.for === undefined) === (opts.until === undefined)) {
    throw new UsageError(`${what} needs exactly one of --for DURATION or --until TIME`)
  }
  const from = opts.from === undefined ? undefined : parseTimeArg(opts.from, '--from')
  const until =
    opts.for !== undefined ? (from ?? Date.now()) + parseDuration(opts.for) : parseTimeArg(opts.until!, '--until')
  return { from, until }
}

export interface GrantOptions {
  to?: string
  stream: string[]
  form: string[]
  for?: string
  from?: string
  until?: string
  dataFrom?: string
  dataUntil?: string
  noDownload: boolean
  forward?: string
  device: string[]
  maxReleases?: string
  purpose?: string
  parent?: string
  /** the subject may share files and messages of its own into the space */
  contribute?: boolean
}

/** `grant SPACE --to DID …`: sign and publish a grant with every field of the grant model. */
export async function grant(dataDir: string, space: string, opts: GrantOptions, o: Output): Promise<void> {
  const to = needDid(opts.to, '--to')
  let maxReleases: number | undefined
  if (opts.maxReleases !== undefined) {
    maxReleases = /^[1-9]\d*$/.test(opts.maxReleases) ? Number(opts.maxReleases) : Number.NaN
    if (!Number.isSafeInteger(maxReleases)) throw new UsageError('--max-releases must be a positive whole number')
  }
  const r = await call(dataDir, 'POST', `${spacePath(space)}/grants`, {
    to,
    ...validity(opts, 'grant'),
    streams: opts.stream.length > 0 ? opts.stream : undefined,
    forms: opts.form.length > 0 ? opts.form : undefined,
    dataFrom: opts.dataFrom === undefined ? undefined : parseTimeArg(opts.dataFrom, '--data-from'),
    dataUntil: opts.dataUntil === undefined ? undefined : parseTimeArg(opts.dataUntil, '--data-until'),
    download: opts.noDownload ? false : undefined,
    forward: opts.forward,
    devices: opts.device.length > 0 ? opts.device : undefined,
    maxReleases,
    purpose: opts.purpose,
    parent: opts.parent,
    contribute: opts.contribute ? true : undefined,
  })
  const note = r.status === 'active' ? '' : `\nstatus: ${r.status}${r.why ? ` (${r.why})` : ''}`
  print(o, r, `${r.grant}\nvalid until ${r.notAfter}${note}`)
}

/** `revoke SPACE --grant|--subject|--device|--delegation`: sign and publish a revocation. */
export async function revoke(
  dataDir: string,
  space: string,
  opts: { grant?: string; subject?: string; device?: string[]; delegation?: string; reason?: string },
  o: Output,
): Promise<void> {
  const device = opts.device !== undefined && opts.device.length > 0 ? opts.device : undefined
  if (device !== undefined && device.length > 1) throw new UsageError('revoke takes one --device')
  const targets = [opts.grant, opts.subject, device?.[0], opts.delegation].filter(t => t !== undefined)
  if (targets.length !== 1) {
    throw new UsageError('revoke needs exactly one of --grant ID, --subject DID, --device PEER or --delegation ID')
  }
  const r = await call(dataDir, 'POST', `${spacePath(space)}/revocations`, {
    grant: opts.grant,
    subject: opts.subject,
    device: device?.[0],
    delegation: opts.delegation,
    reason: opts.reason,
  })
  print(o, r, String(r.revocation))
}

/** `grants SPACE`: every grant with its state and why. */
export async function grants(dataDir: string, space: string, o: Output): Promise<void> {
  const r = await call(dataDir, 'GET', `${spacePath(space)}/grants`)
  const lines = (r.grants as Record<string, any>[]).map(
    g =>
      `${g.id.slice(0, 12)}  ${g.status.padEnd(12)}  ${g.subject}  ${g.streams.join(',')}  ${g.forms.join(',')}  until ${g.notAfter}${g.why ? `  (${g.why})` : ''}`,
  )
  const admins = (r.delegations as Record<string, any>[]).map(
    d =>
      `admin ${d.admin}  ${String(d.status).padEnd(8)}  streams ${d.streams.join(',')}  until ${d.notAfter}  delegation ${d.id.slice(0, 12)}`,
  )
  print(o, r, [...lines, ...admins].join('\n') || '(no grants)')
}

/** `delegate SPACE --to DID`: make an admin for part of the space, for a time. */
export async function delegate(
  dataDir: string,
  space: string,
  opts: { to?: string; stream: string[]; for?: string; from?: string; until?: string },
  o: Output,
): Promise<void> {
  const r = await call(dataDir, 'POST', `${spacePath(space)}/delegations`, {
    to: needDid(opts.to, '--to'),
    streams: opts.stream.length > 0 ? opts.stream : undefined,
    ...validity(opts, 'delegate'),
  })
  print(o, r, `${r.delegation}\nadmin until ${r.notAfter}`)
}

/**
 * `custody SPACE`: the custodian set in force; with `--custodian PEER... --threshold K`, the owner
 * names a new one (keys made from then on are dealt to it).
 */
export async function custody(
  dataDir: string,
  space: string,
  opts: { custodian: string[]; threshold?: string },
  o: Output,
): Promise<void> {
  let r: Record<string, any>
  if (opts.custodian.length === 0 && opts.threshold === undefined) {
    r = await call(dataDir, 'GET', `${spacePath(space)}/custody`)
  } else {
    const k = Number(opts.threshold)
    if (opts.threshold === undefined || !/^[0-9]+$/.test(opts.threshold)) {
      throw new UsageError('custody needs --threshold K (a whole number) with its --custodian PEER options')
    }
    r = await call(dataDir, 'POST', `${spacePath(space)}/custody`, { custodians: opts.custodian, threshold: k })
  }
  const set = r.set as Record<string, any> | null
  const lines =
    set === null
      ? ['(no custodians: the key holder alone releases keys)']
      : [
          `set ${set.id.slice(0, 12)}: ${set.threshold} of ${set.custodians.length} custodians release a key (since ${set.writtenAt})`,
          ...(set.custodians as Record<string, string>[]).map(
            (c, i) => `  ${i}  ${c.peer}${c.did ? `  ${c.did}` : ''}`,
          ),
        ]
  if (typeof r.held === 'number') {
    lines.push(`this node holds shares of ${r.held} keys; ${r.unacknowledged} deals wait for a custodian`)
    if (r.belowThreshold > 0) {
      lines.push(
        `${r.belowThreshold} keys dealt here are not with enough custodians yet: keep this node on until they are`,
      )
    }
  }
  print(o, r, lines.join('\n'))
}

/** `request SPACE`: ask the owner for access, for oneself or on behalf of another through a grant. */
export async function request(
  dataDir: string,
  space: string,
  opts: { stream: string[]; form: string[]; for?: string; reason?: string; onBehalfOf?: string; via?: string },
  o: Output,
): Promise<void> {
  if (opts.for === undefined) throw new UsageError('request needs --for DURATION')
  if (opts.reason === undefined) throw new UsageError('request needs --reason TEXT')
  const r = await call(dataDir, 'POST', `${spacePath(space)}/requests`, {
    streams: opts.stream.length > 0 ? opts.stream : undefined,
    forms: opts.form.length > 0 ? opts.form : undefined,
    durationMs: parseDuration(opts.for),
    reason: opts.reason,
    onBehalfOf: opts.onBehalfOf === undefined ? undefined : needDid(opts.onBehalfOf, '--on-behalf-of'),
    via: opts.via,
  })
  print(o, r, String(r.request))
}

/** `requests SPACE`: the space's access requests, pending, approved and denied. */
export async function requests(dataDir: string, space: string, o: Output): Promise<void> {
  const r = await call(dataDir, 'GET', `${spacePath(space)}/requests`)
  const lines = (r.requests as Record<string, any>[]).map(q => {
    const through = q.via ? ` through grant ${q.via.slice(0, 12)} of ${q.from}` : ''
    const outcome =
      q.status === 'approved' ? ` -> grant ${q.grant}` : q.status === 'denied' ? ` -> ${q.decisionReason}` : ''
    const older = q.older ? `  (+${q.older} older from the same requester)` : ''
    return `${q.id}  ${q.status.padEnd(8)}  for ${q.for}${through}  ${q.streams.join(',')}  ${Math.round(q.durationMs / 60_000)} min  "${q.reason}"${outcome}${older}`
  })
  print(o, r, lines.join('\n') || '(no access requests)')
}

/** `approve` / `deny SPACE REQUEST_ID`: the owner decides an access request. */
export async function decide(
  dataDir: string,
  space: string,
  id: string,
  approve: boolean,
  opts: { for?: string; reason?: string; readmit?: boolean; stream?: string[] },
  o: Output,
): Promise<void> {
  if (!approve && opts.reason === undefined) throw new UsageError('deny needs --reason TEXT')
  if (!approve && (opts.stream ?? []).length > 0) throw new UsageError('deny takes no --stream')
  const r = await call(
    dataDir,
    'POST',
    `${spacePath(space)}/requests/${encodeURIComponent(id)}/${approve ? 'approve' : 'deny'}`,
    {
      durationMs: opts.for === undefined ? undefined : parseDuration(opts.for),
      reason: opts.reason,
      readmit: opts.readmit === true ? true : undefined,
      streams: opts.stream !== undefined && opts.stream.length > 0 ? opts.stream : undefined,
    },
  )
  print(o, r, approve ? `approved: grant ${r.grant} until ${r.notAfter}` : `denied: ${r.reason}`)
}
