/**
 * Contacts (node/services/contacts.ts) on a real LevelDB on disk: a name the person gives is
 * kept across a restart and wins over the one a person suggests for themselves; bad names and
 * ids are refused, a bad suggestion is ignored; and through a real node process, the CLI sets
 * and lists names, refuses bad input with exit 2, and the inbox names who shared.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import { createIdentity } from '../../node/identity.ts'
import { ContactsService } from '../../node/services/contacts.ts'
import { openStore } from '../../node/store.ts'
import { initData, stopPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

describe('contacts', () => {
  let root = ''
  const dids: string[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-contacts-'))
    for (const n of ['a', 'b']) dids.push((await createIdentity(join(root, n), { now: Date.now() })).principal.did)
  })
  after(() => rm(root, { recursive: true, force: true }))

  it('keeps a given name across a restart; a suggestion never replaces it', async () => {
    const path = join(root, 'db')
    let store = await openStore(path)
    let contacts = new ContactsService({ store, now: Date.now })
    await contacts.start()
    await contacts.suggest(dids[0], 'Ana (from her invite)')
    assert.equal(contacts.nameOf(dids[0]), 'Ana (from her invite)')
    await contacts.set(dids[0], '  Ana Ruiz  ')
    await contacts.suggest(dids[0], 'Someone else')
    assert.equal(contacts.nameOf(dids[0]), 'Ana Ruiz', 'trimmed, and the person’s own name wins')
    await store.close()

    store = await openStore(path)
    contacts = new ContactsService({ store, now: Date.now })
    await contacts.start()
    assert.deepEqual(
      contacts.list().map(c => [c.name, c.source]),
      [['Ana Ruiz', 'me']],
    )
    assert.equal(await contacts.remove(dids[0]), true)
    assert.equal(contacts.nameOf(dids[0]), undefined)
    await store.close()
  })

  it('refuses a bad name or id; ignores a bad suggestion', async () => {
    const store = await openStore(join(root, 'db2'))
    const contacts = new ContactsService({ store, now: Date.now })
    await contacts.start()
    for (const bad of ['', '   ', 'x'.repeat(65), 'line\nbreak', 'bell\u0007'])
      await assert.rejects(contacts.set(dids[1], bad), { name: 'UsageError' }, JSON.stringify(bad))
    await assert.rejects(contacts.set('did:web:example.com', 'Web'), { name: 'UsageError' })
    await contacts.suggest(dids[1], 'two\nlines')
    await contacts.suggest(dids[1], 42)
    await contacts.suggest('not-a-did', 'X')
    assert.deepEqual(contacts.list(), [])
    await store.close()
  })
})

describe('contacts through the CLI', { timeout: 120_000 }, () => {
  let root = ''
  const peers: LocalPeer[] = []
  const dids: Record<string, string> = {}

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-contacts-cli-'))
    for (const n of ['owner', 'reader']) dids[n] = await initData(join(root, n))
    peers.push(await startPeer('owner', join(root, 'owner')))
    peers.push(await startPeer('reader', join(root, 'reader'), { bootstrap: peers[0].info.addresses }))
  })
  after(() => stopPeers(peers, root))

  it('names people; the inbox says who shared by the name given', async () => {
    const [owner, reader] = peers
    const space = (await owner.cli(['space', 'create', 'Handover'])).stdout.trim()
    assert.equal((await reader.cli(['space', 'join', space])).code, 0)
    const set = await reader.cli(['contact', 'set', dids.owner, 'Plant', '7', 'operations'])
    assert.equal(set.code, 0, set.stderr)
    const list = JSON.parse((await reader.cli(['contacts', '--json'])).stdout)
    assert.deepEqual(
      list.contacts.map((c: any) => [c.did, c.name]),
      [[dids.owner, 'Plant 7 operations']],
    )
    await waitFor('the reader to synchronise', async () =>
      JSON.parse((await reader.cli(['status', '--json'])).stdout).spaces.some((s: any) => s.synchronised)
        ? true
        : undefined,
    )
    assert.equal((await owner.cli(['message', space, '--to', dids.reader, 'hello'])).code, 0)
    await waitFor('the message in the inbox', async () =>
      (await reader.cli(['inbox'])).stdout.includes('from Plant 7 operations') ? true : undefined,
    )
    assert.equal(JSON.parse((await reader.cli(['inbox', '--json'])).stdout).items[0].fromName, 'Plant 7 operations')
  })

  it('refuses bad input with exit 2 and one line', async () => {
    const reader = peers[1]
    for (const args of [
      ['contact', 'set', 'did:key:nope', 'X'],
      ['contact', 'set', dids.owner],
      ['contact', 'frobnicate'],
      ['contact', 'set', dids.owner, 'x'.repeat(80)],
    ]) {
      const r = await reader.cli(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    }
    assert.equal((await runCli(['contacts', '--data', join(root, 'nobody')])).code === 0, false)
  })
})
