import type { ClientState } from '../../ui/contract.ts'

/** What every screen gets from the shell: the node's state as `/ui/events` last pushed it. */
export interface ScreenProps {
  state: ClientState
}
