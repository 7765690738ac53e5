/**
 * `edgeward audit report` (asks the running key holder for a report and writes it to a
 * file) and `edgeward audit verify` (checks a report offline: no node, no network).
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { UsageError } from '../errors.ts'
import { ApiClient } from './client.ts'
import type { Output } from './commands.ts'
import { parseTimeArg } from './duration.ts'

interface HoldingLike {
  subject: string
  resource: string
  intervals: { from: number; until: number; endedBy: string }[]
  minutes: number
}

/** Verification failed: exit 1 with the first thing that failed. */
export class ReportInvalidError extends Error {
  override name = 'ReportInvalidError'
}

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
  const report = await (await ApiClient.connect(dataDir)).call<{ entries: unknown[]; holdings: HoldingLike[] }>(
    'GET',
    `/v1/spaces/${encodeURIComponent(space)}/audit/report?${q}`,
  )
  await writeFile(`${opts.out}.tmp`, `${JSON.stringify(report, null, 2)}\n`)
  await rename(`${opts.out}.tmp`, opts.out)
  const summary = { out: opts.out, entries: report.entries.length, holdings: report.holdings }
  o.out(
    o.json
      ? JSON.stringify(summary)
      : `wrote ${opts.out}: ${report.entries.length} entries with inclusion proofs\n${holdingsTable(report.holdings)}`,
  )
}

export async function auditVerify(file: string, opts: { space?: string }, o: Output): Promise<void> {
  let report: unknown
  try {
    report = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new ReportInvalidError(`cannot read ${file}: ${(err as Error).message}`)
  }
  // protocol code loads only here: verification needs no node
  const { verifyReport } = await import('../../protocols/audit/report.ts')
  const result = verifyReport(report, opts.space)
  if (!result.ok) throw new ReportInvalidError(`verification failed: ${result.failure}`)
  const summary = {
    ok: true,
    log: result.head.log,
    treeSize: result.head.size,
    headTime: new Date(result.head.ts).toISOString(),
    entries: result.entries.length,
    holdings: result.holdings,
  }
  o.out(
    o.json
      ? JSON.stringify(summary)
      : `verified: ${result.entries.length} entries, each proven in log ${result.head.log} at size ${result.head.size} (head signed ${summary.headTime})\n${holdingsTable(result.holdings)}`,
  )
}
