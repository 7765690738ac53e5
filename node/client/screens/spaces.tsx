/**
 * Spaces: the spaces this person owns or joined, as cards by name; a new space; an invite
 * (valid for a time and a number of uses, optionally with access to some streams for a time,
 * view only or not) shown as a code to copy; a space's custodians (spaces-custody.tsx); and
 * joining a space by pasting a code, with progress while the node reaches the inviter and the
 * space synchronises, and what went wrong in words. Names, not ids: a space's id shows only in
 * its "Details". The node decides who may invite and what a code is worth; the screen sends the
 * person's choices and shows the answers.
 */
import type { ComponentChildren } from 'preact'
import { useState } from 'preact/hooks'
import type { ClientState, SpaceView } from '../../ui/contract.ts'
import type { InviteCreated, InviteRequest, JoinResult } from '../../ui/contract-spaces.ts'
import { ApiError, useApi } from '../api.ts'
import { Copyable } from '../parts/copyable.tsx'
import { Person } from '../parts/person.tsx'
import { spaceName } from '../parts/space-picker.tsx'
import { ACCESS_DURATIONS, DAY, formatWhen, HOUR } from '../parts/time.ts'
import { useSubmit } from '../parts/use-submit.ts'
import type { ScreenProps } from './props.ts'
import './spaces.css'
import { Choice, type ChoiceProps } from '../parts/choice.tsx'
import { FormButtons } from '../parts/form-buttons.tsx'
import { FormError } from '../parts/form-error.tsx'
import { PasteField } from '../parts/paste-field.tsx'
import { CustodyHere, CustodySection } from './spaces-custody.tsx'

const VALID_FOR: { ms: number; label: string }[] = [
  { ms: HOUR, label: '1 hour' },
  { ms: DAY, label: '1 day' },
  { ms: 7 * DAY, label: '7 days' },
  { ms: 30 * DAY, label: '30 days' },
]

/** how long the access an invite gives lasts, counted from joining, as its options say */
const ACCESS_FOR: { ms: number; label: string }[] = [...ACCESS_DURATIONS, { ms: 30 * DAY, label: '30 days' }].map(
  d => ({ ms: d.ms, label: `${d.label} from joining` }),
)

const ROLE: Record<SpaceView['role'], string> = { owner: 'You own it', admin: 'You are an admin', member: 'Member' }

/** What went wrong with a join, in words a person can act on. */
function joinProblem(err: unknown): string {
  if (!(err instanceof Error) || err.name !== ApiError.name) return `Something went wrong: ${String(err)}`
  const e = err as ApiError
  if (e.status === 400 && /^malformed invite/.test(e.message))
    return 'This is not a complete invite code. Check that you pasted all of it: codes start with ew1-.'
  if (e.status === 400 && /expired/.test(e.message))
    return 'This invite has expired. Ask the person who sent it for a new one.'
  if (e.status === 503)
    return 'The person who invited you could not be reached. Their device has to be on and online: try again later.'
  if (e.status === 403) {
    const words: Record<string, string> = {
      used: 'This invite has already been used. Ask for a new one.',
      expired: 'This invite has expired. Ask the person who sent it for a new one.',
      unknown: 'The inviter does not know this invite: it may have been made on another of their devices, or changed.',
      'not-authorized': 'The inviter may no longer give the access this invite offers. Ask for a new one.',
    }
    return words[e.code ?? ''] ?? `The inviter refused: ${e.message}`
  }
  return e.message
}

export function SpacesScreen({ state }: ScreenProps) {
  const spaces = [...state.spaces].sort((a, b) => (a.name ?? '~').localeCompare(b.name ?? '~'))
  return (
    <>
      <p class="lead">
        A space is where you share with a group: its owner decides who sees what. Invite people with a code they paste
        into their own edgeward; nobody needs to type an address.
      </p>
      <div class="spaces-top">
        <NewSpace />
        <JoinSpace />
      </div>
      <section aria-labelledby="your-spaces">
        <h2 id="your-spaces" class="spaces-heading">
          Your spaces
        </h2>
        {spaces.length === 0 ? (
          <p class="muted">No space yet: create one, or join one with an invite code.</p>
        ) : (
          <ul class="spaces-list">
            {spaces.map(s => (
              <li key={s.id}>
                <SpaceCard space={s} state={state} />
              </li>
            ))}
          </ul>
        )}
      </section>
    </>
  )
}

function SpaceCard({ space, state }: { space: SpaceView; state: ClientState }) {
  const [inviting, setInviting] = useState(false)
  const [details, setDetails] = useState(false)
  const name = spaceName(space)
  const headingId = `space-${space.id.slice(0, 12)}`
  const mayInvite = space.synchronised && (space.role === 'owner' || space.role === 'admin')
  return (
    <article class="card space-card" aria-labelledby={headingId}>
      <div class="space-head">
        <h3 id={headingId}>{name}</h3>
        {space.synchronised ? (
          <span class="badge badge-ok">Up to date</span>
        ) : (
          <span class="badge badge-attention">Waiting for a peer of the space</span>
        )}
      </div>
      <p class="space-facts">
        {ROLE[space.role]}
        {space.keyHolder && ' · keeps its keys on this device'}
        {!space.keyHolder && space.mayShare && ' · may share files and messages'}
        {' · '}
        {space.streams.length === 0
          ? 'no streams yet'
          : `${space.streams.length} stream${space.streams.length === 1 ? '' : 's'}: ${space.streams.join(', ')}`}
      </p>
      {mayInvite && !inviting && (
        <button type="button" class="button" onClick={() => setInviting(true)} aria-label={`Invite someone to ${name}`}>
          Invite…
        </button>
      )}
      {inviting && <InviteForm space={space} onClose={() => setInviting(false)} />}
      <CustodySection space={space} state={state} name={name} />
      <details class="disclosure space-details" onToggle={e => setDetails(e.currentTarget.open)}>
        <summary>Details</summary>
        <dl class="space-ids">
          <dt>Space id</dt>
          <dd class="mono">{space.id}</dd>
          {space.owner !== undefined && (
            <>
              <dt>Owner</dt>
              <dd>
                <Person did={space.owner} state={state} />
                <div class="mono">{space.owner}</div>
              </dd>
            </>
          )}
          {details && <CustodyHere space={space} state={state} />}
        </dl>
      </details>
    </article>
  )
}

function InviteForm({ space, onClose }: { space: SpaceView; onClose: () => void }) {
  const api = useApi()
  const [validFor, setValidFor] = useState(7 * DAY)
  const [uses, setUses] = useState('1')
  const [withAccess, setWithAccess] = useState(false)
  const [streams, setStreams] = useState<string[]>([])
  const [accessFor, setAccessFor] = useState(48 * HOUR)
  const [viewOnly, setViewOnly] = useState(false)
  const [made, setMade] = useState<InviteCreated>()
  const name = space.name ?? 'the space'
  const n = Number(uses)

  const { busy, error, submit } = useSubmit(async () => {
    if (!Number.isInteger(n) || n < 1 || n > 1000) return 'Uses: a whole number from 1 to 1000.'
    if (withAccess && streams.length === 0) return 'Choose the streams the invite gives access to.'
    const body: InviteRequest = { for: validFor, uses: n }
    if (withAccess) Object.assign(body, { streams, accessMs: accessFor, download: !viewOnly })
    setMade(await api.send<InviteCreated>('POST', `/v1/spaces/${space.id}/invites`, body))
  })

  if (made !== undefined) {
    return (
      <section class="invite-made" aria-label={`Invite code for ${name}`}>
        <p>
          Send this code to the person you invite. It works {n === 1 ? 'once' : `${n} times`}, until{' '}
          {formatWhen(made.expiresAt)}
          {withAccess
            ? `, and gives ${streams.join(', ')} for ${ACCESS_FOR.find(a => a.ms === accessFor)?.label}${viewOnly ? ', view only' : ''}.`
            : '.'}
        </p>
        <Copyable id={`invite-${space.id.slice(0, 12)}`} value={made.invite} label={`the invite code for ${name}`} />
        <button type="button" class="button button-quiet" onClick={onClose}>
          Done
        </button>
      </section>
    )
  }

  return (
    <form class="invite-form" onSubmit={submit} aria-label={`Invite someone to ${name}`}>
      <div class="invite-row">
        <DurationField label="Valid for" options={VALID_FOR} value={validFor} onChange={setValidFor} />
        <label class="field-label">
          Uses
          <input
            class="field invite-uses"
            type="number"
            min={1}
            max={1000}
            value={uses}
            onInput={e => setUses(e.currentTarget.value)}
          />
        </label>
      </div>
      <label class="checkbox">
        <input type="checkbox" checked={withAccess} onChange={e => setWithAccess(e.currentTarget.checked)} />
        Also give access to streams
      </label>
      {withAccess && (
        <fieldset class="invite-access">
          <legend>Access that comes with the invite</legend>
          {space.streams.length === 0 ? (
            <p class="muted">This space has no streams yet.</p>
          ) : (
            <div class="invite-streams">
              {space.streams.map(s => (
                <label key={s} class="checkbox">
                  <input
                    type="checkbox"
                    checked={streams.includes(s)}
                    onChange={e => setStreams(e.currentTarget.checked ? [...streams, s] : streams.filter(x => x !== s))}
                  />
                  {s}
                </label>
              ))}
            </div>
          )}
          <DurationField label="Access lasts" options={ACCESS_FOR} value={accessFor} onChange={setAccessFor} />
          <label class="checkbox">
            <input type="checkbox" checked={viewOnly} onChange={e => setViewOnly(e.currentTarget.checked)} />
            View only (no download)
          </label>
        </fieldset>
      )}
      <FormError error={error} />
      <FormButtons action="Make invite code" doing="Making the code…" busy={busy} leave="Cancel" onLeave={onClose} />
    </form>
  )
}

/** A duration to choose, named by its label alone (not by the words of the option chosen, as the label around it would). */
function DurationField({
  label,
  ...choice
}: { label: string } & Pick<ChoiceProps<{ ms: number; label: string }, 'ms'>, 'options' | 'value' | 'onChange'>) {
  return (
    <label class="field-label">
      {label}
      <Choice class="field" aria-label={label} by="ms" {...choice} />
    </label>
  )
}

function NewSpace() {
  const api = useApi()
  const [name, setName] = useState('')
  const [said, setSaid] = useState('')

  const submitting = useSubmit(async () => {
    const trimmed = name.trim()
    if (trimmed === '') return 'Give the space a name.'
    await api.send('POST', '/v1/spaces', { name: trimmed })
    setSaid(`Created ${trimmed}.`)
    setName('')
  })

  return (
    <CardForm id="new-space" title="New space" action="Create space" doing="Creating…" said={said} {...submitting}>
      <label class="field-label">
        Name
        <input
          class="field"
          value={name}
          maxLength={128}
          placeholder="e.g. Plant 7 sensors"
          onInput={e => setName(e.currentTarget.value)}
        />
      </label>
    </CardForm>
  )
}

function JoinSpace() {
  const api = useApi()
  const [code, setCode] = useState('')
  const [joined, setJoined] = useState<JoinResult>()

  const submitting = useSubmit(async () => {
    if (code.trim() === '') return 'Paste the invite code you were sent.'
    setJoined(undefined)
    setJoined(await api.send<JoinResult>('POST', '/v1/join', { invite: code.trim() }))
    setCode('')
  }, joinProblem)

  const said = submitting.busy
    ? 'Reaching the person who invited you, then waiting for the space to arrive…'
    : joined !== undefined
      ? joinedWords(joined)
      : ''
  return (
    <CardForm id="join-space" title="Join a space" action="Join" doing="Joining…" said={said} {...submitting}>
      <PasteField label="Invite code" class="join-code" placeholder="ew1-…" value={code} onInput={setCode} />
    </CardForm>
  )
}

interface CardFormProps {
  /** the id of its heading, which names the card */
  id: string
  title: string
  /** the submit button's words, and its words while the form is busy */
  action: string
  doing: string
  /** what came of the last submit, read out politely; '' for nothing */
  said: string
  children: ComponentChildren
}

/** A card holding one small form of this screen: its fields, the submit button, what came of it and what went wrong. */
function CardForm(props: CardFormProps & ReturnType<typeof useSubmit>) {
  return (
    <section class="card" aria-labelledby={props.id}>
      <h2 id={props.id}>{props.title}</h2>
      <form onSubmit={props.submit}>
        {props.children}
        <button type="submit" class="button button-primary" disabled={props.busy}>
          {props.busy ? props.doing : props.action}
        </button>
        <span class="spaces-said" role="status" aria-live="polite">
          {props.said}
        </span>
        <FormError error={props.error} />
      </form>
    </section>
  )
}

function joinedWords(j: JoinResult): string {
  const access =
    j.grant === undefined
      ? ''
      : ` You can read ${j.grant.streams.join(', ')} until ${formatWhen(j.grant.notAfter)}${j.grant.download ? '' : ' (view only)'}.`
  const sync = j.synchronised ? '' : ' It appears here once a peer of the space is online.'
  return `You joined ${j.name}.${access}${sync}`
}
