/**
 * The desktop client's bundle (node/client/ → app.js, app.css and the chunks that screens load
 * only when they are opened, such as the PDF viewer), built by the node
 * with esbuild when it serves the client and the bundle is missing or older than its sources,
 * so that `npm ci && npm start` needs no build step. Kept in node_modules/.cache/edgeward-client/
 * (not committed); written through a temporary file and a rename, so that several nodes of
 * one checkout starting at once never read half a file, and listed last in `manifest.json`:
 * what it does not list is never served. pdf.js's worker is served as it ships.
 */
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { logger } from '@libp2p/logger'

const log = logger('edgeward:ui')
const ROOT = join(import.meta.dirname, '..', '..')
/** The client's sources. */
export const CLIENT_DIR = join(ROOT, 'node', 'client')
/** Where the built bundle is kept. */
export const BUNDLE_DIR = join(ROOT, 'node_modules', '.cache', 'edgeward-client')
const ENTRY = join(CLIENT_DIR, 'main.tsx')
const MANIFEST = join(BUNDLE_DIR, 'manifest.json')
/** pdf.js's worker, served as /ui/pdf.worker.js */
const PDF_WORKER = join(ROOT, 'node_modules', 'pdfjs-dist', 'build', 'pdf.worker.min.mjs')

/** Files outside node/client/ that the bundle includes (the contracts in node/ui/, the libraries' versions). */
async function sharedSources(): Promise<string[]> {
  const ui = join(ROOT, 'node', 'ui')
  const contracts = (await readdir(ui)).filter(f => /^contract(-[a-z]+)?\.ts$/.test(f)).map(f => join(ui, f))
  return [...contracts, join(ROOT, 'node_modules', 'preact', 'package.json'), join(ROOT, 'package-lock.json')]
}

/** The client's files by the name they are served under (`/ui/NAME`), with their content types. */
export type BundleFiles = Map<string, { body: Buffer; type: string }>

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
}
const typeOf = (name: string): string => TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream'

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
}

/** The newest modification time among the bundle's sources. */
async function sourcesMtime(): Promise<number> {
  const files = [...(await filesUnder(CLIENT_DIR)), ...(await sharedSources())].filter(existsSync)
  const times = await Promise.all(files.map(async f => (await stat(f)).mtimeMs))
  return Math.max(...times)
}

/** Build app.js and app.css with esbuild into BUNDLE_DIR. */
export async function buildBundle(): Promise<void> {
  const t0 = performance.now()
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    entryPoints: { app: ENTRY },
    bundle: true,
    write: false,
    outdir: BUNDLE_DIR,
    format: 'esm',
    splitting: true,
    chunkNames: 'chunk-[hash]',
    target: ['chrome111', 'firefox115', 'safari16'],
    minify: true,
    legalComments: 'none',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(CLIENT_DIR, 'tsconfig.json'),
    logLevel: 'silent',
  })
  await mkdir(BUNDLE_DIR, { recursive: true })
  for (const f of result.outputFiles) await writeAtomically(f.path, f.contents)
  // last: a reader that finds the manifest finds every file it names
  await writeAtomically(MANIFEST, JSON.stringify(result.outputFiles.map(f => basename(f.path))))
  log('built %s in %d ms', result.outputFiles.map(f => basename(f.path)).join(', '), Math.round(performance.now() - t0))
}

async function writeAtomically(path: string, contents: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, contents)
  await rename(tmp, path)
}

/** The bundle as the node serves it: rebuilt when a source changed, else read once and kept. */
export class ClientBundle {
  private cached: { files: BundleFiles; mtime: number } | undefined
  private pending: Promise<BundleFiles> | undefined

  /** The current bundle, building it first if it is missing or older than its sources. */
  files(): Promise<BundleFiles> {
    this.pending ??= this.load().finally(() => {
      this.pending = undefined
    })
    return this.pending
  }

  private async load(): Promise<BundleFiles> {
    const mtime = await sourcesMtime()
    if (this.cached !== undefined && this.cached.mtime >= mtime) return this.cached.files
    const fresh = existsSync(MANIFEST) && (await stat(MANIFEST)).mtimeMs >= mtime
    if (!fresh) await buildBundle()
    const names = JSON.parse(await readFile(MANIFEST, 'utf8')) as string[]
    const files: BundleFiles = new Map()
    for (const name of names) files.set(name, { body: await readFile(join(BUNDLE_DIR, name)), type: typeOf(name) })
    files.set('icon.svg', { body: await readFile(join(CLIENT_DIR, 'icon.svg')), type: typeOf('icon.svg') })
    files.set('pdf.worker.js', { body: await readFile(PDF_WORKER), type: typeOf('pdf.worker.js') })
    this.cached = { files, mtime }
    return files
  }
}
