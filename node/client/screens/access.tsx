/**
 * Access: for the owner and admins of a space, who holds access to each of its items through
 * which grant and until when (counted down live), revoking a grant or a person with a
 * confirmation that says what happens, and the access requests to approve (for a duration of
 * their choosing) or deny (with a reason). The node decides coverage, status and authority;
 * the screen shows its answers and sends the person's decisions. It fetches again when the
 * node's state says policy changed (`inboxVersion`), after each of its own actions, and when
 * a grant it shows reaches its start or end.
 */
import type { ComponentChildren } from 'preact'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { SpaceView } from '../../ui/contract.ts'
import type {
  AccessItem,
  AccessItemKind,
  AccessRequestView,
  ApproveAnswer,
  ApproveBody,
  DenyBody,
  ForwardView,
  GrantsListing,
  GrantView,
  RequestsListing,
  RevokeBody,
} from '../../ui/contract-access.ts'
import { ApiError, useApi } from '../api.ts'
import { type People, Person, personName } from '../parts/person.tsx'
import { SpacePicker, spaceName } from '../parts/space-picker.tsx'
import { ACCESS_DURATIONS, formatSpan, formatWhen, useNow } from '../parts/time.ts'
import { useLoaded } from '../parts/use-fetched.ts'
import { hrefOf } from '../routes.ts'
import type { ScreenProps } from './props.ts'
import './access.css'
import { Badge, GRANT_STATUS } from '../parts/badge.tsx'
import { Choice } from '../parts/choice.tsx'

// ---- words and times ----

/** The durations an approval offers, besides the one asked for. */
const DURATIONS = ACCESS_DURATIONS

const FORWARD: Record<ForwardView, string> = {
  never: 'No forwarding',
  'ask-owner': 'May ask you for others',
  allowed: 'May grant others',
}

const KIND: Record<AccessItemKind, string> = { stream: 'Stream', file: 'File', message: 'Message' }

/** A duration asked for or granted, in words: "30 min", "8 hours", "7 days". */
function formatDuration(ms: number): string {
  const known = DURATIONS.find(d => d.ms === ms)
  return known !== undefined ? known.label : formatSpan(ms)
}

/** "12 min ago", "just now" */
function ago(t: number, now: number): string {
  return now - t < 60_000 ? 'just now' : `${formatSpan(now - t)} ago`
}

/** Objects' file names as the node's last listing gave them (names travel encrypted: known once shared or opened here). */
const labels = new Map<string, string>()

/** An item as a person reads it: a stream by its name, an object by its file name, else its kind and a short id. */
function itemName(name: string, kind: AccessItemKind): string {
  if (kind === 'stream') return name
  return labels.get(name) ?? `${KIND[kind].toLowerCase()} ${name.slice(0, 12)}…`
}

/** What a grant covers, in words: its stream names and patterns, its objects by name. */
function coverage(streams: string[]): string {
  return streams
    .map(s =>
      s === '*'
        ? 'every stream'
        : s.endsWith('*')
          ? `streams ${s}`
          : (labels.get(s) ?? (OBJECT_ID.test(s) ? `${s.slice(0, 12)}…` : s)),
    )
    .join(', ')
}
const OBJECT_ID = /^obj-[0-9a-f]{16}$/

/** A short grant reference for a person and a screen reader: 8 hex digits, as the CLI accepts. */
const grantRef = (id: string) => id.slice(0, 8)

// ---- hooks ----

interface Loaded {
  listing: GrantsListing
  requests: AccessRequestView[]
}

/** The space's grants and requests, fetched again when `version` changes or `reload` is called. */
function useSpaceAccess(space: string, version: number) {
  const api = useApi()
  return useLoaded(`/v1/spaces/${space}`, version, async (base): Promise<Loaded> => {
    const [listing, requests] = await Promise.all([
      api.get<GrantsListing>(`${base}/grants`),
      api.get<RequestsListing>(`${base}/requests`),
    ])
    for (const i of listing.items) if (i.label !== undefined) labels.set(i.name, i.label)
    return { listing, requests: requests.requests }
  })
}

/** Fetch again when the first grant shown starts or ends: the node then says what it has become. */
function useReloadAtBoundary(grants: GrantView[] | undefined, reload: () => void): void {
  const next = useMemo(() => {
    const now = Date.now()
    const times = (grants ?? []).flatMap(g =>
      g.status === 'active' ? [Date.parse(g.notAfter)] : g.status === 'pending' ? [Date.parse(g.notBefore)] : [],
    )
    return Math.min(...times.filter(t => t > now))
  }, [grants])
  useEffect(() => {
    if (!Number.isFinite(next)) return
    // setTimeout's limit is about 24.8 days; a later boundary is met by a later fetch
    const timer = window.setTimeout(reload, Math.min(next - Date.now() + 500, 2 ** 31 - 1))
    return () => window.clearTimeout(timer)
  }, [next])
}

// ---- the screen ----

export function AccessScreen({ state }: ScreenProps) {
  const managed = state.spaces.filter(s => s.role === 'owner' || s.role === 'admin')
  const [chosen, setChosen] = useState<string>()
  const space = managed.find(s => s.id === chosen) ?? managed[0]

  if (space === undefined) return <NotManaging spaces={state.spaces} />
  return (
    <>
      <p class="lead">
        Who holds access to what in your spaces, and until when. Revoke what should end now, and decide on the access
        people ask for.
      </p>
      <SpacePicker id="access-space" spaces={managed} value={space.id} onChange={setChosen} withRole />
      <SpaceAccess key={space.id} space={space} state={state} version={state.inboxVersion} />
    </>
  )
}

function NotManaging({ spaces }: { spaces: SpaceView[] }) {
  return (
    <>
      <p class="lead">
        This screen is for the owner and the admins of a space: who holds access to its streams and files, until when,
        and the requests people file.
      </p>
      <section class="card access-empty" aria-labelledby="not-managing">
        <h2 id="not-managing">{spaces.length === 0 ? 'You have no spaces yet' : 'You manage no space'}</h2>
        {spaces.length === 0 ? (
          <p>
            Create a space in <a href={hrefOf('spaces')}>Spaces</a> to share streams and files; its access is managed
            here.
          </p>
        ) : (
          <>
            <p>You are a member of {spaces.map(spaceName).join(', ')}. Members do not manage access: the owner does.</p>
            <p>
              To get access to something, ask its owner from your <a href={hrefOf('inbox')}>Inbox</a>: they see your
              request with your reason and decide.
            </p>
          </>
        )}
      </section>
    </>
  )
}

/** What a dialog is asked to confirm. */
type Confirming =
  | { kind: 'revoke-grant'; grant: GrantView }
  | { kind: 'revoke-person'; did: string }
  | { kind: 'deny'; request: AccessRequestView }

function SpaceAccess({ space, state, version }: { space: SpaceView; state: People; version: number }) {
  const api = useApi()
  const now = useNow()
  const { value: loaded, error, reload } = useSpaceAccess(space.id, version)
  const [confirming, setConfirming] = useState<Confirming>()
  const [said, setSaid] = useState<{ text: string; failed: boolean }>()
  useReloadAtBoundary(loaded?.listing.grants, reload)
  const confirm = (c: Confirming) => {
    setSaid(undefined)
    setConfirming(c)
  }

  const name = spaceName(space)
  const base = `/v1/spaces/${space.id}`

  /** Send a decision; say what came of it; fetch again either way. */
  const act = async (what: () => Promise<string>): Promise<boolean> => {
    try {
      setSaid({ text: await what(), failed: false })
      return true
    } catch (err) {
      const e = err as Error
      const refused = e.name === ApiError.name && (e as ApiError).status === 403
      setSaid({ text: `${refused ? 'The node refused: ' : 'That did not work: '}${e.message}`, failed: true })
      return false
    } finally {
      reload()
    }
  }

  if (loaded === undefined)
    return error === undefined ? (
      <p class="muted">Loading who has access to {name}…</p>
    ) : (
      <p class="notice" role="alert">
        Could not load the access of {name}: {error}
      </p>
    )

  const { listing, requests } = loaded
  const byId = new Map(listing.grants.map(g => [g.id, g]))
  const itemsOf = (g: GrantView) => listing.items.filter(i => i.grants.includes(g.id))
  const live = listing.grants.filter(g => g.status === 'active')
  const people = new Set(live.map(g => g.subject))
  const pending = requests.filter(r => r.status === 'pending')
  const revokedPeople = new Set(listing.grants.filter(g => g.status === 'revoked').map(g => g.subject))

  return (
    <>
      <div class="access-summary">
        <Tile value={live.length} label={live.length === 1 ? 'active grant' : 'active grants'} />
        <Tile value={people.size} label={people.size === 1 ? 'person with access' : 'people with access'} />
        <Tile
          value={pending.length}
          label={pending.length === 1 ? 'request waiting' : 'requests waiting'}
          tone={pending.length > 0 ? 'attention' : undefined}
        />
      </div>

      <p class="access-said" role="status" aria-live="polite">
        {said !== undefined && <span class={said.failed ? 'access-said-failed' : 'access-said-ok'}>{said.text}</span>}
      </p>
      {error !== undefined && (
        <p class="notice" role="alert">
          Could not refresh: {error}
        </p>
      )}

      <Requests
        requests={requests}
        now={now}
        state={state}
        byId={byId}
        revokedPeople={revokedPeople}
        onApprove={(r, body) =>
          act(async () => {
            const a = await api.send<ApproveAnswer>('POST', `${base}/requests/${r.id}/approve`, body)
            return `Approved: ${personName(r.for, state)} has access to ${coverage(body.streams ?? r.streams)} until ${formatWhen(Date.parse(a!.notAfter))}.`
          })
        }
        onDeny={r => confirm({ kind: 'deny', request: r })}
      />

      <Items listing={listing} now={now} state={state} onRevoke={g => confirm({ kind: 'revoke-grant', grant: g })} />

      <PeopleWithAccess
        grants={listing.grants}
        itemsOf={itemsOf}
        now={now}
        state={state}
        onRevoke={did => confirm({ kind: 'revoke-person', did })}
      />

      {confirming !== undefined && (
        <ConfirmDialog
          confirming={confirming}
          state={state}
          spaceName={name}
          itemsOf={itemsOf}
          activeGrantsOf={did => listing.grants.filter(g => g.subject === did && g.status === 'active')}
          failure={said?.failed ? said.text : undefined}
          onCancel={() => setConfirming(undefined)}
          onConfirm={async text => {
            const c = confirming
            const done = await act(async () => {
              if (c.kind === 'deny') {
                const body: DenyBody = { reason: text }
                await api.send('POST', `${base}/requests/${c.request.id}/deny`, body)
                return `Denied the request of ${personName(c.request.for, state)}. They will see your reason.`
              }
              const body: RevokeBody = c.kind === 'revoke-grant' ? { grant: c.grant.id } : { subject: c.did }
              if (text !== '') body.reason = text
              await api.send('POST', `${base}/revocations`, body)
              return c.kind === 'revoke-grant'
                ? `Revoked grant ${grantRef(c.grant.id)} of ${personName(c.grant.subject, state)}.`
                : `Revoked every grant of ${personName(c.did, state)} in ${name}.`
            })
            if (done) setConfirming(undefined)
            return done
          }}
        />
      )}
    </>
  )
}

function Tile({ value, label, tone }: { value: number; label: string; tone?: string }) {
  return (
    <div class={`access-tile${tone === undefined ? '' : ` access-tile-${tone}`}`}>
      <span class="access-tile-value">{value}</span>
      <span class="access-tile-label">{label}</span>
    </div>
  )
}

// ---- people ----

function Status({ grant }: { grant: GrantView }) {
  return (
    <>
      <Badge {...GRANT_STATUS[grant.status]} />
      {grant.why !== undefined && grant.status !== 'expired' && <div class="small muted access-why">{grant.why}</div>}
    </>
  )
}

/** Until when, as a countdown, with the time itself beside it. */
function Until({ grant, now }: { grant: GrantView; now: number }) {
  const from = Date.parse(grant.notBefore)
  const until = Date.parse(grant.notAfter)
  let words: string
  if (grant.status === 'pending') words = `starts in ${formatSpan(from - now)}`
  else if (grant.status === 'revoked') words = 'ended by revocation'
  else if (until <= now) words = `ended ${formatSpan(now - until)} ago`
  else words = `ends in ${formatSpan(until - now)}`
  return (
    <>
      <span class="access-countdown">{words}</span>
      <div class="small muted">
        <time dateTime={grant.notAfter}>
          {grant.status === 'revoked' ? 'was until' : 'until'} {formatWhen(until)}
        </time>
      </div>
    </>
  )
}

/** A grant that may still give access, and so may be revoked. */
const isRevocable = (g: GrantView) => g.status === 'active' || g.status === 'pending' || g.status === 'not-honoured'

function Items(props: { listing: GrantsListing; now: number; state: People; onRevoke: (g: GrantView) => void }) {
  const { listing, now, state, onRevoke } = props
  const byId = new Map(listing.grants.map(g => [g.id, g]))
  const covered = new Set(listing.items.flatMap(i => i.grants))
  const elsewhere = listing.grants.filter(g => !covered.has(g.id))
  return (
    <section class="card" aria-labelledby="access-items">
      <h2 id="access-items">Who has access, item by item</h2>
      {listing.items.length === 0 ? (
        <p class="muted">
          This space has no streams or files yet. Publish readings to a stream, or share a file from{' '}
          <a href={hrefOf('files')}>Files</a>: who may read them shows here.
        </p>
      ) : (
        listing.items.map(item => (
          <ItemAccess
            key={item.name}
            item={item}
            grants={item.grants.map(id => byId.get(id)!)}
            now={now}
            state={state}
            onRevoke={onRevoke}
          />
        ))
      )}
      {elsewhere.length > 0 && (
        <ItemAccess
          item={{ name: 'streams not created yet', kind: 'stream', grants: [] }}
          title="Grants for streams not created yet"
          grants={elsewhere}
          now={now}
          state={state}
          onRevoke={onRevoke}
        />
      )}
    </section>
  )
}

function ItemAccess(props: {
  item: AccessItem
  title?: string
  grants: GrantView[]
  now: number
  state: People
  onRevoke: (g: GrantView) => void
}) {
  const { item, grants, now, state, onRevoke } = props
  const headingId = `item-${item.name.replace(/[^A-Za-z0-9_-]/g, '_')}`
  const holding = new Set(grants.filter(g => g.status === 'active').map(g => g.subject)).size
  // what may still give access first, then the newest
  const shown = [...grants].sort(
    (a, b) => Number(isRevocable(b)) - Number(isRevocable(a)) || Date.parse(b.notBefore) - Date.parse(a.notBefore),
  )
  return (
    <div class="access-item">
      <div class="access-item-head">
        <h3 id={headingId}>{props.title ?? itemName(item.name, item.kind)}</h3>
        {props.title === undefined && <span class="badge badge-compact badge-neutral">{KIND[item.kind]}</span>}
        <span class="muted small access-item-count">
          {holding === 0
            ? 'nobody has access now'
            : holding === 1
              ? '1 person has access'
              : `${holding} people have access`}
        </span>
      </div>
      {grants.length === 0 ? (
        <p class="muted small">
          No grant covers it. Approve a request below, or grant it from the command line:{' '}
          <code>edgeward grant SPACE --to DID --stream {item.kind === 'stream' ? item.name : 'OBJECT'} --for 8h</code>
        </p>
      ) : (
        <div class="access-table-wrap">
          <table class="access-table" aria-labelledby={headingId}>
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">Grant</th>
                <th scope="col">Until</th>
                <th scope="col">Status</th>
                <th scope="col">Use</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.map(g => (
                <tr key={g.id} class={isRevocable(g) ? '' : 'access-row-ended'}>
                  <td>
                    <Person did={g.subject} state={state} copy />
                  </td>
                  <td>
                    <div>{g.purpose ?? (g.parent === undefined ? 'Direct grant' : 'Forwarded grant')}</div>
                    <div class="small muted">
                      by {personName(g.issuer, state)} ·{' '}
                      <span class="mono" title={g.id}>
                        #{grantRef(g.id)}
                      </span>
                    </div>
                  </td>
                  <td>
                    <Until grant={g} now={now} />
                  </td>
                  <td>
                    <Status grant={g} />
                  </td>
                  <td>
                    <div>{g.download ? 'Download' : 'View only'}</div>
                    <div class="small muted">{FORWARD[g.forward]}</div>
                  </td>
                  <td class="access-actions">
                    {isRevocable(g) && (
                      <button
                        type="button"
                        class="button button-danger-quiet"
                        aria-label={`Revoke grant ${grantRef(g.id)} of ${personName(g.subject, state)}`}
                        onClick={() => onRevoke(g)}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}

function PeopleWithAccess(props: {
  grants: GrantView[]
  itemsOf: (g: GrantView) => AccessItem[]
  now: number
  state: People
  onRevoke: (did: string) => void
}) {
  const { grants, itemsOf, now, state, onRevoke } = props
  const bySubject = new Map<string, GrantView[]>()
  for (const g of grants.filter(isRevocable)) bySubject.set(g.subject, [...(bySubject.get(g.subject) ?? []), g])
  return (
    <section class="card" aria-labelledby="access-people">
      <h2 id="access-people">People</h2>
      {bySubject.size === 0 ? (
        <p class="muted">Nobody holds a grant in this space now.</p>
      ) : (
        <ul class="rows access-people">
          {[...bySubject].map(([did, held]) => {
            const items = [...new Set(held.flatMap(g => itemsOf(g).map(i => itemName(i.name, i.kind))))]
            const last = Math.max(...held.map(g => Date.parse(g.notAfter)))
            return (
              <li key={did} class="access-person">
                <div>
                  <Person did={did} state={state} copy />
                  <div class="small muted">
                    {held.length === 1 ? '1 grant' : `${held.length} grants`}
                    {items.length > 0 ? ` on ${items.join(', ')}` : ''} · the last ends in {formatSpan(last - now)}
                  </div>
                </div>
                <button
                  type="button"
                  class="button button-danger-quiet"
                  aria-label={`Revoke all access of ${personName(did, state)}`}
                  onClick={() => onRevoke(did)}
                >
                  Revoke all access
                </button>
              </li>
            )
          })}
        </ul>
      )}
    </section>
  )
}

// ---- requests ----

function Requests(props: {
  requests: AccessRequestView[]
  now: number
  state: People
  byId: Map<string, GrantView>
  revokedPeople: Set<string>
  onApprove: (r: AccessRequestView, body: ApproveBody) => Promise<boolean>
  onDeny: (r: AccessRequestView) => void
}) {
  const { requests, now, state } = props
  const pending = requests.filter(r => r.status === 'pending')
  // the newest decisions first
  const decided = requests.filter(r => r.status !== 'pending').reverse()
  return (
    <section class="card" aria-labelledby="access-requests">
      <h2 id="access-requests">Requests</h2>
      {pending.length === 0 ? (
        <p class="muted">
          No request is waiting. People ask for access from their Inbox; their requests appear here with their reason.
        </p>
      ) : (
        <ul class="access-requests" aria-label="Waiting for your decision">
          {pending.map(r => (
            <PendingRequest
              key={r.id}
              request={r}
              now={now}
              state={state}
              readmit={props.revokedPeople.has(r.for)}
              onApprove={props.onApprove}
              onDeny={props.onDeny}
            />
          ))}
        </ul>
      )}
      {decided.length > 0 && (
        <>
          <h3 class="access-subheading">Decided</h3>
          <div class="access-table-wrap">
            <table class="access-table" aria-label="Decided requests">
              <thead>
                <tr>
                  <th scope="col">Who</th>
                  <th scope="col">Asked for</th>
                  <th scope="col">Why</th>
                  <th scope="col">Outcome</th>
                </tr>
              </thead>
              <tbody>
                {decided.map(r => (
                  <DecidedRequest
                    key={r.id}
                    request={r}
                    now={now}
                    state={state}
                    grant={r.grant === undefined ? undefined : props.byId.get(r.grant)}
                  />
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  )
}

function PendingRequest(props: {
  request: AccessRequestView
  now: number
  state: People
  readmit: boolean
  onApprove: (r: AccessRequestView, body: ApproveBody) => Promise<boolean>
  onDeny: (r: AccessRequestView) => void
}) {
  const { request: r, now, state } = props
  const [duration, setDuration] = useState(r.durationMs)
  const [readmit, setReadmit] = useState(false)
  const [busy, setBusy] = useState(false)
  const [chosen, setChosen] = useState(() => new Set(r.streams))
  const narrowed = chosen.size < r.streams.length
  const options = DURATIONS.some(d => d.ms === r.durationMs)
    ? DURATIONS
    : [{ ms: r.durationMs, label: `${formatDuration(r.durationMs)} (as asked)` }, ...DURATIONS]
  const who = personName(r.for, state)
  const ids = { duration: `duration-${r.id}`, readmit: `readmit-${r.id}`, streams: `streams-${r.id}` }
  return (
    <li class="access-request">
      <div class="card-head access-request-head">
        <Person did={r.for} state={state} copy />
        <span class="muted small">
          asked <time dateTime={new Date(r.at).toISOString()}>{ago(r.at, now)}</time>
          {r.older !== undefined && ` · ${r.older} earlier ${r.older === 1 ? 'request' : 'requests'} replaced`}
        </span>
      </div>
      <p class="access-request-what">
        For <strong>{coverage(r.streams)}</strong> ({r.forms.join(', ')}), {formatDuration(r.durationMs)}
        {r.from !== r.for && (
          <span class="muted">
            {' '}
            · forwarded by <Person did={r.from} state={state} />
          </span>
        )}
      </p>
      <blockquote class="access-reason">{r.reason}</blockquote>
      {r.streams.length > 1 && (
        <fieldset class="access-streams" aria-describedby={ids.streams}>
          <legend id={ids.streams}>Grant these of what was asked</legend>
          {r.streams.map(s => (
            <label key={s} class="access-check">
              <input
                type="checkbox"
                checked={chosen.has(s)}
                onChange={e => {
                  const next = new Set(chosen)
                  if ((e.target as HTMLInputElement).checked) next.add(s)
                  else next.delete(s)
                  setChosen(next)
                }}
              />
              {s}
            </label>
          ))}
        </fieldset>
      )}
      <div class="access-decide">
        <label for={ids.duration}>Grant for</label>
        <Choice id={ids.duration} options={options} by="ms" value={duration} onChange={setDuration} />
        {props.readmit && (
          <label class="access-check" for={ids.readmit}>
            <input
              id={ids.readmit}
              type="checkbox"
              checked={readmit}
              onChange={e => setReadmit((e.target as HTMLInputElement).checked)}
            />
            Re-admit: their access was revoked before
          </label>
        )}
        <span class="access-decide-buttons">
          <button
            type="button"
            class="button button-primary"
            disabled={busy || chosen.size === 0}
            aria-label={`Approve the request of ${who} for ${coverage(r.streams)}`}
            onClick={async () => {
              setBusy(true)
              await props.onApprove(r, {
                durationMs: duration,
                ...(readmit ? { readmit } : {}),
                ...(narrowed ? { streams: r.streams.filter(s => chosen.has(s)) } : {}),
              })
              setBusy(false)
            }}
          >
            Approve
          </button>
          <button
            type="button"
            class="button"
            aria-label={`Deny the request of ${who} for ${coverage(r.streams)}`}
            onClick={() => props.onDeny(r)}
          >
            Deny…
          </button>
        </span>
      </div>
    </li>
  )
}

function DecidedRequest({
  request: r,
  now,
  state,
  grant,
}: {
  request: AccessRequestView
  now: number
  state: People
  grant?: GrantView
}) {
  return (
    <tr>
      <td>
        <Person did={r.for} state={state} copy />
        <div class="small muted">asked {ago(r.at, now)}</div>
      </td>
      <td>
        {coverage(r.streams)}
        <div class="small muted">{formatDuration(r.durationMs)}</div>
      </td>
      <td class="access-why-cell">{r.reason}</td>
      <td>
        {r.status === 'approved' ? (
          <>
            <span class="badge badge-compact badge-ok">Approved</span>
            {grant !== undefined && (
              <div class="small muted">
                {grant.status === 'active'
                  ? `ends in ${formatSpan(Date.parse(grant.notAfter) - now)}`
                  : GRANT_STATUS[grant.status].label.toLowerCase()}
              </div>
            )}
          </>
        ) : (
          <>
            <span class="badge badge-compact badge-trouble">Denied</span>
            {r.decisionReason !== undefined && <div class="small access-denial">“{r.decisionReason}”</div>}
          </>
        )}
        {r.decidedBy !== undefined && <div class="small muted">by {personName(r.decidedBy, state)}</div>}
      </td>
    </tr>
  )
}

// ---- the confirmation dialog ----

/**
 * A modal <dialog>: the rest of the page is inert while it is open, focus moves into it (to
 * the safe choice, or to the reason a denial needs), Escape cancels, and focus goes back to
 * the control that opened it.
 */
function ConfirmDialog(props: {
  confirming: Confirming
  state: People
  spaceName: string
  itemsOf: (g: GrantView) => AccessItem[]
  activeGrantsOf: (did: string) => GrantView[]
  /** why the last attempt failed, shown in the dialog (the page behind it is inert) */
  failure?: string
  onCancel: () => void
  onConfirm: (text: string) => Promise<boolean>
}) {
  const { confirming: c, state, spaceName: space } = props
  const dialog = useRef<HTMLDialogElement>(null)
  const first = useRef<HTMLButtonElement>(null)
  const reasonField = useRef<HTMLTextAreaElement>(null)
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const [missing, setMissing] = useState(false)

  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null
    // a re-render may replace the control: it is found again by its accessible name
    const openerLabel = opener?.getAttribute('aria-label')
    const modal = dialog.current
    modal?.showModal()
    ;(c.kind === 'deny' ? reasonField.current : first.current)?.focus()
    return () => {
      // Escape was held back (preventDefault) so the dialog is still modal here, and while it
      // is, the page behind it is inert and refuses focus: close it first, then move focus.
      if (modal?.open) modal.close()
      // the control that opened it, or (gone with what it revoked) the screen's heading
      const again =
        opener?.isConnected || !openerLabel
          ? opener
          : document.querySelector<HTMLElement>(`[aria-label="${CSS.escape(openerLabel)}"]`)
      if (again?.isConnected) again.focus()
      else document.querySelector<HTMLElement>('main h1')?.focus()
    }
  }, [])

  let title: string
  let body: ComponentChildren
  let confirmLabel: string
  if (c.kind === 'revoke-grant') {
    const items = props.itemsOf(c.grant).map(i => itemName(i.name, i.kind))
    const what = items.length > 0 ? items.join(', ') : coverage(c.grant.streams)
    title = 'Revoke this grant?'
    confirmLabel = 'Revoke grant'
    body = (
      <>
        <p>
          <Person did={c.grant.subject} state={state} /> loses access to <strong>{what}</strong> now. What they already
          opened they may have kept.
        </p>
        <p class="muted small">
          The revocation is signed and reaches every peer of {space}; it cannot be undone. To give access again, grant
          it anew.
        </p>
      </>
    )
  } else if (c.kind === 'revoke-person') {
    const items = [
      ...new Set(props.activeGrantsOf(c.did).flatMap(g => props.itemsOf(g).map(i => itemName(i.name, i.kind)))),
    ]
    title = 'Revoke all their access?'
    confirmLabel = 'Revoke all access'
    body = (
      <>
        <p>
          <Person did={c.did} state={state} /> loses access to everything in {space} now
          {items.length > 0 ? (
            <>
              : <strong>{items.join(', ')}</strong>
            </>
          ) : null}
          . What they already opened they may have kept.
        </p>
        <p class="muted small">
          Every grant they hold ends, and grants issued to them before now stop working. Approving a later request of
          theirs needs you to re-admit them.
        </p>
      </>
    )
  } else {
    title = 'Deny this request?'
    confirmLabel = 'Deny request'
    body = (
      <p>
        <Person did={c.request.for} state={state} /> asked for <strong>{coverage(c.request.streams)}</strong>: “
        {c.request.reason}”. They will see that you denied it, with your reason.
      </p>
    )
  }

  const submit = async (e: Event) => {
    e.preventDefault()
    if (c.kind === 'deny' && text.trim() === '') {
      setMissing(true)
      reasonField.current?.focus()
      return
    }
    setBusy(true)
    const done = await props.onConfirm(text.trim())
    if (!done) setBusy(false)
  }

  return (
    <dialog
      ref={dialog}
      class="access-dialog"
      aria-labelledby="access-dialog-title"
      onCancel={e => {
        e.preventDefault()
        props.onCancel()
      }}
    >
      <form method="dialog" onSubmit={submit}>
        <h2 id="access-dialog-title">{title}</h2>
        {body}
        <label for="access-dialog-reason" class="access-dialog-label">
          {c.kind === 'deny' ? 'Reason (they will read it)' : 'Reason (kept with the revocation; optional)'}
        </label>
        <textarea
          id="access-dialog-reason"
          ref={reasonField}
          rows={c.kind === 'deny' ? 3 : 2}
          maxLength={512}
          aria-required={c.kind === 'deny' ? true : undefined}
          aria-invalid={missing ? true : undefined}
          aria-describedby={missing ? 'access-dialog-missing' : undefined}
          value={text}
          onInput={e => {
            setText((e.target as HTMLTextAreaElement).value)
            setMissing(false)
          }}
        />
        {missing && (
          <p id="access-dialog-missing" class="access-said-failed small">
            Say why: the person reads it.
          </p>
        )}
        {props.failure !== undefined && (
          <p class="access-said-failed small" role="alert">
            {props.failure}
          </p>
        )}
        <div class="access-dialog-buttons">
          <button type="button" class="button" ref={first} onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class="button button-danger" disabled={busy}>
            {confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  )
}
