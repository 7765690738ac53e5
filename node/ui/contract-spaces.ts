/**
 * The JSON of invites and joining, as the node's API answers it and the CLI, the Spaces screen
 * and the tests read it: `POST /v1/spaces/:id/invites`, `GET /v1/spaces/:id/invites`,
 * `POST /v1/join`. No imports: the browser bundle includes this file.
 * A failed join is an API error: 400 (a malformed or expired code), 503 (the inviter cannot be
 * reached), 403 with the inviter's refusal as its code (unknown, expired, used, bad-signature,
 * not-authorized, malformed).
 */

/** `POST /v1/spaces/:id/invites`: what the invite allows. Without streams it grants nothing. */
export interface InviteRequest {
  /** how long the code may be redeemed, ms (default 7 days) */
  for?: number
  /** how many people may redeem it (default 1) */
  uses?: number
  /** streams (names, prefixes or `*`) the person who joins may read */
  streams?: string[]
  /** how long that access lasts from the moment they join, ms (default 7 days) */
  accessMs?: number
  /** false: view only (default true) */
  download?: boolean
}

/** What `POST /v1/spaces/:id/invites` answers. */
export interface InviteCreated {
  /** the code to pass on (`ew1-…`) */
  invite: string
  /** ms since the epoch */
  expiresAt: number
  /** how many inviter addresses the code carries */
  addresses: number
}

/** An invite made on this node, as `GET /v1/spaces/:id/invites` lists it (never its token). */
export interface InviteView {
  /** a short id: the first hex of the token's hash */
  id: string
  createdAt: number
  expiresAt: number
  uses: number
  usesLeft: number
  /** empty: the invite only lets people join */
  streams: string[]
  accessMs?: number
  download?: boolean
}

export interface InviteList {
  space: string
  invites: InviteView[]
}

/** The grant a person received by joining. */
export interface JoinedGrant {
  id: string
  streams: string[]
  forms: string[]
  /** ms since the epoch */
  notAfter: number
  download: boolean
}

/** `POST /v1/join` takes `{ invite }` and answers this once the space has synchronised (or the wait ended). */
export interface JoinResult {
  space: string
  name: string
  /** the owner's did, once the space has synchronised */
  owner?: string
  synchronised: boolean
  grant?: JoinedGrant
}

/** `POST /v1/spaces/:id/custody` (the owner only): name the custodians (peer ids, each reachable now) and the threshold. */
export interface CustodyRequest {
  custodians: string[]
  /** 2..custodians.length */
  threshold: number
}

/**
 * What `GET` and `POST /v1/spaces/:id/custody` answer: the set in force, or null; GET adds what
 * this node keeps, over all its spaces. A POST naming an unreachable custodian is a 503, a bad
 * peer id or threshold a 400.
 */
export interface CustodyAnswer {
  space: string
  set: {
    id: string
    threshold: number
    custodians: { peer: string; did?: string }[]
    /** ISO 8601 */
    writtenAt: string
  } | null
  /** key shares this node keeps as a custodian */
  held?: number
  /** deals this node made that a custodian has not acknowledged yet */
  unacknowledged?: number
}
