/**
 * A person as the screens show them: the name this person gave them (or "you"), else a short
 * form of their did:key; the whole did in the tooltip, for whoever needs it.
 */
import type { ClientState } from '../../ui/contract.ts'

/** `did:key:z6Mk…abcd`: enough to tell people apart at a glance. */
export const shortDid = (did: string): string => (did.length > 24 ? `${did.slice(0, 14)}…${did.slice(-4)}` : did)

/** The name to show for `did`: "you", a name given, or the short did. */
export function personName(did: string, state: Pick<ClientState, 'people' | 'identity'>): string {
  if (did === state.identity.did) return 'you'
  return state.people[did] ?? shortDid(did)
}

export function Person({ did, state }: { did: string; state: Pick<ClientState, 'people' | 'identity'> }) {
  const named = did !== state.identity.did && state.people[did] !== undefined
  return (
    <span class={named ? 'person' : 'person person-unnamed'} title={did}>
      {personName(did, state)}
    </span>
  )
}
