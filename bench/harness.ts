/**
 * The benchmark harness: each suite returns figures (median, min, max over repeated runs)
 * and, where it has one, a baseline measured in the same run, so ratios compare like with
 * like on a noisy machine. `npm run bench` writes bench/results.json and bench/RESULTS.md.
 */
import os from 'node:os'

export interface Figure {
  name: string
  unit: string
  median: number
  min: number
  max: number
  runs: number
  /** the same measurement without the thing under test, in this run */
  baseline?: { name: string; median: number; min: number; max: number }
  /** median / baseline median */
  ratio?: number
  note?: string
}

export interface SuiteOptions {
  /** small sizes and one run each: checks that the benchmark still works */
  quick: boolean
}

export type Suite = (opts: SuiteOptions) => Promise<Figure[]>

export function summarize(samples: number[]): { median: number; min: number; max: number } {
  const s = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
  return { median, min: s[0], max: s[s.length - 1] }
}

export function figure(name: string, unit: string, samples: number[], extra: Partial<Figure> = {}): Figure {
  return { name, unit, ...summarize(samples), runs: samples.length, ...extra }
}

/** A figure with a baseline from the same run, and the ratio of the medians. */
export function versus(
  name: string,
  unit: string,
  samples: number[],
  baselineName: string,
  baseline: number[],
): Figure {
  const b = summarize(baseline)
  const f = figure(name, unit, samples)
  return { ...f, baseline: { name: baselineName, ...b }, ratio: round(f.median / b.median, 3) }
}

/** Percentile of samples (0..100), nearest rank. */
export function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

export function machine(): Record<string, string | number> {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  }
}
