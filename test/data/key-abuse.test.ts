/**
 * What a connected peer without a grant can make a key holder do, bounded per peer: refused key
 * requests beyond a budget per peer and minute are counted but not each written to the audit
 * log; replay protection is kept per device, so a flood from some devices neither blocks nor
 * evicts another's; and a request answered before the key holder restarted is refused after it.
 * Real peers in one process over TCP; the attackers are bare libp2p peers with principals and
 * device certificates of their own, sending signed key requests on `/edgeward/keys/1.0.0`.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes } from '../../crypto/hash.ts'
import { didFromPublicKey, generateSealingKeyPair, generateSigningKeyPair } from '../../crypto/identity.ts'
import { createIdentity } from '../../node/identity.ts'
import { createNetwork, type EdgewardLibp2p } from '../../node/network.ts'
import { EdgewardNode, type NodeOptions } from '../../node/node.ts'
import { request } from '../../node/services/stream-io.ts'
import {
  createKeyRequest,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  type KeyResponse,
  MAX_KEY_RESPONSE_BYTES,
} from '../../protocols/access/messages.ts'
import { createDeviceCert, createGrant } from '../../protocols/policy/records.ts'
import { waitFor } from '../support/wait.ts'

const HOUR = 3_600_000
const STREAM = 'temp'
const PER_DEVICE = 20
const GW_OPTS: Omit<NodeOptions, 'dataDir'> = { replayMaxPerDevice: PER_DEVICE, replayMaxEntries: 50 }

describe('key release under abuse', { timeout: 90_000 }, () => {
  let root: string
  let gw: EdgewardNode
  let reader: EdgewardNode
  let space: string
  let grantId: string
  const attackers: EdgewardLibp2p[] = []

  const gwDir = () => join(root, 'gw')

  const ask = async (from: EdgewardLibp2p, body: Uint8Array): Promise<KeyResponse> =>
    decodeKeyResponse(
      await request(from, peerIdFromString(gw.identity.peerId), KEYS_PROTOCOL, body, MAX_KEY_RESPONSE_BYTES),
    )

  const readerRequest = () =>
    createKeyRequest(reader.identity.principal, {
      space,
      stream: STREAM,
      form: 'raw',
      epochs: [0],
      grant: grantId,
      device: reader.identity.device.bytes,
      nonce: randomBytes(16),
      ts: Date.now(),
    })

  /** A peer of its own, certified by a principal of its own, with no grant; its next request, signed. */
  const attacker = async () => {
    const p = await createNetwork({ privateKey: await generateKeyPair('Ed25519') })
    attackers.push(p)
    await p.start()
    await p.dial(multiaddr(gw.addresses()[0]))
    const kp = generateSigningKeyPair()
    const principal = { ...kp, did: didFromPublicKey(kp.publicKey) }
    const now = Date.now()
    const cert = createDeviceCert(
      principal,
      p.peerId.toString(),
      generateSealingKeyPair().publicKey,
      now - 1000,
      now + HOUR,
    )
    const next = () =>
      createKeyRequest(principal, {
        space,
        stream: STREAM,
        form: 'raw',
        epochs: [0],
        device: cert.bytes,
        nonce: randomBytes(16),
        ts: Date.now(),
      }).bytes
    return { p, next }
  }

  const refusals = (code?: string) =>
    gw.metrics.total('edgeward_key_refusals_total', code === undefined ? undefined : `reason="${code}"`)
  const loggedRefusals = () => gw.metrics.total('edgeward_audit_entries_total', 'kind="refusal"')

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-key-abuse-'))
    await createIdentity(gwDir(), { now: Date.now() })
    gw = await EdgewardNode.create({ dataDir: gwDir(), ...GW_OPTS })
    await gw.start()
    await createIdentity(join(root, 'reader'), { now: Date.now() })
    reader = await EdgewardNode.create({ dataDir: join(root, 'reader'), bootstrap: gw.addresses() })
    await reader.start()
    space = await gw.createSpace('plant')
    await reader.joinSpace(space)
    await gw.data.publish(space, STREAM, [{ ts: Date.now(), value: 1 }])
    const now = Date.now()
    const g = createGrant(
      gw.identity.principal,
      {
        space,
        sub: reader.identity.principal.did,
        streams: [STREAM],
        forms: ['raw'],
        nbf: now - 1000,
        exp: now + HOUR,
      },
      now,
    )
    grantId = g.id
    await gw.policy.write(space, [{ kind: 'grant', record: g }])
    await waitFor('the reader to know its grant', async () =>
      reader.policy.document(space).state.grants.has(grantId) ? true : undefined,
    )
  })

  after(async () => {
    await Promise.all([gw.stop(), reader.stop(), ...attackers.map(p => p.stop())])
    await rm(root, { recursive: true, force: true })
  })

  it('logs a bounded number of one peer’s refusals per minute, counts every one, and still logs other peers’', async () => {
    const { p, next } = await attacker()
    const [total, logged] = [refusals(), loggedRefusals()]
    const unlogged = gw.metrics.total('edgeward_key_refusals_unlogged_total')
    const sent = 60
    for (let i = 0; i < sent; i++) assert.equal((await ask(p, next())).ok, false)
    // and copies of the reader's own signed request, from the attacker's connection
    for (let i = 0; i < 20; i++) {
      const res = await ask(p, readerRequest().bytes)
      assert.equal(res.ok ? 'released' : res.code, 'wrong-device')
    }
    assert.equal(refusals() - total, sent + 20, 'every refusal is counted')
    assert.equal(loggedRefusals() - logged, 30, 'thirty are written to the audit log')
    assert.equal(gw.metrics.total('edgeward_key_refusals_unlogged_total') - unlogged, sent + 20 - 30)
    // another peer's refusal is still written
    const res = await ask(
      reader.libp2p,
      createKeyRequest(reader.identity.principal, {
        space,
        stream: STREAM,
        form: 'raw',
        epochs: [0, 9],
        grant: grantId,
        device: reader.identity.device.bytes,
        nonce: randomBytes(16),
        ts: Date.now(),
      }).bytes,
    )
    assert.equal(res.ok ? 'released' : res.code, 'unknown-epoch')
    assert.equal(loggedRefusals() - logged, 31)
  })

  it('keeps replay protection per device: floods from other devices neither block nor crowd out a reader', async () => {
    const replaysBefore = refusals('replay')
    // three devices, each past its own limit; together past the key holder's total
    let refusedAsReplay = 0
    for (let a = 0; a < 3; a++) {
      const { p, next } = await attacker()
      for (let i = 0; i < PER_DEVICE + 10; i++) {
        const res = await ask(p, next())
        assert.equal(res.ok, false)
        if (!res.ok && res.code === 'replay') {
          assert.match(res.reason, /too many requests/)
          refusedAsReplay++
        }
      }
    }
    assert.ok(refusedAsReplay >= 30, `each device is held to ${PER_DEVICE} requests in the window (${refusedAsReplay})`)
    assert.equal(refusals('replay') - replaysBefore, refusedAsReplay)
    // the reader, asking at an ordinary rate, is served, and its own replays are still refused
    const valid = readerRequest()
    const first = await ask(reader.libp2p, valid.bytes)
    assert.equal(first.ok, true, first.ok ? '' : `${first.code}: ${first.reason}`)
    const again = await ask(reader.libp2p, valid.bytes)
    assert.equal(again.ok ? 'released' : again.code, 'replay')
  })

  it('refuses after a restart a request it answered before', async () => {
    const valid = readerRequest()
    const first = await ask(reader.libp2p, valid.bytes)
    assert.equal(first.ok, true, first.ok ? '' : `${first.code}: ${first.reason}`)
    await gw.stop()
    gw = await EdgewardNode.create({ dataDir: gwDir(), ...GW_OPTS })
    await gw.start()
    await waitFor('the reader to reconnect', async () =>
      reader.libp2p.getConnections(peerIdFromString(gw.identity.peerId)).length > 0 ? true : undefined,
    )
    const replayed = await ask(reader.libp2p, valid.bytes)
    assert.equal(replayed.ok ? 'released' : replayed.code, 'replay')
    // a request made now is served
    const fresh = await ask(reader.libp2p, readerRequest().bytes)
    assert.equal(fresh.ok, true, fresh.ok ? '' : `${fresh.code}: ${fresh.reason}`)
  })
})
