/**
 * The desktop client's bundle (node/client/ → one app.js and one app.css), built by the node
 * with esbuild when it serves the client and the bundle is missing or older than its sources,
 * so that `npm ci && npm start` needs no build step. Kept in node_modules/.cache/edgeward-client/
 * (not committed); written through a temporary file and a rename, so that several nodes of
 * one checkout starting at once never read half a file.
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
/** Files outside node/client/ that the bundle includes. */
const SHARED = [join(ROOT, 'node', 'ui', 'contract.ts'), join(ROOT, 'node_modules', 'preact', 'package.json')]

export interface BundleFiles {
  js: Buffer
  css: Buffer
  icon: Buffer
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
}

/** The newest modification time among the bundle's sources. */
async function sourcesMtime(): Promise<number> {
  const files = [...(await filesUnder(CLIENT_DIR)), ...SHARED]
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
    target: ['chrome111', 'firefox115', 'safari16'],
    minify: true,
    legalComments: 'none',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(CLIENT_DIR, 'tsconfig.json'),
    logLevel: 'silent',
  })
  await mkdir(BUNDLE_DIR, { recursive: true })
  for (const f of result.outputFiles) {
    const tmp = `${f.path}.${process.pid}.tmp`
    await writeFile(tmp, f.contents)
    await rename(tmp, f.path)
  }
  log('built %s in %d ms', result.outputFiles.map(f => basename(f.path)).join(', '), Math.round(performance.now() - t0))
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
    const js = join(BUNDLE_DIR, 'app.js')
    const css = join(BUNDLE_DIR, 'app.css')
    const fresh =
      existsSync(js) && existsSync(css) && (await stat(js)).mtimeMs >= mtime && (await stat(css)).mtimeMs >= mtime
    if (!fresh) await buildBundle()
    const files = {
      js: await readFile(js),
      css: await readFile(css),
      icon: await readFile(join(CLIENT_DIR, 'icon.svg')),
    }
    this.cached = { files, mtime }
    return files
  }
}
