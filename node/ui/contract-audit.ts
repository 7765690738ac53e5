/**
 * The JSON of the Audit screen's API calls: the report `GET /v1/spaces/:id/audit/report`
 * answers (the file `edgeward audit report --out` writes, byte for byte once indented), and
 * what `POST /v1/audit/verify` answers. Written once for the node (node/api-audit.ts), the
 * client (node/client/screens/audit.tsx) and the tests. No imports: the browser bundle
 * includes this file; the report's own types are protocols/audit/report.ts, which these mirror.
 */

/** Where the node verifies a report (the report JSON as the body; `?space=ID&owner=DID` pin what it must be about). */
export const AUDIT_VERIFY_PATH = '/v1/audit/verify'

/** One stretch of time during which a person held a valid key to an item. */
export interface HeldInterval {
  /** ms since the epoch: the key's release */
  from: number
  /** ms since the epoch: the lease's end, the revocation, or the report's head time when still held */
  until: number
  /** what ended it; 'open': the lease runs past the report's signed head (still held then) */
  endedBy: 'lease-end' | 'revocation' | 'open'
}

/** Who held a key to which item (a stream, or an object `obj-<16 hex>`), when, and for how long in all. */
export interface HoldingView {
  /** the person's did:key */
  subject: string
  /** the stream's name, or the object's id */
  resource: string
  intervals: HeldInterval[]
  /** total time held, in minutes (2 decimals) */
  minutes: number
}

/** What a report was asked for: the space, and optionally one person, one item and a time range (ms). */
export interface AuditQueryView {
  space: string
  subject?: string
  resource?: string
  from?: number
  until?: number
}

/** An audit report, as the key holder's node answers it and as it is exported; it holds no plaintext data. */
export interface AuditReportFile {
  format: string
  query: AuditQueryView
  /** the space's signed genesis (base64url) */
  genesis: string
  /** the signed tree head every proof is against (base64url) */
  head: string
  entries: { index: number; entry: string; proof: string[] }[]
  holdings: HoldingView[]
}

/** A report that verifies: what it vouches for. */
export interface ReportVerified {
  ok: true
  space: { id: string; name: string }
  /** the owner's did:key: it signed the space's genesis and the tree head */
  owner: string
  /** the key holder (peer id) whose log the report proves its entries in */
  keyHolder: string
  /** the log's size at the signed head */
  treeSize: number
  /** when the head was signed (ISO 8601) */
  headTime: string
  /** how many log entries the report proves */
  entries: number
  holdings: HoldingView[]
  /** true when the request pinned the space or owner; false: checked against itself only */
  pinned: boolean
}

/** A report that does not verify: the first thing that failed, in words. */
export interface ReportRefused {
  ok: false
  failure: string
}

/** What `POST /v1/audit/verify` answers (200 either way; 400 when the body is not a JSON object). */
export type VerifyAnswer = ReportVerified | ReportRefused
