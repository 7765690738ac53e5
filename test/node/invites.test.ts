/**
 * Spaces by invite, as real OS processes on 127.0.0.1: the owner invites by the space's name,
 * with a grant of one stream for 48 h; a reader started without --bootstrap joins with the code
 * alone, the space synchronises and the reader holds the grant. A single-use code is refused
 * the second time ("used"), a code whose token was changed is refused ("unknown"), and a
 * malformed or expired code ends the command with exit 2 and one line. Every refusal is counted.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { CliResult, LocalPeer } from '../../node/cli/local-network.ts'
import { decodeInvite, encodeInvite } from '../../protocols/invites.ts'
import { jsonOutput, suiteLocalPeers } from '../support/local-peers.ts'

type Json = Record<string, any>

describe('invite and join across real peer processes', { timeout: 180_000 }, () => {
  const { peers, dids } = suiteLocalPeers('invites', ['owner', 'reader'], {
    // no --bootstrap: the code is all the reader gets
    bootstrap: false,
    start: { timeoutMs: 60_000 },
  })
  let space: string
  let code: string

  const oneLine = (r: CliResult) => assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)

  before(async () => {
    const api = await peers.owner.api()
    space = (await api.call<Json>('POST', '/v1/spaces', { name: 'plant-7' })).space
    await api.call('POST', `/v1/spaces/${space}/streams/temp/readings`, JSON.stringify({ ts: Date.now(), value: 21 }))
    // each names themselves; the invite and its redemption carry those names to the other side
    jsonOutput(await peers.owner.cli(['contact', 'set', dids.owner, 'Ana', 'Ruiz', '--json']))
    jsonOutput(await peers.reader.cli(['contact', 'set', dids.reader, 'Ben', 'Okafor', '--json']))
  })

  it('the owner invites by name: a short code that carries the space, its name and the owner’s address', async () => {
    const r = await peers.owner.cli(['invite', 'plant-7', '--stream', 'temp', '--access', '48h', '--json'])
    const made = jsonOutput(r)
    code = made.invite
    assert.match(code, /^ew1-[A-Za-z0-9_-]+$/)
    assert.ok(code.length < 1400, `a code of ${code.length} characters`)
    const inv = decodeInvite(code)
    assert.equal(inv.space, space)
    assert.equal(inv.name, 'plant-7')
    assert.equal(inv.peer, peers.owner.info.peerId)
    assert.ok(Math.abs(made.expiresAt - (Date.now() + 7 * 86_400_000)) < 120_000, 'valid for 7 days by default')
    const listed = await (await peers.owner.api()).call<Json>('GET', `/v1/spaces/${space}/invites`)
    assert.equal(listed.invites.length, 1)
    assert.deepEqual(
      { usesLeft: listed.invites[0].usesLeft, streams: listed.invites[0].streams },
      { usesLeft: 1, streams: ['temp'] },
    )
    assert.ok(!JSON.stringify(listed).includes(code.slice(4, 30)), 'the list carries no token')
  })

  it('the reader joins with the code only: the space synchronises, with a grant of temp ending 48 h from now', async () => {
    const t = Date.now()
    const r = await peers.reader.cli(['join', code, '--json'])
    const joined = jsonOutput(r)
    assert.match(r.stderr, /joining "plant-7"/, 'progress on stderr')
    assert.equal(joined.space, space)
    assert.equal(joined.name, 'plant-7')
    assert.equal(joined.owner, (await (await peers.owner.api()).call<Json>('GET', '/v1/status')).did)
    assert.deepEqual(joined.grant.streams, ['temp'])
    assert.ok(Math.abs(joined.grant.notAfter - (t + 48 * 3_600_000)) < 120_000, 'the grant ends ~48 h from now')
    const status = await (await peers.reader.api()).call<Json>('GET', '/v1/status')
    const s = status.spaces.find((x: Json) => x.id === space)
    assert.equal(s.synchronised, true)
    assert.equal(s.name, 'plant-7')
    const grants = (await (await peers.reader.api()).call<Json>('GET', `/v1/spaces/${space}/grants`)).grants as Json[]
    const mine = grants.find(g => g.id === joined.grant.id)
    assert.ok(mine, 'the reader’s replica holds the grant')
    assert.equal(mine.subject, dids.reader)
    assert.equal(mine.status, 'active')
    const listed = await (await peers.owner.api()).call<Json>('GET', `/v1/spaces/${space}/invites`)
    assert.equal(listed.invites[0].usesLeft, 0)
  })

  it('each side now knows the other by the name they gave themselves, marked as theirs', async () => {
    const contactsOf = async (p: LocalPeer) => jsonOutput(await p.cli(['contacts', '--json'])).contacts as Json[]
    const onReader = (await contactsOf(peers.reader)).find(c => c.did === dids.owner)
    assert.deepEqual([onReader?.name, onReader?.source], ['Ana Ruiz', 'suggested'])
    const onOwner = (await contactsOf(peers.owner)).find(c => c.did === dids.reader)
    assert.deepEqual([onOwner?.name, onOwner?.source], ['Ben Okafor', 'suggested'])
  })

  it('the same single-use code a second time is refused: used (exit 3, one line)', async () => {
    const r = await peers.reader.cli(['join', code])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /^edgeward: refused: .*already been used/m)
    assert.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter(l => l.startsWith('edgeward:')).length,
      1,
    )
  })

  it('a forged code (its token changed) is refused: unknown', async () => {
    const inv = decodeInvite(code)
    const token = inv.token.slice()
    token[0] ^= 0xff
    const forged = encodeInvite({ ...inv, token })
    const r = await peers.reader.cli(['join', forged])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /^edgeward: refused: the inviter does not know this invite/m)
  })

  it('a malformed code exits 2 with one line; so does an expired one, saying so', async () => {
    for (const bad of ['ew1-not*base64', `${code.slice(0, 40)}`, 'hello', `ew1-${'A'.repeat(2000)}`]) {
      const r = await peers.reader.cli(['join', bad])
      assert.equal(r.code, 2, `${bad.slice(0, 20)}: ${r.stderr}`)
      assert.match(r.stderr, /^edgeward: error: malformed invite: /)
      oneLine(r)
    }
    const expired = encodeInvite({ ...decodeInvite(code), expiresAt: Date.now() - 1000 })
    const r = await peers.reader.cli(['join', expired])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^edgeward: error: the invite to "plant-7" expired at /)
    oneLine(r)
  })

  it('every refusal is counted by reason on the inviter', async () => {
    const res = await (await peers.owner.api()).response('/metrics')
    const text = await res.text()
    assert.match(text, /edgeward_invites_refused_total\{reason="used"\} 1/)
    assert.match(text, /edgeward_invites_refused_total\{reason="unknown"\} 1/)
  })

  it('bad usage: --access without --stream, an unknown space name', async () => {
    const a = await peers.owner.cli(['invite', 'plant-7', '--access', '1h'])
    assert.equal(a.code, 2, a.stderr)
    oneLine(a)
    const b = await peers.owner.cli(['invite', 'no-such-space'])
    assert.equal(b.code, 2, b.stderr)
    assert.match(b.stderr, /no space named "no-such-space" here \(spaces: plant-7\)/)
  })
})
