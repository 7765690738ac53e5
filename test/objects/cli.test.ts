/**
 * Files and messages through the CLI, with a gateway and a reader as real OS processes over
 * TCP on 127.0.0.1: share a file with --to, open it on the reader and compare the bytes;
 * send a message and open it; a view-only share gives a viewer file; the access listing;
 * revoke, and open exits 3.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { randomBytes } from '../../crypto/hash.ts'
import { type LocalPeer, runCli } from '../../node/cli/local-network.ts'
import { suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

describe('objects through the CLI across real peer processes', { timeout: 420_000 }, () => {
  const local = suiteLocalPeers('objects-cli', ['gateway', 'a'], { space: 'shared-folder' })
  const { peers, dids } = local
  let space: string
  let shared: { object: string; grant: string; chunks: number }
  let content: Uint8Array

  const status = async (p: LocalPeer) => JSON.parse((await p.cli(['status', '--json'])).stdout)
  const storedFromGossip = async (p: LocalPeer): Promise<number> =>
    (await status(p)).counters.edgeward_readings_stored_total?.['source="gossip"'] ?? 0
  /** Share with A through the CLI and wait until A stored every reading of the object. */
  const shareWithA = async (args: string[], readings: (r: any) => number) => {
    const before = await storedFromGossip(peers.a)
    const r = await peers.gateway.cli([...args, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    await waitFor('A to store the object', async () =>
      (await storedFromGossip(peers.a)) >= before + readings(out) ? true : undefined,
    )
    return { ...out, stderr: r.stderr }
  }

  before(async () => {
    space = local.space
  })

  it('shares a file with A (progress on stderr); A opens the same bytes', async () => {
    const file = join(local.root, 'report.pdf')
    content = randomBytes(5 * 1024 * 1024)
    await writeFile(file, content)
    const out = await shareWithA(['share', space, file, '--to', dids.a, '--for', '2h'], r => r.chunks + 1)
    shared = out
    assert.match(out.object, /^obj-[0-9a-f]{16}$/)
    assert.match(out.grant, /^[0-9a-f]{64}$/)
    assert.equal(out.sha256, sha256(content))
    assert.match(out.stderr, /sent 5\.0 of 5\.0 MiB/)

    const copy = join(local.root, 'copy.pdf')
    const r = await peers.a.cli(['open', space, out.object, '--out', copy])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(sha256(await readFile(copy)), sha256(content))
  })

  it('sends a message; A opens it on stdout', async () => {
    const out = await shareWithA(['message', space, '--to', dids.a, 'pump', 'on', 'line 1', 'is back'], () => 2)
    const r = await peers.a.cli(['open', space, out.object])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'pump on line 1 is back')
  })

  it('sends one message to several people, each by a grant of its own; it is in their inbox', async () => {
    const other = JSON.parse((await runCli(['init', '--data', join(local.root, 'other'), '--json'])).stdout).did
    const out = await shareWithA(['message', space, '--to', dids.a, '--to', other, 'shift', 'handover'], () => 2)
    assert.deepEqual(
      out.grants.map((g: any) => g.to),
      [dids.a, other],
    )
    assert.notEqual(out.grants[0].grant, out.grants[1].grant)
    const inboxOf = async () => JSON.parse((await peers.a.cli(['inbox', '--json'])).stdout)
    await waitFor('the message in A’s inbox', async () =>
      (await inboxOf()).items.some((i: any) => i.resource === out.object) ? true : undefined,
    )
    const item = (await inboxOf()).items.find((i: any) => i.resource === out.object)
    assert.equal(item.kind, 'message')
    assert.equal(item.state, 'active')
    assert.equal(item.from, dids.gateway)
    assert.equal(item.spaceName, 'shared-folder')
    assert.equal(item.name, undefined, 'the name travels encrypted: unknown before opening')
    assert.equal((await peers.a.cli(['open', space, out.object])).stdout.trim(), 'shift handover')
    assert.equal((await inboxOf()).items.find((i: any) => i.resource === out.object).name, 'message')
    // the grant of the other recipient is not A's: it is not in A's inbox
    assert.ok(!(await inboxOf()).items.some((i: any) => i.grant === out.grants[1].grant))
  })

  it("a grant of every stream does not open someone else's message: objects are covered only by their own id", async () => {
    const someoneElse = (await runCli(['init', '--data', join(local.root, 'someone-else'), '--json'])).stdout
    const out = await shareWithA(
      ['message', space, '--to', JSON.parse(someoneElse).did, 'for', 'someone', 'else'],
      () => 2,
    )
    const wide = await peers.gateway.cli(['grant', space, '--to', dids.a, '--stream', '*', '--for', '7d'])
    assert.equal(wide.code, 0, wide.stderr)
    // A holds the ciphertext and a grant of '*': the key holder still refuses, with a reason
    const r = await peers.a.cli(['open', space, out.object])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /refused: .*does not cover/)
    assert.equal(r.stdout, '')
  })

  it('gives a view-only reader the path of a viewer file, and removes it on revocation', async () => {
    const file = join(local.root, 'drawing.dwg')
    const bytes = randomBytes(100_000)
    await writeFile(file, bytes)
    const out = await shareWithA(['share', space, file, '--to', dids.a, '--no-download'], r => r.chunks + 1)
    const r = await peers.a.cli(['open', space, out.object, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const v = JSON.parse(r.stdout)
    assert.ok(v.viewer.startsWith(join(local.root, 'a', 'view')), v.viewer)
    assert.equal(sha256(await readFile(v.viewer)), sha256(bytes))
    assert.ok(Date.parse(v.until) > Date.now())
    const human = await peers.a.cli(['open', space, out.object])
    assert.match(human.stdout, /^viewer: .*\nuntil: {2}\d{4}-/)

    assert.equal((await peers.gateway.cli(['revoke', space, '--grant', out.grant])).code, 0)
    await waitFor('the viewer files to be removed', async () =>
      existsSync(v.viewer) || existsSync(human.stdout.split('\n')[0].slice('viewer: '.length)) ? undefined : true,
    )
  })

  it('lists access on the key holder: the grant and the release', async () => {
    const r = await peers.gateway.cli(['access', space, shared.object])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`${shared.grant.slice(0, 12)}  active .*${dids.a}`))
    assert.match(r.stdout, new RegExp(`key releases:\\n  ${dids.a}  at .* lease until `))
    const json = JSON.parse((await peers.gateway.cli(['access', space, shared.object, '--json'])).stdout)
    assert.equal(json.releases.length, 1)
  })

  it('revokes: A is refused with exit 3 and nothing is written', async () => {
    const keysBefore = (await status(peers.a)).cachedKeys
    assert.equal((await peers.gateway.cli(['revoke', space, '--grant', shared.grant])).code, 0)
    const copy = join(local.root, 'after-revoke.pdf')
    const r = await waitFor('A to be refused', async () => {
      const res = await peers.a.cli(['open', space, shared.object, '--out', copy])
      return res.code === 0 ? undefined : res
    })
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /refused: .*revoked/)
    assert.equal(existsSync(copy), false)
    assert.equal((await status(peers.a)).cachedKeys, keysBefore - 1, "A dropped the object's key")
  })

  it('refuses bad usage with exit 2', async () => {
    assert.equal((await peers.gateway.cli(['share', space, join(local.root, 'missing'), '--to', dids.a])).code, 2)
    assert.equal((await peers.gateway.cli(['share', space, join(local.root, 'copy.pdf')])).code, 2)
    assert.equal((await peers.gateway.cli(['message', space, '--to', dids.a])).code, 2)
    assert.equal((await peers.a.cli(['open', space])).code, 2)
    assert.equal((await peers.a.cli(['open', space, 'x', '--to', dids.a])).code, 2)
  })
})
