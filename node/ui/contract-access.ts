/**
 * The JSON of the Access screen's API calls: the grants listing (`GET /v1/spaces/:id/grants`),
 * the requests listing (`GET /v1/spaces/:id/requests`), and the bodies and answers of
 * revoking (`POST …/revocations`) and deciding (`POST …/requests/:rid/approve` and `/deny`).
 * Written once, used by the node (node/api-policy.ts), the client and the tests. No imports.
 */

/**
 * Where a grant stands on the node's clock: `pending` (not valid yet), `not-honoured` (its
 * issuer no longer has the authority to grant it: powerless).
 */
export type GrantStatusView = 'active' | 'expired' | 'revoked' | 'pending' | 'not-honoured'

/** What a grant's holder may do beyond reading: pass it on to nobody, ask the owner for someone, or grant on. */
export type ForwardView = 'never' | 'ask-owner' | 'allowed'

/** One grant of the space, with its state now and why. Times are ISO 8601. */
export interface GrantView {
  /** the grant's id (64 hex): for the API, never for a person to read */
  id: string
  /** who signed it (the owner, or an admin it delegated to) */
  issuer: string
  /** who it is for */
  subject: string
  /** the stream names, prefixes (`line-*`), `*` or object ids it covers */
  streams: string[]
  forms: string[]
  notBefore: string
  notAfter: string
  status: GrantStatusView
  /** why it is not active, in words */
  why?: string
  /** false: view only */
  download: boolean
  forward: ForwardView
  purpose?: string
  /** the grant this one was issued under (a forwarded grant) */
  parent?: string
}

/** A delegation: the owner made `admin` an admin for some streams. */
export interface DelegationView {
  id: string
  admin: string
  streams: string[]
  notBefore: string
  notAfter: string
  status: 'active' | 'expired' | 'revoked' | 'pending'
}

/** What an item of the space is: a stream of readings, or an object (file, message). */
export type AccessItemKind = 'stream' | 'file' | 'message'

/** One item of the space, with the grants that cover it, as the node evaluates coverage. */
export interface AccessItem {
  /** the stream's name, or the object's id (`obj-<16 hex>`) */
  name: string
  kind: AccessItemKind
  /** an object's file name, when this node knows it (it shared or opened the object) */
  label?: string
  /** ids of the grants (of `grants`) whose streams cover this item */
  grants: string[]
}

/** What `GET /v1/spaces/:id/grants` answers. */
export interface GrantsListing {
  space: string
  grants: GrantView[]
  delegations: DelegationView[]
  /** every stream and object of the space, with the grants that cover it */
  items: AccessItem[]
}

export type RequestStatusView = 'pending' | 'approved' | 'denied'

/** An access request as the owner's list shows it. `at` is ms since the epoch. */
export interface AccessRequestView {
  id: string
  space: string
  /** who asked (for a forwarded request: the holder who forwarded it) */
  from: string
  /** who access is for */
  for: string
  /** the grant a forwarded request came through */
  via?: string
  /** older pending requests of the same requester for the same person, not listed */
  older?: number
  streams: string[]
  forms: string[]
  /** how long access is asked for */
  durationMs: number
  reason: string
  at: number
  status: RequestStatusView
  /** the grant an approval issued */
  grant?: string
  /** why it was denied */
  decisionReason?: string
  decidedBy?: string
}

/** What `GET /v1/spaces/:id/requests` answers. */
export interface RequestsListing {
  space: string
  requests: AccessRequestView[]
}

/** `POST /v1/spaces/:id/revocations`: one of `grant` (an id) or `subject` (a did:key: every grant of that person). */
export interface RevokeBody {
  grant?: string
  subject?: string
  /** kept with the revocation (at most 512 characters) */
  reason?: string
}

/** `POST …/requests/:rid/approve`: for how long (default: as asked); `readmit` when the person's access was revoked. */
export interface ApproveBody {
  durationMs?: number
  readmit?: boolean
  /** only these of the request's streams (default: all it asks for) */
  streams?: string[]
}

/** What approving answers: the grant it issued and when that ends (ISO 8601). */
export interface ApproveAnswer {
  request: string
  approved: true
  grant: string
  notAfter: string
}

/** `POST …/requests/:rid/deny`: the reason the requester will see (required). */
export interface DenyBody {
  reason: string
}
