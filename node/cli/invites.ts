/**
 * `invite` and `join`: spaces by invite. A member makes a code (`ew1-…`) that carries the
 * space, its name, the inviter's addresses and, made by the owner or an admin, a grant; the
 * person who receives it pastes it into `join`. Nobody handles a space id or an address.
 */
import { decodeInvite, hasExpired, type Invite } from '../../protocols/invites.ts'
import { ID_PATTERN } from '../../protocols/validate.ts'
import { UsageError } from '../errors.ts'
import type { InviteCreated, JoinResult } from '../ui/contract-spaces.ts'
import { ApiClient } from './client.ts'
import { parseDuration } from './duration.ts'
import { type Output, print } from './output.ts'

/** How long `join` waits, beyond the node's own wait, for the space to synchronise. */
const SYNC_WAIT_MS = 60_000

interface SpaceStatus {
  id: string
  name?: string
  synchronised: boolean
  owner?: string
}

/** A SPACE argument: a space id, or the name of exactly one space this node knows. */
async function resolveSpace(client: ApiClient, text: string): Promise<SpaceStatus> {
  const spaces = (await client.call<{ spaces: SpaceStatus[] }>('GET', '/v1/status')).spaces
  const byId = spaces.find(s => s.id === text)
  if (byId !== undefined) return byId
  const named = spaces.filter(s => s.name === text)
  if (named.length === 1) return named[0]
  if (named.length > 1) {
    throw new UsageError(`${named.length} spaces are named "${text}": give the id (edgeward status lists them)`)
  }
  if (ID_PATTERN.test(text)) throw new UsageError(`this node has not joined space ${text}`)
  const names = spaces.map(s => s.name).filter(n => n !== undefined)
  throw new UsageError(`no space named "${text}" here${names.length > 0 ? ` (spaces: ${names.join(', ')})` : ''}`)
}

function when(ms: number): string {
  return new Date(ms).toISOString()
}

function hours(ms: number): string {
  return ms >= 7 * 86_400_000 && ms % 86_400_000 === 0
    ? `${ms / 86_400_000} d`
    : ms % 3_600_000 === 0
      ? `${ms / 3_600_000} h`
      : `${Math.round(ms / 60_000)} min`
}

export interface InviteOptions {
  for?: string
  uses?: string
  stream: string[]
  access?: string
  noDownload: boolean
}

/** `invite SPACE`: make an invite code; prints it on a line of its own. */
export async function invite(dataDir: string, spaceArg: string, opts: InviteOptions, o: Output): Promise<void> {
  if (opts.stream.length === 0 && (opts.access !== undefined || opts.noDownload)) {
    throw new UsageError('--access and --no-download shape the grant an invite carries: give --stream too')
  }
  let uses: number | undefined
  if (opts.uses !== undefined) {
    uses = /^[1-9]\d{0,3}$/.test(opts.uses) ? Number(opts.uses) : Number.NaN
    if (!(uses >= 1 && uses <= 1000)) throw new UsageError('--uses must be a whole number from 1 to 1000')
  }
  const client = await ApiClient.connect(dataDir)
  const space = await resolveSpace(client, spaceArg)
  const accessMs = opts.access === undefined ? undefined : parseDuration(opts.access)
  const r = await client.call<InviteCreated>('POST', `/v1/spaces/${space.id}/invites`, {
    for: opts.for === undefined ? undefined : parseDuration(opts.for),
    uses,
    streams: opts.stream.length > 0 ? opts.stream : undefined,
    accessMs,
    download: opts.noDownload ? false : undefined,
  })
  const n = uses ?? 1
  const grant =
    opts.stream.length === 0
      ? 'it lets them join; it grants no access'
      : `it grants ${opts.stream.join(', ')} for ${hours(accessMs ?? 7 * 86_400_000)} from joining${opts.noDownload ? ', view only' : ''}`
  o.err(
    `invite to "${space.name ?? space.id}": ${n} use${n === 1 ? '' : 's'}, valid until ${when(r.expiresAt)}; ${grant}`,
  )
  print(o, { ...r, space: space.id, name: space.name }, r.invite)
}

/** `join INVITE`: redeem an invite on the running node and wait until the space has synchronised. */
export async function join(dataDir: string, code: string, o: Output): Promise<void> {
  let inv: Invite
  try {
    inv = decodeInvite(code)
  } catch (err) {
    throw new UsageError(`malformed invite: ${(err as Error).message}`)
  }
  if (hasExpired(inv, Date.now())) {
    throw new UsageError(`the invite to "${inv.name}" expired at ${when(inv.expiresAt)}: ask for a new one`)
  }
  const client = await ApiClient.connect(dataDir)
  o.err(
    `joining "${inv.name}": reaching the inviter (${inv.addresses.length} address${inv.addresses.length === 1 ? '' : 'es'})…`,
  )
  let r = await client.call<JoinResult>('POST', '/v1/join', { invite: code.trim() })
  const end = Date.now() + SYNC_WAIT_MS
  let said = 0
  while (!r.synchronised && Date.now() < end) {
    if (Date.now() - said > 5000) {
      o.err(`joined; waiting for the policy of "${inv.name}" to arrive…`)
      said = Date.now()
    }
    await new Promise(resolve => setTimeout(resolve, 500))
    const s = (await client.call<{ spaces: SpaceStatus[] }>('GET', '/v1/status')).spaces.find(x => x.id === r.space)
    if (s?.synchronised) r = { ...r, synchronised: true, name: s.name ?? r.name, owner: s.owner }
  }
  if (!r.synchronised)
    o.err(`warning: "${inv.name}" has not synchronised yet: it will once a peer of the space connects`)
  const value = { space: r.space, name: r.name, owner: r.owner, ...(r.grant === undefined ? {} : { grant: r.grant }) }
  const lines = [`joined "${r.name}"`, `owner: ${r.owner ?? '(not known yet)'}`]
  if (r.grant !== undefined) {
    const g = r.grant
    lines.push(
      `access: ${g.streams.join(', ')} (${g.forms.join(', ')}) until ${when(g.notAfter)}${g.download ? '' : ', view only'}`,
    )
  } else lines.push('access: none yet (ask the owner: edgeward request)')
  print(o, value, lines.join('\n'))
}
