/**
 * The JSON of the objects endpoints (files and messages) as the client's Files and Messages
 * screens call them: `GET /v1/spaces/:id/objects` (the sender's view of what was shared) and
 * `POST /v1/spaces/:id/objects` (a share). Written once, imported by the node
 * (node/api-objects.ts), the client and the tests. The browser bundle includes it, so it imports
 * nothing but the types of another contract.
 */
import type { ForwardView, GrantStatusView } from './contract-access.ts'

/** What an object is: a file or a message (its stream record says so, in the clear). */
export type ObjectMedia = 'file' | 'message'

/** Where one grant of an object stands on the node's clock, as any grant does (`pending`: it starts later). */
export type ObjectGrantStatus = GrantStatusView

/** Who may forward an object: nobody, the reader by asking the owner, or the reader at will. */
export type ObjectForward = ForwardView

/** One grant of an object: one recipient. */
export interface ObjectGrantView {
  id: string
  /** the recipient's did:key */
  subject: string
  status: ObjectGrantStatus
  /** ms since the epoch */
  notAfter: number
  /** false: view only */
  download: boolean
  /** for a revoked grant: who revoked it and when (ms), when the revocation is known here */
  revokedBy?: string
  revokedAt?: number
}

/** An object of a space, as its sender sees it. */
export interface ObjectSummary {
  /** `obj-<16 hex>` */
  object: string
  media: ObjectMedia
  /** when its stream record was made (ms) */
  createdAt: number
  /** the stream record's issuer: who shared it */
  creator: string
  /** its name, when this node shared or opened it (names travel encrypted) */
  name?: string
  /** every grant that names it, oldest first */
  grants: ObjectGrantView[]
}

/** The default and largest `limit` of `GET /v1/spaces/:id/objects`. */
export const OBJECTS_PAGE = 200
export const OBJECTS_PAGE_MAX = 1000

/**
 * What `GET /v1/spaces/:id/objects?limit=N&before=OBJECT` answers: the space's objects newest
 * first; `next`, when there are more, is the `before` of the next page.
 */
export interface ObjectList {
  space: string
  /** the node's clock when the list was made (ms) */
  now: number
  objects: ObjectSummary[]
  next?: string
}

/** What `POST /v1/spaces/:id/objects` answers: the object and one grant per recipient (times ISO 8601). */
export interface ShareAnswer {
  object: string
  /** the first recipient's grant and its end */
  grant: string
  notAfter: string
  grants: { to: string; grant: string; notAfter: string }[]
  name: string
  size: number
  chunks: number
  sha256: string
}
