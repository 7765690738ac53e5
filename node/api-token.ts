/** The local API's bearer token: `DIR/api-token`, 32 random bytes in hex, mode 0600. */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const TOKEN_FILE = 'api-token'

/**
 * The token the node's API asks for: the one in `DIR/api-token`, made 0600 if it was not
 * (`start` has already said so: node/data-dir.ts), or a new one if there is none (or it is empty).
 */
export async function ensureApiToken(dataDir: string): Promise<string> {
  const path = join(dataDir, TOKEN_FILE)
  if (existsSync(path)) {
    const token = (await readFile(path, 'utf8')).trim()
    if (token !== '') {
      if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600)
      return token
    }
  }
  const token = randomBytes(32).toString('hex')
  // 'w' keeps the mode of a file that exists (an empty one): 0600 whatever it was
  await writeFile(path, `${token}\n`, { mode: 0o600 })
  await chmod(path, 0o600)
  return token
}

/** The local API's bearer token, from the data directory. */
export async function readApiToken(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
}
