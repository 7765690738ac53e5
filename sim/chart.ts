/**
 * Line charts as inline SVG strings, for the simulator's self-contained HTML reports: no
 * library, no network, nothing to load.
 */

export interface Series {
  name: string
  color: string
  points: [number, number][]
  /** draw as a step function (an empirical CDF), rather than straight segments */
  step?: boolean
}

export interface Marker {
  x: number
  label: string
  color: string
}

export interface LineChart {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  markers?: Marker[]
  /** where the legend sits inside the plot (default top-right; bottom-right suits a CDF) */
  legend?: 'top-right' | 'bottom-right'
  /** fixed y range top (1 for a CDF); default from the data */
  yMax?: number
  width?: number
  height?: number
}

/** Text made safe to put in SVG or HTML. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** Round numbers for axis ticks: 0..max in about `count` steps of 1, 2 or 5 × 10^k. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1]
  const raw = max / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw)!
  const ticks: number[] = []
  for (let t = 0; t < max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)))
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)))
  return ticks
}

const fmt = (n: number) =>
  Math.abs(n) >= 1000 ? `${Number((n / 1000).toPrecision(3))}k` : String(Number(n.toPrecision(3)))

/** A self-contained SVG line chart of the given series. */
export function lineChart(c: LineChart): string {
  const width = c.width ?? 720
  const height = c.height ?? 360
  const m = { left: 64, right: 20, top: 40, bottom: 52 }
  const all = c.series.flatMap(s => s.points)
  const xTicks = niceTicks(Math.max(1, ...all.map(p => p[0]), ...(c.markers ?? []).map(k => k.x)))
  const yTicks = c.yMax === 1 ? [0, 0.25, 0.5, 0.75, 1] : niceTicks(c.yMax ?? Math.max(1, ...all.map(p => p[1])))
  const xMax = xTicks[xTicks.length - 1]
  const yMax = yTicks[yTicks.length - 1]
  const w = width - m.left - m.right
  const h = height - m.top - m.bottom
  const X = (x: number) => (m.left + (x / xMax) * w).toFixed(1)
  const Y = (y: number) => (m.top + h - (y / yMax) * h).toFixed(1)
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(c.title)}" font-family="system-ui, sans-serif" font-size="12">`,
  )
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`)
  out.push(`<text x="${m.left}" y="22" font-size="14" font-weight="600">${escapeXml(c.title)}</text>`)
  for (const t of yTicks) {
    out.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${m.left - 6}" y="${Y(t)}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`)
  }
  for (const t of xTicks) {
    out.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${m.top}" y2="${m.top + h}" stroke="#f0f0f0"/>`)
    out.push(`<text x="${X(t)}" y="${m.top + h + 16}" text-anchor="middle">${fmt(t)}</text>`)
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`)
  out.push(`<text x="${m.left + w / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(c.xLabel)}</text>`)
  out.push(
    `<text transform="translate(16 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">${escapeXml(c.yLabel)}</text>`,
  )
  for (const k of c.markers ?? []) {
    out.push(
      `<line x1="${X(k.x)}" x2="${X(k.x)}" y1="${m.top}" y2="${m.top + h}" stroke="${k.color}" stroke-dasharray="4 3"/>`,
    )
    out.push(`<text x="${Number(X(k.x)) + 4}" y="${m.top + 14}" fill="${k.color}">${escapeXml(k.label)}</text>`)
  }
  for (const s of c.series) {
    if (s.points.length === 0) continue
    const d = s.step
      ? stepPath(s.points, X, Y)
      : s.points.map((p, i) => `${i ? 'L' : 'M'}${X(p[0])},${Y(p[1])}`).join('')
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`)
  }
  c.series.forEach((s, i) => {
    const y = c.legend === 'bottom-right' ? m.top + h - 12 - (c.series.length - 1 - i) * 18 : m.top + 12 + i * 18
    const x = m.left + w - 200
    out.push(`<line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="3"/>`)
    out.push(`<text x="${x + 28}" y="${y}" dominant-baseline="middle">${escapeXml(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n')
}

/** An empirical CDF: flat at 0 until the first point, then up at each point and along to the next. */
function stepPath(points: [number, number][], X: (x: number) => string, Y: (y: number) => string): string {
  let d = `M${X(0)},${Y(0)}H${X(points[0][0])}`
  for (let i = 0; i < points.length; i++) {
    d += `V${Y(points[i][1])}`
    if (i + 1 < points.length) d += `H${X(points[i + 1][0])}`
  }
  return d
}

export interface BarChart {
  title: string
  /** one group of bars per category, drawn top to bottom */
  categories: string[]
  /** one bar per series in each group; values[i] belongs to categories[i] */
  series: { name: string; color: string; values: number[] }[]
  xLabel: string
  /** a logarithmic axis (counts of 1 and of 1000 side by side), 0 drawn at the axis */
  log?: boolean
  width?: number
}

/** Horizontal grouped bars (counts per category), with each bar's value at its end. */
export function barChart(c: BarChart): string {
  const width = c.width ?? 720
  const barH = 12
  const groupH = c.series.length * barH + 12
  const m = { left: 210, right: 50, top: 40 + c.series.length * 18, bottom: 44 }
  const h = c.categories.length * groupH
  const height = m.top + h + m.bottom
  const w = width - m.left - m.right
  const max = Math.max(1, ...c.series.flatMap(s => s.values))
  const ticks = c.log ? Array.from({ length: Math.ceil(Math.log10(max)) + 1 }, (_, k) => 10 ** k) : niceTicks(max)
  const xMax = ticks[ticks.length - 1]
  // on a log axis 1 sits a little right of the axis, so that a count of 1 still shows
  const scale = (x: number) => (c.log ? (x <= 0 ? 0 : (Math.log10(x) + 0.3) / (Math.log10(xMax) + 0.3)) : x / xMax)
  const X = (x: number) => (m.left + scale(x) * w).toFixed(1)
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeXml(c.title)}" font-family="system-ui, sans-serif" font-size="12">`,
  )
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`)
  out.push(`<text x="${m.left}" y="22" font-size="14" font-weight="600">${escapeXml(c.title)}</text>`)
  c.series.forEach((s, i) => {
    const y = 40 + i * 18
    out.push(`<rect x="${m.left}" y="${y - 5}" width="22" height="10" fill="${s.color}"/>`)
    out.push(`<text x="${m.left + 28}" y="${y}" dominant-baseline="middle">${escapeXml(s.name)}</text>`)
  })
  for (const t of ticks) {
    out.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${m.top}" y2="${m.top + h}" stroke="#eee"/>`)
    out.push(`<text x="${X(t)}" y="${m.top + h + 16}" text-anchor="middle">${fmt(t)}</text>`)
  }
  c.categories.forEach((cat, g) => {
    const y0 = m.top + g * groupH + 6
    out.push(
      `<text x="${m.left - 8}" y="${y0 + (c.series.length * barH) / 2}" text-anchor="end" dominant-baseline="middle">${escapeXml(cat)}</text>`,
    )
    c.series.forEach((s, i) => {
      const v = s.values[g] ?? 0
      const y = y0 + i * barH
      out.push(
        `<rect x="${m.left}" y="${y}" width="${(Number(X(v)) - m.left).toFixed(1)}" height="${barH - 2}" fill="${s.color}"/>`,
      )
      out.push(`<text x="${Number(X(v)) + 4}" y="${y + (barH - 2) / 2}" dominant-baseline="middle">${fmt(v)}</text>`)
    })
  })
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + h}" stroke="#999"/>`)
  out.push(`<text x="${m.left + w / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(c.xLabel)}</text>`)
  out.push('</svg>')
  return out.join('\n')
}
