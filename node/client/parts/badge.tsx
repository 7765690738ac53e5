/** A badge in a row or a table, and what the states of a grant are called and look like in one. */
import type { GrantStatusView } from '../../ui/contract-access.ts'

/** A badge's words and its tone (a class of styles.css: fine, wants attention, wrong, neither). */
export interface BadgeProps {
  label: string
  tone: 'ok' | 'attention' | 'trouble' | 'neutral'
}

/** What each state of a grant is called, and its tone; a screen may word one more shortly. */
export const GRANT_STATUS: Record<GrantStatusView, BadgeProps> = {
  active: { label: 'Active', tone: 'ok' },
  pending: { label: 'Not yet valid', tone: 'attention' },
  expired: { label: 'Expired', tone: 'neutral' },
  revoked: { label: 'Revoked', tone: 'trouble' },
  'not-honoured': { label: 'Powerless', tone: 'attention' },
}

/** A compact badge, for a row or a table. */
export function Badge({ label, tone }: BadgeProps) {
  return <span class={`badge badge-compact badge-${tone}`}>{label}</span>
}
