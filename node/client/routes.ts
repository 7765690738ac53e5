/**
 * The client's screens, in the order the navigation lists them, and the hash route of each
 * (`#/health`). Screens that are not built yet say what they will hold and what the command
 * line offers until then.
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
  /** built: has a screen of its own; otherwise what it will hold */
  built: boolean
  /** for a screen not built yet: what it will be for */
  purpose?: string
  /** for a screen not built yet: the commands that do it today */
  meanwhile?: string[]
}

export const SCREENS: Screen[] = [
  {
    id: 'inbox',
    title: 'Inbox',
    built: true,
    purpose: 'Everything shared with you across spaces (files, messages, streams), with who sent it and until when.',
    meanwhile: [],
  },
  {
    id: 'spaces',
    title: 'Spaces',
    built: true,
    purpose: 'The spaces you own or joined, and invitations to join one.',
    meanwhile: ['edgeward status', 'edgeward space create NAME', 'edgeward space join SPACE_ID'],
  },
  {
    id: 'files',
    title: 'Files',
    built: true,
    purpose: 'Share a file with one or several people, for a time, to download or to view only.',
    meanwhile: ['edgeward share SPACE FILE --to DID', 'edgeward open SPACE OBJECT'],
  },
  {
    id: 'messages',
    title: 'Messages',
    built: true,
    purpose: 'A conversation per space, with messages that expire or can be revoked.',
    meanwhile: ['edgeward message SPACE --to DID TEXT', 'edgeward open SPACE OBJECT'],
  },
  {
    id: 'streams',
    title: 'Streams',
    built: true,
    purpose: 'Live charts of the readings you may decrypt, per form.',
    meanwhile: ['edgeward read SPACE STREAM --follow'],
  },
  {
    id: 'access',
    title: 'Access',
    built: true,
    purpose: 'Who holds access to what, until when; requests to approve or deny; revoking.',
    meanwhile: ['edgeward grants SPACE', 'edgeward requests SPACE', 'edgeward revoke SPACE --grant ID'],
  },
  {
    id: 'audit',
    title: 'Audit',
    built: true,
    purpose: 'For each person and item, when a key was held, as a timeline; reports to export and verify.',
    meanwhile: ['edgeward audit report SPACE --out FILE', 'edgeward audit verify FILE'],
  },
  { id: 'health', title: 'Health', built: true },
  { id: 'identity', title: 'Your identity', built: true },
]

/** The screen shown when the address names none. */
export const HOME: ScreenId = 'identity'

export function screenFromHash(hash: string): ScreenId {
  const id = /^#\/([a-z]+)$/.exec(hash)?.[1]
  return SCREENS.some(s => s.id === id) ? (id as ScreenId) : HOME
}

export const hrefOf = (id: ScreenId): string => `#/${id}`
