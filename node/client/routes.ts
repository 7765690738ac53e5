/**
 * The client's screens, in the order the navigation lists them, and the hash route of each
 * (`#/health`).
 */

export type ScreenId =
  | 'identity'
  | 'inbox'
  | 'spaces'
  | 'files'
  | 'messages'
  | 'streams'
  | 'access'
  | 'audit'
  | 'health'

export interface Screen {
  id: ScreenId
  title: string
}

export const SCREENS: Screen[] = [
  { id: 'inbox', title: 'Inbox' },
  { id: 'spaces', title: 'Spaces' },
  { id: 'files', title: 'Files' },
  { id: 'messages', title: 'Messages' },
  { id: 'streams', title: 'Streams' },
  { id: 'access', title: 'Access' },
  { id: 'audit', title: 'Audit' },
  { id: 'health', title: 'Health' },
  { id: 'identity', title: 'Your identity' },
]

/** The screen shown when the address names none. */
export const HOME: ScreenId = 'identity'

export function screenFromHash(hash: string): ScreenId {
  const id = /^#\/([a-z]+)$/.exec(hash)?.[1]
  return SCREENS.some(s => s.id === id) ? (id as ScreenId) : HOME
}

export const hrefOf = (id: ScreenId): string => `#/${id}`
