/**
 * A person as the screens show them: the name this person gave them (Your identity), "you",
 * else a short form of their did:key; the whole did in the tooltip, for whoever needs it, and
 * one click from the clipboard where the screen offers it.
 */
import type { ClientState } from '../../ui/contract.ts'
import { CopyButton } from './copyable.tsx'

/** Who is who: the names given (`people`) and oneself (`identity`), from the node's state. */
export type People = Pick<ClientState, 'people' | 'identity'>

/** `did:key:z6Mk…abcd`: enough to tell people apart at a glance. */
export function shortDid(did: string): string {
  const key = did.startsWith('did:key:') ? did.slice(8) : did
  return key.length <= 12 ? did : `did:key:${key.slice(0, 4)}…${key.slice(-4)}`
}

/** The name to show for `did`: "you", a name given, or the short did. */
export function personName(did: string, state: People): string {
  if (did === state.identity.did) return 'you'
  return state.people[did] ?? shortDid(did)
}

/**
 * A person by name; `copy` adds a button that copies the whole did; `class` is the screen's
 * own class for the name.
 */
export function Person({
  did,
  state,
  copy,
  class: own,
}: {
  did: string
  state: People
  copy?: boolean
  class?: string
}) {
  const byDid = did !== state.identity.did && state.people[did] === undefined
  const name = personName(did, state)
  const shown = (
    <span class={['person', byDid ? 'person-did' : '', own ?? ''].filter(c => c !== '').join(' ')} title={did}>
      {name}
    </span>
  )
  if (copy !== true) return shown
  return (
    <span class="person-copyable">
      {shown}
      <CopyButton value={did} label={`the full id of ${name}`} />
    </span>
  )
}
