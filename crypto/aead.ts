/**
 * Authenticated encryption for content: AES-256-GCM (node:crypto), 96-bit random nonce,
 * 128-bit tag. Output layout: nonce (12) || ciphertext || tag (16).
 *
 * Keys are 32 random bytes, one per (stream, epoch, form) or per object; with random
 * nonces a key stays well inside GCM's limits for the records of one epoch.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { DecryptionError } from './errors.ts'

export const AEAD_KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
export const AEAD_OVERHEAD = NONCE_BYTES + TAG_BYTES

export function generateAeadKey(): Uint8Array {
  return new Uint8Array(randomBytes(AEAD_KEY_BYTES))
}

export function aeadEncrypt(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (key.byteLength !== AEAD_KEY_BYTES) throw new RangeError('AEAD key must be 32 bytes')
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
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

export function aeadDecrypt(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  if (key.byteLength !== AEAD_KEY_BYTES) throw new RangeError('AEAD key must be 32 bytes')
  if (sealed.byteLength < AEAD_OVERHEAD) throw new DecryptionError('ciphertext too short')
  const nonce = sealed.subarray(0, NONCE_BYTES)
  const tag = sealed.subarray(sealed.length - TAG_BYTES)
  const body = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
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
