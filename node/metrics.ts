/**
 * Counters operators care about (key releases, refusals by reason, invalid messages by
 * peer, ...), kept per node and exposed in Prometheus text format by the local API.
 */
export class Metrics {
  private readonly counters = new Map<string, Map<string, number>>()
  private readonly help = new Map<string, string>()

  describe(name: string, help: string): void {
    this.help.set(name, help)
  }

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = Object.entries(labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
      .join(',')
    let series = this.counters.get(name)
    if (series === undefined) {
      series = new Map()
      this.counters.set(name, series)
    }
    series.set(key, (series.get(key) ?? 0) + by)
  }

  /** Sum of a counter over all its labels, or over those whose label string contains `match`. */
  total(name: string, match?: string): number {
    let sum = 0
    for (const [k, v] of this.counters.get(name) ?? []) if (match === undefined || k.includes(match)) sum += v
    return sum
  }

  snapshot(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {}
    for (const [name, series] of this.counters) out[name] = Object.fromEntries(series)
    return out
  }

  prometheus(): string {
    const lines: string[] = []
    for (const [name, series] of this.counters) {
      const help = this.help.get(name)
      if (help !== undefined) lines.push(`# HELP ${name} ${help}`)
      lines.push(`# TYPE ${name} counter`)
      for (const [labels, v] of series) lines.push(labels === '' ? `${name} ${v}` : `${name}{${labels}} ${v}`)
    }
    return `${lines.join('\n')}\n`
  }
}
