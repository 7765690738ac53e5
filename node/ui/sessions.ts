/**
 * The desktop client's sessions. A one-time login link (a random token, single use, valid for
 * {@link LINK_TTL_MS}) opens a session: a random id kept by the browser in an HttpOnly,
 * SameSite=Strict cookie, and a CSRF token that the page reads once and sends with every
 * change. Only SHA-256 digests of links and session ids are kept, compared in constant time,
 * in memory: a node that restarts forgets every session. Time comes from the caller.
 */
import { randomBytes } from 'node:crypto'
import { constantTimeEqual, sha256 } from '../../crypto/hash.ts'

/** How long a login link may wait to be used. */
export const LINK_TTL_MS = 2 * 60_000
/** How long a session lasts. */
export const SESSION_TTL_MS = 12 * 60 * 60_000
/** Outstanding links and sessions kept at most (the oldest go first beyond it). */
const MAX_ENTRIES = 64

export interface Session {
  csrf: string
  expiresAt: number
}

const digest = (secret: string): string => Buffer.from(sha256(new TextEncoder().encode(secret))).toString('hex')
const token = (): string => randomBytes(32).toString('base64url')

/** Add to a map that keeps its newest `MAX_ENTRIES` entries, after dropping those past `now`. */
function remember<T extends { expiresAt: number }>(map: Map<string, T>, key: string, value: T, now: number): void {
  for (const [k, v] of map) if (v.expiresAt <= now) map.delete(k)
  map.set(key, value)
  while (map.size > MAX_ENTRIES) map.delete(map.keys().next().value as string)
}

export class SessionStore {
  private readonly links = new Map<string, { expiresAt: number }>()
  private readonly sessions = new Map<string, Session>()

  /** A new login link's token and when it expires. */
  createLink(now: number): { token: string; expiresAt: number } {
    const t = token()
    const expiresAt = now + LINK_TTL_MS
    remember(this.links, digest(t), { expiresAt }, now)
    return { token: t, expiresAt }
  }

  /**
   * Redeem a link: a new session (its id for the cookie, and its CSRF token), or undefined
   * when the link is unknown, used already or expired. A link is gone after one attempt.
   */
  redeem(link: string, now: number): { id: string; session: Session } | undefined {
    const key = digest(link)
    const entry = this.links.get(key)
    this.links.delete(key)
    if (entry === undefined || entry.expiresAt <= now) return undefined
    const id = token()
    const session = { csrf: token(), expiresAt: now + SESSION_TTL_MS }
    remember(this.sessions, digest(id), session, now)
    return { id, session }
  }

  /** The session this cookie value opens, if it is one and has not expired. */
  find(id: string | undefined, now: number): Session | undefined {
    if (id === undefined || id === '') return undefined
    const s = this.sessions.get(digest(id))
    return s !== undefined && s.expiresAt > now ? s : undefined
  }

  /** Does `given` match the session's CSRF token? (constant time, over digests of one length) */
  isCsrfValid(session: Session, given: string | undefined): boolean {
    return given !== undefined && constantTimeEqual(sha256(enc(given)), sha256(enc(session.csrf)))
  }

  end(id: string): void {
    this.sessions.delete(digest(id))
  }
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
