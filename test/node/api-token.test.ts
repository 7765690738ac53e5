/**
 * The API token file: made 0600 with a fresh token when there is none, whatever the umask;
 * an existing token is kept and its file made 0600 if it was looser; an empty file is not a
 * token (an empty bearer would do), so it gets a fresh one.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ensureApiToken, readApiToken } from '../../node/api-token.ts'

describe('api token file', () => {
  let dir: string
  let umask: number
  const path = () => join(dir, 'api-token')
  const mode = async () => (await stat(path())).mode & 0o777

  before(async () => {
    umask = process.umask(0o000)
    dir = await mkdtemp(join(tmpdir(), 'edgeward-api-token-'))
  })

  after(async () => {
    process.umask(umask)
    await rm(dir, { recursive: true, force: true })
  })

  it('makes a fresh token, 0600, under umask 000', async () => {
    const token = await ensureApiToken(dir)
    assert.match(token, /^[0-9a-f]{64}$/)
    assert.equal(await mode(), 0o600)
    assert.equal(await readApiToken(dir), token)
    assert.equal(await ensureApiToken(dir), token, 'and keeps it')
  })

  it('keeps an existing token and makes its file 0600', async () => {
    await rm(path())
    await writeFile(path(), 'cd'.repeat(32), { mode: 0o666 })
    assert.equal(await mode(), 0o666)
    assert.equal(await ensureApiToken(dir), 'cd'.repeat(32))
    assert.equal(await mode(), 0o600)
  })

  it('replaces an empty token file with a fresh token, 0600', async () => {
    await rm(path())
    await writeFile(path(), '\n', { mode: 0o644 })
    const token = await ensureApiToken(dir)
    assert.match(token, /^[0-9a-f]{64}$/)
    assert.equal((await readFile(path(), 'utf8')).trim(), token)
    assert.equal(await mode(), 0o600)
  })
})
