/**
 * The JSON of `GET /v1/inbox`: everything shared with this person across spaces. Written once,
 * imported by the node (node/services/inbox.ts) and the client. No imports.
 */

/** What an inbox item is. */
export type InboxKind = 'file' | 'message' | 'stream'

/**
 * Where an item stands on the node's clock: `active` (open it now), `not-yet` (its grant starts
 * later), `expired`, `revoked`, `not-honoured` (its issuer no longer has the power to grant
 * it), `requested` (asked for, waiting), `denied`. "Expiring in…" is `active` with `notAfter`
 * near: the client counts down.
 */
export type InboxState = 'active' | 'not-yet' | 'expired' | 'revoked' | 'not-honoured' | 'requested' | 'denied'

/** One thing shared with this person (or asked for by them). */
export interface InboxItem {
  /** stable across refreshes: `space/grant/resource`, or `space/request/id` */
  key: string
  space: string
  /** the space's name as its owner gave it */
  spaceName: string
  kind: InboxKind
  /** an object id (`obj-…`), a stream name, a prefix (`line-1.*`) or `*` (every stream of the space) */
  resource: string
  /** the object's name, once this node opened it (names travel encrypted) */
  name?: string
  /** who shared it (the grant's issuer), or for a request who it was asked of: the space's owner */
  from: string
  /** the name this person gave them, if any */
  fromName?: string
  /** the grant, when there is one */
  grant?: string
  /** when it was shared (the grant's start) or asked for */
  at: number
  /** when access ends */
  notAfter?: number
  state: InboxState
  /** why it is revoked, denied or not honoured, in words */
  why?: string
  /** false: view only, in the client's viewer */
  download: boolean
  forward: 'never' | 'ask-owner' | 'allowed'
  /** the access request behind a `requested` or `denied` item */
  request?: string
}

/** What `GET /v1/inbox` answers. */
export interface Inbox {
  /** the person's own did:key */
  me: string
  /** the node's clock when the list was made (ms): the client counts down from it */
  now: number
  /** the same number as ClientState.inboxVersion when the list was made */
  version: number
  items: InboxItem[]
}
