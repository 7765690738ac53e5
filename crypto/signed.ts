/**
 * Signed records: the canonical CBOR map `{ body: bstr, sig: bstr }`, where `body` is the
 * canonical encoding of a map whose `iss` field is the signer's did:key and `sig` is
 * Ed25519 over (tag || 0x00 || body). The tag names the kind and version of record
 * (`edgeward/grant/v1`), so a signature never transfers between kinds.
 *
 * `openSignedRecord` refuses oversize input before parsing, non-canonical bytes, a body
 * without a parsable issuer, and a signature that does not verify.
 */
import { decodeCanonical, encodeCanonical, toHex } from './encoding.ts'
import { InvalidEncodingError, InvalidSignatureError } from './errors.ts'
import { taggedHash } from './hash.ts'
import { didFromPublicKey, publicKeyFromDid, type SigningKeyPair, signTagged, verifyTagged } from './identity.ts'

export interface OpenedRecord<T> {
  body: T
  /** canonical bytes of the body (what the signature covers) */
  bodyBytes: Uint8Array
  /** the whole signed record, as received */
  bytes: Uint8Array
  sig: Uint8Array
  /** signer's did:key (equal to body.iss) */
  issuer: string
  /** hex id: tagged hash of the body */
  id: string
}

/** A signed record's id: the tagged hash of its canonical body, in hex. */
export function recordId(tag: string, bodyBytes: Uint8Array): string {
  return toHex(taggedHash(`${tag}/id`, bodyBytes))
}

/** Sign `body` (whose `iss` must be the signer) under the domain tag `tag`: canonical bytes, signature and id. */
export function signRecord<T extends { iss: string }>(tag: string, body: T, signer: SigningKeyPair): OpenedRecord<T> {
  if (body.iss !== didFromPublicKey(signer.publicKey)) {
    throw new InvalidSignatureError('body.iss must be the signer did')
  }
  const bodyBytes = encodeCanonical(body)
  const sig = signTagged(tag, bodyBytes, signer.secretKey)
  const bytes = encodeCanonical({ body: bodyBytes, sig })
  return { body, bodyBytes, bytes, sig, issuer: body.iss, id: recordId(tag, bodyBytes) }
}

/** Decode a signed record (at most `maxBytes`) and verify its signature under `tag` by its issuer's key; throws a typed error. */
export function openSignedRecord<T extends { iss: string }>(
  tag: string,
  bytes: Uint8Array,
  maxBytes: number,
): OpenedRecord<T> {
  const outer = decodeCanonical(bytes, maxBytes) as { body?: unknown; sig?: unknown } | null
  if (
    outer == null ||
    typeof outer !== 'object' ||
    Object.keys(outer).length !== 2 ||
    !(outer.body instanceof Uint8Array) ||
    !(outer.sig instanceof Uint8Array)
  ) {
    throw new InvalidEncodingError('signed record must be { body, sig }')
  }
  const body = decodeCanonical(outer.body, maxBytes) as T | null
  if (body == null || typeof body !== 'object' || Array.isArray(body) || typeof body.iss !== 'string') {
    throw new InvalidEncodingError('signed record body must be a map with an issuer')
  }
  const publicKey = publicKeyFromDid(body.iss)
  if (!verifyTagged(tag, outer.body, outer.sig, publicKey)) {
    throw new InvalidSignatureError(`signature does not verify for ${tag}`)
  }
  return { body, bodyBytes: outer.body, bytes, sig: outer.sig, issuer: body.iss, id: recordId(tag, outer.body) }
}
