/**
 * A node's data directory is private to the user who runs the node, whatever the umask:
 * the directory and every directory in it 0700, every file 0600. `init` makes it so and
 * `start` checks it before the node reads a key: whatever group or others may reach is made
 * private (their access bits removed) and said so in one line; what belongs to another user
 * is refused, since a key or a token in a file someone else owns is not ours to trust.
 * Symbolic links inside are left as they are and not followed. Not on Windows (no modes).
 */
import type { Stats } from 'node:fs'
import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { NodeStateError } from './errors.ts'

/** Where a data directory's warnings go: one line each. */
export type Warn = (line: string) => void

/** stderr, where the CLI's diagnostics go */
export const warnOnStderr: Warn = line => process.stderr.write(`warning: ${line}\n`)

const GROUP_OTHER = 0o077

/** Create the data directory if it does not exist, then make it and everything in it private. */
export async function createDataDir(dir: string, warn: Warn = warnOnStderr): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await keepDataDirPrivate(dir, warn)
}

/**
 * Make `dir` and everything in it private to this process's user: remove group and other
 * access where there is any, and say so in one line. Throws NodeStateError, changing nothing,
 * when anything in it belongs to another user; and when a mode cannot be changed.
 */
export async function keepDataDirPrivate(dir: string, warn: Warn = warnOnStderr): Promise<void> {
  if (process.platform === 'win32' || process.geteuid === undefined) return
  const uid = process.geteuid()
  const loose: { path: string; mode: number }[] = []
  const foreign: { path: string; uid: number }[] = []
  const visit = async (path: string, st: Stats): Promise<void> => {
    if (st.isSymbolicLink()) return
    if (st.uid !== uid) {
      foreign.push({ path, uid: st.uid })
      return
    }
    if ((st.mode & GROUP_OTHER) !== 0) loose.push({ path, mode: st.mode })
    if (!st.isDirectory()) return
    for (const name of await readdir(path)) {
      const child = join(path, name)
      const cst = await lstat(child).catch(gone)
      if (cst !== undefined) await visit(child, cst)
    }
  }
  // the directory itself may be a link (~/.edgeward -> a disk of its own): its target is the directory
  await visit(dir, await stat(dir))
  if (foreign.length > 0) {
    const f = foreign[0]
    const more = foreign.length > 1 ? ` (and ${foreign.length - 1} more)` : ''
    throw new NodeStateError(
      `${f.path}${more} belongs to another user (uid ${f.uid}, not ${uid}): a data directory must be private to the user who runs the node; give it to that user (chown -R) or use another --data`,
    )
  }
  for (const { path, mode } of loose) {
    try {
      await chmod(path, mode & 0o700)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw new NodeStateError(`cannot make ${path} private to its user: ${(err as Error).message}`)
    }
  }
  if (loose.length > 0)
    warn(
      `other users had access to ${dir}: made private (directories 0700, files 0600): ${summary(loose.map(l => relative(dir, l.path)))}`,
    )
}

/** What was fixed, by entry of the data directory: `., api-token, db (7 paths)`. */
function summary(paths: string[]): string {
  const byEntry = new Map<string, number>()
  for (const p of paths) {
    const entry = p === '' ? '.' : p.split(sep)[0]
    byEntry.set(entry, (byEntry.get(entry) ?? 0) + 1)
  }
  return [...byEntry].map(([entry, n]) => (n === 1 ? entry : `${entry} (${n} paths)`)).join(', ')
}

/** A path that went away between readdir and lstat (a running LevelDB's compaction) is not there to fix. */
function gone(err: NodeJS.ErrnoException): undefined {
  if (err.code === 'ENOENT') return undefined
  throw err
}
