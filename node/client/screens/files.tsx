/**
 * Files: share a file with one or several people (dropped on the page or chosen with a
 * button), for a time, to download or to view only, with a progress bar while it uploads;
 * what you shared in a space, with each recipient's state and end; and the files shared with
 * you, with their state and a live countdown. The node encrypts, grants and decides; the
 * screen sends the person's choices and shows the node's answers. It fetches again when the
 * node's state says policy changed (`inboxVersion`) and after each share.
 */
import { useMemo, useRef, useState } from 'preact/hooks'
import type { SpaceView } from '../../ui/contract.ts'
import { CSRF_HEADER } from '../../ui/contract.ts'
import type { Inbox, InboxItem, InboxState } from '../../ui/contract-inbox.ts'
import type {
  ObjectForward,
  ObjectGrantStatus,
  ObjectList,
  ObjectSummary,
  ShareAnswer,
} from '../../ui/contract-objects.ts'
import { ApiError, currentSession } from '../api.ts'
import { type People, Person, personName } from '../parts/person.tsx'
import { RecipientsField, usePeopleOf } from '../parts/recipients-field.tsx'
import { SpacePicker, spaceName } from '../parts/space-picker.tsx'
import { DAY, formatSpan, formatWhen, HOUR, useNow } from '../parts/time.ts'
import { useFetched } from '../parts/use-fetched.ts'
import { Viewer } from '../parts/viewer.tsx'
import { hrefOf } from '../routes.ts'
import type { ScreenProps } from './props.ts'
import './files.css'
import { Badge, type BadgeProps, GRANT_STATUS } from '../parts/badge.tsx'
import { Choice } from '../parts/choice.tsx'
import { Icon } from '../parts/icon.tsx'

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

// ---- uploading ----

/**
 * POST the file to the node as the request body, with the session's CSRF token; `onProgress`
 * with the share of bytes sent (XMLHttpRequest: fetch reports no upload progress).
 */
async function upload(
  path: string,
  body: Blob,
  onProgress: (sent: number, total: number) => void,
  signal: AbortSignal,
): Promise<ShareAnswer> {
  const { csrf } = await currentSession()
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', path)
    xhr.setRequestHeader(CSRF_HEADER, csrf)
    xhr.setRequestHeader('content-type', 'application/octet-stream')
    xhr.responseType = 'json'
    xhr.upload.onprogress = e => onProgress(e.loaded, e.lengthComputable ? e.total : body.size)
    xhr.onload = () => {
      const answer = xhr.response as (ShareAnswer & { error?: { message?: string; code?: string } }) | null
      if (xhr.status === 200 && answer !== null) resolve(answer)
      else reject(new ApiError(xhr.status, answer?.error?.message ?? `HTTP ${xhr.status}`, answer?.error?.code))
    }
    xhr.onerror = () => reject(new ApiError(0, 'the node did not answer'))
    xhr.onabort = () => reject(new ApiError(0, 'cancelled'))
    signal.addEventListener('abort', () => xhr.abort())
    xhr.send(body)
  })
}

// ---- the share form ----

const DURATIONS: { ms: number; label: string; long: string }[] = [
  { ms: HOUR, label: '1 h', long: '1 hour' },
  { ms: 8 * HOUR, label: '8 h', long: '8 hours' },
  { ms: 48 * HOUR, label: '48 h', long: '48 hours' },
  { ms: 7 * DAY, label: '7 d', long: '7 days' },
]

const UNITS: { ms: number; label: string }[] = [
  { ms: 60_000, label: 'minutes' },
  { ms: HOUR, label: 'hours' },
  { ms: DAY, label: 'days' },
]

const FORWARD: { value: ObjectForward; label: string }[] = [
  { value: 'never', label: 'Never' },
  { value: 'ask-owner', label: 'Ask me first' },
  { value: 'allowed', label: 'Allowed' },
]

type Sending = { sent: number; total: number; name: string }

function ShareForm({
  space,
  state,
  people,
  onShared,
}: {
  space: SpaceView
  state: People
  people: string[]
  onShared: () => void
}) {
  const [file, setFile] = useState<File>()
  const [to, setTo] = useState<string[]>([])
  const [duration, setDuration] = useState<number | 'custom'>(48 * HOUR)
  const [custom, setCustom] = useState({ amount: '3', unit: DAY })
  const [download, setDownload] = useState(false)
  const [forward, setForward] = useState<ObjectForward>('never')
  const [over, setOver] = useState(false)
  const [sending, setSending] = useState<Sending>()
  const [said, setSaid] = useState<{ tone: 'ok' | 'trouble'; text: string }>()
  const picker = useRef<HTMLInputElement>(null)
  const abort = useRef<AbortController | undefined>(undefined)

  const pick = (files: FileList | null | undefined) => {
    const f = files?.[0]
    if (f === undefined) return
    setFile(f)
    setSaid(undefined)
  }
  const durationMs = duration === 'custom' ? Math.round(Number(custom.amount) * custom.unit) : duration
  const durationWords =
    duration === 'custom'
      ? `${custom.amount} ${UNITS.find(u => u.ms === custom.unit)?.label}`
      : DURATIONS.find(d => d.ms === duration)?.long

  const submit = async (e: Event) => {
    e.preventDefault()
    if (file === undefined) return setSaid({ tone: 'trouble', text: 'Choose a file to share first.' })
    if (to.length === 0) return setSaid({ tone: 'trouble', text: 'Add at least one person to share with.' })
    if (!Number.isFinite(durationMs) || durationMs < 60_000)
      return setSaid({ tone: 'trouble', text: 'The access must last at least a minute.' })
    const q = new URLSearchParams()
    for (const d of to) q.append('to', d)
    q.set('for', String(durationMs))
    q.set('download', String(download))
    q.set('forward', forward)
    q.set('name', file.name.slice(0, 255) || 'file')
    q.set('type', 'file')
    abort.current = new AbortController()
    setSaid(undefined)
    setSending({ sent: 0, total: file.size, name: file.name })
    try {
      await upload(
        `/v1/spaces/${space.id}/objects?${q}`,
        file,
        (sent, total) => setSending({ sent, total, name: file.name }),
        abort.current.signal,
      )
      const whom = to.length === 1 ? personName(to[0], state) : `${to.length} people`
      setSaid({ tone: 'ok', text: `Shared ${file.name} with ${whom} for ${durationWords}.` })
      setFile(undefined)
      setTo([])
      onShared()
    } catch (err) {
      setSaid({ tone: 'trouble', text: `Not shared: ${(err as Error).message}` })
    } finally {
      setSending(undefined)
    }
  }

  const percent = sending === undefined || sending.total === 0 ? 0 : Math.round((sending.sent / sending.total) * 100)
  return (
    <form class="card files-share" aria-labelledby="share-heading" onSubmit={submit} noValidate>
      <h2 id="share-heading">Share a file</h2>
      <section
        class={`drop-zone files-drop${over ? ' drop-zone-over' : ''}${file !== undefined ? ' files-drop-chosen' : ''}`}
        data-testid="drop-zone"
        aria-label="Drop a file here to share it"
        onDragEnter={e => {
          e.preventDefault()
          setOver(true)
        }}
        onDragOver={e => {
          e.preventDefault()
          if (e.dataTransfer !== null) e.dataTransfer.dropEffect = 'copy'
          setOver(true)
        }}
        onDragLeave={() => setOver(false)}
        onDrop={e => {
          e.preventDefault()
          setOver(false)
          pick(e.dataTransfer?.files)
        }}
      >
        <FileIcon big />
        {file === undefined ? (
          <div class="files-drop-text">
            <p class="files-drop-title">Drop a file here</p>
            <p class="muted small">It is encrypted on this device before anyone can fetch it.</p>
          </div>
        ) : (
          <div class="files-drop-text">
            <p class="files-drop-title" id="chosen-file">
              {file.name}
            </p>
            <p class="muted small">{formatSize(file.size)} · ready to share</p>
          </div>
        )}
        <div class="files-drop-actions">
          {file !== undefined && (
            <button
              type="button"
              class="button files-quiet"
              onClick={() => setFile(undefined)}
              aria-label={`Remove ${file.name}`}
            >
              Remove
            </button>
          )}
          <button type="button" class="button" onClick={() => picker.current?.click()}>
            {file === undefined ? 'Choose file' : 'Choose another'}
          </button>
        </div>
        <input
          ref={picker}
          type="file"
          hidden
          data-testid="file-input"
          onChange={e => {
            pick((e.target as HTMLInputElement).files)
            ;(e.target as HTMLInputElement).value = ''
          }}
        />
      </section>

      <RecipientsField
        id="share-to"
        label="Share with"
        value={to}
        onChange={setTo}
        suggestions={people}
        state={state}
      />

      <fieldset class="form-field files-choice-field">
        <legend class="field-title">For</legend>
        <div class="files-choice">
          {DURATIONS.map(d => (
            <label key={d.ms} class={duration === d.ms ? 'files-choice-item on' : 'files-choice-item'}>
              <input
                type="radio"
                name="share-duration"
                checked={duration === d.ms}
                onChange={() => setDuration(d.ms)}
                aria-label={d.long}
              />
              {d.label}
            </label>
          ))}
          <label class={duration === 'custom' ? 'files-choice-item on' : 'files-choice-item'}>
            <input
              type="radio"
              name="share-duration"
              checked={duration === 'custom'}
              onChange={() => setDuration('custom')}
            />
            Custom
          </label>
        </div>
        {duration === 'custom' && (
          <div class="files-custom">
            <input
              class="field"
              type="number"
              min="1"
              step="1"
              aria-label="How long"
              value={custom.amount}
              onInput={e => setCustom({ ...custom, amount: (e.target as HTMLInputElement).value })}
            />
            <Choice
              aria-label="Unit"
              options={UNITS}
              by="ms"
              value={custom.unit}
              onChange={unit => setCustom({ ...custom, unit })}
            />
          </div>
        )}
      </fieldset>

      <div class="files-row">
        <fieldset class="form-field files-choice-field">
          <legend class="field-title">They may</legend>
          <div class="files-choice">
            <label class={!download ? 'files-choice-item on' : 'files-choice-item'}>
              <input type="radio" name="share-download" checked={!download} onChange={() => setDownload(false)} />
              View only
            </label>
            <label class={download ? 'files-choice-item on' : 'files-choice-item'}>
              <input type="radio" name="share-download" checked={download} onChange={() => setDownload(true)} />
              Download
            </label>
          </div>
        </fieldset>
        <div class="form-field">
          <label class="field-title" for="share-forward">
            Forwarding
          </label>
          <Choice id="share-forward" options={FORWARD} by="value" value={forward} onChange={setForward} />
        </div>
      </div>
      <p class="form-hint">
        {download
          ? 'They can save a copy. Revoking ends their access to the key, not to a copy they saved.'
          : 'They can open it in edgeward only; the node never hands them the file to save.'}
      </p>

      <div class="files-share-footer">
        <div class="files-share-feedback">
          {sending !== undefined && (
            <div class="files-progress">
              <label for="share-progress" class="small">
                Encrypting and sending {sending.name}… {percent}%
              </label>
              <div class="files-progress-line">
                <progress id="share-progress" max={100} value={percent} />
                <button type="button" class="button files-quiet" onClick={() => abort.current?.abort()}>
                  Cancel
                </button>
              </div>
            </div>
          )}
          <p
            class={`files-said${said === undefined ? '' : ` files-said-${said.tone}`}`}
            role="status"
            aria-live="polite"
          >
            {sending === undefined ? said?.text : ''}
          </p>
        </div>
        <button type="submit" class="button button-primary" disabled={sending !== undefined}>
          Share
        </button>
      </div>
    </form>
  )
}

// ---- lists ----

/** A grant's status in a file's row: as on the Access screen, "Not yet" for short. */
const FILE_GRANT_STATUS: Record<ObjectGrantStatus, BadgeProps> = {
  ...GRANT_STATUS,
  pending: { label: 'Not yet', tone: 'attention' },
}

const { pending: notYet, ...sameInInbox } = FILE_GRANT_STATUS

/** An item of one's inbox: its grant's status (a pending one is "not-yet" there), or its request's. */
const INBOX_STATE: Record<InboxState, BadgeProps> = {
  ...sameInInbox,
  'not-yet': notYet,
  requested: { label: 'Requested', tone: 'attention' },
  denied: { label: 'Denied', tone: 'trouble' },
}

/** "expires in 1 h 58 min" while it lasts, "ended 14:03" once over. */
function Ends({ at, now }: { at: number; now: number }) {
  return at > now ? (
    <span class="files-ends" title={new Date(at).toLocaleString()}>
      expires in {formatSpan(at - now)}
    </span>
  ) : (
    <span class="files-ends" title={new Date(at).toLocaleString()}>
      ended {formatWhen(at)}
    </span>
  )
}

const objectLabel = (o: { name?: string; object: string }) => o.name ?? `File ${o.object.slice(4, 12)}…`

function SharedByYou({ list, now, state }: { list: ObjectSummary[] | undefined; now: number; state: People }) {
  if (list === undefined) return <p class="muted">Loading…</p>
  if (list.length === 0)
    return (
      <p class="empty-box muted">
        Nothing shared from this space yet. Files you share appear here, with who can open them.
      </p>
    )
  return (
    <ul class="rows files-list" aria-label="Files shared by you">
      {list.map(o => (
        <li key={o.object} class="files-item">
          <FileIcon />
          <div class="files-item-main">
            <p class="files-item-name" title={o.object}>
              {objectLabel(o)}
            </p>
            <p class="files-item-meta">Shared {formatWhen(o.createdAt)}</p>
            <ul class="files-recipients" aria-label={`Who can open ${objectLabel(o)}`}>
              {o.grants.length === 0 && <li class="muted small">No grant yet</li>}
              {o.grants.map(g => (
                <li key={g.id} class="files-recipient">
                  <Person did={g.subject} state={state} />
                  <Badge {...FILE_GRANT_STATUS[g.status]} />
                  <span class="muted small">{g.download ? 'Download' : 'View only'}</span>
                  {g.status === 'revoked' ? (
                    <span class="files-ends">
                      {g.revokedAt !== undefined ? `revoked ${formatWhen(g.revokedAt)}` : 'revoked'}
                    </span>
                  ) : (
                    <Ends at={g.notAfter} now={now} />
                  )}
                </li>
              ))}
            </ul>
          </div>
        </li>
      ))}
    </ul>
  )
}

function SharedWithYou({
  items,
  now,
  state,
  onOpen,
}: {
  items: InboxItem[] | undefined
  now: number
  state: People
  onOpen: (i: InboxItem) => void
}) {
  if (items === undefined) return <p class="muted">Loading…</p>
  if (items.length === 0)
    return <p class="empty-box muted">No file shared with you yet. Give people your id (Your identity) so they can.</p>
  return (
    <ul class="rows files-list" aria-label="Files shared with you">
      {items.map(i => {
        const label = i.name ?? 'Unopened file'
        const active = i.state === 'active'
        return (
          <li key={i.key} class={`files-item${active ? '' : ' files-item-ended'}`}>
            <FileIcon />
            <div class="files-item-main">
              <p class="files-item-name" title={i.resource}>
                {label}
              </p>
              <p class="files-item-meta">
                From <Person did={i.from} state={state} /> in {i.spaceName} ·{' '}
                {i.download ? 'Download allowed' : 'View only'}
              </p>
              <p class="files-item-state">
                <Badge {...INBOX_STATE[i.state]} />
                {active && i.notAfter !== undefined && <Ends at={i.notAfter} now={now} />}
                {!active && i.why !== undefined && <span class="muted small">{i.why}</span>}
              </p>
            </div>
            {active && (
              <div class="files-item-actions">
                <button type="button" class="button" onClick={() => onOpen(i)} aria-label={`Open ${label}`}>
                  Open
                </button>
                {i.download && (
                  <a
                    class="button"
                    href={`/v1/spaces/${i.space}/objects/${i.resource}`}
                    download={i.name ?? 'file'}
                    aria-label={`Download ${label}`}
                  >
                    Download
                  </a>
                )}
              </div>
            )}
          </li>
        )
      })}
    </ul>
  )
}

function FileIcon({ big }: { big?: boolean }) {
  return <Icon name="file" class={big ? 'files-icon files-icon-big' : 'files-icon'} />
}

// ---- the screen ----

export function FilesScreen({ state }: ScreenProps) {
  const me = state.identity.did
  const [chosen, setChosen] = useState<string>()
  const spaces = state.spaces.filter(s => s.synchronised)
  const space = spaces.find(s => s.id === chosen) ?? spaces.find(s => s.mayShare) ?? spaces[0]
  const [shares, setShares] = useState(0)
  const version = `${state.inboxVersion}/${shares}`
  const objects = useFetched<ObjectList>(space === undefined ? undefined : `/v1/spaces/${space.id}/objects`, version)
  const inbox = useFetched<Inbox>('/v1/inbox', version)
  const people = usePeopleOf(space, me, state.inboxVersion + shares)
  const now = useNow()
  const [open, setOpen] = useState<InboxItem>()

  const mine = objects.value?.objects.filter(o => o.media === 'file' && o.creator === me)
  const withMe = inbox.value?.items.filter(i => i.kind === 'file')
  const seen = useMemo(() => {
    const s = new Set(people)
    for (const o of mine ?? []) for (const g of o.grants) if (g.subject !== me) s.add(g.subject)
    return [...s]
  }, [people, mine])

  return (
    <>
      <p class="lead">Share a file for as long as it is needed. Revoke it and it closes everywhere it was opened.</p>
      {space === undefined ? (
        <section class="card">
          <h2>No space yet</h2>
          <p>
            Files are shared in a space. Create one on the <a href={hrefOf('spaces')}>Spaces</a> screen, or join one you
            were invited to.
          </p>
        </section>
      ) : (
        <>
          <SpacePicker id="files-space" spaces={spaces} value={space.id} onChange={setChosen} />
          {space.mayShare ? (
            <ShareForm space={space} state={state} people={seen} onShared={() => setShares(n => n + 1)} />
          ) : (
            <section class="card" aria-labelledby="share-heading">
              <h2 id="share-heading">Share a file</h2>
              <p class="muted">
                Only the space's key holder, or a member its owner allowed to contribute, can share into it.{' '}
                {spaceName(space)} keeps its keys on another device.
              </p>
            </section>
          )}
          {(space.mayShare || (mine?.length ?? 0) > 0) && (
            <section class="files-section" aria-labelledby="by-you">
              <h2 id="by-you">
                Shared by you <span class="muted files-count">in {spaceName(space)}</span>
              </h2>
              {objects.error !== undefined ? (
                <p class="form-error">{objects.error}</p>
              ) : (
                <SharedByYou list={mine} now={now} state={state} />
              )}
            </section>
          )}
        </>
      )}
      <section class="files-section" aria-labelledby="with-you">
        <h2 id="with-you">Shared with you</h2>
        {inbox.error !== undefined ? (
          <p class="form-error">{inbox.error}</p>
        ) : (
          <SharedWithYou items={withMe} now={now} state={state} onOpen={setOpen} />
        )}
      </section>
      {open !== undefined && (
        <Viewer
          space={open.space}
          object={open.resource}
          title={open.name ?? 'Unopened file'}
          viewer={me}
          onClose={() => setOpen(undefined)}
        />
      )}
    </>
  )
}
