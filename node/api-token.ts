/** The local API's bearer token: `DIR/api-token`, 32 random bytes in hex, mode 0600. */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const TOKEN_FILE = 'api-token'

export async function ensureApiToken(dataDir: string): Promise<string> {
  const path = join(dataDir, TOKEN_FILE)
  if (existsSync(path)) return (await readFile(path, 'utf8')).trim()
  const token = randomBytes(32).toString('hex')
  await writeFile(path, `${token}\n`, { mode: 0o600 })
  return token
}

export async function readApiToken(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
}
