/**
 * Custody through the CLI, with every node a real `edgeward start` process on 127.0.0.1: the
 * owner names three custodians with `custody SPACE --custodian PEER... --threshold 2`, shares a
 * file and sends a message; once the custodians hold the keys' shares the owner's node stops,
 * and the reader still opens both, the same bytes. Bad input gives a clear error and exit 2;
 * someone who is not the owner is refused with exit 3.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { randomBytes } from '../../crypto/hash.ts'
import type { LocalPeer } from '../../node/cli/local-network.ts'
import { jsonOutput, suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

describe('custody through the CLI across real peer processes', { timeout: 300_000 }, () => {
  const local = suiteLocalPeers('custody-cli', ['owner', 'reader', 'c1', 'c2', 'c3'], { space: 'plant-7' })
  const { peers, dids } = local
  const custodians = () => [peers.c1, peers.c2, peers.c3]
  const custody = async (p: LocalPeer) => jsonOutput(await p.cli(['custody', local.space, '--json']))
  const asCustodians = () => custodians().flatMap(c => ['--custodian', c.info.peerId])
  let file: { object: string; content: Uint8Array }
  let message: string

  it('shows a space without custodians as such', async () => {
    const r = await peers.owner.cli(['custody', local.space])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /no custodians: the key holder alone releases keys/)
  })

  it('refuses a threshold of one, a threshold above the custodians named, and one custodian, with exit 2', async () => {
    for (const args of [
      [...asCustodians(), '--threshold', '1'],
      [...asCustodians(), '--threshold', '4'],
      ['--custodian', peers.c1.info.peerId, '--threshold', '1'],
      [...asCustodians()],
      ['--custodian', 'not-a-peer', '--custodian', peers.c2.info.peerId, '--threshold', '2'],
    ]) {
      const r = await peers.owner.cli(['custody', local.space, ...args])
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    }
  })

  it('refuses a member who is not the owner, with exit 3', async () => {
    const r = await peers.reader.cli(['custody', local.space, ...asCustodians(), '--threshold', '2'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /owner/)
  })

  it('the owner names three custodians, two of which release a key; every peer sees the set', async () => {
    const r = await peers.owner.cli(['custody', local.space, ...asCustodians(), '--threshold', '2'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /2 of 3 custodians release a key/)
    for (const p of [peers.reader, ...custodians()]) {
      await waitFor(`${p.name} to know the set`, async () =>
        (await custody(p)).set?.threshold === 2 ? true : undefined,
      )
    }
    await waitFor('the reader to reach every custodian', async () => {
      const status = JSON.parse((await peers.reader.cli(['status', '--json'])).stdout)
      const space = status.spaces.find((x: { id: string }) => x.id === local.space)
      return space?.custody?.custodians.every((c: { connected: boolean }) => c.connected) ? true : undefined
    })
    const set = (await custody(peers.reader)).set
    assert.deepEqual(
      set.custodians.map((c: { peer: string; did: string }) => [c.peer, c.did]),
      custodians().map(c => [c.info.peerId, dids[c.name as 'c1']]),
    )
  })

  it('shares a file and a message; the custodians hold their keys’ shares', async () => {
    const path = join(local.root, 'drawing.pdf')
    const content = randomBytes(300 * 1024)
    await writeFile(path, content)
    const shared = jsonOutput(
      await peers.owner.cli(['share', local.space, path, '--to', dids.reader, '--for', '2h', '--json']),
    )
    file = { object: shared.object, content }
    message = jsonOutput(
      await peers.owner.cli(['message', local.space, '--to', dids.reader, 'valve 3 replaced', '--json']),
    ).object
    await waitFor('the custodians to hold the shares, and the owner to have nothing left to deal', async () => {
      const held = await Promise.all(custodians().map(async c => (await custody(c)).held))
      const owner = await custody(peers.owner)
      return held.every(h => h >= 2) && owner.unacknowledged === 0 ? true : undefined
    })
    // the reader has the ciphertext (every chunk, the manifests) before the owner goes; it never asked for a key
    await waitFor('the reader to store both objects', async () => {
      const counters = JSON.parse((await peers.reader.cli(['status', '--json'])).stdout).counters
      return (counters.edgeward_readings_stored_total?.['source="gossip"'] ?? 0) >= shared.chunks + 1 + 2
        ? true
        : undefined
    })
  })

  it('with the owner’s node stopped, the reader opens the file and the message from the custodians', async () => {
    assert.equal(await peers.owner.stop(), 0)
    // the reader's node never held these keys, and the key holder is gone
    const copy = join(local.root, 'copy.pdf')
    const r = await peers.reader.cli(['open', local.space, file.object, '--out', copy])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(sha256(await readFile(copy)), sha256(file.content))
    const m = await peers.reader.cli(['open', local.space, message])
    assert.equal(m.code, 0, m.stderr)
    assert.equal(m.stdout.trim(), 'valve 3 replaced')
    const status = JSON.parse((await peers.reader.cli(['status', '--json'])).stdout)
    assert.ok(status.counters.edgeward_custody_keys_combined_total?.[''] >= 2, JSON.stringify(status.counters))
  })
})
