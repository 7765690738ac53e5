/**
 * What the desktop client and the node's UI server agree on: the JSON of the client's own
 * endpoints (`/ui/session`, `/ui/state`, `/ui/events`, `/ui/links`) and the header a change
 * carries. The JSON of each screen's own API calls is in `contract-<screen>.ts` beside it. Written once, imported by the node (node/ui/), the client (node/client/) and the
 * tests. No imports: the browser bundle includes this file.
 */

/** The header that carries the session's CSRF token on every request that is not a GET. */
export const CSRF_HEADER = 'x-edgeward-csrf'

/** What `POST /ui/session` (redeeming a link) and `GET /ui/session` answer. */
export interface SessionInfo {
  /** to send as {@link CSRF_HEADER} with every change */
  csrf: string
  /** ms since the epoch; after it the session cookie no longer opens anything */
  expiresAt: number
}

/** What `POST /ui/links` (the CLI, with its bearer token) answers: a link that opens one session. */
export interface LoginLink {
  url: string
  expiresAt: number
}

/** The person and the device, as the Identity screen shows them. */
export interface IdentityView {
  /** the person's own id (did:key), the one others grant access to */
  did: string
  /** this device's libp2p peer id */
  peerId: string
  /** false: development mode, the private keys are on disk unencrypted */
  keysEncrypted: boolean
  addresses: string[]
}

export type CheckState = 'ok' | 'attention' | 'trouble' | 'unknown'

export type CheckId = 'peers' | 'spaces' | 'key-holders' | 'equivocations' | 'audit-logs' | 'refused-changes'

/** One thing the node checks about itself, with what a person needs to act on it. */
export interface HealthCheck {
  id: CheckId
  title: string
  state: CheckState
  /** one sentence */
  summary: string
  /** the facts behind the summary, one line each (may be empty) */
  details: string[]
}

/** A counter from the node's metrics, summed over its labels, with the largest series. */
export interface CounterView {
  name: string
  help: string
  total: number
  /** label set → value, the largest first (at most 5) */
  top: { labels: string; value: number }[]
}

/** Whether this node is fine: the worst of its checks ('unknown' does not count). */
export interface Health {
  verdict: 'fine' | 'attention' | 'trouble'
  /** one sentence for the indicator */
  summary: string
  checks: HealthCheck[]
  /** the node's counters that are not zero */
  counters: CounterView[]
}

/** What this person is in a space. */
export type SpaceRole = 'owner' | 'admin' | 'member'

/** A space this node owns or joined, as the screens list it. */
export interface SpaceView {
  /** the space id (64 hex): for the API, never for a person to read */
  id: string
  /** the name its owner gave it (undefined until the space has synchronised) */
  name?: string
  synchronised: boolean
  role: SpaceRole
  /** the owner's did:key */
  owner?: string
  /** this node holds the space's data keys */
  keyHolder: boolean
  /** the space's streams (objects not included) */
  streams: string[]
  /** this person may share files and messages here: a key holder, or a member granted to contribute where custodians keep the keys */
  mayShare: boolean
  /** the custodians that release keys while no key holder answers, when the owner named them */
  custody?: CustodyView
}

/** A space's custodian set in force: any `threshold` of `custodians` together release a key. */
export interface CustodyView {
  threshold: number
  custodians: {
    peer: string
    /** the person who runs it, when the set names them */
    did?: string
    /** this node is connected to it (or is it) */
    connected: boolean
  }[]
}

/** A peer this node is connected to now, with the person behind it when this node knows (a space's owner, a custodian). */
export interface PeerView {
  peer: string
  did?: string
}

/** What `GET /ui/state` answers and `/ui/events` pushes (event `state`) whenever it changes. */
export interface ClientState {
  identity: IdentityView
  health: Health
  spaces: SpaceView[]
  /** changes whenever what is shared with this person changes: the client fetches `/v1/inbox` again */
  inboxVersion: number
  /** the names this person gave people (and their own), by did:key: what screens show instead of ids */
  people: Record<string, string>
  /** the peers connected now */
  peers: PeerView[]
}
