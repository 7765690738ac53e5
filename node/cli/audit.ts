/**
 * `edgeward audit report` (asks the running key holder for a report, which gathers the
 * entries of the space's custodians' logs too, and writes it to a file) and `edgeward audit
 * verify` (checks a report offline, every log's part of it: no node, no network).
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises'
import type { VerifiedCustody } from '../../protocols/audit/custody-report.ts'
import { UsageError } from '../errors.ts'
import { ApiClient } from './client.ts'
import { parseTimeArg } from './duration.ts'
import type { Output } from './output.ts'

interface HoldingLike {
  subject: string
  resource: string
  intervals: { from: number; until: number; endedBy: string }[]
  minutes: number
}

interface CustodyHoldingLike extends HoldingLike {
  epoch: number
  releasedBy: string[]
}

/** The custodians' part of a report, as the CLI shows it. */
interface CustodyLike {
  logs: { peer: string; head: string; entries: unknown[] }[]
  missing: { peer: string; reason: string }[]
  holdings: CustodyHoldingLike[]
}

/** Verification failed: exit 1 with the first thing that failed. */
export class ReportInvalidError extends Error {
  static override name = 'ReportInvalidError'

  constructor(message = 'the report does not verify') {
    super(message)
    this.name = 'ReportInvalidError'
  }
}

/** A report's key holdings as a table for people: who held which key, from when until when, and why it ended. */
export function holdingsTable(holdings: HoldingLike[]): string {
  if (holdings.length === 0) return '(no key was held in this range)'
  const rows = [['subject', 'resource', 'from', 'until', 'ended by', 'minutes']]
  for (const h of holdings) {
    h.intervals.forEach((i, n) => {
      const mins = ((i.until - i.from) / 60_000).toFixed(2)
      rows.push([
        n === 0 ? h.subject : '',
        n === 0 ? h.resource : '',
        new Date(i.from).toISOString(),
        new Date(i.until).toISOString(),
        i.endedBy,
        mins,
      ])
    })
    if (h.intervals.length > 1) rows.push(['', '', '', '', 'total', h.minutes.toFixed(2)])
  }
  return columns(rows)
}

/** Rows of cells as aligned columns. */
function columns(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map(r => r[c].length)))
  return rows
    .map(r =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/**
 * The keys held through custodians, as a table: k shares of an epoch's key at once, from when
 * until when; a release that never met k others shows as never held.
 */
export function custodyHoldingsTable(holdings: CustodyHoldingLike[]): string {
  if (holdings.length === 0) return '(no custodian released a share in this range)'
  const rows = [['subject', 'resource', 'epoch', 'custodians', 'from', 'until', 'ended by', 'minutes']]
  for (const h of holdings) {
    const head = [h.subject, h.resource, String(h.epoch), String(h.releasedBy.length)]
    if (h.intervals.length === 0) rows.push([...head, '(never k shares at once)', '', '', '0.00'])
    h.intervals.forEach((i, n) => {
      rows.push([
        ...(n === 0 ? head : ['', '', '', '']),
        new Date(i.from).toISOString(),
        new Date(i.until).toISOString(),
        i.endedBy,
        ((i.until - i.from) / 60_000).toFixed(2),
      ])
    })
    if (h.intervals.length > 1) rows.push(['', '', '', '', '', '', 'total', h.minutes.toFixed(2)])
  }
  return columns(rows)
}

/** What a report says of the custodians' logs, a line each: which answered with how many entries, which are missing and why. */
function custodyLines(c: CustodyLike | undefined): string {
  if (c === undefined) return ''
  const lines = [`custodians: ${c.logs.length} answered, ${c.missing.length} missing`]
  for (const l of c.logs)
    lines.push(`  custodian ${oneLine(l.peer)}: ${l.entries.length} entries with inclusion proofs`)
  for (const m of c.missing) lines.push(`  custodian ${oneLine(m.peer)}: missing (${oneLine(m.reason)})`)
  lines.push('keys held through custodians (k shares at once):', custodyHoldingsTable(c.holdings))
  return `\n${lines.join('\n')}`
}

/** The `audit` part of `GET /v1/status` (and of `edgeward status --json`), as the CLI shows it. */
export interface AuditStatus {
  size: number
  head?: number
  equivocations: { log: string; reason: string; seenAt: number }[]
  unverifiable?: {
    log: string
    acceptedSize: number
    uncheckedSize: number
    tries: number
    since: number
    lastError: string
  }[]
}

/** The audit lines of `edgeward status`: this node's log, and the other logs it caught or could not check. */
export function auditStatusLines(a: AuditStatus): string[] {
  const lines = [`audit log: ${a.size} entries${a.head === undefined ? '' : `, head signed at size ${a.head}`}`]
  for (const e of a.equivocations) lines.push(`  equivocation by log ${e.log}: ${oneLine(e.reason)}`)
  for (const u of a.unverifiable ?? []) {
    lines.push(
      `  unverifiable log ${u.log}: no consistency proof from size ${u.acceptedSize} to ${u.uncheckedSize} since ${new Date(u.since).toISOString()}, ${u.tries} tries (last: ${oneLine(u.lastError)})`,
    )
  }
  return lines
}

/** `audit report SPACE`: ask the key holder for a report and write it to a file or stdout. */
export async function auditReport(
  dataDir: string,
  space: string,
  opts: { subject?: string; resource?: string; from?: string; until?: string; out?: string },
  o: Output,
): Promise<void> {
  if (opts.out === undefined) throw new UsageError('audit report needs --out FILE')
  const q = new URLSearchParams()
  if (opts.subject !== undefined) q.set('subject', opts.subject)
  if (opts.resource !== undefined) q.set('resource', opts.resource)
  const from = opts.from === undefined ? undefined : parseTimeArg(opts.from, '--from')
  const until = opts.until === undefined ? undefined : parseTimeArg(opts.until, '--until')
  if (from !== undefined) q.set('from', String(from))
  if (until !== undefined) q.set('until', String(until))
  const client = await ApiClient.connect(dataDir)
  if (!o.json) o.err("asking the node for a report (it asks the space's custodians for their entries too)…")
  const report = await client.call<{ entries: unknown[]; holdings: HoldingLike[]; custody?: CustodyLike }>(
    'GET',
    `/v1/spaces/${encodeURIComponent(space)}/audit/report?${q}`,
  )
  await writeFile(`${opts.out}.tmp`, `${JSON.stringify(report, null, 2)}\n`)
  await rename(`${opts.out}.tmp`, opts.out)
  const c = report.custody
  const summary = {
    out: opts.out,
    entries: report.entries.length,
    holdings: report.holdings,
    ...(c === undefined
      ? {}
      : {
          custodians: {
            answered: c.logs.map(l => ({ peer: l.peer, entries: l.entries.length })),
            missing: c.missing,
            holdings: c.holdings,
          },
        }),
  }
  o.out(
    o.json
      ? JSON.stringify(summary)
      : `wrote ${opts.out}: ${report.entries.length} entries with inclusion proofs\n${holdingsTable(report.holdings)}${custodyLines(c)}`,
  )
}

export interface VerifyOptions {
  /** the space id the report must be for */
  space?: string
  /** the did:key of the owner the report's space must have */
  owner?: string
}

/** The largest report file read: JavaScript's longest string is about 512 Mi characters. */
const MAX_REPORT_BYTES = 512 * 1024 * 1024

/**
 * Text that came from a file, made safe for one line of a terminal: line breaks and control
 * characters (a terminal's escape sequences among them) are written as \uXXXX, never acted on.
 */
function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** `audit verify FILE`: check a report offline; ReportInvalidError naming the first thing that failed. */
export async function auditVerify(file: string, opts: VerifyOptions, o: Output): Promise<void> {
  // protocol code loads only here: verification needs no node
  const { isDid } = await import('../../crypto/identity.ts')
  const { verifyReport } = await import('../../protocols/audit/report.ts')
  if (opts.owner !== undefined && !isDid(opts.owner))
    throw new UsageError(`--owner is not a did:key: ${oneLine(opts.owner)}`)
  let text: string
  try {
    if ((await stat(file)).size > MAX_REPORT_BYTES)
      throw new RangeError('larger than 512 MiB, too large to be a report')
    const bytes = await readFile(file)
    // a report is JSON in UTF-8: anything else is not a report, and its bytes are not echoed
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch (err) {
    const why = (err as Error).name === TypeError.name ? 'not UTF-8 text' : (err as Error).message
    throw new ReportInvalidError(`cannot read ${file}: ${oneLine(why)}`)
  }
  let report: unknown
  try {
    report = JSON.parse(text)
  } catch {
    throw new ReportInvalidError(`cannot read ${file}: not JSON (an audit report is the JSON that audit report writes)`)
  }
  const result = verifyReport(report, { space: opts.space, owner: opts.owner })
  if (!result.ok) throw new ReportInvalidError(`verification failed: ${oneLine(result.failure)}`)
  const { space } = result
  const summary = {
    ok: true,
    space: { id: space.id, name: space.name },
    owner: space.owner,
    keyHolder: space.keyHolder,
    log: result.head.log,
    treeSize: result.head.size,
    headTime: new Date(result.head.ts).toISOString(),
    entries: result.entries.length,
    holdings: result.holdings,
    ...(result.custody === undefined
      ? {}
      : {
          custodians: {
            verified: result.custody.logs.map(l => ({
              peer: l.peer,
              principal: l.principal,
              treeSize: l.head.size,
              headTime: new Date(l.head.ts).toISOString(),
              entries: l.entries.length,
            })),
            missing: result.custody.missing,
            holdings: result.custody.holdings,
          },
        }),
  }
  const vouches = `space ${oneLine(JSON.stringify(space.name))} (${space.id}), owner ${space.owner}, key holder ${space.keyHolder}`
  // the space id hashes its genesis, which names the owner: --space pins both, --owner the owner
  const caveat =
    opts.space === undefined && opts.owner === undefined
      ? '\n(checked against itself only: anyone can make up a space and a report for it; --space ID or --owner DID pins the one expected)'
      : ''
  o.out(
    o.json
      ? JSON.stringify(summary)
      : `verified: ${result.entries.length} entries, each proven in log ${result.head.log} at size ${result.head.size} (head signed ${summary.headTime})\nfor ${vouches}${caveat}\n${holdingsTable(result.holdings)}${verifiedCustodyLines(result.custody)}`,
  )
}

/** What verify says of the custodians' logs: each one's entries proven against its own head, and which are missing. */
function verifiedCustodyLines(c: VerifiedCustody | undefined): string {
  if (c === undefined) return ''
  const lines = [`custodians' logs: ${c.logs.length} verified, ${c.missing.length} missing`]
  for (const l of c.logs) {
    lines.push(
      `  custodian ${l.peer} (${l.principal}): ${l.entries.length} entries, each proven in its log at size ${l.head.size} (head signed ${new Date(l.head.ts).toISOString()})`,
    )
  }
  for (const m of c.missing) lines.push(`  custodian ${m.peer}: missing (${oneLine(m.reason)})`)
  lines.push('keys held through custodians (k shares at once):', custodyHoldingsTable(c.holdings))
  return `\n${lines.join('\n')}`
}
