/**
 * The node identity on disk: what createIdentity writes, loadIdentity gives back; an
 * identity is never replaced by accident; with a passphrase no secret is readable from the
 * file; the file is private to its owner; the device certificate binds this peer and its
 * X25519 key to the principal.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { publicKeyFromDid, sealingKeyPairFromSecret, verifyTagged } from '../../crypto/identity.ts'
import { createIdentity, hasIdentity, type Identity, identityPath, loadIdentity } from '../../node/identity.ts'
import { openDeviceCert, TAGS } from '../../protocols/policy/records.ts'
import { flipSignatureBit } from '../protocols/fixtures.ts'

const PASSPHRASE = 'correct horse battery staple'

/** the secrets an identity file must never show when a passphrase protects it */
function secretsOf(id: Identity): Record<string, Uint8Array> {
  return {
    principal: id.principal.secretKey,
    peer: id.peerKey.raw.subarray(0, 32),
    sealing: id.sealing.secretKey,
    storage: id.storageKey,
  }
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0
}

function assertSameIdentity(a: Identity, b: Identity): void {
  assert.equal(a.principal.did, b.principal.did)
  assert.deepEqual(a.principal.publicKey, b.principal.publicKey)
  assert.equal(a.peerId, b.peerId)
  assert.deepEqual(a.peerKey.publicKey.raw, b.peerKey.publicKey.raw)
  assert.deepEqual(a.sealing.publicKey, b.sealing.publicKey)
  assert.deepEqual(a.storageKey, b.storageKey)
  assert.equal(a.device.id, b.device.id)
  assert.deepEqual(a.device.bytes, b.device.bytes)
}

const isError = (name: string) => (err: Error) => {
  assert.equal(err.name, name, err.message)
  return true
}

describe('node identity', () => {
  let root: string
  let n = 0
  const freshDir = () => join(root, `id-${n++}`)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-identity-'))
  })

  after(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('loads back what it created: did, peer id, sealing key, storage key, device certificate', async () => {
    const dir = freshDir()
    assert.equal(hasIdentity(dir), false)
    await assert.rejects(loadIdentity(dir), isError('NotFoundError'))
    const created = await createIdentity(dir, { now: Date.now() })
    assert.equal(hasIdentity(dir), true)
    assert.equal(created.developmentMode, true)
    const loaded = await loadIdentity(dir)
    assertSameIdentity(created, loaded)
    assert.equal(loaded.developmentMode, true)
    assert.equal(peerIdFromPrivateKey(loaded.peerKey).toString(), loaded.peerId)
    assert.match(loaded.principal.did, /^did:key:z6Mk/)
  })

  it('refuses to overwrite an identity without force, and replaces it with force', async () => {
    const dir = freshDir()
    const first = await createIdentity(dir, { now: Date.now() })
    await assert.rejects(createIdentity(dir, { now: Date.now() }), (err: Error) => {
      assert.equal(err.name, 'NodeStateError')
      assert.match(err.message, /already exists/)
      return true
    })
    assertSameIdentity(await loadIdentity(dir), first)

    const second = await createIdentity(dir, { now: Date.now(), force: true })
    assert.notEqual(second.principal.did, first.principal.did)
    assert.notEqual(second.peerId, first.peerId)
    assertSameIdentity(await loadIdentity(dir), second)
  })

  it('with a passphrase, keeps every secret out of the file and opens only with that passphrase', async () => {
    const dir = freshDir()
    const created = await createIdentity(dir, { now: Date.now(), passphrase: PASSPHRASE })
    assert.equal(created.developmentMode, false)
    const file = new Uint8Array(await readFile(identityPath(dir)))
    for (const [name, secret] of Object.entries(secretsOf(created))) {
      assert.equal(contains(file, secret), false, `the ${name} secret is not in the file`)
    }
    await assert.rejects(loadIdentity(dir, 'wrong passphrase'), isError('KeystoreError'))
    await assert.rejects(loadIdentity(dir), isError('KeystoreError'))
    await assert.rejects(loadIdentity(dir, ''), isError('KeystoreError'))
    const loaded = await loadIdentity(dir, PASSPHRASE)
    assertSameIdentity(loaded, created)
    assert.equal(loaded.developmentMode, false)
  })

  it('without a passphrase, stores the secrets in the clear and refuses a passphrase it was not made with', async () => {
    // the counterpart of the test above: the same search does find secrets in a development file
    const dir = freshDir()
    const created = await createIdentity(dir, { now: Date.now() })
    const file = new Uint8Array(await readFile(identityPath(dir)))
    for (const [name, secret] of Object.entries(secretsOf(created))) {
      assert.equal(contains(file, secret), true, `the ${name} secret is in a development-mode file`)
    }
    await assert.rejects(loadIdentity(dir, PASSPHRASE), isError('KeystoreError'))
  })

  it('writes the identity file with mode 0600', async () => {
    const dir = freshDir()
    await createIdentity(dir, { now: Date.now(), passphrase: PASSPHRASE })
    assert.equal((await stat(identityPath(dir))).mode & 0o777, 0o600)
    await createIdentity(dir, { now: Date.now(), force: true })
    assert.equal((await stat(identityPath(dir))).mode & 0o777, 0o600, 'also after a forced replacement')
  })

  it('has a device certificate that binds its peer id and X25519 key and is signed by its principal', async () => {
    const now = Date.now()
    const id = await createIdentity(freshDir(), { now })
    const cert = openDeviceCert(id.device.bytes)
    assert.equal(cert.issuer, id.principal.did)
    assert.equal(cert.body.peer, id.peerId)
    assert.equal(cert.body.peer, peerIdFromPrivateKey(id.peerKey).toString())
    assert.deepEqual(cert.body.xpk, id.sealing.publicKey)
    assert.deepEqual(cert.body.xpk, sealingKeyPairFromSecret(id.sealing.secretKey).publicKey)
    assert.ok(cert.body.nbf <= now && now < cert.body.exp, 'valid now')
    assert.ok(
      verifyTagged(TAGS.device, cert.bodyBytes, cert.sig, publicKeyFromDid(id.principal.did)),
      'the signature verifies under the principal key',
    )
    const other = await createIdentity(freshDir(), { now })
    assert.equal(
      verifyTagged(TAGS.device, cert.bodyBytes, cert.sig, publicKeyFromDid(other.principal.did)),
      false,
      'and under no other key',
    )
    assert.throws(() => openDeviceCert(flipSignatureBit(id.device.bytes, 5)), isError('InvalidSignatureError'))
  })
})
