/**
 * Custody through the CLI, with every node a real `edgeward start` process on 127.0.0.1: the
 * owner names three custodians with `custody SPACE --custodian PEER... --threshold 2`, publishes
 * readings, shares a file, and lets a member (the sender, granted --contribute) send a message;
 * once the custodians hold the keys' shares:
 * - a revocation made while one custodian is down reaches the two others, the owner's and the
 *   sender's nodes are killed (SIGKILL), and the reader is refused by those two; the third,
 *   back, catches up and refuses too;
 * - with one custodian down, the reader reads the readings (of epochs whose keys it never had)
 *   and opens the file and the message, the same bytes;
 * - with two down, it is refused, saying how many custodians answered.
 * Bad input gives a clear error and exit 2; someone who is not the owner is refused with exit 3.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { randomBytes } from '../../crypto/hash.ts'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { jsonOutput, suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

describe('custody through the CLI across real peer processes', { timeout: 300_000 }, () => {
  const local = suiteLocalPeers('custody-cli', ['owner', 'reader', 'sender', 'c1', 'c2', 'c3'], { space: 'plant-7' })
  const { peers, dids } = local
  const custodians = () => [peers.c1, peers.c2, peers.c3]
  const custody = async (p: LocalPeer) => jsonOutput(await p.cli(['custody', local.space, '--json']))
  const asCustodians = () => custodians().flatMap(c => ['--custodian', c.info.peerId])
  let file: { object: string; content: Uint8Array }
  let message: string
  let flowGrant: string
  const ok = async (p: LocalPeer, args: string[], input?: string) => {
    const r = await p.cli(args, { input })
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    return r
  }
  /** SIGKILL a peer; it leaves the suite's peers (a killed node has no clean exit to check) */
  const kill = async (name: 'owner' | 'sender' | 'c1' | 'c2' | 'c3') => {
    const p = peers[name]
    const exited = new Promise(resolve => p.process.once('exit', resolve))
    p.process.kill('SIGKILL')
    await exited
    delete (peers as Partial<typeof peers>)[name]
  }
  const storedFromGossip = async (p: LocalPeer): Promise<number> =>
    JSON.parse((await p.cli(['status', '--json'])).stdout).counters.edgeward_readings_stored_total?.[
      'source="gossip"'
    ] ?? 0
  const revokedAt = async (p: LocalPeer, grant: string) =>
    (jsonOutput(await p.cli(['grants', local.space, '--json'])).grants as { id: string; status: string }[]).find(
      g => g.id === grant,
    )?.status === 'revoked'
  const ndjson = (values: number[]) => values.map((v, i) => JSON.stringify({ ts: 1_000 + i, value: v })).join('\n')

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

  it('publishes readings, shares a file, the sender sends a message; the custodians hold every key’s shares', async () => {
    const before = await storedFromGossip(peers.reader)
    await ok(peers.owner, ['grant', local.space, '--to', dids.sender, '--for', '2h', '--contribute'])
    for (const [stream, values] of [
      ['pressure', [3.1, 3.2, 3.3]],
      ['level', [40, 41]],
      ['flow', [7]],
    ] as const) {
      await ok(peers.owner, ['publish', local.space, stream], ndjson([...values]))
      const g = jsonOutput(
        await peers.owner.cli(['grant', local.space, '--to', dids.reader, '--for', '2h', '--stream', stream, '--json']),
      )
      if (stream === 'flow') flowGrant = g.grant
    }
    const path = join(local.root, 'drawing.pdf')
    const content = randomBytes(300 * 1024)
    await writeFile(path, content)
    const shared = jsonOutput(
      await peers.owner.cli(['share', local.space, path, '--to', dids.reader, '--for', '2h', '--json']),
    )
    file = { object: shared.object, content }
    await waitFor('the sender to know its right', async () =>
      (jsonOutput(await peers.sender.cli(['grants', local.space, '--json'])).grants as { subject: string }[]).some(
        g => g.subject === dids.sender,
      )
        ? true
        : undefined,
    )
    message = jsonOutput(
      await peers.sender.cli(['message', local.space, '--to', dids.reader, 'valve 3 replaced', '--json']),
    ).object
    await waitFor(
      'the custodians to hold the shares, and the owner and the sender to have dealt them all',
      async () => {
        const held = await Promise.all(custodians().map(async c => (await custody(c)).held))
        const dealers = await Promise.all([custody(peers.owner), custody(peers.sender)])
        return held.every(h => h >= 7) && dealers.every(d => d.belowThreshold === 0 && d.unacknowledged === 0)
          ? true
          : undefined
      },
    )
    // the reader has the ciphertext (readings, every chunk, the manifests) before the others go; it never asked for a key
    await waitFor('the reader to store everything', async () =>
      (await storedFromGossip(peers.reader)) >= before + 6 + shared.chunks + 1 + 2 ? true : undefined,
    )
  })

  it('a revocation while one custodian is down: with the owner and the sender killed, the two others refuse', async () => {
    await kill('c3')
    await ok(peers.owner, ['revoke', local.space, '--grant', flowGrant])
    await waitFor('the custodians up to know the revocation', async () =>
      (await revokedAt(peers.c1, flowGrant)) && (await revokedAt(peers.c2, flowGrant)) ? true : undefined,
    )
    await kill('owner')
    await kill('sender')
    const r = await peers.reader.cli(['read', local.space, 'flow'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /revoked/)
  })

  it('the custodian that was down comes back, catches up, and refuses too', async () => {
    peers.c3 = await startPeer('c3', join(local.root, 'c3'), { bootstrap: peers.c1.info.addresses })
    await waitFor('the custodian back to catch up', async () =>
      (await revokedAt(peers.c3, flowGrant)) ? true : undefined,
    )
    const r = await peers.reader.cli(['read', local.space, 'flow'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /revoked/)
  })

  it('with one custodian down, the reader reads the readings and opens the file and the message', async () => {
    await kill('c3')
    const r = await ok(peers.reader, ['read', local.space, 'pressure'])
    assert.deepEqual(
      r.stdout
        .trim()
        .split('\n')
        .map(l => JSON.parse(l).value),
      [3.1, 3.2, 3.3],
    )
    const copy = join(local.root, 'copy.pdf')
    await ok(peers.reader, ['open', local.space, file.object, '--out', copy])
    assert.equal(sha256(await readFile(copy)), sha256(file.content))
    const m = await ok(peers.reader, ['open', local.space, message])
    assert.equal(m.stdout.trim(), 'valve 3 replaced')
    const status = JSON.parse((await peers.reader.cli(['status', '--json'])).stdout)
    assert.ok(status.counters.edgeward_custody_keys_combined_total?.[''] >= 3, JSON.stringify(status.counters))
  })

  it('with two custodians down, the reader is refused, saying how many answered', async () => {
    await kill('c2')
    const r = await peers.reader.cli(['read', local.space, 'level'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /too few custodians did: 1 of 3 custodians answered/)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  })
})
