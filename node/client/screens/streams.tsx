/**
 * Streams: pick a space (by name), a stream and a form, and see the readings this node may
 * decrypt as a live chart. The node decides what may be read: the screen opens
 * `GET …/readings?follow=1` and shows what comes, a refusal as a sentence, the end of a
 * follow (a revocation) as it happens. Hashed readings hold commitments, not values: a table.
 * uPlot is loaded only when a chart is drawn (a chunk of its own). The node's MQTT ingestions,
 * if it runs any, are listed with their error counts, fetched again whenever the node's state
 * changes (an event, not a timer); a node that ingests nothing shows no card for them.
 */
import 'uplot/dist/uPlot.min.css'
import type { ComponentChildren } from 'preact'
import './streams.css'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type uPlot from 'uplot'
import type { ClientState, SpaceView } from '../../ui/contract.ts'
import type {
  AggregateValue,
  ErrorLine,
  IngestErrorReason,
  IngestionList,
  IngestionView,
  ReadingLine,
  StreamInfo,
  StreamList,
  ViewerLine,
} from '../../ui/contract-streams.ts'
import { ApiError, useApi } from '../api.ts'
import { Choice } from '../parts/choice.tsx'
import { RequestDialog } from '../parts/request-dialog.tsx'
import { SpaceSelect, spaceLabels } from '../parts/space-picker.tsx'
import type { ScreenProps } from './props.ts'

/** The most readings kept in the page per stream: older ones leave the chart first. */
const MAX_READINGS = 50_000
/** Rows shown in a table of readings (hashed commitments, values that are not numbers). */
const TABLE_ROWS = 50

const RANGES = [
  { id: '15m', label: 'Last 15 minutes', ms: 15 * 60_000 },
  { id: '1h', label: 'Last hour', ms: 3_600_000 },
  { id: '24h', label: 'Last 24 hours', ms: 24 * 3_600_000 },
  { id: '7d', label: 'Last 7 days', ms: 7 * 24 * 3_600_000 },
  { id: 'all', label: 'Everything stored', ms: undefined },
] as const
type RangeId = (typeof RANGES)[number]['id']

export function StreamsScreen({ state }: ScreenProps) {
  const spaces = state.spaces
  const labels = useMemo(() => spaceLabels(spaces), [spaces])
  const [spaceId, setSpaceId] = useState<string | undefined>(undefined)
  const space = spaces.find(s => s.id === spaceId) ?? spaces.find(s => s.streams.length > 0) ?? spaces[0]
  const streams = useStreams(space)
  const [streamName, setStreamName] = useState<string | undefined>(undefined)
  const stream = streams.list?.find(s => s.name === streamName) ?? streams.list?.[0]
  const [formChoice, setFormChoice] = useState('raw')
  const form = stream?.forms.includes(formChoice) ? formChoice : 'raw'
  const [range, setRange] = useState<RangeId>('24h')

  return (
    <>
      <p class="lead">
        Live charts of the readings this node may decrypt. Pick a space, one of its streams and a form: the node asks
        the key holder for the keys, and shows what your grant allows.
      </p>

      {spaces.length === 0 ? (
        <section class="card stream-empty" aria-labelledby="no-space">
          <h2 id="no-space">You are in no space yet</h2>
          <p>Streams belong to spaces. Create a space, or join one that someone shared with you:</p>
          <pre class="command">
            <code>{'edgeward space create NAME\nedgeward space join SPACE_ID'}</code>
          </pre>
        </section>
      ) : (
        <>
          <section class="card stream-picker" aria-labelledby="picker-title">
            <h2 id="picker-title" class="visually-hidden">
              What to show
            </h2>
            <div class="stream-fields">
              <label class="filter-field" for="stream-space">
                <span>Space</span>
                <SpaceSelect
                  id="stream-space"
                  spaces={spaces}
                  value={space?.id}
                  onChange={id => {
                    setSpaceId(id)
                    setStreamName(undefined)
                  }}
                />
              </label>
              <label class="filter-field">
                <span>Stream</span>
                <select
                  id="stream-name"
                  value={stream?.name ?? ''}
                  disabled={stream === undefined}
                  onChange={e => setStreamName((e.target as HTMLSelectElement).value)}
                >
                  {stream === undefined && <option value="">No stream</option>}
                  {streams.list?.map(s => (
                    <option key={s.name} value={s.name}>
                      {s.name}
                    </option>
                  ))}
                </select>
              </label>
              <label class="filter-field">
                <span>Form</span>
                <select
                  id="stream-form"
                  value={form}
                  disabled={stream === undefined}
                  onChange={e => setFormChoice((e.target as HTMLSelectElement).value)}
                >
                  {(stream?.forms ?? ['raw']).map(f => (
                    <option key={f} value={f}>
                      {formLabel(f)}
                    </option>
                  ))}
                </select>
              </label>
              <label class="filter-field">
                <span>Time range</span>
                <Choice
                  id="stream-range"
                  options={RANGES}
                  by="id"
                  value={range}
                  disabled={stream === undefined}
                  onChange={setRange}
                />
              </label>
            </div>
          </section>

          {space === undefined ? null : streams.error !== undefined ? (
            <section class="card" aria-labelledby="streams-failed">
              <h2 id="streams-failed">The streams of {labels.get(space.id)} could not be listed</h2>
              <p role="alert">{streams.error}</p>
            </section>
          ) : !space.synchronised ? (
            <section class="card stream-empty" aria-labelledby="not-synced">
              <h2 id="not-synced">This space has not synchronised yet</h2>
              <p>
                Its streams appear here once this node has the space's policy from one of its peers. Check the Health
                screen: a space waits for a peer that is reachable.
              </p>
            </section>
          ) : streams.list === undefined ? (
            <p class="muted">Listing the streams…</p>
          ) : stream === undefined ? (
            <NoStreams space={space} label={labels.get(space.id) ?? ''} />
          ) : (
            <Readings
              key={`${space.id}/${stream.name}/${form}/${range}`}
              space={space}
              stream={stream}
              form={form}
              range={range}
            />
          )}
        </>
      )}

      <Ingestions state={state} labels={labels} />
    </>
  )
}

/** A form's name for a person, short for the picker: `aggregate:15m` → "15 min windows". */
function formLabel(form: string): string {
  if (form === 'raw') return 'Raw'
  if (form === 'hashed') return 'Hashed'
  const w = windowOf(form)
  return w === undefined ? form : `${w.n} ${w.unit} windows`
}

/** What a form holds, one line under the stream's name. */
function formDescription(form: string): string {
  if (form === 'raw') return 'Raw readings, as published'
  if (form === 'hashed') return 'Hashed: a commitment per reading, no values'
  const w = windowOf(form)
  return w === undefined ? form : `Aggregates per ${w.n} ${w.unit}: mean, min and max of each window`
}

/** `aggregate:15m` → 15 and "min". */
function windowOf(form: string): { n: string; unit: string } | undefined {
  const w = /^aggregate:(\d+)([smhd])$/.exec(form)
  if (w === null) return undefined
  return { n: w[1], unit: { s: 's', m: 'min', h: 'h', d: 'day' }[w[2] as 's' | 'm' | 'h' | 'd'] }
}

const isAggregate = (form: string): boolean => form.startsWith('aggregate:')

/** The streams of a space with their forms: listed again when the space's streams change. */
function useStreams(space: SpaceView | undefined): { list?: StreamInfo[]; error?: string } {
  const api = useApi()
  const [answer, setAnswer] = useState<{ key: string; list?: StreamInfo[]; error?: string }>({ key: '' })
  const key = space === undefined || !space.synchronised ? '' : `${space.id}/${space.streams.join(',')}`
  useEffect(() => {
    if (space === undefined || key === '') return
    let current = true
    api.get<StreamList>(`/v1/spaces/${space.id}/streams`).then(
      r => current && setAnswer({ key, list: r.streams }),
      (err: Error) => current && setAnswer({ key, error: err.message }),
    )
    return () => {
      current = false
    }
  }, [key])
  if (key === '' || answer.key.split('/')[0] !== key.split('/')[0]) return {}
  return answer
}

function NoStreams({ space, label }: { space: SpaceView; label: string }) {
  return (
    <section class="card stream-empty" aria-labelledby="no-streams">
      <h2 id="no-streams">No streams in {label} yet</h2>
      {space.role === 'owner' || space.keyHolder ? (
        <>
          <p>
            A gateway creates one, then publishes readings to it: from the command line, or from MQTT devices through{' '}
            <code>edgeward gateway --space NAME</code>.
          </p>
          <pre class="command">
            <code>{'edgeward stream create SPACE NAME\nedgeward publish SPACE NAME < readings.ndjson'}</code>
          </pre>
        </>
      ) : (
        <p>
          The space's owner has defined no stream yet. Streams appear here as soon as the owner's gateway creates one.
        </p>
      )}
    </section>
  )
}

/** Where a read stands. */
type Feed =
  | { kind: 'opening' }
  | { kind: 'live' }
  /** the node closed the follow: with its reason, or none (the node stopped) */
  | { kind: 'ended'; error?: ErrorLine['error'] }
  | { kind: 'refused'; status: number; code?: string; message: string }
  | { kind: 'view-only'; viewer?: ViewerLine }

/** Follow a stream's readings: what is stored since `since`, then each new one as the node writes it. */
function useReadings(
  space: string,
  stream: string,
  form: string,
  since: number,
  attempt: number,
): { feed: Feed; readings: ReadingLine[]; version: number } {
  const [feed, setFeed] = useState<Feed>({ kind: 'opening' })
  const [version, setVersion] = useState(0)
  const readings = useRef<ReadingLine[]>([])
  const visible = usePageVisible()

  useEffect(() => {
    // a hidden page keeps no read open; shown again, it reads afresh
    if (!visible) return
    const abort = new AbortController()
    readings.current = []
    setVersion(v => v + 1)
    setFeed({ kind: 'opening' })
    const path = `/v1/spaces/${space}/streams/${encodeURIComponent(stream)}/readings?since=${since}&form=${encodeURIComponent(form)}&follow=1`
    follow(path, abort.signal, {
      open: () => setFeed({ kind: 'live' }),
      readings: batch => {
        for (const r of batch) insertByTime(readings.current, r)
        if (readings.current.length > MAX_READINGS) readings.current.splice(0, readings.current.length - MAX_READINGS)
        setVersion(v => v + 1)
      },
      viewer: v => setFeed({ kind: 'view-only', viewer: v }),
      refused: (status, error) =>
        setFeed(
          error.code === 'download-forbidden'
            ? { kind: 'view-only' }
            : { kind: 'refused', status, code: error.code, message: error.message },
        ),
      ended: error => setFeed({ kind: 'ended', error }),
    }).catch((err: Error) => {
      if (abort.signal.aborted) return
      setFeed({ kind: 'ended', error: { name: err.name, message: err.message } })
    })
    return () => abort.abort()
  }, [space, stream, form, since, attempt, visible])

  return { feed, readings: readings.current, version }
}

/** Keep readings in time order (a follow delivers them in sequence order, which a publisher's clock may not follow). */
function insertByTime(list: ReadingLine[], r: ReadingLine): void {
  if (list.length === 0 || list[list.length - 1].ts <= r.ts) {
    list.push(r)
    return
  }
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (list[mid].ts <= r.ts) lo = mid + 1
    else hi = mid
  }
  list.splice(lo, 0, r)
}

interface FollowEvents {
  open: () => void
  readings: (batch: ReadingLine[]) => void
  viewer: (line: ViewerLine) => void
  refused: (status: number, error: ErrorLine['error']) => void
  ended: (error?: ErrorLine['error']) => void
}

/** Read an NDJSON follow to its end: one `readings` call per chunk that arrived, not per line. */
async function follow(path: string, signal: AbortSignal, on: FollowEvents): Promise<void> {
  const res = await fetch(path, { credentials: 'same-origin', signal })
  if (!res.ok || res.body === null) {
    const body = (await res.json().catch(() => ({}))) as Partial<ErrorLine>
    on.refused(res.status, body.error ?? { name: 'Error', message: `the node answered HTTP ${res.status}` })
    return
  }
  on.open()
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let rest = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    const lines = (rest + value).split('\n')
    rest = lines.pop() ?? ''
    const batch: ReadingLine[] = []
    for (const text of lines) {
      if (text.trim() === '') continue
      const line = JSON.parse(text) as Partial<ReadingLine & ViewerLine & ErrorLine>
      if (line.error !== undefined) {
        if (batch.length > 0) on.readings(batch)
        on.ended(line.error)
        return
      }
      if (typeof line.viewer === 'string') {
        on.viewer(line as ViewerLine)
        return
      }
      if (typeof line.ts === 'number') batch.push(line as ReadingLine)
    }
    if (batch.length > 0) on.readings(batch)
  }
  on.ended()
}

function usePageVisible(): boolean {
  const [visible, setVisible] = useState(document.visibilityState === 'visible')
  useEffect(() => {
    const onChange = () => setVisible(document.visibilityState === 'visible')
    document.addEventListener('visibilitychange', onChange)
    return () => document.removeEventListener('visibilitychange', onChange)
  }, [])
  return visible
}

/** What a refusal's code means, as a sentence for the person (the node's own words follow it). */
const REFUSAL: Record<string, string> = {
  'no-grant': 'You have no grant for this stream.',
  'unknown-grant': 'The key holder does not know the grant this node holds for this stream.',
  'wrong-subject': 'The grant this node holds is for someone else.',
  'not-yet-valid': 'Your grant for this stream is not valid yet.',
  expired: 'Your grant for this stream has expired.',
  revoked: 'Your access to this stream was revoked.',
  'subject-revoked': 'Your access to this space was revoked.',
  'device-revoked': 'This device’s access was revoked.',
  'device-invalid': 'This device’s certificate is not valid for this space.',
  'device-not-allowed': 'Your grant does not include this device.',
  'stream-not-covered': 'Your grant does not cover this stream.',
  'form-not-covered': 'Your grant does not cover this form of the stream. Try another form.',
  'issuer-not-authorized': 'Your grant was issued by someone who may not grant this stream.',
  'parent-not-active': 'The grant your access rests on is no longer active.',
  'max-releases': 'Your grant allowed a set number of key releases, and they are used up.',
  'unknown-stream': 'The key holder does not know this stream.',
  'no-key': 'The key was dropped while reading: your access ended.',
}

function refusalSentence(status: number, code: string | undefined): string {
  if (code !== undefined && REFUSAL[code] !== undefined) return REFUSAL[code]
  if (status === 503) return 'No peer of this space is reachable, so the node could not ask for a key.'
  if (status === 404) return 'This node does not know this stream.'
  if (status === 401) return 'Your session has ended. Run `edgeward ui` for a new one.'
  if (status === 403) return 'Access to this stream was refused.'
  return 'The node could not read this stream.'
}

const RANGE_NOW = (range: RangeId): number => {
  const ms = RANGES.find(r => r.id === range)?.ms
  return ms === undefined ? 0 : Math.max(0, Date.now() - ms)
}

function Readings(props: { space: SpaceView; stream: StreamInfo; form: string; range: RangeId }) {
  const { space, stream, form, range } = props
  const [attempt, setAttempt] = useState(0)
  const [asking, setAsking] = useState(false)
  // the start of the range, fixed when the read opens (a new attempt moves it)
  const since = useMemo(() => RANGE_NOW(range), [range, attempt])
  const { feed, readings, version } = useReadings(space.id, stream.name, form, since, attempt)
  const retry = () => setAttempt(a => a + 1)
  const rangeLabel = RANGES.find(r => r.id === range)?.label.toLowerCase() ?? ''

  return (
    <section class="card stream-readings" aria-labelledby="readings-title">
      <header class="card-head stream-readings-head">
        <div>
          <h2 id="readings-title">{stream.name}</h2>
          <p class="muted small">
            {formDescription(form)} · key epochs of {duration(stream.epochMs)}
          </p>
        </div>
        <FeedBadge feed={feed} />
      </header>

      {feed.kind === 'refused' ? (
        <div class="stream-outcome stream-outcome-refused" role="alert">
          <p class="stream-outcome-title">{refusalSentence(feed.status, feed.code)}</p>
          <p class="muted small">The node said: {feed.message}</p>
          {feed.status === 403 && (
            <p class="small">
              Ask the space’s owner for access here, or from the command line:{' '}
              <code>{`edgeward request SPACE --stream ${stream.name} --for 7d --reason TEXT`}</code>
            </p>
          )}
          <span class="stream-outcome-actions">
            {feed.status === 403 && (
              <button type="button" class="button button-primary" onClick={() => setAsking(true)}>
                Request access
              </button>
            )}
            <button type="button" class="button" onClick={retry}>
              Try again
            </button>
          </span>
          {asking && (
            <RequestDialog
              space={space.id}
              spaceName={space.name ?? 'this space'}
              resource={stream.name}
              title={stream.name}
              onDone={() => setAsking(false)}
            />
          )}
        </div>
      ) : feed.kind === 'view-only' ? (
        <div class="stream-outcome" role="status">
          <p class="stream-outcome-title">
            View only: this stream’s readings can be viewed on this node only, not downloaded to a window.
          </p>
          {feed.viewer !== undefined ? (
            <p class="small">
              {feed.viewer.count.toLocaleString()} readings are in a viewer file on this node until{' '}
              {new Date(feed.viewer.until).toLocaleString()}: <code>{feed.viewer.viewer}</code>
            </p>
          ) : (
            <p class="small">
              Your grant forbids download. <code>edgeward read SPACE {stream.name}</code> writes them to a viewer file
              on this node, removed when your lease ends.
            </p>
          )}
        </div>
      ) : (
        <>
          {feed.kind === 'ended' && (
            <div class="stream-outcome stream-outcome-ended" role="alert">
              <p class="stream-outcome-title">
                {feed.error === undefined
                  ? 'The node stopped sending readings.'
                  : `The node stopped sending readings: ${lowerFirst(refusalSentence(403, feed.error.code))}`}
              </p>
              {feed.error !== undefined && <p class="muted small">The node said: {feed.error.message}</p>}
              <button type="button" class="button" onClick={retry}>
                Read again
              </button>
            </div>
          )}
          {feed.kind === 'opening' ? (
            <p class="muted">Asking the node for the readings…</p>
          ) : readings.length === 0 ? (
            <div class="empty-box">
              <p>
                <strong>No readings in the {rangeLabel}.</strong>
              </p>
              <p class="muted">
                {feed.kind === 'live' ? 'New readings appear here as they are published. ' : ''}
                {range === 'all' ? '' : 'Older ones? Choose “Everything stored” as the time range.'}
              </p>
            </div>
          ) : form === 'hashed' ? (
            <Commitments readings={readings} version={version} />
          ) : (
            <ReadingsView readings={readings} version={version} aggregate={isAggregate(form)} label={stream.name} />
          )}
        </>
      )}
    </section>
  )
}

function FeedBadge({ feed }: { feed: Feed }) {
  const [word, tone] =
    feed.kind === 'live'
      ? ['Live', 'ok']
      : feed.kind === 'opening'
        ? ['Connecting…', 'neutral']
        : feed.kind === 'view-only'
          ? ['View only', 'attention']
          : feed.kind === 'refused'
            ? ['Refused', 'attention']
            : ['Ended', 'attention']
  return (
    <p class="stream-feed-state" role="status">
      <span class={`badge badge-${tone}`}>
        {feed.kind === 'live' && <span class="stream-live-dot" aria-hidden="true" />}
        {word}
      </span>
    </p>
  )
}

/** Numbers to plot: the value itself (raw), or an aggregate window's mean, min and max. */
function numericOf(
  r: ReadingLine,
  aggregate: boolean,
): { y: number; min?: number; max?: number; count?: number } | undefined {
  if (aggregate) {
    const a = r.value as Partial<AggregateValue> | null
    if (a === null || typeof a !== 'object' || typeof a.mean !== 'number') return undefined
    return { y: a.mean, min: a.min, max: a.max, count: a.count }
  }
  return typeof r.value === 'number' && Number.isFinite(r.value) ? { y: r.value } : undefined
}

function ReadingsView(props: { readings: ReadingLine[]; version: number; aggregate: boolean; label: string }) {
  const { readings, version, aggregate } = props
  const plotted = useMemo(() => {
    const xs: number[] = []
    const ys: number[] = []
    const mins: (number | null)[] = []
    const maxs: (number | null)[] = []
    let skipped = 0
    for (const r of readings) {
      const n = numericOf(r, aggregate)
      if (n === undefined) {
        skipped++
        continue
      }
      xs.push(r.ts / 1000)
      ys.push(n.y)
      mins.push(n.min ?? null)
      maxs.push(n.max ?? null)
    }
    // an aggregate's band (min to max) first, its mean drawn last, on top
    const data: uPlot.AlignedData = aggregate ? [xs, mins, maxs, ys] : [xs, ys]
    return { data, count: xs.length, skipped }
  }, [version, aggregate])

  if (plotted.count === 0) return <ValuesTable readings={readings} version={version} />
  const last = readings.findLast(r => numericOf(r, aggregate) !== undefined)!
  const lastN = numericOf(last, aggregate)!
  const xs = plotted.data[0]
  const what = aggregate ? plural(plotted.count, 'window') : plural(plotted.count, 'reading')
  const span = `${what} from ${time(xs[0] * 1000)} to ${time(xs[xs.length - 1] * 1000)}.`
  const figures = [
    lastN.min === undefined ? '' : `min ${num(lastN.min)}`,
    lastN.max === undefined ? '' : `max ${num(lastN.max)}`,
    lastN.count === undefined ? '' : plural(lastN.count, 'reading'),
  ].filter(f => f !== '')
  const summary = aggregate
    ? `${span} Latest mean ${num(lastN.y)}${figures.length > 0 ? ` (${figures.join(', ')})` : ''} for the window from ${time(last.ts)}.`
    : `${span} Latest value ${num(lastN.y)} at ${time(last.ts)}.`

  return (
    <figure class="stream-chart-figure">
      <Chart data={plotted.data} aggregate={aggregate} />
      <figcaption id="stream-summary" class="stream-chart-summary">
        {summary}
      </figcaption>
      {plotted.skipped > 0 && (
        <p class="muted small">
          {plural(plotted.skipped, 'reading')} with a value that is not a number {plotted.skipped === 1 ? 'is' : 'are'}{' '}
          not charted.
        </p>
      )}
      <details class="disclosure stream-latest">
        <summary>Latest readings as a table</summary>
        <ValuesTable readings={readings} version={version} />
      </details>
    </figure>
  )
}

/** The chart: uPlot, loaded on first use; its canvas is hidden from readers (the caption says what it shows). */
function Chart({ data, aggregate }: { data: uPlot.AlignedData; aggregate: boolean }) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | undefined>(undefined)
  const latest = useRef(data)
  latest.current = data
  const [failed, setFailed] = useState<string | undefined>(undefined)

  useEffect(() => {
    let gone = false
    let observer: ResizeObserver | undefined
    import('uplot').then(
      ({ default: UPlot }) => {
        if (gone || box.current === null) return
        const el = box.current
        plot.current = new UPlot(chartOptions(el.clientWidth, aggregate), latest.current, el)
        observer = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: CHART_HEIGHT }))
        observer.observe(el)
      },
      (err: Error) => setFailed(err.message),
    )
    return () => {
      gone = true
      observer?.disconnect()
      plot.current?.destroy()
      plot.current = undefined
    }
  }, [aggregate])

  useEffect(() => {
    plot.current?.setData(data)
  }, [data])

  if (failed !== undefined)
    return <p class="muted">The chart could not be loaded ({failed}); the table below holds the readings.</p>
  return <div ref={box} class="stream-chart" aria-hidden="true" />
}

const CHART_HEIGHT = 300

function chartOptions(width: number, aggregate: boolean): uPlot.Options {
  const css = getComputedStyle(document.documentElement)
  const color = (name: string) => css.getPropertyValue(name).trim()
  const accent = color('--accent')
  const axis = {
    stroke: color('--muted'),
    grid: { stroke: color('--line'), width: 1 },
    ticks: { stroke: color('--line') },
  }
  const line: uPlot.Series = { stroke: accent, width: 2, points: { size: 5, fill: accent } }
  const edge: uPlot.Series = { stroke: color('--muted'), width: 1, dash: [4, 4], points: { show: false } }
  const series: uPlot.Series[] = aggregate
    ? [{}, { ...edge, label: 'min' }, { ...edge, label: 'max' }, { ...line, label: 'mean' }]
    : [{}, { ...line, label: 'value' }]
  return {
    width: Math.max(width, 200),
    height: CHART_HEIGHT,
    series,
    axes: [axis, { ...axis, size: 56 }],
    scales: { x: { time: true } },
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    ...(aggregate ? { bands: [{ series: [2, 1], fill: color('--accent-soft') }] } : {}),
  }
}

function ValuesTable({ readings, version }: { readings: ReadingLine[]; version: number }) {
  return (
    <LatestTable
      readings={readings}
      version={version}
      noun="readings"
      class="stream-readings-table"
      heading={
        <th scope="col" class="num">
          Value
        </th>
      }
      cell={r =>
        typeof r.value === 'number' ? (
          <td class="num">{num(r.value)}</td>
        ) : (
          <td class={isAggregateValue(r.value) ? 'num' : 'mono'}>{valueText(r.value)}</td>
        )
      }
    />
  )
}

/**
 * The latest readings, newest first, by time and sequence and one column of what each holds;
 * below the table, how many there are in all when it shows only the latest.
 */
function LatestTable(props: {
  readings: ReadingLine[]
  version: number
  /** what a row is, in the plural: "readings", "commitments" */
  noun: string
  class: string
  /** the last column's heading, and its cell for a reading */
  heading: ComponentChildren
  cell: (r: ReadingLine) => ComponentChildren
}) {
  const { readings, noun } = props
  const rows = useMemo(() => readings.slice(-TABLE_ROWS).reverse(), [props.version])
  return (
    <>
      <table class={`counters ${props.class}`}>
        <caption class="visually-hidden">
          The latest {rows.length} {noun}, newest first
        </caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col" class="num">
              Sequence
            </th>
            {props.heading}
          </tr>
        </thead>
        <tbody>
          {rows.map(r => (
            <tr key={r.seq}>
              <td>{time(r.ts)}</td>
              <td class="num">{r.seq}</td>
              {props.cell(r)}
            </tr>
          ))}
        </tbody>
      </table>
      {readings.length > rows.length && (
        <p class="muted small">
          The latest {rows.length} of {readings.length.toLocaleString()} {noun}.
        </p>
      )}
    </>
  )
}

function isAggregateValue(v: unknown): v is AggregateValue {
  return v !== null && typeof v === 'object' && typeof (v as AggregateValue).mean === 'number'
}

/** A value that is not a number, as a line of text: an aggregate's figures, else its JSON. */
function valueText(v: unknown): string {
  if (!isAggregateValue(v)) return JSON.stringify(v)
  return `mean ${num(v.mean)} · min ${num(v.min)} · max ${num(v.max)} · ${plural(v.count, 'reading')}`
}

/** Hashed readings: a commitment per reading, nothing to plot. */
function Commitments({ readings, version }: { readings: ReadingLine[]; version: number }) {
  return (
    <>
      <p class="stream-note">
        Hashed readings carry a commitment to each value, not the value: there is nothing to plot. Each commitment
        proves that a reading existed at that time; whoever holds the raw form can show which value it was.
      </p>
      <p id="stream-summary" class="stream-chart-summary">
        {plural(readings.length, 'commitment')} from {time(readings[0].ts)} to {time(readings[readings.length - 1].ts)}.
      </p>
      <LatestTable
        readings={readings}
        version={version}
        noun="commitments"
        class="stream-readings-table stream-commitments"
        heading={<th scope="col">Commitment</th>}
        cell={r => (
          <td class="mono stream-commitment">{(r.value as { commitment?: string } | null)?.commitment ?? '—'}</td>
        )}
      />
    </>
  )
}

const REASON_WORDS: Record<IngestErrorReason, string> = {
  'too-large': 'too large',
  'not-json': 'not JSON',
  'not-a-reading': 'not a reading',
  'bad-stream-name': 'bad stream name',
  'unmapped-topic': 'topic mapped to no stream',
}

/**
 * The node's MQTT ingestions, fetched again whenever the node's state changes (its counters
 * move with every message); nothing when the node runs no ingestion service (404).
 */
function Ingestions({ state, labels }: { state: ClientState; labels: Map<string, string> }) {
  const api = useApi()
  const [answer, setAnswer] = useState<{ list?: IngestionView[]; absent?: boolean; error?: string }>({})
  useEffect(() => {
    let current = true
    api.get<IngestionList>('/v1/ingest').then(
      r => current && setAnswer({ list: r.ingestions }),
      (err: Error) => {
        if (!current) return
        if (err.name === ApiError.name && (err as ApiError).status === 404) setAnswer({ absent: true })
        else setAnswer({ error: err.message })
      },
    )
    return () => {
      current = false
    }
  }, [state])

  // a node that ingests nothing (most readers) shows no card for it
  if (answer.absent || answer.list?.length === 0 || (answer.list === undefined && answer.error === undefined))
    return null
  return (
    <section class="card" aria-labelledby="ingestion-title">
      <h2 id="ingestion-title">MQTT ingestion on this node</h2>
      {answer.error !== undefined ? (
        <p role="alert">The ingestions could not be listed: {answer.error}</p>
      ) : (
        <ul class="rows" aria-label="Ingestions">
          {answer.list!.map(i => (
            <IngestionItem key={i.id} ingestion={i} space={labels.get(i.space) ?? 'a space this node is not in'} />
          ))}
        </ul>
      )}
    </section>
  )
}

function IngestionItem({ ingestion: i, space }: { ingestion: IngestionView; space: string }) {
  const s = i.stats
  const reasons = Object.entries(s.errors).filter(([, n]) => (n ?? 0) > 0) as [IngestErrorReason, number][]
  const refused = reasons.reduce((a, [, n]) => a + n, 0)
  return (
    <li class="stream-ingestion">
      <div class="stream-ingestion-head">
        <span class={`pill pill-${s.connected ? 'ok' : 'attention'}`}>
          {s.connected ? 'Connected' : 'Disconnected'}
        </span>
        <div>
          <h3>{i.topic === '#' ? `Every topic → ${space}` : `Topic ${i.topic} → ${space}`}</h3>
          <p class="muted small mono">{brokerOf(i.url)}</p>
        </div>
      </div>
      <dl class="stream-ingestion-stats">
        <div>
          <dt>Stored</dt>
          <dd>{s.ok.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Refused</dt>
          <dd class={refused > 0 ? 'stream-attention' : undefined}>{refused.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Waiting</dt>
          <dd>{s.pending.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Storage failures</dt>
          <dd class={s.storageFailures > 0 ? 'stream-attention' : undefined}>{s.storageFailures.toLocaleString()}</dd>
        </div>
        <div>
          <dt>Reconnects</dt>
          <dd>{s.reconnects.toLocaleString()}</dd>
        </div>
      </dl>
      {reasons.length > 0 && (
        <p class="small">
          Refused messages:{' '}
          {reasons.map(([reason, n], k) => (
            <span key={reason}>
              {k > 0 && ', '}
              {REASON_WORDS[reason] ?? reason} <strong>{n.toLocaleString()}</strong>
            </span>
          ))}
        </p>
      )}
      {s.lastError !== undefined && <p class="small stream-attention">Last error: {s.lastError}</p>}
    </li>
  )
}

/** A broker's URL without the credentials it may carry (`mqtt://user:secret@host` → `mqtt://host`). */
const brokerOf = (url: string): string => url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1')

const lowerFirst = (sentence: string): string => sentence.charAt(0).toLowerCase() + sentence.slice(1)

const plural = (n: number, one: string): string => `${n.toLocaleString()} ${n === 1 ? one : `${one}s`}`

const num = (v: number): string => v.toLocaleString(undefined, { maximumFractionDigits: 3 })

function time(ms: number): string {
  const d = new Date(ms)
  const today = d.toDateString() === new Date().toDateString()
  return today ? d.toLocaleTimeString() : d.toLocaleString()
}

function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return plural(ms / 86_400_000, 'day')
  if (ms % 3_600_000 === 0) return plural(ms / 3_600_000, 'hour')
  if (ms % 60_000 === 0) return `${ms / 60_000} min`
  return `${Math.round(ms / 1000)} s`
}
