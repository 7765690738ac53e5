import assert from 'node:assert/strict'
import { createCipheriv, createDecipheriv } from 'node:crypto'
import { describe, it } from 'node:test'
import { AEAD_KEY_BYTES, AEAD_OVERHEAD, aeadDecrypt, aeadEncrypt, generateAeadKey } from '../../crypto/aead.ts'
import { flipBit, isDecryptionError } from '../support/crypto.ts'

const utf8 = new TextEncoder()

describe('aeadEncrypt / aeadDecrypt', () => {
  const key = generateAeadKey()
  const aad = utf8.encode('edgeward/stream/s1/epoch/7/raw')
  const plaintext = utf8.encode('temperature=21.5;humidity=40')
  const sealed = aeadEncrypt(key, plaintext, aad)

  it('generates distinct 32-byte keys', () => {
    assert.equal(AEAD_KEY_BYTES, 32)
    assert.equal(key.length, 32)
    assert.notDeepEqual(generateAeadKey(), key)
  })

  it('round-trips plaintexts of several sizes', () => {
    for (const n of [0, 1, 15, 16, 17, 1000, 65_536]) {
      const pt = new Uint8Array(n).map((_, i) => (i * 7) & 0xff)
      const ct = aeadEncrypt(key, pt, aad)
      assert.equal(ct.length, n + AEAD_OVERHEAD)
      assert.deepEqual(aeadDecrypt(key, ct, aad), pt)
    }
  })

  it('round-trips with an empty AAD', () => {
    const ct = aeadEncrypt(key, plaintext, new Uint8Array(0))
    assert.deepEqual(aeadDecrypt(key, ct, new Uint8Array(0)), plaintext)
  })

  it('lays out nonce (12) || AES-256-GCM ciphertext || tag (16)', () => {
    assert.equal(AEAD_OVERHEAD, 28)
    const nonce = sealed.subarray(0, 12)
    const body = sealed.subarray(12, sealed.length - 16)
    const tag = sealed.subarray(sealed.length - 16)
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 })
    decipher.setAAD(aad)
    decipher.setAuthTag(tag)
    const pt = Buffer.concat([decipher.update(body), decipher.final()])
    assert.deepEqual(new Uint8Array(pt), plaintext)
  })

  it('opens a box made by another AES-256-GCM implementation with the same layout', () => {
    const nonce = new Uint8Array(12).fill(9)
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 })
    cipher.setAAD(aad)
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
    const box = new Uint8Array([...nonce, ...body, ...cipher.getAuthTag()])
    assert.deepEqual(aeadDecrypt(key, box, aad), plaintext)
  })

  it('encrypts the same plaintext differently each time (random nonce)', () => {
    const a = aeadEncrypt(key, plaintext, aad)
    const b = aeadEncrypt(key, plaintext, aad)
    assert.notDeepEqual(a, b)
    assert.notDeepEqual(a.subarray(0, 12), b.subarray(0, 12))
    const nonces = new Set<string>()
    for (let i = 0; i < 200; i++)
      nonces.add(Buffer.from(aeadEncrypt(key, plaintext, aad).subarray(0, 12)).toString('hex'))
    assert.equal(nonces.size, 200)
  })

  it('fails on a changed AAD', () => {
    for (const other of [
      utf8.encode('edgeward/stream/s1/epoch/8/raw'),
      new Uint8Array(0),
      flipBit(aad, aad.length - 1),
    ]) {
      assert.throws(() => aeadDecrypt(key, sealed, other), isDecryptionError)
    }
  })

  it('fails on a flipped bit in the nonce, the body or the tag', () => {
    const positions = {
      'nonce first byte': 0,
      'nonce last byte': 11,
      'body first byte': 12,
      'body last byte': sealed.length - 17,
      'tag first byte': sealed.length - 16,
      'tag last byte': sealed.length - 1,
    }
    for (const [where, i] of Object.entries(positions)) {
      for (const bit of [0, 7]) {
        assert.throws(() => aeadDecrypt(key, flipBit(sealed, i, bit), aad), isDecryptionError, `${where}, bit ${bit}`)
      }
    }
  })

  it('fails under the wrong key', () => {
    assert.throws(() => aeadDecrypt(generateAeadKey(), sealed, aad), isDecryptionError)
    assert.throws(() => aeadDecrypt(flipBit(key, 31, 7), sealed, aad), isDecryptionError)
  })

  it('fails on truncated or extended input', () => {
    for (const n of [0, 1, 12, 27, 28, sealed.length - 1]) {
      assert.throws(() => aeadDecrypt(key, sealed.subarray(0, n), aad), isDecryptionError, `${n} bytes`)
    }
    assert.throws(() => aeadDecrypt(key, new Uint8Array([...sealed, 0]), aad), isDecryptionError)
    // dropping the nonce's first byte shifts every field
    assert.throws(() => aeadDecrypt(key, sealed.subarray(1), aad), isDecryptionError)
  })

  it('refuses a key that is not 32 bytes with a RangeError', () => {
    for (const n of [0, 16, 24, 31, 33, 64]) {
      const bad = new Uint8Array(n)
      assert.throws(() => aeadEncrypt(bad, plaintext, aad), RangeError, `encrypt with ${n}-byte key`)
      assert.throws(() => aeadDecrypt(bad, sealed, aad), RangeError, `decrypt with ${n}-byte key`)
    }
  })

  it('does not change its inputs', () => {
    const pt = plaintext.slice()
    const a = aad.slice()
    const k = key.slice()
    const ct = aeadEncrypt(key, plaintext, aad)
    const ctCopy = ct.slice()
    aeadDecrypt(key, ct, aad)
    assert.deepEqual(plaintext, pt)
    assert.deepEqual(aad, a)
    assert.deepEqual(key, k)
    assert.deepEqual(ct, ctCopy)
  })
})
