/** Durations and times as the CLI takes them: `48h`, `30m`, `1h30m`, `2d`, `90s`; ISO 8601 times. */
import { UsageError } from '../errors.ts'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

export function parseDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)]
  if (parts.length === 0 || parts.map(p => p[0]).join('') !== text) {
    throw new UsageError(`bad duration ${JSON.stringify(text)}: use e.g. 48h, 30m, 1h30m, 2d`)
  }
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]], 0)
  if (ms <= 0 || !Number.isSafeInteger(ms))
    throw new UsageError(`bad duration ${JSON.stringify(text)}: must be positive`)
  return ms
}

export function parseTime(text: string): number {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(text)) {
    throw new UsageError(`bad time ${JSON.stringify(text)}: use ISO 8601, e.g. 2026-12-01T12:00:00Z`)
  }
  const ms = Date.parse(text)
  if (Number.isNaN(ms)) throw new UsageError(`bad time ${JSON.stringify(text)}`)
  return ms
}

/** A time given on the command line: ms since the epoch, or ISO 8601. */
export function parseTimeArg(text: string, flag: string): number {
  if (/^\d+$/.test(text)) return Number(text)
  try {
    return parseTime(text)
  } catch {
    throw new UsageError(`${flag} must be ms since the epoch or an ISO 8601 time, got ${text}`)
  }
}
