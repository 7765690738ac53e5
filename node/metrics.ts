/**
 * Counters operators care about (key releases, refusals by reason, invalid messages by
 * peer, ...), and gauges for what is true now (logs whose heads cannot be checked), kept per
 * node and exposed in Prometheus text format by the local API.
 */
export class Metrics {
  private readonly counters = new Map<string, Map<string, number>>()
  private readonly gauges = new Map<string, Map<string, number>>()
  private readonly help = new Map<string, string>()

  describe(name: string, help: string): void {
    this.help.set(name, help)
  }

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const series = seriesOf(this.counters, name)
    const key = labelKey(labels)
    series.set(key, (series.get(key) ?? 0) + by)
  }

  /** Set a gauge: a value that goes up and down. */
  set(name: string, labels: Record<string, string>, value: number): void {
    seriesOf(this.gauges, name).set(labelKey(labels), value)
  }

  /** Sum of a counter (or gauge) over all its labels, or over those whose label string contains `match`. */
  total(name: string, match?: string): number {
    let sum = 0
    for (const [k, v] of this.counters.get(name) ?? this.gauges.get(name) ?? [])
      if (match === undefined || k.includes(match)) sum += v
    return sum
  }

  snapshot(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {}
    for (const [name, series] of this.counters) out[name] = Object.fromEntries(series)
    return out
  }

  prometheus(): string {
    const lines: string[] = []
    for (const [type, metrics] of [
      ['counter', this.counters],
      ['gauge', this.gauges],
    ] as const) {
      for (const [name, series] of metrics) {
        const help = this.help.get(name)
        if (help !== undefined) lines.push(`# HELP ${name} ${help}`)
        lines.push(`# TYPE ${name} ${type}`)
        for (const [labels, v] of series) lines.push(labels === '' ? `${name} ${v}` : `${name}{${labels}} ${v}`)
      }
    }
    return `${lines.join('\n')}\n`
  }
}

function seriesOf(metrics: Map<string, Map<string, number>>, name: string): Map<string, number> {
  let series = metrics.get(name)
  if (series === undefined) {
    series = new Map()
    metrics.set(name, series)
  }
  return series
}

function labelKey(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',')
}
