/**
 * The client's only way to the node: its local API, same origin, with the session cookie the
 * browser sends by itself and the CSRF token on every change. The browser holds no keys and
 * decides nothing: what it shows comes from here.
 */
import { createContext } from 'preact'
import { useContext, useEffect, useState } from 'preact/hooks'
import { type ClientState, CSRF_HEADER, type SessionInfo } from '../ui/contract.ts'

export class ApiError extends Error {
  static override name = 'ApiError'
  readonly status: number
  readonly code: string | undefined

  constructor(status: number, message: string, code?: string) {
    super(message)
    this.name = ApiError.name
    this.status = status
    this.code = code
  }
}

async function answer<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({}))) as T & { error?: { message?: string; code?: string } }
  if (!res.ok) throw new ApiError(res.status, body.error?.message ?? `HTTP ${res.status}`, body.error?.code)
  return body
}

/** Redeem a one-time login link: the node sets the session cookie and gives the CSRF token. */
export async function redeemLink(link: string): Promise<SessionInfo> {
  return answer(
    await fetch('/ui/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ link }),
      credentials: 'same-origin',
    }),
  )
}

/** The session this browser holds, if any (ApiError 401 when none). */
export async function currentSession(): Promise<SessionInfo> {
  return answer(await fetch('/ui/session', { credentials: 'same-origin' }))
}

/** The node's API as the signed-in client calls it. */
export class NodeApi {
  private readonly csrf: string

  constructor(session: SessionInfo) {
    this.csrf = session.csrf
  }

  async get<T>(path: string): Promise<T> {
    return answer(await fetch(path, { credentials: 'same-origin' }))
  }

  /** A change: never a GET, always with the CSRF token. */
  async send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T | undefined> {
    const res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { [CSRF_HEADER]: this.csrf, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (res.status === 204) return undefined
    return answer<T>(res)
  }
}

export const ApiContext = createContext<NodeApi | undefined>(undefined)

export function useApi(): NodeApi {
  const api = useContext(ApiContext)
  if (api === undefined) throw new Error('useApi outside a signed-in client')
  return api
}

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'lost'

/**
 * The node's state as `/ui/events` pushes it. The event stream is open only while the page
 * is visible: a hidden window keeps no connection and renders nothing.
 */
export function useNodeState(): { state: ClientState | undefined; connection: Connection } {
  const [state, setState] = useState<ClientState>()
  const [connection, setConnection] = useState<Connection>('connecting')
  const [visible, setVisible] = useState(document.visibilityState === 'visible')

  useEffect(() => {
    const onVisibility = () => setVisible(document.visibilityState === 'visible')
    document.addEventListener('visibilitychange', onVisibility)
    return () => document.removeEventListener('visibilitychange', onVisibility)
  }, [])

  useEffect(() => {
    if (!visible) return
    const events = new EventSource('/ui/events')
    events.addEventListener('state', e => {
      setState(JSON.parse((e as MessageEvent<string>).data) as ClientState)
      setConnection('live')
    })
    // the browser reconnects by itself; CLOSED means it gave up (the node refused or is gone)
    events.onerror = () => setConnection(events.readyState === EventSource.CLOSED ? 'lost' : 'reconnecting')
    return () => events.close()
  }, [visible])

  return { state, connection }
}
