/**
 * Authenticated encryption for content: AES-256-GCM (node:crypto), 96-bit random nonce,
 * 128-bit tag. Output layout: nonce (12) || ciphertext || tag (16).
 *
 * Keys are 32 random bytes, one per (stream, epoch, form) or per object; with random
 * nonces a key stays well inside GCM's limits for the records of one epoch.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomFillSync } from 'node:crypto'
import { DecryptionError } from './errors.ts'

export const AEAD_KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
export const AEAD_OVERHEAD = NONCE_BYTES + TAG_BYTES

/** A fresh random 256-bit content key. */
export function generateAeadKey(): Uint8Array {
  return randomFillSync(new Uint8Array(AEAD_KEY_BYTES))
}

/** Key objects of keys in use: making one per call costs more than the encryption of a reading. */
const keyObjects = new WeakMap<Uint8Array, KeyObject>()
function keyObject(key: Uint8Array): KeyObject {
  let k = keyObjects.get(key)
  if (k === undefined) {
    k = createSecretKey(key)
    keyObjects.set(key, k)
  }
  return k
}

/** Nonces come from a pool filled by the CSPRNG a few KiB at a time; every nonce is used once. */
let noncePool = new Uint8Array(0)
let noncePos = 0
function freshNonce(): Uint8Array {
  if (noncePos + NONCE_BYTES > noncePool.length) {
    noncePool = randomFillSync(new Uint8Array(NONCE_BYTES * 512))
    noncePos = 0
  }
  const nonce = noncePool.slice(noncePos, noncePos + NONCE_BYTES)
  noncePos += NONCE_BYTES
  return nonce
}

/** Encrypt `plaintext` under `key` with AES-256-GCM bound to `aad`: nonce, ciphertext and tag in one byte string. */
export function aeadEncrypt(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (key.byteLength !== AEAD_KEY_BYTES) throw new RangeError('AEAD key must be 32 bytes')
  const nonce = freshNonce()
  const cipher = createCipheriv('aes-256-gcm', keyObject(key), nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  const body = cipher.update(plaintext)
  const final = cipher.final()
  const out = new Uint8Array(NONCE_BYTES + body.length + final.length + TAG_BYTES)
  out.set(nonce, 0)
  out.set(body, NONCE_BYTES)
  out.set(final, NONCE_BYTES + body.length)
  out.set(cipher.getAuthTag(), out.length - TAG_BYTES)
  return out
}

/** Open what aeadEncrypt sealed; DecryptionError for a wrong key, other associated data or changed bytes. */
export function aeadDecrypt(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  if (key.byteLength !== AEAD_KEY_BYTES) throw new RangeError('AEAD key must be 32 bytes')
  if (sealed.byteLength < AEAD_OVERHEAD) throw new DecryptionError('ciphertext too short')
  const nonce = sealed.subarray(0, NONCE_BYTES)
  const tag = sealed.subarray(sealed.length - TAG_BYTES)
  const body = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', keyObject(key), nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(aad)
  decipher.setAuthTag(tag)
  try {
    const a = decipher.update(body)
    const b = decipher.final()
    return new Uint8Array(Buffer.concat([a, b]))
  } catch {
    throw new DecryptionError('authentication failed')
  }
}
