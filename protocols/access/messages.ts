/**
 * Key request / key release: the wire messages between a reader and a key holder on
 * `/edgeward/keys/1.0.0`, and the replay guard.
 *
 * A KeyRequest is signed by the requesting principal and carries the device certificate
 * of the device it comes from; the key holder checks that the libp2p connection's remote
 * peer is that device. A KeyResponse either refuses with a code and a reason, or carries
 * the data keys sealed (HPKE) to the device's X25519 key, with `info` bound to the hash
 * of the request, and a lease end.
 * Guarantees: each decoder refuses oversize input before parsing and checks every field.
 */
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { taggedHash } from '../../crypto/hash.ts'
import type { SigningKeyPair } from '../../crypto/identity.ts'
import type { SealedBox } from '../../crypto/seal.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../../crypto/signed.ts'
import { InvalidMessageError } from '../errors.ts'
import { type DeviceCert, FORM_PATTERN, openDeviceCert } from '../policy/records.ts'
import { asMap, bytes, did, ID_PATTERN, list, NAME_PATTERN, optStr, str, time } from '../validate.ts'

export const KEYS_PROTOCOL = '/edgeward/keys/1.0.0'
export const KEY_REQUEST_TAG = 'edgeward/key-request/v1'
export const MAX_KEY_REQUEST_BYTES = 16 * 1024
export const MAX_KEY_RESPONSE_BYTES = 64 * 1024
export const MAX_EPOCHS_PER_REQUEST = 256
/** how far a request's time may be from the key holder's clock */
export const REQUEST_WINDOW_MS = 2 * 60 * 1000
/** the most policy heads a key request names */
export const MAX_REQUEST_HEADS = 32
/** refusal codes are short kebab-case words, e.g. `no-grant`, `revoked` */
const REFUSAL_CODE_PATTERN = /^[a-z][a-z0-9-]{0,63}$/

export interface KeyRequest {
  t: 'key-request'
  iss: string
  space: string
  stream: string
  form: string
  epochs: number[]
  grant?: string
  /** the signed device certificate of the requesting device */
  device: Uint8Array
  nonce: Uint8Array
  ts: number
  /**
   * the heads of the requester's policy document: a custodian that lacks one of them catches
   * up (with the requester first) before it decides, or refuses saying so
   */
  heads?: string[]
}

export interface OpenedKeyRequest {
  request: OpenedRecord<KeyRequest>
  device: OpenedRecord<DeviceCert>
}

export type KeyResponse =
  | { ok: true; lease: number; grant: string; sealed: SealedBox }
  | { ok: false; code: string; reason: string }

export interface EpochKey {
  epoch: number
  key: Uint8Array
}

/** Sign a key request from `principal`. */
export function createKeyRequest(
  principal: SigningKeyPair & { did: string },
  fields: Omit<KeyRequest, 't' | 'iss'>,
): OpenedRecord<KeyRequest> {
  const body: KeyRequest = { t: 'key-request', iss: principal.did, ...fields }
  if (body.grant === undefined) delete body.grant
  if (body.heads === undefined) delete body.heads
  checkKeyRequest(body as unknown as Record<string, unknown>)
  return signRecord(KEY_REQUEST_TAG, body, principal)
}

function checkKeyRequest(m: Record<string, unknown>): void {
  asMap(m, 'key request', ['t', 'iss', 'space', 'stream', 'form', 'epochs', 'grant', 'device', 'nonce', 'ts', 'heads'])
  if (m.t !== 'key-request') throw new InvalidMessageError('not a key request')
  did(m, 'iss')
  str(m, 'space', 64, ID_PATTERN)
  str(m, 'stream', 64, NAME_PATTERN)
  str(m, 'form', 32, FORM_PATTERN)
  const epochs = list(m, 'epochs', MAX_EPOCHS_PER_REQUEST, v => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidMessageError('bad epoch')
    return v
  })
  if (epochs.length === 0) throw new InvalidMessageError('a key request names at least one epoch')
  optStr(m, 'grant', 64, ID_PATTERN)
  bytes(m, 'device', 1, 4096)
  bytes(m, 'nonce', 16, 32)
  time(m, 'ts')
  if (m.heads !== undefined) {
    list(m, 'heads', MAX_REQUEST_HEADS, v => {
      if (typeof v !== 'string' || !ID_PATTERN.test(v)) throw new InvalidMessageError('bad head')
      return v
    })
  }
}

/** Decode and verify a signed key request and the device certificate it carries; throws a typed error. */
export function decodeKeyRequest(data: Uint8Array): OpenedKeyRequest {
  const request = openSignedRecord<KeyRequest>(KEY_REQUEST_TAG, data, MAX_KEY_REQUEST_BYTES)
  checkKeyRequest(request.body as unknown as Record<string, unknown>)
  const device = openDeviceCert(request.body.device)
  return { request, device }
}

/** The HPKE `info` for keys released in answer to one request. */
export function releaseInfo(requestBytes: Uint8Array): Uint8Array {
  return taggedHash('edgeward/key-release/v1', requestBytes)
}

/** Encode a key holder's answer: keys sealed to the device with a lease, or a refusal. */
export function encodeKeyResponse(res: KeyResponse): Uint8Array {
  return encodeCanonical(res)
}

/** Decode a key holder's answer; InvalidMessageError otherwise. */
export function decodeKeyResponse(data: Uint8Array): KeyResponse {
  const value = decodeCanonical(data, MAX_KEY_RESPONSE_BYTES)
  const ok = (value as { ok?: unknown } | null)?.ok
  if (ok === true) {
    const m = asMap(value, 'key release', ['ok', 'lease', 'grant', 'sealed'])
    const sealed = asMap(m.sealed, 'sealed', ['enc', 'ct'])
    return {
      ok: true,
      lease: time(m, 'lease'),
      grant: str(m, 'grant', 64, ID_PATTERN),
      sealed: { enc: bytes(sealed, 'enc', 32, 32), ct: bytes(sealed, 'ct', 16, MAX_KEY_RESPONSE_BYTES) },
    }
  }
  if (ok === false) {
    const m = asMap(value, 'key refusal', ['ok', 'code', 'reason'])
    return { ok: false, code: str(m, 'code', 64, REFUSAL_CODE_PATTERN), reason: str(m, 'reason', 512) }
  }
  throw new InvalidMessageError('key response must say ok true or false')
}

/** Encode the (epoch, key) pairs that a key release seals. */
export function encodeEpochKeys(keys: EpochKey[]): Uint8Array {
  return encodeCanonical(keys.map(k => [k.epoch, k.key]))
}

/** Decode the (epoch, key) pairs of an opened key release; InvalidMessageError otherwise. */
export function decodeEpochKeys(data: Uint8Array): EpochKey[] {
  const v = decodeCanonical(data, MAX_KEY_RESPONSE_BYTES)
  if (!Array.isArray(v) || v.length > MAX_EPOCHS_PER_REQUEST) throw new InvalidMessageError('bad key bundle')
  return v.map(item => {
    if (!Array.isArray(item) || item.length !== 2) throw new InvalidMessageError('bad key bundle entry')
    const [epoch, key] = item
    if (!Number.isSafeInteger(epoch) || epoch < 0 || !(key instanceof Uint8Array) || key.byteLength !== 32) {
      throw new InvalidMessageError('bad key bundle entry')
    }
    return { epoch, key }
  })
}

/**
 * Replay protection: a request is fresh if its time is within REQUEST_WINDOW_MS of `now`
 * and its (issuer, nonce) has not been seen inside the window. Pure apart from its own
 * memory; the caller passes `now`.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>()
  private readonly windowMs: number
  private readonly maxEntries: number

  constructor(windowMs = REQUEST_WINDOW_MS, maxEntries = 1_000_000) {
    this.windowMs = windowMs
    this.maxEntries = maxEntries
  }

  /** Returns a refusal reason, or undefined if fresh (and records it as seen). */
  check(issuer: string, nonce: Uint8Array, ts: number, now: number): string | undefined {
    if (Math.abs(now - ts) > this.windowMs) return 'request time is outside the allowed clock window'
    this.evict(now)
    const key = `${issuer}/${Buffer.from(nonce).toString('hex')}`
    if (this.seen.has(key)) return 'replayed request'
    if (this.seen.size >= this.maxEntries) return 'too many requests in the replay window'
    this.seen.set(key, ts + this.windowMs)
    return undefined
  }

  private evict(now: number): void {
    for (const [k, until] of this.seen) {
      // entries are kept in arrival order, which is close to expiry order; one that lingers only makes the guard stricter
      if (until >= now) break
      this.seen.delete(k)
    }
  }
}
