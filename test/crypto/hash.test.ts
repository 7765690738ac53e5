import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { constantTimeEqual, randomBytes, sha256, taggedHash } from '../../crypto/hash.ts'
import { hexOf } from '../support/crypto.ts'

const utf8 = new TextEncoder()

describe('sha256', () => {
  it('matches the FIPS 180-2 examples', () => {
    assert.equal(hexOf(sha256(utf8.encode('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    assert.equal(hexOf(sha256()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  })

  it('hashes its parts as one concatenated input', () => {
    assert.deepEqual(sha256(utf8.encode('a'), utf8.encode('bc')), sha256(utf8.encode('abc')))
  })
})

describe('taggedHash', () => {
  it('is SHA-256(tag || 0x00 || bytes)', () => {
    const expected = createHash('sha256')
      .update('edgeward/grant/v1/id')
      .update(Buffer.from([0]))
      .update('body')
      .digest('hex')
    assert.equal(hexOf(taggedHash('edgeward/grant/v1/id', utf8.encode('body'))), expected)
  })

  it('separates tags, and the boundary between tag and bytes', () => {
    const body = utf8.encode('same body')
    assert.notDeepEqual(taggedHash('edgeward/grant/v1', body), taggedHash('edgeward/revocation/v1', body))
    assert.notDeepEqual(taggedHash('ab', utf8.encode('c')), taggedHash('a', utf8.encode('bc')))
    assert.notDeepEqual(taggedHash('t', body), sha256(body))
  })
})

describe('randomBytes', () => {
  it('returns n fresh bytes', () => {
    for (const n of [0, 1, 16, 32, 100]) assert.equal(randomBytes(n).length, n)
    assert.notDeepEqual(randomBytes(32), randomBytes(32))
  })
})

describe('constantTimeEqual', () => {
  it('compares content and length without throwing on a length mismatch', () => {
    const a = new Uint8Array([1, 2, 3])
    assert.equal(constantTimeEqual(a, new Uint8Array([1, 2, 3])), true)
    assert.equal(constantTimeEqual(a, new Uint8Array([1, 2, 4])), false)
    assert.equal(constantTimeEqual(a, new Uint8Array([1, 2])), false)
    assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true)
  })
})
