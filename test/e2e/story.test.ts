/**
 * The end-to-end story as real OS processes over TCP on 127.0.0.1: a gateway and two
 * readers, each `edgeward start` in its own process with its own data directory, driven
 * through the CLI. A reads, B is refused, a forged grant injected into gossip is refused
 * and counted, A is refused after the revocation (the time is measured and printed), new
 * readings use a new key, and restarted nodes keep their state and catch up.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import * as Automerge from '@automerge/automerge'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeCanonical } from '../../crypto/encoding.ts'
import { didFromPublicKey, generateSigningKeyPair, signTagged } from '../../crypto/identity.ts'
import { signRecord } from '../../crypto/signed.ts'
import { isReadRefused, type LocalPeer, runCli, startPeer } from '../../node/cli/local-network.ts'
import { createNetwork } from '../../node/network.ts'
import { actorFor, ENVELOPE_TAG } from '../../protocols/policy/document.ts'
import { createGrant } from '../../protocols/policy/records.ts'
import { policyTopic } from '../../protocols/sync/messages.ts'
import { jsonLines as readLines, suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

const STREAM = 'temperature'

describe('a governed stream end to end across real peer processes', { timeout: 240_000 }, () => {
  const local = suiteLocalPeers('e2e', ['gateway', 'a', 'b'])
  const { peers, dids } = local
  let space: string
  let grantA: string

  const status = async (p: LocalPeer) => JSON.parse((await p.cli(['status', '--json'])).stdout)
  const spaceStatus = async (p: LocalPeer) => (await status(p)).spaces.find((s: { id: string }) => s.id === space)
  const storedFromGossip = async (p: LocalPeer) =>
    (await status(p)).counters.edgeward_readings_stored_total?.['source="gossip"'] ?? 0

  it('refuses to overwrite an identity or to start twice on one data directory', async () => {
    const again = await runCli(['init', '--data', join(local.root, 'a')])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already exists/)
    assert.equal((await status(peers.a)).did, dids.a, 'the identity is unchanged')
    const second = await runCli(['start', '--data', join(local.root, 'a')])
    assert.equal(second.code, 1)
    assert.match(second.stderr, /already running|in use/)
    assert.equal((await status(peers.a)).peerId, peers.a.info.peerId, 'the first node still runs')
  })

  it('creates a space, and every peer stores the ciphertext of published readings', async () => {
    const created = await peers.gateway.cli(['space', 'create', 'plant-7'])
    assert.equal(created.code, 0, created.stderr)
    space = created.stdout.trim()
    assert.match(space, /^[0-9a-f]{64}$/)
    for (const p of [peers.a, peers.b]) assert.equal((await p.cli(['space', 'join', space])).code, 0)
    await waitFor('readers to receive the space policy', async () =>
      (await spaceStatus(peers.a))?.synchronised && (await spaceStatus(peers.b))?.synchronised ? true : undefined,
    )
    const t = Date.now()
    const input = [0, 1, 2, 3, 4].map(i => JSON.stringify({ ts: t + i, value: 20 + i / 10 })).join('\n')
    const pub = await peers.gateway.cli(['publish', space, STREAM], { input })
    assert.equal(pub.code, 0, pub.stderr)
    for (const p of [peers.a, peers.b]) {
      await waitFor(`${p.name} to store 5 readings`, async () => ((await storedFromGossip(p)) >= 5 ? true : undefined))
    }
  })

  it('refuses B, which holds the ciphertext but has no grant, with a reason and exit 3', async () => {
    const r = await peers.b.cli(['read', space, STREAM])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /refused: no grant/)
    assert.equal(r.stdout, '')
  })

  it('grants A for 48 hours; A reads the plaintext', async () => {
    const before = Date.now()
    const g = await peers.gateway.cli(['grant', space, '--to', dids.a, '--stream', STREAM, '--for', '48h', '--json'])
    assert.equal(g.code, 0, g.stderr)
    const grant = JSON.parse(g.stdout)
    grantA = grant.grant
    const end = Date.parse(grant.notAfter)
    assert.ok(Math.abs(end - before - 48 * 3600_000) < 60_000, 'the grant ends 48 h from now')
    const r = await peers.a.cli(['read', space, STREAM])
    assert.equal(r.code, 0, r.stderr)
    const lines = readLines(r.stdout)
    assert.deepEqual(
      lines.map(l => l.value),
      [20, 20.1, 20.2, 20.3, 20.4],
    )
    assert.ok((await status(peers.a)).cachedKeys > 0, 'A holds the released key in memory')
  })

  it('refuses and counts a forged grant injected into gossip, and never applies it', async () => {
    const gwBefore = await status(peers.gateway)
    const attackerKey = generateSigningKeyPair()
    const attacker = { ...attackerKey, did: didFromPublicKey(attackerKey.publicKey) }
    const libp2p = await createNetwork({ privateKey: await generateKeyPair('Ed25519') })
    try {
      await libp2p.start()
      await libp2p.dial(multiaddr(peers.gateway.info.addresses[0]))
      const topic = policyTopic(space)
      libp2p.services.pubsub.subscribe(topic)
      await waitFor('the gateway to be a subscriber', async () =>
        libp2p.services.pubsub.getSubscribers(topic).some(p => p.toString() === peers.gateway.info.peerId)
          ? true
          : undefined,
      )
      // a well-formed grant for the attacker, signed by the attacker (not the owner)
      const grant = createGrant(
        attacker,
        { space, sub: attacker.did, streams: ['*'], forms: ['raw'], nbf: Date.now(), exp: Date.now() + 3600_000 },
        Date.now(),
      )
      const doc = Automerge.init<any>({ actor: actorFor(attacker.did, 'x') })
      const changed = Automerge.change(doc, d => {
        d.grants = { [grant.id]: grant.bytes }
      })
      const change = Automerge.getLastLocalChange(changed)!
      const wrongSigner = signRecord(ENVELOPE_TAG, { t: 'change', iss: attacker.did, space, change }, attacker).bytes
      // the same change claiming to come from the owner, signed with the attacker's key
      const body = encodeCanonical({ t: 'change', iss: dids.gateway, space, change })
      const claimsOwner = encodeCanonical({ body, sig: signTagged(ENVELOPE_TAG, body, attacker.secretKey) })
      for (const forged of [wrongSigner, claimsOwner, new Uint8Array([0xa2, 0x01, 0x02])]) {
        await libp2p.services.pubsub.publish(topic, forged)
      }
      await waitFor('the gateway to count the refusals', async () =>
        (await status(peers.gateway)).refusedPolicyChanges >= gwBefore.refusedPolicyChanges + 3 ? true : undefined,
      )
      const gw = await spaceStatus(peers.gateway)
      assert.equal(gw.grants, 1, 'the forged grant was not applied')
      const r = await runCli(['status', '--data', join(local.root, 'gateway'), '--json'])
      for (const reason of ['UnauthorizedChangeError', 'InvalidSignatureError', 'InvalidEncodingError']) {
        assert.match(r.stdout, new RegExp(`reason=\\\\"${reason}`), `a ${reason} refusal is counted`)
      }
    } finally {
      await libp2p.stop()
    }
  })

  it('revokes A: A drops its keys, is refused from then on, and new readings use a new key', async () => {
    const r = await peers.gateway.cli(['revoke', space, '--grant', grantA])
    assert.equal(r.code, 0, r.stderr)
    const t0 = performance.now()
    const ms = await waitFor(
      'A to be refused',
      async () => ((await isReadRefused(peers.a, space, STREAM)) ? performance.now() - t0 : undefined),
      20_000,
      5,
    )
    console.log(`# revoke-to-refusal: ${ms.toFixed(1)} ms from the revoke command's return to A's first refusal`)
    assert.equal((await status(peers.a)).cachedKeys, 0, 'A dropped its cached keys')
    const refused = await peers.a.cli(['read', space, STREAM])
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /revoked/)

    const pub = await peers.gateway.cli(['publish', space, STREAM], {
      input: JSON.stringify({ ts: Date.now(), value: 99 }),
    })
    assert.equal(pub.code, 0, pub.stderr)
    const own = readLines((await peers.gateway.cli(['read', space, STREAM])).stdout)
    assert.equal(own.length, 6)
    const before = own.slice(0, 5).map(l => l.epoch)
    assert.ok(own[5].epoch > Math.max(...before), 'the reading after the revocation is in a new epoch, under a new key')
    assert.equal((await peers.a.cli(['read', space, STREAM])).code, 3)
  })

  it('rejects bad input with one clear line and a non-zero exit, losing nothing stored', async () => {
    const bad = await peers.gateway.cli(['publish', space, STREAM], {
      input: `${JSON.stringify({ ts: 1, value: 1 })}\n{not json\n`,
    })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /line 2: not JSON/)
    const badValue = await peers.gateway.cli(['publish', space, STREAM], { input: '{"ts": 5, "value": "hot"}\n' })
    assert.equal(badValue.code, 2)
    assert.match(badValue.stderr, /value must be a number or an object/)
    assert.equal(
      readLines((await peers.gateway.cli(['read', space, STREAM])).stdout).length,
      6,
      'nothing stored was lost',
    )
    const cases: [string[], number, RegExp][] = [
      [['grant', space, '--to', 'did:key:nope', '--for', '1h'], 2, /not a did:key/],
      [['grant', space, '--to', dids.b, '--for', '48hours'], 2, /bad duration/],
      [['grant', space, '--to', dids.b], 2, /--for/],
      [['read', 'f'.repeat(64), STREAM], 1, /unknown space/],
      [['read', space, 'no-such-stream'], 1, /no stream/],
      [['read', 'not-a-space', STREAM], 2, /not a space id/],
      [['revoke', space, '--grant', 'a'.repeat(64)], 1, /no grant/],
      [['frobnicate'], 2, /unknown command/],
      [['grant', space, '--bogus'], 2, /Unknown option/],
    ]
    for (const [args, code, message] of cases) {
      const r = await peers.gateway.cli(args)
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line')
    }
    const notRunning = await runCli(['status', '--data', join(local.root, 'nobody')])
    assert.equal(notRunning.code, 1)
    assert.match(notRunning.stderr, /no node is running/)
  })

  it('keeps identity, policy and ciphertext across restarts and catches up on what it missed', async () => {
    const bBefore = await status(peers.b)
    assert.equal(await peers.b.stop(), 0)
    // a policy change B misses while it is down
    const g = await peers.gateway.cli(['grant', space, '--to', dids.b, '--stream', STREAM, '--for', '1h', '--json'])
    assert.equal(g.code, 0, g.stderr)
    peers.b = await startPeer('b', join(local.root, 'b'))
    const bAfter = await status(peers.b)
    assert.equal(bAfter.peerId, bBefore.peerId)
    assert.equal(bAfter.did, bBefore.did)
    await waitFor('B to catch up on the grant it missed', async () =>
      (await spaceStatus(peers.b))?.grants === 2 ? true : undefined,
    )
    const r = await peers.b.cli(['read', space, STREAM])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(readLines(r.stdout).length, 6, 'B reads the ciphertext it stored before the restart')

    // the gateway restarts on a new port: it redials the peers it knew
    assert.equal(await peers.gateway.stop(), 0)
    peers.gateway = await startPeer('gateway', join(local.root, 'gateway'))
    await waitFor('the gateway to reconnect to both readers', async () =>
      (await status(peers.gateway)).peers.length >= 2 ? true : undefined,
    )
    const gw = await spaceStatus(peers.gateway)
    assert.equal(gw.grants, 2)
    assert.equal(gw.revocations, 1)
    assert.equal(readLines((await peers.gateway.cli(['read', space, STREAM])).stdout).length, 6)
    assert.equal((await peers.a.cli(['read', space, STREAM])).code, 3, 'the revocation survives the restart')
  })
})
