/**
 * Audit: for one space, when each person held a key to each item (stream or file), as a
 * timeline read from the key holder's audit log; the report exported as the file an auditor
 * verifies offline (`edgeward audit verify FILE`); and a report file dropped here checked by
 * the node. The browser decides nothing: the report and its verdict are the node's.
 */
import './audit.css'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { SpaceView } from '../../ui/contract.ts'
import {
  AUDIT_VERIFY_PATH,
  type AuditReportFile,
  type HeldInterval,
  type HoldingView,
  type VerifyAnswer,
} from '../../ui/contract-audit.ts'
import type { ObjectList } from '../../ui/contract-objects.ts'
import { ApiError, type NodeApi, useApi } from '../api.ts'
import { Choice } from '../parts/choice.tsx'
import { Icon } from '../parts/icon.tsx'
import { type People, Person, personName, shortDid } from '../parts/person.tsx'
import { SpaceSelect } from '../parts/space-picker.tsx'
import { DAY, HOUR, MINUTE } from '../parts/time.ts'
import type { ScreenProps } from './props.ts'

/** The node's limit on a request body: a larger report is checked with the CLI. */
const MAX_REPORT_BYTES = 16 * 1024 * 1024

type Period = 'all' | '1h' | '24h' | '7d' | '30d'
const PERIODS: { id: Period; label: string; ms?: number }[] = [
  { id: 'all', label: 'All time' },
  { id: '1h', label: 'Last hour', ms: HOUR },
  { id: '24h', label: 'Last 24 hours', ms: DAY },
  { id: '7d', label: 'Last 7 days', ms: 7 * DAY },
  { id: '30d', label: 'Last 30 days', ms: 30 * DAY },
]

type Loaded =
  | { kind: 'loading' }
  | { kind: 'ready'; report: AuditReportFile; asOf: number }
  | { kind: 'no-log'; message: string }
  | { kind: 'error'; message: string }

const ENDED: Record<HeldInterval['endedBy'], string> = {
  revocation: 'ended by revocation',
  'lease-end': 'ended when the lease ran out',
  open: 'still held when the report was made',
}

const LEGEND: { endedBy: HeldInterval['endedBy']; label: string }[] = [
  { endedBy: 'revocation', label: 'Ended by revocation' },
  { endedBy: 'lease-end', label: 'Lease ran out' },
  { endedBy: 'open', label: 'Still held' },
]

const OBJECT = /^obj-[0-9a-f]{16}$/
const isObject = (resource: string): boolean => OBJECT.test(resource)
/** Object names this node knows (names travel encrypted: known where the object was shared or opened). */
const objectNames = new Map<string, string>()
const itemLabel = (resource: string): string =>
  isObject(resource) ? (objectNames.get(resource) ?? `File ${resource.slice(4, 10)}…`) : resource
const itemKind = (resource: string): string => (isObject(resource) ? 'file or message' : 'stream')

/** Minutes as a person reads them: "0.05", "3.5", "12". */
function minutesText(ms: number): string {
  const m = ms / MINUTE
  if (m < 1) return m.toFixed(2)
  if (m < 10) return (Math.round(m * 10) / 10).toString()
  return Math.round(m).toString()
}

function clock(t: number, seconds: boolean): string {
  return new Date(t).toLocaleTimeString(undefined, {
    hour: '2-digit',
    minute: '2-digit',
    ...(seconds ? { second: '2-digit' } : {}),
    hourCycle: 'h23',
  })
}

function day(t: number): string {
  return new Date(t).toLocaleDateString(undefined, { day: 'numeric', month: 'short' })
}

const sameDay = (a: number, b: number): boolean => new Date(a).toDateString() === new Date(b).toDateString()

/** "09:14–09:26", with seconds for a short interval and the day when it is not today. */
function rangeText(i: HeldInterval, now: number): string {
  const seconds = i.until - i.from < 2 * MINUTE
  const start = `${sameDay(i.from, now) ? '' : `${day(i.from)} `}${clock(i.from, seconds)}`
  const end = `${sameDay(i.until, i.from) ? '' : `${day(i.until)} `}${clock(i.until, seconds)}`
  return `${start}–${end}`
}

/** The text equivalent of one bar: "held 12 min, 09:14–09:26, ended by revocation". */
function intervalText(i: HeldInterval, now: number): string {
  return `held ${minutesText(i.until - i.from)} min, ${rangeText(i, now)}, ${ENDED[i.endedBy]}`
}

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'space'
  )
}

function reportPath(space: string, q: { subject?: string; resource?: string; from?: number }): string {
  const p = new URLSearchParams()
  if (q.subject !== undefined) p.set('subject', q.subject)
  if (q.resource !== undefined) p.set('resource', q.resource)
  if (q.from !== undefined) p.set('from', String(q.from))
  const qs = p.toString()
  return `/v1/spaces/${space}/audit/report${qs === '' ? '' : `?${qs}`}`
}

/** Save `text` as a file through the browser's own download. */
function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }))
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

export function AuditScreen({ state }: ScreenProps) {
  const api = useApi()
  const spaces = state.spaces
  const [spaceId, setSpaceId] = useState<string | undefined>(
    () => (spaces.find(s => s.keyHolder && s.synchronised) ?? spaces[0])?.id,
  )
  const space = spaces.find(s => s.id === spaceId) ?? spaces[0]

  return (
    <>
      <p class="lead">
        Who held a key to what, and for how long, from the key holder's audit log: every key release is in it, under a
        head the space's owner signs. Export a report for an auditor, or check one you were given.
      </p>
      {space === undefined ? (
        <section class="card" aria-labelledby="audit-none">
          <h2 id="audit-none">No space yet</h2>
          <p class="muted">
            An audit log is kept per space by its key holder. Create a space or join one on the Spaces screen; each key
            released in it appears here.
          </p>
        </section>
      ) : (
        <Holdings api={api} space={space} spaces={spaces} state={state} onSpace={setSpaceId} key={space.id} />
      )}
      <VerifyPanel api={api} spaces={spaces} state={state} />
    </>
  )
}

interface HoldingsProps {
  api: NodeApi
  space: SpaceView
  spaces: SpaceView[]
  state: People
  onSpace: (id: string) => void
}

function Holdings({ api, space, spaces, state, onSpace }: HoldingsProps) {
  const you = state.identity.did
  const [period, setPeriod] = useState<Period>('all')
  const [person, setPerson] = useState('')
  const [item, setItem] = useState('')
  const [loaded, setLoaded] = useState<Loaded>({ kind: 'loading' })
  const [reloads, setReloads] = useState(0)
  const [exporting, setExporting] = useState<string>('')

  const fromOf = (p: Period): number | undefined => {
    const ms = PERIODS.find(x => x.id === p)?.ms
    return ms === undefined ? undefined : Date.now() - ms
  }

  useEffect(() => {
    let current = true
    setLoaded({ kind: 'loading' })
    const names = api
      .get<ObjectList>(`/v1/spaces/${space.id}/objects?limit=1000`)
      .then(list => {
        for (const o of list.objects) if (o.name !== undefined) objectNames.set(o.object, o.name)
      })
      .catch(() => {})
    api
      .get<AuditReportFile>(reportPath(space.id, { from: fromOf(period) }))
      .then(async report => {
        await names
        if (current) setLoaded({ kind: 'ready', report, asOf: Date.now() })
      })
      .catch((err: Error) => {
        if (!current) return
        const noLog = err.name === ApiError.name && (err as ApiError).status === 404
        setLoaded({ kind: noLog ? 'no-log' : 'error', message: err.message })
      })
    return () => {
      current = false
    }
  }, [space.id, period, reloads])

  const holdings = loaded.kind === 'ready' ? loaded.report.holdings : []
  const people = [...new Set(holdings.map(h => h.subject))]
  const items = [...new Set(holdings.map(h => h.resource))].sort()
  const shown = holdings.filter(h => (person === '' || h.subject === person) && (item === '' || h.resource === item))

  const exportReport = async () => {
    if (loaded.kind !== 'ready') return
    setExporting('Preparing the report…')
    try {
      // filtered: the key holder makes a report of just that, which verifies on its own
      const report =
        person === '' && item === ''
          ? loaded.report
          : await api.get<AuditReportFile>(
              reportPath(space.id, {
                subject: person || undefined,
                resource: item || undefined,
                from: loaded.report.query.from,
              }),
            )
      const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-')
      const name = `audit-${slug(space.name ?? 'space')}-${stamp}.json`
      // the same text as `edgeward audit report --out`
      download(name, `${JSON.stringify(report, null, 2)}\n`)
      setExporting(`Saved ${name}: ${report.entries.length} log entries with their proofs.`)
    } catch (err) {
      setExporting(`Could not export: ${(err as Error).message}`)
    }
  }

  return (
    <section class="card audit-holdings" aria-labelledby="holdings-heading">
      <div class="card-head">
        <h2 id="holdings-heading">Who held a key</h2>
        <div class="audit-head-actions">
          <button type="button" class="button" onClick={() => setReloads(reloads + 1)}>
            Refresh
          </button>
          {loaded.kind !== 'no-log' && (
            <button
              type="button"
              class="button button-primary"
              onClick={exportReport}
              disabled={loaded.kind !== 'ready'}
              aria-describedby="export-note"
            >
              <Icon name="download" />
              Export report
            </button>
          )}
        </div>
      </div>

      <div class="audit-filters">
        <label class="filter-field" for="audit-space">
          <span>Space</span>
          <SpaceSelect id="audit-space" spaces={spaces} value={space.id} onChange={onSpace} withRole />
        </label>
        <label class="filter-field">
          <span>Period</span>
          <Choice options={PERIODS} by="id" value={period} onChange={setPeriod} />
        </label>
        {loaded.kind !== 'no-log' && (
          <>
            <label class="filter-field">
              <span>Person</span>
              <select value={person} onChange={e => setPerson(e.currentTarget.value)} disabled={people.length === 0}>
                <option value="">Everyone</option>
                {people.map(p => (
                  <option key={p} value={p}>
                    {p === you ? `You (${shortDid(p)})` : personName(p, state)}
                  </option>
                ))}
              </select>
            </label>
            <label class="filter-field">
              <span>Item</span>
              <select value={item} onChange={e => setItem(e.currentTarget.value)} disabled={items.length === 0}>
                <option value="">All items</option>
                {items.map(i => (
                  <option key={i} value={i}>
                    {itemLabel(i)}
                  </option>
                ))}
              </select>
            </label>
          </>
        )}
      </div>
      {loaded.kind !== 'no-log' && (
        <p id="export-note" class="muted small">
          The exported file is the report <code>edgeward audit report --out</code> writes, for what is shown: log
          entries with inclusion proofs and the owner-signed head, no data. An auditor checks it with{' '}
          <code>edgeward audit verify FILE</code>.
          <span class="audit-said" role="status">
            {exporting}
          </span>
        </p>
      )}

      {loaded.kind === 'loading' && <p class="muted">Reading the audit log…</p>}
      {loaded.kind === 'error' && (
        <p class="audit-problem" role="alert">
          The node could not make a report: {loaded.message}
        </p>
      )}
      {loaded.kind === 'no-log' && <NoLog space={space} state={state} message={loaded.message} />}
      {loaded.kind === 'ready' && (
        <Timeline
          holdings={shown}
          all={holdings.length}
          state={state}
          asOf={loaded.asOf}
          from={loaded.report.query.from}
          entries={loaded.report.entries.length}
        />
      )}
    </section>
  )
}

/** The node keeps no audit log (for this space, or at all): say so, and where the log is. */
function NoLog({ space, state, message }: { space: SpaceView; state: People; message: string }) {
  const forSpace = /for that space/.test(message) || !space.keyHolder
  return (
    <div class="audit-nolog" role="status">
      <h3>{forSpace ? 'This node keeps no audit log for this space' : 'This node keeps no audit log'}</h3>
      {forSpace ? (
        <p>
          Key releases are logged by the space's key holder, and this node is not one: it asks for keys, it does not
          give them. Ask the owner{space.owner === undefined ? '' : ` (${personName(space.owner, state)})`} for a report
          made on the key holder with <code>edgeward audit report SPACE --out FILE</code>, then check it below.
        </p>
      ) : (
        <p>
          This node was started without its audit log, so it has no record of the keys it released. Restart it with the
          audit log on (the default of <code>edgeward start</code>); releases from then on are logged. A report made by
          another key holder can still be checked below.
        </p>
      )}
      <p class="muted small">The node said: {message}</p>
    </div>
  )
}

interface TimelineProps {
  holdings: HoldingView[]
  /** holdings before the filters */
  all: number
  state: People
  /** when the report was fetched: the right end of the axis */
  asOf: number
  /** the start of the period asked for, if any */
  from?: number
  entries: number
}

function Timeline({ holdings, all, state, asOf, from, entries }: TimelineProps) {
  const you = state.identity.did
  if (all === 0)
    return (
      <div class="empty-box">
        <p>
          <strong>No key was released in this {from === undefined ? 'space yet' : 'period'}.</strong>
        </p>
        <p class="muted">
          A release is logged each time someone opens a file or reads a stream shared with them. The log holds {entries}{' '}
          matching {entries === 1 ? 'entry' : 'entries'} (grants and revocations).
        </p>
      </div>
    )
  if (holdings.length === 0) return <p class="muted">No holding matches these filters.</p>

  const starts = holdings.flatMap(h => h.intervals.map(i => i.from))
  const ends = holdings.flatMap(h => h.intervals.map(i => i.until))
  const t0raw = from ?? Math.min(...starts)
  const t1raw = Math.max(asOf, ...ends)
  const pad = Math.max((t1raw - t0raw) * 0.03, 5000)
  const t0 = t0raw - (from === undefined ? pad : 0)
  const t1 = t1raw + pad
  const pos = (t: number) => ((t - t0) / (t1 - t0)) * 100

  const bySubject = new Map<string, HoldingView[]>()
  for (const h of holdings) bySubject.set(h.subject, [...(bySubject.get(h.subject) ?? []), h])
  const people = [...bySubject.keys()].sort((a, b) => (a === you ? -1 : b === you ? 1 : a < b ? -1 : 1))
  const totalMinutes = (hs: HoldingView[]) => hs.reduce((s, h) => s + h.minutes, 0)

  return (
    <>
      <p class="audit-summary">
        {people.length} {people.length === 1 ? 'person' : 'people'} held keys to{' '}
        {new Set(holdings.map(h => h.resource)).size} {holdings.length === 1 ? 'item' : 'items'}
        <span class="muted">
          {' '}
          · report as of {clock(asOf, true)} · {entries} log {entries === 1 ? 'entry' : 'entries'} proven
        </span>
      </p>
      <div class="audit-timeline">
        <Axis t0={t0} t1={t1} now={asOf} />
        {people.map(subject => {
          const own = bySubject.get(subject)!
          return (
            <section
              class="audit-timeline-person"
              key={subject}
              aria-label={`Holdings of ${personName(subject, state)}`}
            >
              <div class="audit-timeline-person-head">
                <Person did={subject} state={state} copy class="audit-timeline-who" />
                <span class="audit-timeline-total muted">{minutesText(totalMinutes(own) * MINUTE)} min in all</span>
              </div>
              <ul class="audit-timeline-rows">
                {own.map(h => (
                  <li class="audit-timeline-row" key={h.resource}>
                    <div class="audit-timeline-item">
                      <span class="audit-timeline-item-name" title={h.resource}>
                        {itemLabel(h.resource)}
                      </span>
                      <span class="muted small">{itemKind(h.resource)}</span>
                    </div>
                    <div class="audit-timeline-track" aria-hidden="true">
                      {h.intervals.map(i => (
                        <span
                          key={i.from}
                          class={`audit-timeline-bar audit-bar-${i.endedBy}`}
                          style={{ left: `${pos(i.from)}%`, width: `${pos(i.until) - pos(i.from)}%` }}
                          title={intervalText(i, asOf)}
                        />
                      ))}
                    </div>
                    <ul class="audit-timeline-text">
                      {h.intervals.map(i => (
                        <li key={i.from}>{intervalText(i, asOf)}</li>
                      ))}
                    </ul>
                  </li>
                ))}
              </ul>
            </section>
          )
        })}
      </div>
      <ul class="audit-timeline-legend" aria-label="Legend">
        {LEGEND.map(l => (
          <li key={l.endedBy}>
            <span class={`audit-timeline-swatch audit-bar-${l.endedBy}`} aria-hidden="true" />
            {l.label}
          </li>
        ))}
      </ul>
    </>
  )
}

/** Tick marks along the time axis: the times a person reads, at even steps. */
function Axis({ t0, t1, now }: { t0: number; t1: number; now: number }) {
  const span = t1 - t0
  // on the track's grid lines (every fifth of it)
  const ticks = [0.2, 0.4, 0.6, 0.8].map(f => t0 + f * span)
  const label = (t: number) =>
    span > DAY
      ? `${day(t)} ${clock(t, false)}`
      : sameDay(t, now)
        ? clock(t, span < 10 * MINUTE)
        : `${day(t)} ${clock(t, false)}`
  return (
    <div class="audit-timeline-axis" aria-hidden="true">
      <div />
      <div class="audit-timeline-axis-track">
        {ticks.map(t => (
          <span key={t} class="audit-timeline-tick" style={{ left: `${((t - t0) / span) * 100}%` }}>
            {label(t)}
          </span>
        ))}
      </div>
    </div>
  )
}

type Check =
  | { kind: 'idle' }
  | { kind: 'checking'; file: string }
  | { kind: 'done'; file: string; answer: VerifyAnswer; known?: SpaceView }
  | { kind: 'unreadable'; file: string; why: string }

/** A report file dropped anywhere on the screen (or chosen with the button) is checked by the node. */
function VerifyPanel({ api, spaces, state }: { api: NodeApi; spaces: SpaceView[]; state: People }) {
  const [check, setCheck] = useState<Check>({ kind: 'idle' })
  const [dragging, setDragging] = useState(false)
  const picker = useRef<HTMLInputElement>(null)

  const verify = async (file: File) => {
    setCheck({ kind: 'checking', file: file.name })
    if (file.size > MAX_REPORT_BYTES) {
      return setCheck({
        kind: 'unreadable',
        file: file.name,
        why: 'It is larger than 16 MiB, more than this node takes in one request. Check it with edgeward audit verify FILE.',
      })
    }
    let report: Partial<AuditReportFile>
    try {
      report = JSON.parse(await file.text())
    } catch {
      return setCheck({
        kind: 'unreadable',
        file: file.name,
        why: 'It is not JSON. A report is the JSON file that Export report (or edgeward audit report --out) writes.',
      })
    }
    // a space this node knows: pin its id and owner, so that a made-up space with the same name cannot pass
    const known = spaces.find(s => s.id === report?.query?.space && s.owner !== undefined)
    const pins = known === undefined ? '' : `?${new URLSearchParams({ space: known.id, owner: known.owner! })}`
    try {
      const answer = (await api.send<VerifyAnswer>('POST', `${AUDIT_VERIFY_PATH}${pins}`, report))!
      setCheck({ kind: 'done', file: file.name, answer, known })
    } catch (err) {
      setCheck({ kind: 'unreadable', file: file.name, why: (err as Error).message })
    }
  }

  // the whole screen takes a dropped file; the browser does not navigate away to it
  useEffect(() => {
    let depth = 0
    const hasFiles = (e: DragEvent) => [...(e.dataTransfer?.types ?? [])].includes('Files')
    const over = (e: DragEvent) => {
      if (!hasFiles(e)) return
      e.preventDefault()
      if (e.dataTransfer !== null) e.dataTransfer.dropEffect = 'copy'
    }
    const enter = (e: DragEvent) => {
      if (!hasFiles(e)) return
      depth++
      setDragging(true)
    }
    const leave = () => {
      depth = Math.max(0, depth - 1)
      if (depth === 0) setDragging(false)
    }
    const drop = (e: DragEvent) => {
      if (!hasFiles(e)) return
      e.preventDefault()
      depth = 0
      setDragging(false)
      const file = e.dataTransfer?.files[0]
      if (file !== undefined) verify(file)
    }
    document.addEventListener('dragover', over)
    document.addEventListener('dragenter', enter)
    document.addEventListener('dragleave', leave)
    document.addEventListener('drop', drop)
    return () => {
      document.removeEventListener('dragover', over)
      document.removeEventListener('dragenter', enter)
      document.removeEventListener('dragleave', leave)
      document.removeEventListener('drop', drop)
    }
  }, [spaces])

  return (
    <section class="card" aria-labelledby="verify-heading">
      <h2 id="verify-heading">Check a report</h2>
      <div class={dragging ? 'drop-zone audit-drop drop-zone-over' : 'drop-zone audit-drop'}>
        <Icon name="upload" class="audit-drop-icon" />
        <p>
          <strong>Drop a report file anywhere on this screen</strong>
          <br />
          <span class="muted">The node checks every proof and signature in it, as edgeward audit verify does.</span>
        </p>
        <button type="button" class="button" onClick={() => picker.current?.click()}>
          Choose a report file…
        </button>
        <input
          ref={picker}
          id="report-file"
          type="file"
          accept="application/json,.json"
          aria-label="Report file to check"
          hidden
          onChange={e => {
            const file = e.currentTarget.files?.[0]
            if (file !== undefined) verify(file)
            e.currentTarget.value = ''
          }}
        />
      </div>
      <div id="verify-result" role="status" aria-live="polite">
        {check.kind === 'checking' && <p class="muted">Checking {check.file}…</p>}
        {check.kind === 'unreadable' && (
          <div class="audit-verdict audit-verdict-bad">
            <p class="audit-verdict-title">
              <span aria-hidden="true">✕</span> {check.file} cannot be checked
            </p>
            <p>{check.why}</p>
          </div>
        )}
        {check.kind === 'done' && <Verdict file={check.file} answer={check.answer} known={check.known} state={state} />}
      </div>
    </section>
  )
}

function Verdict(props: { file: string; answer: VerifyAnswer; known?: SpaceView; state: People }) {
  const { file, answer, known, state } = props
  if (!answer.ok)
    return (
      <div class="audit-verdict audit-verdict-bad">
        <p class="audit-verdict-title">
          <span aria-hidden="true">✕</span> {file} does not verify
        </p>
        <p>
          First failure: <strong class="audit-verdict-failure">{answer.failure}</strong>
        </p>
        <p class="muted small">
          The file was changed after the key holder made it, or it was never a report of this space. Rely on none of it;
          ask for the report again.
        </p>
      </div>
    )
  const people = new Set(answer.holdings.map(h => h.subject)).size
  const items = new Set(answer.holdings.map(h => h.resource)).size
  return (
    <div class="audit-verdict audit-verdict-ok">
      <p class="audit-verdict-title">
        <span aria-hidden="true">✓</span> {file} verifies
      </p>
      <dl class="audit-verdict-facts">
        <dt>Space</dt>
        <dd>
          {answer.space.name}{' '}
          {known !== undefined ? (
            <span class="muted">(one of your spaces; its id and owner were checked)</span>
          ) : (
            <span class="muted">
              (not a space this node knows: the report was checked against itself only, and anyone can make up a space)
            </span>
          )}
        </dd>
        <dt>Owner</dt>
        <dd>
          <Person did={answer.owner} state={state} />
        </dd>
        <dt>Key holder</dt>
        <dd class="mono" title={answer.keyHolder}>
          {answer.keyHolder.slice(0, 8)}…{answer.keyHolder.slice(-4)}
        </dd>
        <dt>Covers</dt>
        <dd>
          {answer.entries} log {answer.entries === 1 ? 'entry' : 'entries'}, each proven in the log of size{' '}
          {answer.treeSize} under the head the owner signed at {day(Date.parse(answer.headTime))}{' '}
          {clock(Date.parse(answer.headTime), true)}; {people} {people === 1 ? 'person' : 'people'} holding keys to{' '}
          {items} {items === 1 ? 'item' : 'items'}.
        </dd>
      </dl>
    </div>
  )
}
