/**
 * The policy plane through the CLI, as real OS processes on 127.0.0.1: a gateway G that
 * owns the space, an admin A, readers B and C. Delegation and the admin's authority, the
 * grants listing with every state and its reason, access requests (approve, deny, and a
 * request forwarded through an ask-owner grant), child grants through a forwardable grant,
 * the end of an admin's grants when its delegation is revoked, and bad input.
 * Polling goes through the peers' local API (no process per poll); what is under test runs
 * as a command.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { type CliResult, isReadRefused, type LocalPeer } from '../../node/cli/local-network.ts'
import { jsonOutput as json, jsonLines, suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

type Json = Record<string, any>

describe('policy commands across real peer processes', { timeout: 180_000 }, () => {
  // a loaded machine can take long to start a node: a generous deadline
  const local = suiteLocalPeers('policy-cli', ['gateway', 'admin', 'b', 'c'], { start: { timeoutMs: 60_000 } })
  const { peers, dids } = local
  let space: string
  let delegation: string
  let adminGrant: string

  const api = async (p: LocalPeer, path: string): Promise<Json> =>
    (await p.api()).call('GET', `/v1/spaces/${space}${path}`)
  const grantsOn = async (p: LocalPeer): Promise<Json[]> => (await api(p, '/grants')).grants
  const requestsOn = async (p: LocalPeer): Promise<Json[]> => (await api(p, '/requests')).requests
  /** Wait until peer `p` lists grant `id` (and, if asked, in that state). */
  const grantSeen = (p: LocalPeer, id: string, status?: string) =>
    waitFor(`${p.name} to list grant ${id.slice(0, 8)}${status ? ` as ${status}` : ''}`, async () => {
      const g = (await grantsOn(p)).find(x => x.id === id)
      return g !== undefined && (status === undefined || g.status === status) ? g : undefined
    })
  /** The arguments of `edgeward grant` in the space: `to` reads `stream` for `duration`, with the flags of `more`. */
  const grantArgs = (to: string, stream: string, duration: string, ...more: string[]) => [
    'grant',
    space,
    '--to',
    to,
    '--stream',
    stream,
    '--for',
    duration,
    ...more,
  ]
  const readValues = (r: CliResult): unknown[] => {
    assert.equal(r.code, 0, `read exited ${r.code}: ${r.stderr}`)
    return jsonLines(r.stdout).map(l => l.value)
  }
  const readRefused = (p: LocalPeer, stream: string) =>
    waitFor(`${p.name} to be refused on ${stream}`, async () =>
      (await isReadRefused(p, space, stream)) ? true : undefined,
    )

  before(async () => {
    // setup that is not under test goes through the local API, not a process per step
    const others = [peers.admin, peers.b, peers.c]
    const gateway = await peers.gateway.api()
    space = (await gateway.call<Json>('POST', '/v1/spaces', { name: 'plant-7' })).space
    for (const p of others) await (await p.api()).call('POST', `/v1/spaces/${space}/join`)
    const t = Date.now()
    for (const [stream, values] of [
      ['temp', [20, 21]],
      ['hum', [40, 41, 42]],
    ] as const) {
      const ndjson = values.map((value, i) => JSON.stringify({ ts: t + i, value })).join('\n')
      await gateway.call('POST', `/v1/spaces/${space}/streams/${stream}/readings`, ndjson)
    }
    await waitFor('every peer to know both streams', async () => {
      for (const p of others) {
        const s = (await (await p.api()).call<Json>('GET', '/v1/status')).spaces.find((x: Json) => x.id === space)
        if (!s?.synchronised || s.streams.length !== 2) return undefined
      }
      return true
    })
  })

  it('delegate: the admin grants inside its scope (exit 0), is refused outside it (exit 3, not-authorized)', async () => {
    delegation = json(
      await peers.gateway.cli(['delegate', space, '--to', dids.admin, '--stream', 'temp', '--for', '1h', '--json']),
    ).delegation
    assert.match(delegation, /^[0-9a-f]{64}$/)
    await waitFor('the admin to know its delegation', async () =>
      (await api(peers.admin, '/grants')).delegations.some((d: Json) => d.id === delegation) ? true : undefined,
    )

    const inside = json(
      await peers.admin.cli(['grant', space, '--to', dids.b, '--stream', 'temp', '--for', '1h', '--json']),
    )
    adminGrant = inside.grant
    assert.equal(inside.status, 'active')

    const outside = await peers.admin.cli(['grant', space, '--to', dids.b, '--stream', 'hum', '--for', '1h'])
    assert.equal(outside.code, 3, outside.stderr)
    assert.match(outside.stderr, /^edgeward: refused: .*delegation/)
    assert.equal(outside.stderr.trim().split('\n').length, 1, 'one line')
    // the refusal's code, as the local API gives it
    await assert.rejects(
      (await peers.admin.api()).call('POST', `/v1/spaces/${space}/grants`, {
        to: dids.b,
        streams: ['hum'],
        until: Date.now() + 3_600_000,
      }),
      (err: Error & { code?: string }) => err.name === 'AccessRefusedError' && err.code === 'not-authorized',
    )
    const onGateway = await grantSeen(peers.gateway, adminGrant, 'active')
    assert.equal(onGateway.issuer, dids.admin)
    assert.deepEqual(
      (await grantsOn(peers.gateway)).filter(g => g.issuer === dids.admin).map(g => g.id),
      [adminGrant],
      'the refused grant was never written',
    )
    assert.deepEqual(
      readValues(await peers.b.cli(['read', space, 'temp'])),
      [20, 21],
      "B reads under the admin's grant",
    )
  })

  it('grants --json lists every grant with its state and why: active, revoked, expired, pending', async () => {
    // three grants at once (each command is its own process)
    const [expiringOut, pending, revokedOut] = (
      await Promise.all([
        peers.gateway.cli(['grant', space, '--to', dids.c, '--stream', 'hum', '--for', '6s', '--json']),
        peers.gateway.cli(grantArgs(dids.c, 'hum', '1h', '--from', String(Date.now() + 3_600_000), '--json')),
        peers.gateway.cli(['grant', space, '--to', dids.c, '--stream', 'temp', '--for', '1h', '--json']),
      ])
    ).map(json)
    const expiring = expiringOut.grant
    const revoked = revokedOut.grant
    assert.equal(expiringOut.status, 'active')
    assert.equal(pending.status, 'pending')
    json(await peers.gateway.cli(['revoke', space, '--grant', revoked, '--reason', 'left the project', '--json']))
    await grantSeen(peers.gateway, expiring, 'expired')

    const listed = json(await peers.gateway.cli(['grants', space, '--json']))
    const byId = new Map<string, Json>(listed.grants.map((g: Json) => [g.id, g]))
    assert.equal(byId.get(adminGrant)?.status, 'active')
    assert.equal(byId.get(adminGrant)?.why, undefined)
    assert.equal(byId.get(revoked)?.status, 'revoked')
    assert.match(byId.get(revoked)?.why, /revoked/)
    assert.equal(byId.get(expiring)?.status, 'expired')
    assert.match(byId.get(expiring)?.why, /expired/)
    assert.equal(byId.get(pending.grant)?.status, 'pending')
    assert.match(byId.get(pending.grant)?.why, /not valid yet/)
    assert.deepEqual(
      listed.delegations.map((d: Json) => [d.id, d.admin, d.streams]),
      [[delegation, dids.admin, ['temp']]],
    )
  })

  it('request -> pending with its reason; approve -> approved with the grant, and the requester reads', async () => {
    const asked = json(
      await peers.b.cli(['request', space, '--stream', 'hum', '--for', '30m', '--reason', 'yearly audit', '--json']),
    ).request
    const seen = await waitFor('the gateway to receive the request', async () =>
      (await requestsOn(peers.gateway)).find(q => q.id === asked),
    )
    assert.equal(seen.status, 'pending')
    assert.equal(seen.from, dids.b)
    assert.equal(seen.for, dids.b)
    assert.equal(seen.reason, 'yearly audit')
    const listed = json(await peers.gateway.cli(['requests', space, '--json']))
    assert.equal(listed.requests.find((q: Json) => q.id === asked)?.status, 'pending')

    const approved = json(await peers.gateway.cli(['approve', space, asked, '--json']))
    assert.equal(approved.approved, true)
    await waitFor('B to see the decision', async () =>
      (await requestsOn(peers.b)).find(q => q.id === asked && q.status === 'approved') ? true : undefined,
    )
    const mine = json(await peers.b.cli(['requests', space, '--json'])).requests.find((q: Json) => q.id === asked)
    assert.equal(mine.status, 'approved')
    assert.equal(mine.grant, approved.grant)
    assert.equal(mine.decidedBy, dids.gateway)
    const g = await grantSeen(peers.b, approved.grant, 'active')
    assert.equal(g.subject, dids.b)
    assert.equal(g.purpose, 'yearly audit')
    assert.deepEqual(readValues(await peers.b.cli(['read', space, 'hum'])), [40, 41, 42])
  })

  it('request -> deny --reason: the requester sees it denied, with the reason', async () => {
    const asked = json(
      await peers.b.cli(['request', space, '--stream', 'temp', '--for', '1h', '--reason', 'night shift', '--json']),
    ).request
    await waitFor('the gateway to receive the request', async () =>
      (await requestsOn(peers.gateway)).find(q => q.id === asked),
    )
    const denied = json(await peers.gateway.cli(['deny', space, asked, '--reason', 'not during the audit', '--json']))
    assert.equal(denied.approved, false)
    const mine = await waitFor('B to see the denial', async () =>
      (await requestsOn(peers.b)).find(q => q.id === asked && q.status !== 'pending'),
    )
    assert.equal(mine.status, 'denied')
    assert.equal(mine.decisionReason, 'not during the audit')
    assert.equal(mine.grant, undefined)
    const human = await peers.b.cli(['requests', space])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /denied .*not during the audit/)
  })

  it('--forward allowed: B grants C a narrower child grant, C reads; G revokes B’s grant and C is refused', async () => {
    const parent = json(
      await peers.gateway.cli(grantArgs(dids.b, 'temp', '1h', '--forward', 'allowed', '--json')),
    ).grant
    await grantSeen(peers.b, parent, 'active')
    const kid = json(await peers.b.cli(grantArgs(dids.c, 'temp', '30m', '--parent', parent, '--json')))
    assert.equal(kid.status, 'active')
    const onGateway = await grantSeen(peers.gateway, kid.grant, 'active')
    assert.equal(onGateway.parent, parent)
    assert.equal(onGateway.issuer, dids.b)
    // C knows its grant before it reads (a reader that does not is covered in network.test.ts)
    await grantSeen(peers.c, kid.grant, 'active')
    assert.deepEqual(readValues(await peers.c.cli(['read', space, 'temp'])), [20, 21])

    // a child wider than its parent is refused at the command
    const wider = await peers.b.cli(grantArgs(dids.c, 'hum', '30m', '--parent', parent))
    assert.equal(wider.code, 3, wider.stderr)
    assert.match(wider.stderr, /streams its parent does not/)

    json(await peers.gateway.cli(['revoke', space, '--grant', parent, '--json']))
    await readRefused(peers.c, 'temp')
    const refused = await peers.c.cli(['read', space, 'temp'])
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /^edgeward: refused: /)
    assert.equal(refused.stdout, '')
    const child = (await grantsOn(peers.gateway)).find(g => g.id === kid.grant)
    assert.equal(child?.status, 'not-honoured')
    assert.match(child?.why, /parent grant is not active/)
  })

  it('--forward ask-owner: B files a request for C through its grant; G sees who asked, for whom, through which grant', async () => {
    const via = json(await peers.gateway.cli(grantArgs(dids.b, 'hum', '1h', '--forward', 'ask-owner', '--json'))).grant
    await grantSeen(peers.b, via, 'active')
    const asked = json(
      await peers.b.cli([
        'request',
        space,
        '--stream',
        'hum',
        '--for',
        '1h',
        '--reason',
        'my colleague covers for me',
        '--on-behalf-of',
        dids.c,
        '--via',
        via,
        '--json',
      ]),
    ).request
    await waitFor('the gateway to receive the forwarded request', async () =>
      (await requestsOn(peers.gateway)).find(q => q.id === asked),
    )
    const [asJson, human] = await Promise.all([
      peers.gateway.cli(['requests', space, '--json']),
      peers.gateway.cli(['requests', space]),
    ])
    const listed = json(asJson).requests.find((q: Json) => q.id === asked)
    assert.equal(listed.from, dids.b)
    assert.equal(listed.for, dids.c)
    assert.equal(listed.via, via)
    assert.equal(listed.status, 'pending')
    assert.match(human.stdout, new RegExp(`for ${dids.c} through grant ${via.slice(0, 12)} of ${dids.b}`))

    const approved = json(await peers.gateway.cli(['approve', space, asked, '--json']))
    const g = await grantSeen(peers.gateway, approved.grant, 'active')
    assert.equal(g.subject, dids.c, 'the grant is for the one access was asked for')
  })

  it('revoke --delegation ends the admin’s grants: B, reading under one, is refused', async () => {
    // B's only usable grant on temp is the admin's (its forwardable grant was revoked above)
    assert.deepEqual(readValues(await peers.b.cli(['read', space, 'temp'])), [20, 21])
    json(await peers.gateway.cli(['revoke', space, '--delegation', delegation, '--json']))
    await grantSeen(peers.b, adminGrant, 'not-honoured')
    await readRefused(peers.b, 'temp')
    const refused = await peers.b.cli(['read', space, 'temp'])
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /^edgeward: refused: /)
    const listed = (await grantsOn(peers.gateway)).find(g => g.id === adminGrant)
    assert.equal(listed?.status, 'not-honoured')
    assert.match(listed?.why, /delegation/)
    // the admin may no longer grant where it could
    const again = await peers.admin.cli(['grant', space, '--to', dids.b, '--stream', 'temp', '--for', '1h'])
    assert.equal(again.code, 3, again.stderr)
  })

  it("a delegation that ends takes its admin's grants with it, whatever they say (the key holder's clock decides)", async () => {
    const shortLived = json(
      await peers.gateway.cli([
        'delegate',
        space,
        '--to',
        dids.admin,
        '--stream',
        'hum',
        '--until',
        new Date(Date.now() + 12_000).toISOString(),
        '--json',
      ]),
    ).delegation
    await waitFor('the admin to know its new delegation', async () =>
      (await api(peers.admin, '/grants')).delegations.some((d: Json) => d.id === shortLived) ? true : undefined,
    )
    // the admin grants for a year: honoured while the delegation is in force, never after
    const long = json(
      await peers.admin.cli(['grant', space, '--to', dids.c, '--stream', 'hum', '--for', '365d', '--json']),
    )
    assert.equal(long.status, 'active')
    assert.equal((await grantSeen(peers.gateway, long.grant)).status, 'active')
    const ended = await grantSeen(peers.gateway, long.grant, 'not-honoured')
    assert.match(ended.why, /delegation is not in force/)
    // and the admin, with no power left, can write nothing that is honoured
    const after = await peers.admin.cli(['grant', space, '--to', dids.c, '--stream', 'hum', '--for', '1h'])
    assert.equal(after.code, 3, after.stderr)
    assert.match(after.stderr, /^edgeward: refused: .*delegation/)
  })

  it('--no-download: read gives a view-only reader a viewer file (0600), never the values; --follow is refused; a revocation removes the file', async () => {
    const gateway = await peers.gateway.api()
    const t = Date.now()
    const values = [7.25, 7.5, 7.75]
    await gateway.call(
      'POST',
      `/v1/spaces/${space}/streams/vib/readings`,
      values.map((value, i) => JSON.stringify({ ts: t + i, value })).join('\n'),
    )
    const grant = json(await peers.gateway.cli(grantArgs(dids.c, 'vib', '1h', '--no-download', '--json'))).grant
    await grantSeen(peers.c, grant, 'active')

    const out = json(await peers.c.cli(['read', space, 'vib', '--json']))
    assert.ok(out.viewer.startsWith(join(local.root, 'c', 'view')), out.viewer)
    assert.equal(out.count, 3)
    assert.ok(Date.parse(out.until) > Date.now(), 'kept until the lease ends')
    assert.equal((await stat(out.viewer)).mode & 0o777, 0o600)
    const lines = (await readFile(out.viewer, 'utf8'))
      .trim()
      .split('\n')
      .map(l => JSON.parse(l))
    assert.deepEqual(
      lines.map(l => l.value),
      values,
      'the viewer file holds the readings',
    )
    for (const v of values) assert.ok(!JSON.stringify(out).includes(String(v)), 'no value in the output')

    const human = await peers.c.cli(['read', space, 'vib'])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /^viewer: .*\nuntil: {2}\d{4}-.*\nreadings: 3\n$/)
    const second = human.stdout.split('\n')[0].slice('viewer: '.length)

    const follow = await peers.c.cli(['read', space, 'vib', '--follow'])
    assert.equal(follow.code, 3, follow.stderr)
    assert.match(follow.stderr, /^edgeward: refused: .*viewing only/)
    assert.equal(follow.stdout, '')

    json(await peers.gateway.cli(['revoke', space, '--grant', grant, '--json']))
    await waitFor('the viewer files to be removed', async () =>
      existsSync(out.viewer) || existsSync(second) ? undefined : true,
    )
  })

  it('bad input: one clear line and the right exit code', async () => {
    const unknown = 'e'.repeat(64)
    const cases: { args: string[]; code: number; message: RegExp }[] = [
      {
        args: ['grant', space, '--to', dids.b, '--stream', 'temp', '--for', '1h', '--forward', 'bogus'],
        code: 2,
        message: /--forward must be never, ask-owner or allowed/,
      },
      {
        args: ['grant', space, '--to', dids.b, '--stream', 'temp', '--for', '1h', '--max-releases', '0'],
        code: 2,
        message: /--max-releases must be a positive whole number/,
      },
      // a grant names what it covers: no silent "everything"
      { args: ['grant', space, '--to', dids.b, '--for', '1h'], code: 2, message: /name what the grant covers/ },
      { args: ['deny', space, unknown], code: 2, message: /deny needs --reason/ },
      { args: ['approve', space, unknown], code: 1, message: new RegExp(`no access request ${unknown}`) },
    ]
    const results = await Promise.all(cases.map(c => peers.gateway.cli(c.args)))
    for (const [i, c] of cases.entries()) {
      const r = results[i]
      assert.equal(r.code, c.code, `${c.args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, c.message)
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line')
      assert.equal(r.stdout, '')
    }
  })
})
