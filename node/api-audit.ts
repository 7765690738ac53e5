/**
 * The local API's handler for checking an audit report, as the desktop client's Audit screen
 * asks it when a report file is dropped on it:
 * - POST /v1/audit/verify[?space=ID][&owner=DID] with the report's JSON as the body
 *   -> { ok: true, space, owner, keyHolder, treeSize, headTime, entries, holdings, pinned }
 *   or { ok: false, failure } naming the first thing that failed (both 200: a report that does
 *   not verify is an answer, not an error); 400 when the body is not a JSON object or a pin is
 *   malformed.
 * The check is `verifyReport`'s, the same as `edgeward audit verify`: pure, offline, from the
 * report's own content, the custodians' logs a report carries included (a report whose
 * custodian part fails does not verify). It needs no audit log, so any node answers it.
 */
import { isDid } from '../crypto/identity.ts'
import { verifyReport } from '../protocols/audit/report.ts'
import { ID_PATTERN } from '../protocols/validate.ts'
import { UsageError } from './errors.ts'
import type { VerifyAnswer } from './ui/contract-audit.ts'

/**
 * Verify the report in `body` (the request's text), pinned to `?space=` and `?owner=` when given.
 * @example verifyReportBody(new URL('http://x/v1/audit/verify?space=ab…'), text) // { ok: true, … }
 */
export function verifyReportBody(url: URL, body: string): VerifyAnswer {
  const space = url.searchParams.get('space') ?? undefined
  if (space !== undefined && !ID_PATTERN.test(space)) throw new UsageError(`space must be a space id (64 hex)`)
  const owner = url.searchParams.get('owner') ?? undefined
  if (owner !== undefined && !isDid(owner)) throw new UsageError('owner must be a did:key')
  let report: unknown
  try {
    report = JSON.parse(body)
  } catch {
    throw new UsageError('the body must be an audit report: the JSON that `edgeward audit report` writes')
  }
  if (report == null || typeof report !== 'object' || Array.isArray(report))
    throw new UsageError('the body must be an audit report: a JSON object')
  const result = verifyReport(report, { space, owner })
  if (!result.ok) return { ok: false, failure: result.failure }
  return {
    ok: true,
    space: { id: result.space.id, name: result.space.name },
    owner: result.space.owner,
    keyHolder: result.space.keyHolder,
    treeSize: result.head.size,
    headTime: new Date(result.head.ts).toISOString(),
    entries: result.entries.length,
    holdings: result.holdings,
    pinned: space !== undefined || owner !== undefined,
  }
}
