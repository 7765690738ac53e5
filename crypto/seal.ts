/**
 * Sealing bytes to a recipient's X25519 key with HPKE (RFC 9180) in base mode, single shot:
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
 *
 * `info` binds the sealed value to its context (e.g. the key request it answers), so a
 * sealed box lifted from one response cannot be opened as the answer to another.
 *
 * The primitives are node:crypto's (X25519, HMAC-SHA256, AES-256-GCM), with the RFC's key
 * schedule written out below: through @hpke/core's WebCrypto path a seal cost ~1.4 ms and an
 * open ~2.5 ms, most of a key release's round trip. Tests check the result against the RFC's
 * vectors and against @hpke/core in both directions.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto'
import { DecryptionError } from './errors.ts'

export interface SealedBox {
  /** the KEM encapsulated key (32 bytes) */
  enc: Uint8Array
  ct: Uint8Array
}

const utf8 = new TextEncoder()
const HPKE_V1 = utf8.encode('HPKE-v1')
/** "KEM" || I2OSP(0x0020, 2): DHKEM(X25519, HKDF-SHA256) */
const KEM_SUITE = new Uint8Array([0x4b, 0x45, 0x4d, 0x00, 0x20])
/** "HPKE" || kem 0x0020 || kdf 0x0001 (HKDF-SHA256) || aead 0x0002 (AES-256-GCM) */
const HPKE_SUITE = new Uint8Array([0x48, 0x50, 0x4b, 0x45, 0x00, 0x20, 0x00, 0x01, 0x00, 0x02])
const MODE_BASE = 0
const N_SECRET = 32
const N_K = 32
const N_N = 12
const N_T = 16
const EMPTY = new Uint8Array(0)
/** DER prefixes of X25519 keys (RFC 8410): PKCS#8 private key and SubjectPublicKeyInfo */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex')

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.byteLength
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  return out
}

function hmac(key: Uint8Array, ...data: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key)
  for (const d of data) h.update(d)
  return new Uint8Array(h.digest())
}

/** LabeledExtract (RFC 9180 §4): HKDF-Extract(salt, "HPKE-v1" || suite_id || label || ikm) */
function labeledExtract(suite: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  // HMAC pads its key with zeros, so the empty salt is HKDF's default salt of HashLen zeros
  return hmac(salt, HPKE_V1, suite, utf8.encode(label), ikm)
}

/** LabeledExpand (RFC 9180 §4), for L <= 32: one HKDF-Expand block */
function labeledExpand(suite: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, l: number): Uint8Array {
  const lengthAndV1 = concat(new Uint8Array([l >> 8, l & 0xff]), HPKE_V1)
  return hmac(prk, lengthAndV1, suite, utf8.encode(label), info, new Uint8Array([1])).subarray(0, l)
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== 32) throw new DecryptionError('an X25519 public key is 32 bytes')
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' })
}

/** Key objects of secret keys in use, with their public keys (a reader opens every release with one key). */
const secretKeyObjects = new WeakMap<Uint8Array, { sk: KeyObject; pk: Uint8Array }>()
function secretKeyObject(raw: Uint8Array): { sk: KeyObject; pk: Uint8Array } {
  let k = secretKeyObjects.get(raw)
  if (k === undefined) {
    if (raw.byteLength !== 32) throw new DecryptionError('an X25519 secret key is 32 bytes')
    const sk = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' })
    k = { sk, pk: rawPublicKey(createPublicKey(sk)) }
    secretKeyObjects.set(raw, k)
  }
  return k
}

function rawPublicKey(k: KeyObject): Uint8Array {
  const der = k.export({ format: 'der', type: 'spki' })
  return new Uint8Array(der.subarray(der.byteLength - 32))
}

/** DH (RFC 9180 §7.1.4: an all-zero shared secret, from a small-order point, is refused) */
function dh(sk: KeyObject, pk: KeyObject): Uint8Array {
  const out = new Uint8Array(diffieHellman({ privateKey: sk, publicKey: pk }))
  if (out.every(b => b === 0)) throw new DecryptionError('X25519 gave the all-zero shared secret')
  return out
}

/** ExtractAndExpand of DHKEM (RFC 9180 §4.1) */
function kemSharedSecret(dhOut: Uint8Array, enc: Uint8Array, pkR: Uint8Array): Uint8Array {
  const prk = labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dhOut)
  return labeledExpand(KEM_SUITE, prk, 'shared_secret', concat(enc, pkR), N_SECRET)
}

/** the hash of base mode's empty psk_id, the same for every seal */
let pskIdHash: Uint8Array | undefined

/** KeySchedule in base mode (RFC 9180 §5.1): the AEAD key and base nonce */
function keySchedule(sharedSecret: Uint8Array, info: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  pskIdHash ??= labeledExtract(HPKE_SUITE, EMPTY, 'psk_id_hash', EMPTY)
  const infoHash = labeledExtract(HPKE_SUITE, EMPTY, 'info_hash', info)
  const context = concat(new Uint8Array([MODE_BASE]), pskIdHash, infoHash)
  const secret = labeledExtract(HPKE_SUITE, sharedSecret, 'secret', EMPTY)
  return {
    key: labeledExpand(HPKE_SUITE, secret, 'key', context, N_K),
    nonce: labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, N_N),
  }
}

/**
 * Seal with a given ephemeral secret key (the sequence-0 message of a base-mode context, with
 * `aad`): what RFC 9180's known-answer vectors check. Everything else uses `sealTo`.
 */
export function sealWithEphemeral(
  ephemeralSecretKey: Uint8Array,
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array = EMPTY,
): SealedBox {
  const skE = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, ephemeralSecretKey]), format: 'der', type: 'pkcs8' })
  return seal(skE, rawPublicKey(createPublicKey(skE)), recipientPublicKey, plaintext, info, aad)
}

function seal(
  skE: KeyObject,
  enc: Uint8Array,
  pkR: Uint8Array,
  plaintext: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
): SealedBox {
  const shared = kemSharedSecret(dh(skE, publicKeyObject(pkR)), enc, pkR)
  const { key, nonce } = keySchedule(shared, info)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: N_T })
  cipher.setAAD(aad)
  const ct = concat(cipher.update(plaintext), cipher.final(), cipher.getAuthTag())
  return { enc, ct }
}

/** Seal `plaintext` to a recipient's X25519 public key (HPKE base mode), bound to `info`. */
export async function sealTo(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info: Uint8Array,
): Promise<SealedBox> {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return seal(privateKey, rawPublicKey(publicKey), recipientPublicKey, plaintext, info, EMPTY)
}

/** Open a sealed box with the recipient's X25519 secret key and the same `info`; DecryptionError otherwise. */
export async function openSealed(
  recipientSecretKey: Uint8Array,
  box: SealedBox,
  info: Uint8Array,
): Promise<Uint8Array> {
  try {
    if (box.ct.byteLength < N_T) throw new DecryptionError('sealed box too short')
    const { sk, pk } = secretKeyObject(recipientSecretKey)
    const shared = kemSharedSecret(dh(sk, publicKeyObject(box.enc)), box.enc, pk)
    const { key, nonce } = keySchedule(shared, info)
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: N_T })
    decipher.setAuthTag(box.ct.subarray(box.ct.byteLength - N_T))
    return concat(decipher.update(box.ct.subarray(0, box.ct.byteLength - N_T)), decipher.final())
  } catch (err) {
    throw new DecryptionError(`cannot open sealed box: ${(err as Error).message}`)
  }
}
