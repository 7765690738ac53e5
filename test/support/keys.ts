/**
 * Key requests on the wire, as a reader's device sends them: a fresh request signed by a
 * node's principal with its device certificate, the key holder's decoded answer, and the
 * epoch keys a release sealed to that device; and a stranger, a principal of its own that
 * certified some peer as its device.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes } from '../../crypto/hash.ts'
import { didFromPublicKey, generateSealingKeyPair, generateSigningKeyPair } from '../../crypto/identity.ts'
import { openSealed } from '../../crypto/seal.ts'
import type { Identity } from '../../node/identity.ts'
import type { EdgewardLibp2p } from '../../node/network.ts'
import { request } from '../../node/services/stream-io.ts'
import {
  createKeyRequest,
  decodeEpochKeys,
  decodeKeyResponse,
  type EpochKey,
  KEYS_PROTOCOL,
  type KeyRequest,
  type KeyResponse,
  MAX_KEY_RESPONSE_BYTES,
  releaseInfo,
} from '../../protocols/access/messages.ts'
import { createDeviceCert } from '../../protocols/policy/records.ts'
import { HOUR } from './peers.ts'

type Requester = { identity: Pick<Identity, 'principal' | 'device'> }

/**
 * A principal of its own, with no grant anywhere, that certified the peer `peerId` as its
 * device (with a new sealing key) for the hour to come: a requester for `keyRequest`.
 */
export function stranger(peerId: string): Requester {
  const kp = generateSigningKeyPair()
  const principal = { ...kp, did: didFromPublicKey(kp.publicKey) }
  const now = Date.now()
  const device = createDeviceCert(principal, peerId, generateSealingKeyPair().publicKey, now - 1000, now + HOUR)
  return { identity: { principal, device } }
}

/**
 * A key request signed by `by`'s principal, carrying its device certificate, with a new nonce
 * and the time now; the raw form of epoch 0 unless `fields` say otherwise.
 */
export function keyRequest(
  by: Requester,
  fields: Pick<KeyRequest, 'space' | 'stream'> & Partial<Omit<KeyRequest, 't' | 'iss'>>,
) {
  return createKeyRequest(by.identity.principal, {
    form: 'raw',
    epochs: [0],
    device: by.identity.device.bytes,
    nonce: randomBytes(16),
    ts: Date.now(),
    ...fields,
  })
}

/** Send `body` to the key holder `holder` (its peer id) over `from`; its decoded answer. */
export async function askKeys(from: EdgewardLibp2p, holder: string, body: Uint8Array): Promise<KeyResponse> {
  return decodeKeyResponse(await request(from, peerIdFromString(holder), KEYS_PROTOCOL, body, MAX_KEY_RESPONSE_BYTES))
}

/** The epoch keys a release sealed to `to`'s device for the request `requestBytes`. */
export async function openRelease(
  to: { identity: Pick<Identity, 'sealing'> },
  res: Extract<KeyResponse, { ok: true }>,
  requestBytes: Uint8Array,
): Promise<EpochKey[]> {
  return decodeEpochKeys(await openSealed(to.identity.sealing.secretKey, res.sealed, releaseInfo(requestBytes)))
}
