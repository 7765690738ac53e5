/**
 * Fixtures shared by the protocol tests: principals with their did:key, libp2p-shaped peer
 * ids, and byte surgery on signed records (the tampering the decoders must refuse).
 */
import { base58 } from '@scure/base'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { didFromPublicKey, generateSigningKeyPair, type SigningKeyPair } from '../../crypto/identity.ts'

export type Principal = SigningKeyPair & { did: string }

export function newPrincipal(): Principal {
  const kp = generateSigningKeyPair()
  return { ...kp, did: didFromPublicKey(kp.publicKey) }
}

/** A peer id shaped like libp2p's Ed25519 ones: identity multihash of the protobuf public key ("12D3KooW…"). */
export function newPeerId(): string {
  const mh = new Uint8Array(38)
  mh.set([0x00, 0x24, 0x08, 0x01, 0x12, 0x20], 0)
  mh.set(randomBytes(32), 6)
  return base58.encode(mh)
}

/** 64 lowercase hex characters, shaped like a record or space id. */
export function fakeId(fill: string): string {
  return fill.repeat(64).slice(0, 64)
}

export interface SignedParts {
  body: Uint8Array
  sig: Uint8Array
}

export function splitSigned(bytes: Uint8Array): SignedParts {
  return decodeCanonical(bytes, 1 << 20) as SignedParts
}

export function joinSigned(parts: SignedParts): Uint8Array {
  return encodeCanonical({ body: parts.body, sig: parts.sig })
}

/** The same signed record with one bit of its signature flipped. */
export function flipSignatureBit(bytes: Uint8Array, bit = 0): Uint8Array {
  const parts = splitSigned(bytes)
  const sig = Uint8Array.from(parts.sig)
  sig[bit >> 3] ^= 1 << (bit & 7)
  return joinSigned({ body: parts.body, sig })
}

/** The same signature over a body whose fields were changed after signing. */
export function editBody(bytes: Uint8Array, edit: (body: Record<string, unknown>) => void): Uint8Array {
  const parts = splitSigned(bytes)
  const body = decodeCanonical(parts.body, 1 << 20) as Record<string, unknown>
  edit(body)
  return joinSigned({ body: encodeCanonical(body), sig: parts.sig })
}
