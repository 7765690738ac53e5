/**
 * Signed tree heads of a key holder's audit log: (log, size, root, time), signed by the
 * holder's principal. Any two heads of one log must be consistent (RFC 9162 §2.1.4); two
 * signed heads that cannot both be true are equivocation evidence.
 */
import { encodeCanonical } from '../../crypto/encoding.ts'
import type { SigningKeyPair } from '../../crypto/identity.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { asMap, bytes, decodeCanonicalMap, did, int, list, PEER_ID_PATTERN, str } from '../validate.ts'

export const TREE_HEAD_TAG = 'edgeward/tree-head/v1'
export const AUDIT_PROOF_PROTOCOL = '/edgeward/audit-proof/1.0.0'
export const MAX_HEAD_BYTES = 1024
export const MAX_PROOF_HASHES = 128

/** The gossip topic of a space's signed tree heads and equivocation evidence. */
export function auditTopic(space: string): string {
  return `/edgeward/audit/1.0.0/${space}`
}

export interface TreeHead {
  t: 'head'
  iss: string
  /** the peer id of the key holder whose log this is */
  log: string
  size: number
  root: Uint8Array
  ts: number
}

/** Sign a tree head of a key holder's log: its size and root at time `ts`. */
export function signTreeHead(
  signer: SigningKeyPair & { did: string },
  log: string,
  size: number,
  root: Uint8Array,
  ts: number,
): OpenedRecord<TreeHead> {
  return signRecord<TreeHead>(TREE_HEAD_TAG, { t: 'head', iss: signer.did, log, size, root, ts }, signer)
}

/** Decode and verify a signed tree head; throws a typed error. */
export function openTreeHead(data: Uint8Array): OpenedRecord<TreeHead> {
  const rec = openSignedRecord<TreeHead>(TREE_HEAD_TAG, data, MAX_HEAD_BYTES)
  const m = asMap(rec.body, 'tree head', ['t', 'iss', 'log', 'size', 'root', 'ts'])
  if (m.t !== 'head') throw new InvalidMessageError('not a tree head')
  did(m, 'iss')
  str(m, 'log', 64, PEER_ID_PATTERN)
  int(m, 'size')
  bytes(m, 'root', 32, 32)
  int(m, 'ts')
  return rec
}

/** Proof requests to a log's holder: consistency between two sizes, or inclusion of one entry. */
export type ProofRequest =
  | { kind: 'consistency'; from: number; to: number }
  | { kind: 'inclusion'; index: number; size: number }

/** Decode a request for an inclusion or a consistency proof; InvalidMessageError otherwise. */
export function decodeProofRequest(data: Uint8Array): ProofRequest {
  const m = decodeCanonicalMap(data, 256, 'proof request', ['kind', 'from', 'to', 'index', 'size'])
  if (m.kind === 'consistency') {
    asMap(m, 'consistency request', ['kind', 'from', 'to'])
    return { kind: 'consistency', from: int(m, 'from'), to: int(m, 'to') }
  }
  if (m.kind === 'inclusion') {
    asMap(m, 'inclusion request', ['kind', 'index', 'size'])
    return { kind: 'inclusion', index: int(m, 'index'), size: int(m, 'size') }
  }
  throw new InvalidMessageError('unknown proof kind')
}

/** Decode the hashes of a proof response; InvalidMessageError otherwise. */
export function decodeProofResponse(data: Uint8Array): Uint8Array[] {
  const m = decodeCanonicalMap(data, 64 * (MAX_PROOF_HASHES + 2), 'proof response', ['proof'])
  return list(m, 'proof', MAX_PROOF_HASHES, v => {
    if (!(v instanceof Uint8Array) || v.byteLength !== 32) throw new InvalidMessageError('a proof hash is 32 bytes')
    return v
  })
}

/** Gossiped evidence that a log equivocated: two heads signed by its key that cannot both hold. */
export interface Equivocation {
  log: string
  a: Uint8Array
  b: Uint8Array
  /** why the two cannot both be true */
  reason: string
}

/** What travels on a space's audit topic: a signed head, or evidence of equivocation. */
export type AuditMessage =
  | { t: 'head'; head: Uint8Array }
  | { t: 'equivocation'; a: Uint8Array; b: Uint8Array; reason: string }

/** Encode a message of the audit topic (a head, or equivocation evidence). */
export function encodeAuditMessage(m: AuditMessage): Uint8Array {
  return encodeCanonical(m)
}

/** Decode a message of the audit topic; InvalidMessageError otherwise. */
export function decodeAuditMessage(data: Uint8Array): AuditMessage {
  const m = decodeCanonicalMap(data, 4 * MAX_HEAD_BYTES, 'audit message', ['t', 'head', 'a', 'b', 'reason'])
  if (m.t === 'head') {
    asMap(m, 'head message', ['t', 'head'])
    return { t: 'head', head: bytes(m, 'head', 1, MAX_HEAD_BYTES) }
  }
  if (m.t === 'equivocation') {
    asMap(m, 'equivocation message', ['t', 'a', 'b', 'reason'])
    return {
      t: 'equivocation',
      a: bytes(m, 'a', 1, MAX_HEAD_BYTES),
      b: bytes(m, 'b', 1, MAX_HEAD_BYTES),
      reason: str(m, 'reason', 512),
    }
  }
  throw new InvalidMessageError('unknown audit message')
}

/** Encode a request for a proof. */
export function encodeProofRequest(r: ProofRequest): Uint8Array {
  return encodeCanonical(r)
}

/** Encode the hashes of a proof. */
export function encodeProofResponse(proof: Uint8Array[]): Uint8Array {
  return encodeCanonical({ proof })
}
