/**
 * Gossip topics, stream protocols and the catch-up messages for policy documents.
 *
 * Catch-up (`/edgeward/policy-sync/1.0.0`): the asker sends the space id and its document
 * heads; the answerer sends back the signed change envelopes the asker lacks (every one
 * of them is validated on arrival like a gossiped one). Both directions run when two
 * peers connect, so either side's missing changes flow.
 */
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { InvalidMessageError } from '../errors.ts'
import { MAX_ENVELOPE_BYTES } from '../policy/document.ts'
import { asMap, ID_PATTERN, list, str } from '../validate.ts'

export const POLICY_SYNC_PROTOCOL = '/edgeward/policy-sync/1.0.0'
/** the protocol of edgeward's own Kademlia DHT */
export const DHT_PROTOCOL = '/edgeward/kad/1.0.0'
export const MAX_SYNC_REQUEST_BYTES = 64 * 1024
export const MAX_SYNC_HEADS = 256
/** one page of envelopes in a sync answer */
export const MAX_SYNC_PAGE = 512
export const MAX_SYNC_RESPONSE_BYTES = MAX_SYNC_PAGE * (MAX_ENVELOPE_BYTES + 16)

/** The gossip topic of a space's policy changes. */
export function policyTopic(space: string): string {
  return `/edgeward/policy/1.0.0/${space}`
}

/** The gossip topic of a space's encrypted records. */
export function readingsTopic(space: string): string {
  return `/edgeward/readings/1.0.0/${space}`
}

export interface SyncRequest {
  space: string
  heads: string[]
}

export interface SyncResponse {
  envelopes: Uint8Array[]
  /** true when more envelopes remain: ask again with the new heads */
  more: boolean
}

/** Encode a policy catch-up request: the space and the change heads the asker has. */
export function encodeSyncRequest(req: SyncRequest): Uint8Array {
  return encodeCanonical({ space: req.space, heads: req.heads })
}

/** Decode a policy catch-up request; InvalidMessageError otherwise. */
export function decodeSyncRequest(data: Uint8Array): SyncRequest {
  const m = asMap(decodeCanonical(data, MAX_SYNC_REQUEST_BYTES), 'sync request', ['space', 'heads'])
  return {
    space: str(m, 'space', 64, ID_PATTERN),
    heads: list(m, 'heads', MAX_SYNC_HEADS, v => {
      if (typeof v !== 'string' || !ID_PATTERN.test(v)) throw new InvalidMessageError('bad head')
      return v
    }),
  }
}

/** Encode a page of change envelopes, and whether more follow. */
export function encodeSyncResponse(res: SyncResponse): Uint8Array {
  return encodeCanonical({ envelopes: res.envelopes, more: res.more })
}

/** Decode a page of change envelopes; InvalidMessageError otherwise. */
export function decodeSyncResponse(data: Uint8Array): SyncResponse {
  const m = asMap(decodeCanonical(data, MAX_SYNC_RESPONSE_BYTES), 'sync response', ['envelopes', 'more'])
  if (typeof m.more !== 'boolean') throw new InvalidMessageError('more must be a boolean')
  return {
    envelopes: list(m, 'envelopes', MAX_SYNC_PAGE, v => {
      if (!(v instanceof Uint8Array) || v.byteLength > MAX_ENVELOPE_BYTES) throw new InvalidMessageError('bad envelope')
      return v
    }),
    more: m.more,
  }
}
