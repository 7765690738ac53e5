/**
 * Private keys at rest. A keystore file holds the node's secrets encrypted under a key
 * derived from a passphrase with scrypt (N=2^15, r=8, p=1) and sealed with AES-256-GCM.
 * Without a passphrase (development mode) the secrets are stored unencrypted, marked as
 * such, and every load says so.
 */
import { scryptSync } from 'node:crypto'
import { aeadDecrypt, aeadEncrypt } from './aead.ts'
import { decodeCanonical, encodeCanonical } from './encoding.ts'
import { KeystoreError } from './errors.ts'
import { randomBytes } from './hash.ts'

const SCRYPT = { N: 1 << 15, r: 8, p: 1 }
const AAD = new TextEncoder().encode('edgeward/keystore/v1')
const MAX_KEYSTORE_BYTES = 64 * 1024

export interface KeystoreFile {
  v: 1
  mode: 'scrypt' | 'plaintext'
  salt?: Uint8Array
  data: Uint8Array
}

function derive(passphrase: string, salt: Uint8Array): Uint8Array {
  return new Uint8Array(scryptSync(passphrase.normalize('NFKC'), salt, 32, { ...SCRYPT, maxmem: 64 * 1024 * 1024 }))
}

/** Encrypt `secrets` (canonical bytes) for storage; `passphrase` undefined means development mode. */
export function lockSecrets(secrets: Uint8Array, passphrase: string | undefined): Uint8Array {
  if (passphrase === undefined || passphrase === '') {
    return encodeCanonical({ v: 1, mode: 'plaintext', data: secrets })
  }
  const salt = randomBytes(16)
  const data = aeadEncrypt(derive(passphrase, salt), secrets, AAD)
  return encodeCanonical({ v: 1, mode: 'scrypt', salt, data })
}

/** Whether a keystore file holds its secrets unencrypted (development mode). */
export function isPlaintextKeystore(file: Uint8Array): boolean {
  return parse(file).mode === 'plaintext'
}

function parse(file: Uint8Array): KeystoreFile {
  const v = decodeCanonical(file, MAX_KEYSTORE_BYTES) as KeystoreFile
  if (v == null || v.v !== 1 || !(v.data instanceof Uint8Array) || (v.mode !== 'scrypt' && v.mode !== 'plaintext')) {
    throw new KeystoreError('unrecognised keystore format')
  }
  return v
}

/** The secrets of a keystore file, decrypted with `passphrase` when it is encrypted; KeystoreError otherwise. */
export function unlockSecrets(file: Uint8Array, passphrase: string | undefined): Uint8Array {
  const v = parse(file)
  if (v.mode === 'plaintext') {
    // a passphrase was expected: a plaintext keystore here may have been swapped in
    if (passphrase !== undefined && passphrase !== '') {
      throw new KeystoreError('the keystore is not encrypted, but a passphrase was given')
    }
    return v.data
  }
  if (passphrase === undefined || passphrase === '') {
    throw new KeystoreError('the keystore is encrypted: set EDGEWARD_PASSPHRASE')
  }
  if (!(v.salt instanceof Uint8Array)) throw new KeystoreError('keystore has no salt')
  try {
    return aeadDecrypt(derive(passphrase, v.salt), v.data, AAD)
  } catch {
    throw new KeystoreError('wrong passphrase or damaged keystore')
  }
}
