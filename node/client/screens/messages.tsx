/**
 * Messages: a conversation per space, in time order: the messages this person sent there (from
 * the space's objects) and the ones sent to them (from the inbox). Each is opened when shown,
 * which fetches its key from the space's key holder; one that was revoked or expired shows who
 * ended it and when instead of its text, and its text is dropped from the page. A composer
 * sends to one person, several or everyone granted in the space, for a time. New messages
 * arrive without a reload: the screen fetches again when the node's state says policy changed
 * (`inboxVersion`).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { SpaceView } from '../../ui/contract.ts'
import { CSRF_HEADER } from '../../ui/contract.ts'
import type { Inbox, InboxState } from '../../ui/contract-inbox.ts'
import type { ObjectList, ShareAnswer } from '../../ui/contract-objects.ts'
import { currentSession } from '../api.ts'
import { type People, Person, personName } from '../parts/person.tsx'
import { RecipientsField, usePeopleOf } from '../parts/recipients-field.tsx'
import { spaceName } from '../parts/space-picker.tsx'
import { DAY, formatSpan, formatWhen, HOUR, useNow } from '../parts/time.ts'
import { useFetched } from '../parts/use-fetched.ts'
import { hrefOf } from '../routes.ts'
import type { ScreenProps } from './props.ts'
import './messages.css'
import { Choice } from '../parts/choice.tsx'

/** One message of the conversation, from whichever side. */
interface Message {
  object: string
  at: number
  from: string
  mine: boolean
  /** for mine: the recipients */
  to: string[]
  state: InboxState
  notAfter?: number
  download: boolean
  revokedBy?: string
  revokedAt?: number
  why?: string
}

const EXPIRIES: { ms: number; label: string }[] = [
  { ms: HOUR, label: '1 hour' },
  { ms: DAY, label: '1 day' },
  { ms: 7 * DAY, label: '7 days' },
]

/** The space's conversation: my messages there and the ones to me, oldest first. */
function conversationOf(space: string, me: string, inbox: Inbox | undefined, list: ObjectList | undefined): Message[] {
  const out: Message[] = []
  const grants = new Map((list?.objects ?? []).flatMap(o => o.grants.map(g => [g.id, g] as const)))
  for (const o of list?.objects ?? []) {
    if (o.media !== 'message' || o.creator !== me) continue
    const live = o.grants.find(g => g.status === 'active')
    out.push({
      object: o.object,
      at: o.createdAt,
      from: me,
      mine: true,
      to: o.grants.map(g => g.subject),
      state: 'active',
      notAfter: live?.notAfter ?? Math.max(0, ...o.grants.map(g => g.notAfter)),
      download: true,
    })
  }
  for (const i of inbox?.items ?? []) {
    if (i.space !== space || i.kind !== 'message' || i.state === 'requested' || i.state === 'denied') continue
    if (out.some(m => m.object === i.resource)) continue
    const g = i.grant === undefined ? undefined : grants.get(i.grant)
    out.push({
      object: i.resource,
      at: i.at,
      from: i.from,
      mine: false,
      to: [me],
      state: i.state,
      notAfter: i.notAfter,
      download: i.download,
      ...(g?.revokedBy === undefined ? {} : { revokedBy: g.revokedBy, revokedAt: g.revokedAt }),
      ...(i.why === undefined ? {} : { why: i.why }),
    })
  }
  return out.sort((a, b) => a.at - b.at || (a.object < b.object ? -1 : 1))
}

/** Is the message readable now, on the node's word and the clock (an end passes with no record arriving)? */
const readable = (m: Message, now: number) => m.state === 'active' && (m.notAfter === undefined || m.notAfter > now)

type Opened = { text: string } | { problem: string; retry?: boolean }

/** how many times a message that could not be opened (not a refusal) is tried */
const OPEN_TRIES = 5

/**
 * The text of each readable message, fetched once; a message that is no longer readable loses
 * its text. A view-only message goes through the viewer's route, which never offers a save.
 */
function useTexts(space: string | undefined, messages: Message[], now: number): Map<string, Opened> {
  const [texts, setTexts] = useState(new Map<string, Opened>())
  const asked = useRef(new Set<string>())
  const wanted = messages.filter(m => readable(m, now))
  const wantedKey = wanted.map(m => m.object).join(',')
  useEffect(() => {
    if (space === undefined) return
    const keep = new Set(wanted.map(m => m.object))
    // what is no longer readable goes from the page, and may be asked for again if it comes back
    setTexts(t => ([...t.keys()].some(k => !keep.has(k)) ? new Map([...t].filter(([k]) => keep.has(k))) : t))
    for (const k of asked.current) if (!keep.has(k)) asked.current.delete(k)
    for (const m of wanted) {
      if (asked.current.has(m.object)) continue
      asked.current.add(m.object)
      const path = `/v1/spaces/${space}/objects/${m.object}${m.download ? '' : '/view'}`
      const attempt = (n: number) =>
        openText(path).then(opened => {
          if (!asked.current.has(m.object)) return
          // a message whose chunks are still on their way: again shortly; a refusal stands
          if ('problem' in opened && opened.retry && n < OPEN_TRIES)
            return void window.setTimeout(() => attempt(n + 1), 1000 * n)
          setTexts(t => new Map(t).set(m.object, opened))
        })
      attempt(1)
    }
  }, [space, wantedKey])
  return texts
}

async function openText(path: string): Promise<Opened> {
  try {
    const res = await fetch(path, { credentials: 'same-origin' })
    if (res.ok && (res.headers.get('content-type') ?? '').startsWith('text/plain')) return { text: await res.text() }
    if (res.ok) return { problem: 'This message can only be viewed in the viewer.' }
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } }
    return { problem: body.error?.message ?? `the node answered ${res.status}`, retry: res.status !== 403 }
  } catch (err) {
    return { problem: (err as Error).message, retry: true }
  }
}

/** Send a message: its text is the request body, with the session's CSRF token. */
async function sendMessage(space: string, to: string[], forMs: number, text: string): Promise<ShareAnswer> {
  const { csrf } = await currentSession()
  const q = new URLSearchParams()
  for (const d of to) q.append('to', d)
  q.set('for', String(forMs))
  q.set('type', 'message')
  q.set('name', 'message')
  const res = await fetch(`/v1/spaces/${space}/objects?${q}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { [CSRF_HEADER]: csrf, 'content-type': 'text/plain; charset=utf-8' },
    body: text,
  })
  const body = (await res.json().catch(() => ({}))) as ShareAnswer & { error?: { message?: string } }
  if (!res.ok) throw new Error(body.error?.message ?? `the node answered ${res.status}`)
  return body
}

// ---- parts ----

/** What stands in for a text that can no longer be read, and why. */
function gone(m: Message, state: People): string {
  if (m.state === 'revoked') {
    const who = personName(m.revokedBy ?? m.from, state)
    return m.revokedAt !== undefined ? `Revoked by ${who} at ${formatWhen(m.revokedAt)}` : `Revoked by ${who}`
  }
  if (m.state === 'expired' || (m.notAfter !== undefined && m.notAfter <= Date.now()))
    return `Expired at ${formatWhen(m.notAfter ?? m.at)}`
  if (m.state === 'not-yet') return `Readable from ${formatWhen(m.at)}`
  return `No longer valid${m.why === undefined ? '' : `: ${m.why}`}`
}

function recipientsOf(m: Message, everyone: string[], state: People) {
  if (m.to.length > 1 && everyone.length > 1 && everyone.every(d => m.to.includes(d))) return <>everyone</>
  if (m.to.length > 2) return <>{m.to.length} people</>
  return (
    <>
      {m.to.map((d, i) => (
        <span key={d}>
          {i > 0 && ', '}
          <Person did={d} state={state} />
        </span>
      ))}
    </>
  )
}

function MessageItem(props: { m: Message; opened?: Opened; now: number; people: string[]; state: People }) {
  const { m, opened, now, people, state } = props
  const ok = readable(m, now)
  return (
    <li class={m.mine ? 'msg msg-mine' : 'msg msg-theirs'}>
      <p class="msg-meta">
        {m.mine ? (
          <>
            <span class="msg-from">You</span> to {recipientsOf(m, people, state)}
          </>
        ) : (
          <span class="msg-from">
            <Person did={m.from} state={state} />
          </span>
        )}
        <span class="msg-dot" aria-hidden="true">
          ·
        </span>
        <time dateTime={new Date(m.at).toISOString()}>{formatWhen(m.at)}</time>
      </p>
      {!ok ? (
        <p class="msg-bubble msg-gone">
          <span class="visually-hidden">Message not readable: </span>
          {gone(m, state)}
        </p>
      ) : opened === undefined ? (
        <p class="msg-bubble msg-opening">Opening…</p>
      ) : 'problem' in opened ? (
        <p class="msg-bubble msg-gone">Could not open: {opened.problem}</p>
      ) : (
        <p class="msg-bubble">{opened.text}</p>
      )}
      {ok && m.notAfter !== undefined && (
        <p class="msg-foot">
          {m.mine ? 'Readable for ' : 'Disappears in '}
          {formatSpan(m.notAfter - now)}
        </p>
      )}
    </li>
  )
}

function Composer({
  space,
  state,
  people,
  onSent,
}: {
  space: SpaceView
  state: People
  people: string[]
  onSent: () => void
}) {
  const [to, setTo] = useState<string[]>([])
  const [forMs, setForMs] = useState(DAY)
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const [said, setSaid] = useState<string>()
  useEffect(() => {
    setTo([])
    setSaid(undefined)
  }, [space.id])

  const send = async () => {
    if (busy) return
    if (text.trim() === '') return setSaid('Write something first.')
    if (to.length === 0) return setSaid('Choose who the message is for.')
    setBusy(true)
    setSaid(undefined)
    try {
      await sendMessage(space.id, to, forMs, text)
      setText('')
      onSent()
    } catch (err) {
      setSaid(`Not sent: ${(err as Error).message}`)
    } finally {
      setBusy(false)
    }
  }
  return (
    <form
      class="msg-composer"
      aria-label="New message"
      onSubmit={e => {
        e.preventDefault()
        send()
      }}
    >
      <div class="msg-composer-top">
        <RecipientsField
          id="msg-to"
          label="To"
          value={to}
          onChange={setTo}
          suggestions={people}
          state={state}
          everyone
        />
        <div class="msg-expiry">
          <label class="field-title" for="msg-expiry">
            Disappears after
          </label>
          <Choice id="msg-expiry" options={EXPIRIES} by="ms" value={forMs} onChange={setForMs} />
        </div>
      </div>
      <div class="msg-write">
        <textarea
          aria-label="Message"
          aria-describedby="msg-keys"
          rows={2}
          placeholder={`Message ${spaceName(space)}`}
          value={text}
          onInput={e => setText((e.target as HTMLTextAreaElement).value)}
          onKeyDown={e => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault()
              send()
            }
          }}
        />
        <button type="submit" class="button button-primary" disabled={busy}>
          Send
        </button>
      </div>
      <p class="msg-composer-foot">
        <span id="msg-keys" class="muted small">
          Enter sends · Shift+Enter starts a new line
        </span>
        <span class="msg-said" role="status" aria-live="polite">
          {said}
        </span>
      </p>
    </form>
  )
}

// ---- the screen ----

export function MessagesScreen({ state }: ScreenProps) {
  const me = state.identity.did
  const spaces = state.spaces.filter(s => s.synchronised)
  const [chosen, setChosen] = useState<string>()
  const space = spaces.find(s => s.id === chosen) ?? spaces[0]
  const [sent, setSent] = useState(0)
  const version = `${state.inboxVersion}/${sent}`
  const inbox = useFetched<Inbox>('/v1/inbox', version)
  const list = useFetched<ObjectList>(
    space === undefined ? undefined : `/v1/spaces/${space.id}/objects?limit=1000`,
    version,
  )
  const people = usePeopleOf(space, me, state.inboxVersion + sent)
  const now = useNow()
  const messages = useMemo(
    () => (space === undefined ? [] : conversationOf(space.id, me, inbox.value, list.value)),
    [space?.id, inbox.value, list.value],
  )
  const texts = useTexts(space?.id, messages, now)
  const log = useRef<HTMLDivElement>(null)
  // the newest message in view, as a conversation does
  useEffect(() => {
    const el = log.current
    if (el !== null) el.scrollTop = el.scrollHeight
  }, [messages.length, space?.id, texts.size])

  if (space === undefined)
    return (
      <section class="card">
        <h2>No conversation yet</h2>
        <p>
          Each space is a conversation. Create one on the <a href={hrefOf('spaces')}>Spaces</a> screen, or join one you
          were invited to.
        </p>
      </section>
    )

  const received = (id: string) =>
    (inbox.value?.items ?? []).filter(i => i.space === id && i.kind === 'message' && i.state === 'active').length
  return (
    <div class="msg-layout">
      <nav class="msg-spaces" aria-label="Conversations">
        <ul class="places">
          {spaces.map(s => {
            const n = received(s.id)
            return (
              <li key={s.id}>
                <button
                  type="button"
                  class="msg-space place"
                  aria-current={s.id === space.id ? 'true' : undefined}
                  onClick={() => setChosen(s.id)}
                >
                  <span class="msg-space-avatar" aria-hidden="true">
                    {spaceName(s).slice(0, 1).toUpperCase()}
                  </span>
                  <span class="msg-space-name">{spaceName(s)}</span>
                  {n > 0 && (
                    <span class="msg-space-count" title={`${n} readable messages to you`}>
                      {n}
                      <span class="visually-hidden"> readable messages to you</span>
                    </span>
                  )}
                </button>
              </li>
            )
          })}
        </ul>
      </nav>
      <section class="msg-conversation" aria-labelledby="msg-heading">
        <header class="msg-head">
          <h2 id="msg-heading">{spaceName(space)}</h2>
          <p class="muted small">
            {people.length === 0 ? 'Nobody else here yet' : `${people.length + 1} people`}
            {space.keyHolder
              ? ' · keys on this device'
              : space.custody !== undefined
                ? ` · keys kept by ${space.custody.custodians.length} custodians`
                : ''}
          </p>
        </header>
        <div ref={log} class="msg-log" role="log" aria-live="polite" aria-label={`Messages in ${spaceName(space)}`}>
          <ol class="msg-list">
            {messages.length === 0 && (
              <li class="msg-empty">
                No messages yet. {space.mayShare ? 'Say hello below: each message lasts as long as you choose.' : ''}
              </li>
            )}
            {messages.map(m => (
              <MessageItem key={m.object} m={m} opened={texts.get(m.object)} now={now} people={people} state={state} />
            ))}
          </ol>
        </div>
        {space.mayShare ? (
          <Composer space={space} state={state} people={people} onSent={() => setSent(n => n + 1)} />
        ) : (
          <p class="msg-readonly">
            Only the space's key holder, or a member its owner allowed to contribute, can share into it: you can read
            what is sent to you.
          </p>
        )}
      </section>
    </div>
  )
}
