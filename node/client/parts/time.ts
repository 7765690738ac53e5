/**
 * Times as every screen says them: a span counted down ("1 h 58 min", "4 min 05 s"), a moment
 * ("14:05" today, "3 Dec, 14:05" this year), the durations one grants for, and the clock that
 * moves the countdowns while the page is visible.
 */
import { useEffect, useState } from 'preact/hooks'

export const MINUTE = 60_000
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR

/** The durations offered for access (granting, approving, asking), shortest first. */
export const ACCESS_DURATIONS: { ms: number; label: string }[] = [
  { ms: HOUR, label: '1 hour' },
  { ms: 8 * HOUR, label: '8 hours' },
  { ms: 48 * HOUR, label: '48 hours' },
  { ms: 7 * DAY, label: '7 days' },
]

/** "2 d 6 h", "1 h 58 min", "12 min", "4 min 05 s", "45 s": a span as a person reads a countdown. */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  const d = Math.floor(s / 86_400)
  const h = Math.floor((s % 86_400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`
  if (m >= 10) return `${m} min`
  if (m > 0) return `${m} min ${String(sec).padStart(2, '0')} s`
  return `${sec} s`
}

/** "14:05" today, "3 Dec, 14:05" this year, else with the year. */
export function formatWhen(t: number): string {
  const d = new Date(t)
  const today = new Date()
  if (d.toDateString() === today.toDateString())
    return d.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' })
  const sameYear = d.getFullYear() === today.getFullYear()
  return d.toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    ...(sameYear ? {} : { year: 'numeric' }),
    hour: 'numeric',
    minute: '2-digit',
  })
}

/**
 * The clock, ticking every second while the page is visible (a hidden page stops rendering).
 * `skew`: how far the node's clock is ahead of the page's, where the screen knows it.
 */
export function useNow(skew?: { current: number }): number {
  const read = () => Date.now() + (skew?.current ?? 0)
  const [now, setNow] = useState(read)
  useEffect(() => {
    const timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') setNow(read())
    }, 1000)
    return () => window.clearInterval(timer)
  }, [])
  return now
}
