/**
 * The client: opens a session (from a one-time link in the address, or the cookie it already
 * has), then the shell — navigation on the left, the one current screen on the right. Only
 * the current screen is rendered; the node's state arrives as events while the page is visible.
 */

import type { FunctionComponent } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { Health, SessionInfo } from '../ui/contract.ts'
import { ApiContext, ApiError, type Connection, currentSession, NodeApi, redeemLink, useNodeState } from './api.ts'
import { hrefOf, SCREENS, type ScreenId, screenFromHash } from './routes.ts'
import { AccessScreen } from './screens/access.tsx'
import { AuditScreen } from './screens/audit.tsx'
import { FilesScreen } from './screens/files.tsx'
import { HealthScreen } from './screens/health.tsx'
import { IdentityScreen } from './screens/identity.tsx'
import { InboxScreen } from './screens/inbox.tsx'
import { MessagesScreen } from './screens/messages.tsx'
import type { ScreenProps } from './screens/props.ts'
import { SignInScreen } from './screens/sign-in.tsx'
import { SpacesScreen } from './screens/spaces.tsx'
import { StreamsScreen } from './screens/streams.tsx'

/** Each screen's component, by route. */
const COMPONENTS: Record<ScreenId, FunctionComponent<ScreenProps>> = {
  inbox: InboxScreen,
  spaces: SpacesScreen,
  files: FilesScreen,
  messages: MessagesScreen,
  streams: StreamsScreen,
  access: AccessScreen,
  audit: AuditScreen,
  health: ({ state }) => <HealthScreen health={state.health} />,
  identity: ({ state }) => (
    <IdentityScreen identity={state.identity} name={state.people[state.identity.did]} spaces={state.spaces} />
  ),
}

type Phase = { kind: 'opening' } | { kind: 'signed-out'; reason?: string } | { kind: 'ready'; session: SessionInfo }

const LOGIN = /^#login=([A-Za-z0-9_-]+)$/

/** Take the one-time link out of the address at once (history too), then redeem it. */
async function openSession(): Promise<Phase> {
  const link = LOGIN.exec(location.hash)?.[1]
  if (link !== undefined) history.replaceState(null, '', `/${hrefOf('identity')}`)
  try {
    return { kind: 'ready', session: link !== undefined ? await redeemLink(link) : await currentSession() }
  } catch (err) {
    const e = err as Error
    if (e.name === ApiError.name && (e as ApiError).status === 401)
      return {
        kind: 'signed-out',
        reason: link === undefined ? undefined : 'This link was used already, or it expired (links last two minutes).',
      }
    return { kind: 'signed-out', reason: `The node did not answer: ${e.message}` }
  }
}

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: 'opening' })
  useEffect(() => {
    openSession().then(setPhase)
  }, [])
  if (phase.kind === 'opening') return <p class="opening">Opening…</p>
  if (phase.kind === 'signed-out') return <SignInScreen reason={phase.reason} />
  return (
    <ApiContext.Provider value={new NodeApi(phase.session)}>
      <Shell />
    </ApiContext.Provider>
  )
}

function useScreen(): ScreenId {
  const [screen, setScreen] = useState(screenFromHash(location.hash))
  useEffect(() => {
    const onHash = () => setScreen(screenFromHash(location.hash))
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  return screen
}

const CONNECTION_NOTICE: Record<Connection, string | undefined> = {
  connecting: undefined,
  live: undefined,
  reconnecting: 'Lost the connection to the node; trying again…',
  lost: 'The node no longer answers this window. Run `edgeward ui` for a new session.',
}

function Shell() {
  const current = useScreen()
  const { state, connection } = useNodeState()
  const heading = useRef<HTMLHeadingElement>(null)
  const first = useRef(true)
  const screen = SCREENS.find(s => s.id === current)!
  const Current = COMPONENTS[current]

  // a new screen: its heading takes the focus (not on the first render), so that keyboard and reader follow
  useEffect(() => {
    document.title = `${screen.title} · edgeward`
    if (first.current) first.current = false
    else heading.current?.focus()
  }, [current])

  const notice = CONNECTION_NOTICE[connection]
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <nav class="sidebar" aria-label="Screens">
        <div class="brand">
          <img src="/ui/icon.svg" alt="" width="24" height="24" />
          <span>edgeward</span>
        </div>
        <ul class="places">
          {SCREENS.filter(s => s.id !== 'identity').map(s => (
            <NavItem key={s.id} id={s.id} title={s.title} current={current} health={state?.health} />
          ))}
        </ul>
        <ul class="places nav-bottom">
          <NavItem id="identity" title="Your identity" current={current} />
        </ul>
      </nav>
      <main id="main" class="content" tabIndex={-1}>
        {notice !== undefined && (
          <p class="notice" role="alert">
            {notice}
          </p>
        )}
        <h1 ref={heading} tabIndex={-1}>
          {screen.title}
        </h1>
        {state === undefined ? <p class="muted">Waiting for the node…</p> : <Current state={state} />}
      </main>
    </div>
  )
}

const HEALTH_WORD: Record<Health['verdict'], string> = {
  fine: 'fine',
  attention: 'needs attention',
  trouble: 'trouble',
}

function NavItem(props: { id: ScreenId; title: string; current: ScreenId; health?: Health }) {
  const here = props.id === props.current
  return (
    <li>
      <a href={hrefOf(props.id)} class="nav-link place" aria-current={here ? 'page' : undefined}>
        <span>{props.title}</span>
        {props.id === 'health' && props.health !== undefined && (
          <span class={`dot dot-${props.health.verdict}`} title={HEALTH_WORD[props.health.verdict]}>
            <span class="visually-hidden">: {HEALTH_WORD[props.health.verdict]}</span>
          </span>
        )}
      </a>
    </li>
  )
}
