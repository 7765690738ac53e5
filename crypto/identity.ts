/**
 * Identities: Ed25519 signing keys written as did:key, and X25519 sealing keys.
 *
 * A signature always covers a domain-separation tag and the canonical bytes of a record:
 * sign(tag || 0x00 || bytes). A signature made for one kind of record never verifies as
 * another kind.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { base58 } from '@scure/base'
import { InvalidDidError } from './errors.ts'

const utf8 = new TextEncoder()
/** multicodec varint for ed25519-pub */
const ED25519_PUB_PREFIX = new Uint8Array([0xed, 0x01])
const MAX_DID_LENGTH = 128

export interface SigningKeyPair {
  secretKey: Uint8Array
  publicKey: Uint8Array
}

export interface SealingKeyPair {
  secretKey: Uint8Array
  publicKey: Uint8Array
}

/** A fresh Ed25519 key pair (a principal or a device). */
export function generateSigningKeyPair(): SigningKeyPair {
  const secretKey = ed25519.utils.randomSecretKey()
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) }
}

/** The Ed25519 key pair of a stored 32-byte secret key. */
export function signingKeyPairFromSecret(secretKey: Uint8Array): SigningKeyPair {
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) }
}

/** A fresh X25519 key pair, to which keys are sealed. */
export function generateSealingKeyPair(): SealingKeyPair {
  const secretKey = x25519.utils.randomSecretKey()
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) }
}

/** The X25519 key pair of a stored 32-byte secret key. */
export function sealingKeyPairFromSecret(secretKey: Uint8Array): SealingKeyPair {
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) }
}

function tagged(tag: string, bytes: Uint8Array): Uint8Array {
  const t = utf8.encode(tag)
  const out = new Uint8Array(t.length + 1 + bytes.length)
  out.set(t, 0)
  out.set(bytes, t.length + 1)
  return out
}

/*
 * Signing and verification run in node:crypto (OpenSSL's RFC 8032 Ed25519), some 30 times
 * faster than in JavaScript; noble checks each public key once for what OpenSSL does not
 * refuse (non-canonical encodings, small-order points, with which anyone could "sign").
 * Key objects are cached per key, since making one costs more than a verification.
 */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const MAX_CACHED_KEYS = 10_000
const publicKeys = new Map<string, KeyObject | null>()
const privateKeys = new Map<string, KeyObject>()

function publicKeyObject(publicKey: Uint8Array): KeyObject | null {
  const hex = Buffer.from(publicKey).toString('hex')
  let k = publicKeys.get(hex)
  if (k === undefined) {
    let acceptable = false
    try {
      acceptable = !ed25519.Point.fromBytes(publicKey, false).isSmallOrder()
    } catch {
      acceptable = false
    }
    k = acceptable
      ? createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
      : null
    if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.clear()
    publicKeys.set(hex, k)
  }
  return k
}

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  const hex = Buffer.from(secretKey).toString('hex')
  let k = privateKeys.get(hex)
  if (k === undefined) {
    k = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' })
    if (privateKeys.size >= 64) privateKeys.clear()
    privateKeys.set(hex, k)
  }
  return k
}

/** An Ed25519 signature over a domain-separation tag and `bytes`. */
export function signTagged(tag: string, bytes: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.byteLength !== 32) throw new RangeError('an Ed25519 secret key is 32 bytes')
  return new Uint8Array(sign(null, tagged(tag, bytes), privateKeyObject(secretKey)))
}

/** Whether `signature` is `publicKey`'s signature over `tag` and `bytes` (false, never a throw, for malformed input). */
export function verifyTagged(tag: string, bytes: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== 64 || publicKey.byteLength !== 32) return false
  const key = publicKeyObject(publicKey)
  if (key === null) return false
  try {
    return verify(null, tagged(tag, bytes), key, signature)
  } catch {
    // a malformed signature is simply not valid
    return false
  }
}

/** The did:key of an Ed25519 public key. */
export function didFromPublicKey(publicKey: Uint8Array): string {
  if (publicKey.byteLength !== 32) throw new InvalidDidError('Ed25519 public key must be 32 bytes')
  const bytes = new Uint8Array(34)
  bytes.set(ED25519_PUB_PREFIX, 0)
  bytes.set(publicKey, 2)
  return `did:key:z${base58.encode(bytes)}`
}

/** Keys of dids already parsed: decoding a point costs ~0.1 ms, and the same few dids recur. */
const parsedDids = new Map<string, Uint8Array>()
const MAX_PARSED_DIDS = 10_000

/** Parse a did:key holding an Ed25519 public key; throws InvalidDidError otherwise. */
export function publicKeyFromDid(did: string): Uint8Array {
  const cached = parsedDids.get(did)
  if (cached !== undefined) return cached.slice()
  const publicKey = parseDid(did)
  if (parsedDids.size >= MAX_PARSED_DIDS) parsedDids.clear()
  parsedDids.set(did, publicKey)
  return publicKey.slice()
}

function parseDid(did: string): Uint8Array {
  if (typeof did !== 'string' || did.length > MAX_DID_LENGTH || !did.startsWith('did:key:z')) {
    throw new InvalidDidError(`not a did:key: ${String(did).slice(0, 80)}`)
  }
  let bytes: Uint8Array
  try {
    bytes = base58.decode(did.slice('did:key:z'.length))
  } catch {
    throw new InvalidDidError(`did:key is not valid base58btc: ${did}`)
  }
  if (bytes.length !== 34 || bytes[0] !== ED25519_PUB_PREFIX[0] || bytes[1] !== ED25519_PUB_PREFIX[1]) {
    throw new InvalidDidError(`did:key is not an Ed25519 key: ${did}`)
  }
  const publicKey = bytes.slice(2)
  let smallOrder: boolean
  try {
    smallOrder = ed25519.Point.fromBytes(publicKey, false).isSmallOrder()
  } catch {
    throw new InvalidDidError(`did:key holds an invalid Ed25519 point: ${did}`)
  }
  // a small-order key would accept signatures that anyone can make
  if (smallOrder) throw new InvalidDidError(`did:key holds a small-order Ed25519 point: ${did}`)
  return publicKey
}

/** Whether `text` is a did:key of an Ed25519 key. */
export function isDid(text: string): boolean {
  try {
    publicKeyFromDid(text)
    return true
  } catch {
    return false
  }
}
