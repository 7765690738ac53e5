/** Summaries of per-peer times: percentiles (nearest rank) and an empirical CDF. */

export interface Summary {
  count: number
  /** peers that never got there before the deadline */
  missing: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

/** Percentile (0..100) of samples, nearest rank; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

const round = (n: number) => Math.round(n * 100) / 100

/** Percentiles of the times that were reached (undefined: never reached, counted as missing). */
export function summarize(times: readonly (number | undefined)[]): Summary {
  const got = times.filter((t): t is number => t !== undefined)
  return {
    count: got.length,
    missing: times.length - got.length,
    p50: round(percentile(got, 50)),
    p90: round(percentile(got, 90)),
    p99: round(percentile(got, 99)),
    max: round(got.length === 0 ? Number.NaN : Math.max(...got)),
    mean: round(got.length === 0 ? Number.NaN : got.reduce((a, b) => a + b, 0) / got.length),
  }
}

/**
 * The empirical CDF as [time, fraction of all peers at or below it] steps, one point per
 * sample (peers that never got there keep the curve below 1).
 */
export function cdf(times: readonly (number | undefined)[]): [number, number][] {
  const got = times.filter((t): t is number => t !== undefined).sort((a, b) => a - b)
  return got.map((t, i) => [round(t), (i + 1) / times.length])
}

/** Mean and max of the defined values (hop counts, say). */
export function meanMax(xs: readonly (number | undefined)[]): { mean: number; max: number } {
  const got = xs.filter((x): x is number => x !== undefined)
  if (got.length === 0) return { mean: Number.NaN, max: Number.NaN }
  return { mean: round(got.reduce((a, b) => a + b, 0) / got.length), max: Math.max(...got) }
}
