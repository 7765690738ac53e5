/**
 * The Inbox: everything shared with this person across spaces (files, messages, streams),
 * newest first, with who shared it, when, where it stands and a live countdown to its end.
 * Opening a file or message shows it in the in-app viewer; an item that ended or was refused
 * offers "Request access". New items arrive without a reload: the shell's state carries an
 * inbox version, and the list is fetched again when it changes. Long lists render only the
 * rows in view.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { Inbox, InboxItem, InboxState } from '../../ui/contract-inbox.ts'
import { useApi } from '../api.ts'
import { Person, personName } from '../parts/person.tsx'
import { RequestDialog } from '../parts/request-dialog.tsx'
import { DAY, formatSpan, formatWhen, useNow } from '../parts/time.ts'
import { Viewer } from '../parts/viewer.tsx'
import './inbox.css'
import type { ScreenProps } from './props.ts'

type KindFilter = 'all' | InboxItem['kind']

const ROW_HEIGHT = 64
const OVERSCAN = 8
const EXPIRING_MS = DAY

const STATE_WORDS: Record<InboxState, string> = {
  active: 'active',
  'not-yet': 'not yet valid',
  expired: 'expired',
  revoked: 'revoked',
  'not-honoured': 'no longer honoured',
  requested: 'requested',
  denied: 'denied',
}

const STATE_BADGE: Record<InboxState, string> = {
  active: 'badge-ok',
  'not-yet': 'badge-neutral',
  expired: 'badge-neutral',
  revoked: 'badge-trouble',
  'not-honoured': 'badge-trouble',
  requested: 'badge-attention',
  denied: 'badge-trouble',
}

/** The state on the page's clock: an active item whose end passed is expired, without waiting for the node. */
function stateAt(item: InboxItem, now: number): InboxState {
  if (item.state === 'active' && item.notAfter !== undefined && now >= item.notAfter) return 'expired'
  return item.state
}

function title(item: InboxItem): string {
  if (item.name !== undefined) return item.name
  if (item.kind === 'stream') return item.resource === '*' ? 'Every stream' : `Stream ${item.resource}`
  return item.kind === 'message' ? 'Message' : 'File'
}

export function InboxScreen({ state }: ScreenProps) {
  const api = useApi()
  const [inbox, setInbox] = useState<Inbox>()
  const [error, setError] = useState<string>()
  const [kind, setKind] = useState<KindFilter>('all')
  const [activeOnly, setActiveOnly] = useState(false)
  const [query, setQuery] = useState('')
  const [open, setOpen] = useState<InboxItem>()
  const [asking, setAsking] = useState<InboxItem>()
  const skew = useRef(0)
  const now = useNow(skew)

  useEffect(() => {
    let stale = false
    api
      .get<Inbox>('/v1/inbox')
      .then(r => {
        if (stale) return
        skew.current = r.now - Date.now()
        setInbox(r)
        setError(undefined)
      })
      .catch(err => !stale && setError((err as Error).message))
    return () => {
      stale = true
    }
  }, [state.inboxVersion])

  const shown = useMemo(() => {
    if (inbox === undefined) return []
    const q = query.trim().toLowerCase()
    return inbox.items.filter(
      i =>
        (kind === 'all' || i.kind === kind) &&
        (!activeOnly || i.state === 'active') &&
        (q === '' ||
          title(i).toLowerCase().includes(q) ||
          i.spaceName.toLowerCase().includes(q) ||
          i.from.toLowerCase().includes(q) ||
          personName(i.from, state).toLowerCase().includes(q) ||
          i.resource.toLowerCase().includes(q)),
    )
  }, [inbox, kind, activeOnly, query, state.people])

  if (error !== undefined && inbox === undefined)
    return (
      <p class="notice" role="alert">
        The inbox could not be read: {error}
      </p>
    )
  if (inbox === undefined) return <p class="muted">Reading the inbox…</p>

  const counts = { all: inbox.items.length, file: 0, message: 0, stream: 0 }
  for (const i of inbox.items) counts[i.kind]++

  return (
    <section class="inbox" aria-describedby="inbox-summary">
      <p id="inbox-summary" class="muted">
        Everything shared with you, in every space you are in. Access ends when its time is up or when the owner revokes
        it.
      </p>
      <div class="inbox-tools">
        <fieldset class="segmented" aria-label="Show">
          {(['all', 'file', 'message', 'stream'] as const).map(k => (
            <button
              key={k}
              type="button"
              class={kind === k ? 'seg here' : 'seg'}
              aria-pressed={kind === k}
              onClick={() => setKind(k)}
            >
              {k === 'all' ? 'All' : k === 'file' ? 'Files' : k === 'message' ? 'Messages' : 'Streams'}{' '}
              <span class="count">{counts[k]}</span>
            </button>
          ))}
        </fieldset>
        <label class="checkbox">
          <input type="checkbox" checked={activeOnly} onChange={e => setActiveOnly(e.currentTarget.checked)} /> Active
          only
        </label>
        <input
          class="field inbox-filter"
          type="search"
          placeholder="Filter by name, space or person"
          aria-label="Filter the inbox"
          value={query}
          onInput={e => setQuery(e.currentTarget.value)}
        />
      </div>
      <p class="visually-hidden" aria-live="polite" data-testid="inbox-count">
        {shown.length} of {inbox.items.length} items shown
      </p>
      {inbox.items.length === 0 ? (
        <div class="card empty">
          <p>Nothing has been shared with you yet.</p>
          <p class="muted">
            Give people your id (on <a href="#/identity">Your identity</a>) or join a space by invitation on{' '}
            <a href="#/spaces">Spaces</a>: what they share with you appears here at once.
          </p>
        </div>
      ) : shown.length === 0 ? (
        <p class="card empty muted">Nothing matches this filter.</p>
      ) : (
        <ItemList items={shown} now={now} people={state} onOpen={setOpen} onAsk={setAsking} />
      )}
      {open !== undefined && (
        <Viewer
          space={open.space}
          object={open.resource}
          title={title(open)}
          viewer={state.identity.did}
          onClose={() => setOpen(undefined)}
        />
      )}
      {asking !== undefined && (
        <RequestDialog
          space={asking.space}
          spaceName={asking.spaceName}
          resource={asking.resource}
          title={title(asking)}
          onDone={() => setAsking(undefined)}
        />
      )}
    </section>
  )
}

/** The rows in view of a long list, in a scrolling box with the height of them all. */
function ItemList(props: {
  items: InboxItem[]
  now: number
  people: ScreenProps['state']
  onOpen: (i: InboxItem) => void
  onAsk: (i: InboxItem) => void
}) {
  const box = useRef<HTMLDivElement>(null)
  const [top, setTop] = useState(0)
  const [height, setHeight] = useState(600)
  useEffect(() => {
    const el = box.current
    if (el === null) return
    const measure = () => setHeight(el.clientHeight)
    measure()
    const ro = new ResizeObserver(measure)
    ro.observe(el)
    return () => ro.disconnect()
  }, [])
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN)
  const last = Math.min(props.items.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN)
  return (
    <div class="inbox-list" ref={box} onScroll={e => setTop(e.currentTarget.scrollTop)}>
      <ul
        class="inbox-rows"
        aria-label={`Shared with you: ${props.items.length} items`}
        style={{ height: `${props.items.length * ROW_HEIGHT}px` }}
      >
        {props.items.slice(first, last).map((item, k) => (
          <Row key={item.key} item={item} index={first + k} {...props} />
        ))}
      </ul>
    </div>
  )
}

function Row(props: {
  item: InboxItem
  index: number
  now: number
  people: ScreenProps['state']
  onOpen: (i: InboxItem) => void
  onAsk: (i: InboxItem) => void
}) {
  const { item, now } = props
  const st = stateAt(item, now)
  const left = item.notAfter === undefined ? undefined : item.notAfter - now
  const expiring = st === 'active' && left !== undefined && left < EXPIRING_MS
  const name = title(item)
  return (
    <li
      class="inbox-row"
      style={{ top: `${props.index * ROW_HEIGHT}px` }}
      data-state={st}
      data-kind={item.kind}
      data-resource={item.resource}
    >
      <span class={`kind kind-${item.kind}`} aria-hidden="true">
        {item.kind === 'file' ? 'F' : item.kind === 'message' ? 'M' : 'S'}
      </span>
      <div class="inbox-main">
        <span class="inbox-name">{name}</span>
        <span class="muted small">
          <Person did={item.from} state={props.people} /> · {item.spaceName} · {formatWhen(item.at)}
          {!item.download && item.kind !== 'stream' && ' · view only'}
        </span>
      </div>
      <div class="inbox-state">
        <span class={`badge ${expiring ? 'badge-attention' : STATE_BADGE[st]}`}>
          {expiring ? `expires in ${formatSpan(left!)}` : STATE_WORDS[st]}
        </span>
        {st === 'active' && !expiring && left !== undefined && (
          <span class="muted small">ends in {formatSpan(left)}</span>
        )}
        {item.why !== undefined && st !== 'active' && <span class="muted small why">{item.why}</span>}
      </div>
      <div class="inbox-actions">
        {st === 'active' && item.kind !== 'stream' && (
          <button type="button" class="button" onClick={() => props.onOpen(item)} aria-label={`Open ${name}`}>
            Open
          </button>
        )}
        {st === 'active' && item.kind === 'stream' && (
          <a class="button" href="#/streams" aria-label={`Watch ${name}`}>
            Watch
          </a>
        )}
        {(st === 'expired' || st === 'revoked' || st === 'denied' || st === 'not-honoured') && (
          <button
            type="button"
            class="button button-quiet"
            onClick={() => props.onAsk(item)}
            aria-label={`Request access to ${name}`}
          >
            Request access
          </button>
        )}
      </div>
    </li>
  )
}
