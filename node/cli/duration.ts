/** Durations and times as the CLI takes them: `48h`, `30m`, `1h30m`, `2d`, `90s`; ISO 8601 times. */
import { MAX_TIME_MS } from '../../protocols/validate.ts'
import { UsageError } from '../errors.ts'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** A duration such as `48h` or `1h30m`, in ms; UsageError otherwise. */
export function parseDuration(text: string): number {
  if (/^-\d/.test(text)) throw new UsageError(`bad duration ${JSON.stringify(text)}: must be positive`)
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)]
  if (parts.length === 0 || parts.map(p => p[0]).join('') !== text) {
    throw new UsageError(`bad duration ${JSON.stringify(text)}: use e.g. 48h, 30m, 1h30m, 2d`)
  }
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]], 0)
  if (ms <= 0) throw new UsageError(`bad duration ${JSON.stringify(text)}: must be positive`)
  // a record's times end with year 9999 (MAX_TIME_MS): no duration from now is longer
  if (ms > MAX_TIME_MS) throw new UsageError(`bad duration ${JSON.stringify(text)}: too long`)
  return ms
}

/** An ISO 8601 date or time, in ms since the epoch; UsageError otherwise. */
export function parseTime(text: string): number {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(text)) {
    throw new UsageError(`bad time ${JSON.stringify(text)}: use ISO 8601, e.g. 2026-12-01T12:00:00Z`)
  }
  const ms = Date.parse(text)
  if (Number.isNaN(ms) || ms < 0) throw new UsageError(`bad time ${JSON.stringify(text)}: from 1970 on`)
  return ms
}

/**
 * A time given on the command line: ms since the epoch, or ISO 8601; from 1970 to the end of
 * year 9999, the times a signed record may carry (see MAX_TIME_MS).
 */
export function parseTimeArg(text: string, flag: string): number {
  let ms: number
  if (/^\d+$/.test(text)) ms = Number(text)
  else {
    try {
      ms = parseTime(text)
    } catch {
      throw new UsageError(`${flag} must be ms since the epoch or an ISO 8601 time, got ${text}`)
    }
  }
  if (!Number.isSafeInteger(ms) || ms > MAX_TIME_MS) {
    throw new UsageError(`${flag} must be a time from 1970 to the end of year 9999, got ${text}`)
  }
  return ms
}
