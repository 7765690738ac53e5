/**
 * `npm run bench [-- --quick] [-- --only NAME] [-- --json]`: runs every suite, prints a table
 * (or, with --json, the figures as JSON), writes bench/results.json and bench/RESULTS.md (the
 * README links to the latter). --quick runs each benchmark once on small sizes to check that
 * it still works, and writes nothing (the test suite runs it).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type Figure, machine, round, type Suite } from './harness.ts'

const SUITES: Record<string, () => Promise<{ default: Suite }>> = {
  data: () => import('./data.bench.ts'),
  audit: () => import('./audit.bench.ts'),
  objects: () => import('./objects.bench.ts'),
  mqtt: () => import('./mqtt.bench.ts'),
  policy: () => import('./policy.bench.ts'),
  hostile: () => import('./hostile.bench.ts'),
  sim: () => import('./sim.bench.ts'),
  client: () => import('./client.bench.ts'),
  nat: () => import('./nat.bench.ts'),
  lan: () => import('./lan.bench.ts'),
  custody: () => import('./custody.bench.ts'),
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

if (values.help) {
  process.stdout.write(`usage: npm run bench [-- --quick] [-- --only SUITE]... [-- --json]

Runs the benchmark suites (${Object.keys(SUITES).join(', ')}), prints a table of medians with
baselines measured in the same run, and writes bench/results.json and bench/RESULTS.md (a run
of some suites keeps the other suites' figures).
  --quick      each benchmark once on small sizes: checks that it works; writes no files
  --only NAME  run this suite (repeatable)
  --json       print the figures as JSON instead of the table
Progress goes to stderr.
`)
  process.exit(0)
}

// a library's background failure (a dial nobody waits for) must not end a benchmark run; it is reported
let backgroundFailures = 0
process.on('unhandledRejection', err => {
  backgroundFailures++
  process.stderr.write(`[bench] unhandled background failure: ${(err as Error)?.message ?? String(err)}\n`)
})

process.on('uncaughtException', err => {
  if (!['NoValidAddressesError', 'DialError', 'AbortError', 'TimeoutError'].includes(err.name)) throw err
  backgroundFailures++
  process.stderr.write(`[bench] background dial failure: ${err.message}\n`)
})

const selected = values.only ?? Object.keys(SUITES)
const results: (Figure & { suite: string })[] = []
const started = Date.now()
for (const name of selected) {
  const load = SUITES[name]
  if (load === undefined) {
    process.stderr.write(`unknown suite ${name}; suites: ${Object.keys(SUITES).join(', ')}\n`)
    process.exit(2)
  }
  process.stderr.write(`[bench] ${name}${values.quick ? ' (quick)' : ''} ...\n`)
  const t0 = performance.now()
  let figures: Figure[]
  try {
    figures = await (await load()).default({ quick: values.quick })
  } catch (err) {
    // a suite's own failure ends the run with an error, whatever its name (the handler below
    // forgives dial errors of background work, and a rejected top-level await reaches it too)
    process.stderr.write(`[bench] ${name} failed: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(1)
  }
  process.stderr.write(`[bench] ${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  for (const f of figures) results.push({ suite: name, ...f })
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3))
const tableOf = (rs: (Figure & { suite: string })[]) => {
  const rows = rs.map(r => [
    r.suite,
    r.name,
    `${fmt(r.median)} ${r.unit}`,
    `${fmt(r.min)} – ${fmt(r.max)}`,
    r.baseline ? `${fmt(r.baseline.median)} ${r.unit} (${r.baseline.name})` : '',
    r.ratio !== undefined ? `${r.ratio}x` : '',
  ])
  const header = ['suite', 'figure', 'median', 'min – max', 'baseline (same run)', 'ratio']
  return [header, header.map(() => '---'), ...rows].map(r => `| ${r.join(' | ')} |`).join('\n')
}
const notesOf = (rs: Figure[]) =>
  rs
    .filter(r => r.note)
    .map(r => `- ${r.name}: ${r.note}`)
    .join('\n')
if (values.json)
  process.stdout.write(`${JSON.stringify({ quick: values.quick, machine: machine(), results }, null, 2)}\n`)
else process.stdout.write(`${tableOf(results)}\n${notesOf(results)}\n`)
if (backgroundFailures > 0) process.stderr.write(`[bench] ${backgroundFailures} background failures during the run\n`)

if (!values.quick) {
  // a run of some suites replaces their figures and keeps the other suites' figures
  const path = join(import.meta.dirname, 'results.json')
  let kept: (Figure & { suite: string })[] = []
  try {
    const previous = JSON.parse(await readFile(path, 'utf8')) as { results: (Figure & { suite: string })[] }
    kept = previous.results.filter(r => !selected.includes(r.suite))
  } catch {
    // no previous results
  }
  const all = [...kept, ...results].sort(
    (a, b) => Object.keys(SUITES).indexOf(a.suite) - Object.keys(SUITES).indexOf(b.suite),
  )
  const m = machine()
  const doc = { generated: new Date(started).toISOString(), machine: m, results: all }
  await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`)
  const md = `# Benchmark results\n\nMeasured on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, by \`npm run bench\` (last run ${doc.generated}; suites run at different times keep their own figures).\nMedians over the runs shown; ratios are medians against a baseline measured in the same run.\n\n${tableOf(all)}\n\n${notesOf(all)}\n`
  await writeFile(join(import.meta.dirname, 'RESULTS.md'), md)
  process.stderr.write(
    `[bench] wrote bench/results.json and bench/RESULTS.md (${round((Date.now() - started) / 1000, 1)} s)\n`,
  )
}
