import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { KeystoreError } from '../../crypto/errors.ts'
import { isPlaintextKeystore, lockSecrets, unlockSecrets } from '../../crypto/keystore.ts'

function isKeystoreError(err: unknown): boolean {
  return err instanceof KeystoreError && err.name === 'KeystoreError'
}

function isTypedRefusal(err: unknown): boolean {
  return err instanceof Error && (err.name === 'KeystoreError' || err.name === 'InvalidEncodingError')
}

/** true if any `window`-byte run of `needle` occurs in `haystack` */
function containsRunOf(haystack: Uint8Array, needle: Uint8Array, window: number): boolean {
  const h = Buffer.from(haystack)
  for (let i = 0; i + window <= needle.length; i++) {
    if (h.indexOf(Buffer.from(needle.subarray(i, i + window))) >= 0) return true
  }
  return false
}

function decodeFile(file: Uint8Array): Record<string, unknown> {
  return decodeCanonical(file, 1 << 20) as Record<string, unknown>
}

describe('keystore, plaintext (development) mode', () => {
  const secrets = new Uint8Array(
    encodeCanonical({ signing: new Uint8Array(randomBytes(32)), sealing: new Uint8Array(randomBytes(32)) }),
  )

  it('round-trips without a passphrase and says it is plaintext', () => {
    const file = lockSecrets(secrets, undefined)
    assert.equal(isPlaintextKeystore(file), true)
    assert.deepEqual(unlockSecrets(file, undefined), secrets)
  })

  it('is a canonical { v: 1, mode: "plaintext", data } record', () => {
    const file = lockSecrets(secrets, undefined)
    assert.deepEqual(decodeFile(file), { v: 1, mode: 'plaintext', data: secrets })
  })
})

describe('keystore, scrypt mode', () => {
  const signing = new Uint8Array(randomBytes(32))
  const secrets = new Uint8Array(encodeCanonical({ signing }))
  const passphrase = 'correct horse battery staple'
  const file = lockSecrets(secrets, passphrase)

  it('round-trips with the passphrase and is not plaintext', () => {
    assert.equal(isPlaintextKeystore(file), false)
    assert.deepEqual(unlockSecrets(file, passphrase), secrets)
  })

  it('is a { v: 1, mode: "scrypt", salt, data } record with a 16-byte salt', () => {
    const v = decodeFile(file)
    assert.deepEqual(Object.keys(v).sort(), ['data', 'mode', 'salt', 'v'])
    assert.equal(v.v, 1)
    assert.equal(v.mode, 'scrypt')
    assert.ok(v.salt instanceof Uint8Array && v.salt.length === 16)
    assert.ok(v.data instanceof Uint8Array && v.data.length === secrets.length + 28)
  })

  it('does not contain the secret bytes', () => {
    assert.equal(containsRunOf(file, secrets, 8), false)
    assert.equal(containsRunOf(file, signing, 4), false)
  })

  it('refuses a wrong passphrase with KeystoreError', () => {
    for (const wrong of ['Correct horse battery staple', `${passphrase} `]) {
      assert.throws(() => unlockSecrets(file, wrong), isKeystoreError, wrong)
    }
  })

  it('refuses to unlock an encrypted store without a passphrase', () => {
    assert.throws(() => unlockSecrets(file, undefined), isKeystoreError)
    assert.throws(() => unlockSecrets(file, ''), isKeystoreError)
  })

  it('treats canonically equivalent passphrases alike (NFKC)', () => {
    const composed = 'pässwörd'
    const decomposed = composed.normalize('NFD')
    assert.notEqual(composed, decomposed)
    const f = lockSecrets(secrets, composed)
    assert.deepEqual(unlockSecrets(f, decomposed), secrets)
  })

  it('locks the same secrets differently each time (fresh salt and nonce)', () => {
    const again = lockSecrets(secrets, passphrase)
    assert.notDeepEqual(decodeFile(again).salt, decodeFile(file).salt)
    assert.notDeepEqual(decodeFile(again).data, decodeFile(file).data)
  })

  it('refuses a tampered ciphertext, salt or format', () => {
    const v = decodeFile(file)
    const data = v.data as Uint8Array
    const salt = v.salt as Uint8Array
    const flipped = (b: Uint8Array, i: number) => {
      const c = new Uint8Array(b)
      c[i] ^= 1
      return c
    }
    const cases: [string, unknown][] = [
      ['ciphertext', { ...v, data: flipped(data, 20) }],
      ['salt', { ...v, salt: flipped(salt, 0) }],
      ['missing salt', { v: 1, mode: 'scrypt', data }],
      ['salt of the wrong type', { ...v, salt: 'salt' }],
    ]
    for (const [what, record] of cases) {
      assert.throws(() => unlockSecrets(encodeCanonical(record), passphrase), isKeystoreError, what)
    }
  })

  it('refuses a damaged file with a typed error', () => {
    for (const i of [0, file.length - 1]) {
      const damaged = new Uint8Array(file)
      damaged[i] ^= 0x01
      assert.throws(() => unlockSecrets(damaged, passphrase), isTypedRefusal, `byte ${i}`)
    }
    assert.throws(() => unlockSecrets(file.subarray(0, file.length - 1), passphrase), isTypedRefusal)
    assert.throws(() => unlockSecrets(new Uint8Array(0), passphrase), isTypedRefusal)
  })
})

describe('keystore format', () => {
  const data = new Uint8Array([1, 2, 3])
  const refused: [string, unknown][] = [
    ['an unknown version', { v: 2, mode: 'plaintext', data }],
    ['an unknown mode', { v: 1, mode: 'argon2', data }],
    ['data that is not bytes', { v: 1, mode: 'plaintext', data: 'secret' }],
    ['no data', { v: 1, mode: 'plaintext' }],
    ['a non-map', [1, 'plaintext', data]],
    ['null', null],
  ]
  for (const [what, record] of refused) {
    it(`refuses ${what}`, () => {
      const file = encodeCanonical(record)
      assert.throws(() => unlockSecrets(file, undefined), isKeystoreError)
      assert.throws(() => isPlaintextKeystore(file), isKeystoreError)
    })
  }

  it('refuses a file over 64 KiB before parsing it', () => {
    const big = encodeCanonical({ v: 1, mode: 'plaintext', data: new Uint8Array(64 * 1024) })
    assert.throws(
      () => unlockSecrets(big, undefined),
      (err: unknown) => err instanceof Error && err.name === 'InvalidEncodingError',
    )
  })
})
