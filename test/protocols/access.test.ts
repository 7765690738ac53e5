import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import { openSealed, sealTo } from '../../crypto/seal.ts'
import { signRecord } from '../../crypto/signed.ts'
import {
  createKeyRequest,
  decodeEpochKeys,
  decodeKeyRequest,
  decodeKeyResponse,
  type EpochKey,
  encodeEpochKeys,
  encodeKeyResponse,
  KEY_REQUEST_TAG,
  KEYS_PROTOCOL,
  type KeyRequest,
  type KeyResponse,
  MAX_EPOCHS_PER_REQUEST,
  MAX_KEY_REQUEST_BYTES,
  MAX_KEY_RESPONSE_BYTES,
  REQUEST_WINDOW_MS,
  ReplayGuard,
  releaseInfo,
} from '../../protocols/access/messages.ts'
import { createDeviceCert } from '../../protocols/policy/records.ts'
import { editBody, fakeId, newPeerId, newPrincipal, refusesEach } from './fixtures.ts'

const T0 = 1_700_000_000_000
const reader = newPrincipal()
const deviceKeys = generateSealingKeyPair()
const devicePeer = newPeerId()
const device = createDeviceCert(reader, devicePeer, deviceKeys.publicKey, T0, T0 + 86_400_000)
const space = fakeId('5')
const grantId = fakeId('6')

function fields(over: Partial<Omit<KeyRequest, 't' | 'iss'>> = {}): Omit<KeyRequest, 't' | 'iss'> {
  return {
    space,
    stream: 'temp',
    form: 'aggregate:15m',
    epochs: [471_000, 471_001],
    grant: grantId,
    device: device.bytes,
    nonce: randomBytes(16),
    ts: T0 + 1000,
    ...over,
  }
}

const keyOf = (n: number) => new Uint8Array(32).fill(n)

describe('key request', () => {
  it('the protocol id is versioned', () => {
    assert.equal(KEYS_PROTOCOL, '/edgeward/keys/1.0.0')
  })

  it('round-trips: the decoded request and its device certificate match what was signed', () => {
    const req = createKeyRequest(reader, fields())
    const { request, device: cert } = decodeKeyRequest(req.bytes)
    assert.deepEqual(request.body, req.body)
    assert.equal(request.issuer, reader.did)
    assert.equal(request.id, req.id)
    assert.equal(cert.id, device.id)
    assert.equal(cert.issuer, reader.did)
    assert.equal(cert.body.peer, devicePeer)
    assert.deepEqual(cert.body.xpk, deviceKeys.publicKey)
  })

  it('round-trips without a named grant (the field is left out, not encoded as undefined)', () => {
    const req = createKeyRequest(reader, fields({ grant: undefined }))
    assert.equal('grant' in req.body, false)
    assert.equal('grant' in decodeKeyRequest(req.bytes).request.body, false)
  })

  it('accepts exactly MAX_EPOCHS_PER_REQUEST epochs', () => {
    const epochs = Array.from({ length: MAX_EPOCHS_PER_REQUEST }, (_, i) => i)
    const req = createKeyRequest(reader, fields({ epochs }))
    assert.equal(decodeKeyRequest(req.bytes).request.body.epochs.length, MAX_EPOCHS_PER_REQUEST)
  })

  it('refuses a request whose fields were changed after signing', () => {
    const req = createKeyRequest(reader, fields())
    for (const edit of [
      (b: Record<string, unknown>) => {
        b.epochs = [1, 2, 3]
      },
      (b: Record<string, unknown>) => {
        b.form = 'raw'
      },
      (b: Record<string, unknown>) => {
        b.ts = T0 + 2000
      },
    ]) {
      assert.throws(() => decodeKeyRequest(editBody(req.bytes, edit)), { name: 'InvalidSignatureError' })
    }
  })

  it('refuses tampered bytes anywhere in the request', () => {
    const req = createKeyRequest(reader, fields())
    for (const at of [0, 5, Math.floor(req.bytes.length / 2), req.bytes.length - 70, req.bytes.length - 1]) {
      const tampered = Uint8Array.from(req.bytes)
      tampered[at] ^= 0x01
      assert.throws(
        () => decodeKeyRequest(tampered),
        (err: Error) => ['InvalidSignatureError', 'InvalidEncodingError', 'InvalidDidError'].includes(err.name),
        `byte ${at}`,
      )
    }
  })

  it('refuses input over MAX_KEY_REQUEST_BYTES before parsing', () => {
    assert.throws(() => decodeKeyRequest(new Uint8Array(MAX_KEY_REQUEST_BYTES + 1)), {
      name: 'InvalidEncodingError',
      message: /exceeds limit/,
    })
  })

  it('refuses more than MAX_EPOCHS_PER_REQUEST epochs, on create and on decode', () => {
    const epochs = Array.from({ length: MAX_EPOCHS_PER_REQUEST + 1 }, (_, i) => i)
    assert.throws(() => createKeyRequest(reader, fields({ epochs })), { name: 'InvalidMessageError' })
    const signed = signRecord(KEY_REQUEST_TAG, { t: 'key-request', iss: reader.did, ...fields(), epochs }, reader)
    assert.ok(signed.bytes.byteLength <= MAX_KEY_REQUEST_BYTES, 'refused for its epochs, not its size')
    assert.throws(() => decodeKeyRequest(signed.bytes), { name: 'InvalidMessageError' })
  })

  const bad: [string, Partial<Omit<KeyRequest, 't' | 'iss'>>][] = [
    ['a bad stream name', { stream: 'temp/*' }],
    ['an empty stream name', { stream: '' }],
    ['an unknown form', { form: 'plain' }],
    ['no epochs', { epochs: [] }],
    ['a negative epoch', { epochs: [-1] }],
    ['a fractional epoch', { epochs: [1.5] }],
    ['a malformed grant id', { grant: 'G1' }],
    ['a malformed space id', { space: fakeId('A') }],
    ['a short nonce', { nonce: new Uint8Array(8) }],
    ['a long nonce', { nonce: new Uint8Array(33) }],
    ['a negative time', { ts: -1 }],
    ['an empty device certificate', { device: new Uint8Array(0) }],
  ]
  for (const [name, over] of bad) {
    it(`refuses ${name}, on create and on decode`, () => {
      assert.throws(() => createKeyRequest(reader, fields(over)), { name: 'InvalidMessageError' })
      const body = { t: 'key-request', iss: reader.did, ...fields(over) }
      assert.throws(() => decodeKeyRequest(signRecord(KEY_REQUEST_TAG, body, reader).bytes), {
        name: 'InvalidMessageError',
      })
    })
  }

  it('refuses an unknown extra field', () => {
    const body = { t: 'key-request', iss: reader.did, ...fields(), purpose: 'billing' }
    assert.throws(() => decodeKeyRequest(signRecord(KEY_REQUEST_TAG, body, reader).bytes), {
      name: 'InvalidMessageError',
      message: /unknown field purpose/,
    })
  })

  it('refuses a device field that is not a signed device certificate', () => {
    const req = createKeyRequest(reader, fields({ device: encodeCanonical({ peer: devicePeer }) }))
    assert.throws(() => decodeKeyRequest(req.bytes), { name: 'InvalidEncodingError' })
    const notCert = createKeyRequest(reader, fields({ device: req.bytes }))
    assert.throws(() => decodeKeyRequest(notCert.bytes), { name: 'InvalidSignatureError' })
  })

  it('a signed record of another kind does not open as a key request', () => {
    assert.throws(() => decodeKeyRequest(device.bytes), { name: 'InvalidSignatureError' })
  })
})

describe('key response', () => {
  const sealed = { enc: new Uint8Array(32).fill(7), ct: new Uint8Array(48).fill(9) }
  const ok: KeyResponse = { ok: true, lease: T0 + 900_000, grant: grantId, sealed }
  const refusal: KeyResponse = { ok: false, code: 'revoked', reason: 'the grant has been revoked' }

  it('round-trips a release', () => {
    assert.deepEqual(decodeKeyResponse(encodeKeyResponse(ok)), ok)
  })

  it('round-trips a refusal', () => {
    assert.deepEqual(decodeKeyResponse(encodeKeyResponse(refusal)), refusal)
  })

  const malformed: [string, unknown][] = [
    ['no ok field', { code: 'x', reason: 'y' }],
    ['ok that is not a boolean', { ok: 1, code: 'x', reason: 'y' }],
    ['a release without sealed keys', { ok: true, lease: 1, grant: grantId }],
    ['a release without a lease', { ok: true, grant: grantId, sealed }],
    ['a release with a negative lease', { ok: true, lease: -1, grant: grantId, sealed }],
    ['a release with a lease as text', { ok: true, lease: '1', grant: grantId, sealed }],
    ['a release without a grant', { ok: true, lease: 1, sealed }],
    ['a release with a malformed grant id', { ok: true, lease: 1, grant: 'x', sealed }],
    ['enc of 31 bytes', { ok: true, lease: 1, grant: grantId, sealed: { enc: new Uint8Array(31), ct: sealed.ct } }],
    ['enc of 33 bytes', { ok: true, lease: 1, grant: grantId, sealed: { enc: new Uint8Array(33), ct: sealed.ct } }],
    ['enc as a string', { ok: true, lease: 1, grant: grantId, sealed: { enc: 'x'.repeat(32), ct: sealed.ct } }],
    [
      'a ciphertext shorter than a tag',
      { ok: true, lease: 1, grant: grantId, sealed: { enc: sealed.enc, ct: new Uint8Array(15) } },
    ],
    [
      'sealed with an extra field',
      { ok: true, lease: 1, grant: grantId, sealed: { ...sealed, iv: new Uint8Array(12) } },
    ],
    ['sealed as a list', { ok: true, lease: 1, grant: grantId, sealed: [sealed.enc, sealed.ct] }],
    ['a refusal without a code', { ok: false, reason: 'no' }],
    ['a refusal with an empty reason', { ok: false, code: 'revoked', reason: '' }],
    ['a refusal with a code as a number', { ok: false, code: 3, reason: 'no' }],
    ['an unknown field', { ok: false, code: 'revoked', reason: 'no', hint: 'retry' }],
    ['a list instead of a map', [true, 1]],
    ['a release that also carries a refusal', { ok: true, lease: 1, grant: grantId, sealed, code: 'x', reason: 'y' }],
    ['a refusal that also carries sealed keys', { ok: false, code: 'revoked', reason: 'no', sealed }],
    ['a refusal code that is not a kebab-case word', { ok: false, code: 'Revoked!\n', reason: 'no' }],
  ]
  refusesEach(decodeKeyResponse, malformed)

  it('refuses input over MAX_KEY_RESPONSE_BYTES and input that is not canonical CBOR', () => {
    assert.throws(() => decodeKeyResponse(new Uint8Array(MAX_KEY_RESPONSE_BYTES + 1)), {
      name: 'InvalidEncodingError',
    })
    assert.throws(() => decodeKeyResponse(new Uint8Array([0xa1, 0x62, 0x6f])), { name: 'InvalidEncodingError' })
  })
})

describe('epoch key bundle', () => {
  const keys: EpochKey[] = [
    { epoch: 471_000, key: keyOf(1) },
    { epoch: 471_001, key: keyOf(2) },
  ]

  it('round-trips, keeping order', () => {
    assert.deepEqual(decodeEpochKeys(encodeEpochKeys(keys)), keys)
    assert.deepEqual(decodeEpochKeys(encodeEpochKeys([])), [])
  })

  const malformed: [string, unknown][] = [
    ['a key of 31 bytes', [[1, new Uint8Array(31)]]],
    ['a key of 33 bytes', [[1, new Uint8Array(33)]]],
    ['a key as a string', [[1, 'k'.repeat(32)]]],
    ['a negative epoch', [[-1, keyOf(1)]]],
    ['a fractional epoch', [[1.5, keyOf(1)]]],
    ['an entry with three items', [[1, keyOf(1), 0]]],
    ['an entry as a map', [{ epoch: 1, key: keyOf(1) }]],
    ['a map instead of a list', { 1: keyOf(1) }],
    ['too many entries', Array.from({ length: MAX_EPOCHS_PER_REQUEST + 1 }, (_, i) => [i, keyOf(1)])],
  ]
  refusesEach(decodeEpochKeys, malformed)
})

describe('sealing released keys to the requesting device', () => {
  const keys: EpochKey[] = [
    { epoch: 10, key: randomBytes(32) },
    { epoch: 11, key: randomBytes(32) },
  ]

  it('keys sealed to the device for one request open with the device secret and that request’s info', async () => {
    const req = createKeyRequest(reader, fields())
    const { request, device: cert } = decodeKeyRequest(req.bytes)
    const sealed = await sealTo(cert.body.xpk, encodeEpochKeys(keys), releaseInfo(request.bytes))
    const wire = encodeKeyResponse({ ok: true, lease: T0 + 900_000, grant: grantId, sealed })
    const res = decodeKeyResponse(wire)
    assert.ok(res.ok)
    const opened = await openSealed(deviceKeys.secretKey, res.sealed, releaseInfo(req.bytes))
    assert.deepEqual(
      decodeEpochKeys(opened).map(k => [k.epoch, toHex(k.key)]),
      keys.map(k => [k.epoch, toHex(k.key)]),
    )
  })

  it('a sealed box lifted from one response does not open as the answer to another request', async () => {
    const first = createKeyRequest(reader, fields())
    const second = createKeyRequest(reader, fields())
    assert.notEqual(toHex(releaseInfo(first.bytes)), toHex(releaseInfo(second.bytes)))
    const sealed = await sealTo(deviceKeys.publicKey, encodeEpochKeys(keys), releaseInfo(first.bytes))
    await assert.rejects(openSealed(deviceKeys.secretKey, sealed, releaseInfo(second.bytes)), {
      name: 'DecryptionError',
    })
  })

  it('another device’s secret does not open the keys', async () => {
    const req = createKeyRequest(reader, fields())
    const sealed = await sealTo(deviceKeys.publicKey, encodeEpochKeys(keys), releaseInfo(req.bytes))
    await assert.rejects(openSealed(generateSealingKeyPair().secretKey, sealed, releaseInfo(req.bytes)), {
      name: 'DecryptionError',
    })
  })
})

describe('ReplayGuard', () => {
  const W = REQUEST_WINDOW_MS
  const nonce = () => randomBytes(16)

  it('accepts a fresh request and refuses the same nonce again', () => {
    const guard = new ReplayGuard()
    const n = nonce()
    assert.equal(guard.check(reader.did, n, T0, T0), undefined)
    assert.equal(guard.check(reader.did, n, T0, T0 + 1), 'replayed request')
    assert.equal(
      guard.check(reader.did, Uint8Array.from(n), T0 + 5, T0 + W),
      'replayed request',
      'equal bytes, new array',
    )
  })

  it('tells nonces and issuers apart', () => {
    const guard = new ReplayGuard()
    const n = nonce()
    assert.equal(guard.check(reader.did, n, T0, T0), undefined)
    assert.equal(guard.check(reader.did, nonce(), T0, T0), undefined)
    assert.equal(guard.check(newPrincipal().did, n, T0, T0), undefined)
  })

  it('accepts request times up to the window away from now, either way, and refuses beyond', () => {
    const guard = new ReplayGuard()
    assert.equal(guard.check(reader.did, nonce(), T0 - W, T0), undefined)
    assert.equal(guard.check(reader.did, nonce(), T0 + W, T0), undefined)
    assert.match(guard.check(reader.did, nonce(), T0 - W - 1, T0) ?? '', /clock window/)
    assert.match(guard.check(reader.did, nonce(), T0 + W + 1, T0) ?? '', /clock window/)
  })

  it('a replay is refused for as long as the request time is acceptable', () => {
    const guard = new ReplayGuard()
    const n = nonce()
    assert.equal(guard.check(reader.did, n, T0, T0), undefined)
    // at now = ts + W the request time is still inside the window, so the nonce must still be remembered
    assert.equal(guard.check(reader.did, n, T0, T0 + W), 'replayed request')
    assert.match(guard.check(reader.did, n, T0, T0 + W + 1) ?? '', /clock window/)
  })

  it('forgets a nonce once its window has passed (the entry is evicted)', () => {
    // with room for one entry, a second nonce is refused until the first one is evicted
    const guard = new ReplayGuard(W, 1)
    const n = nonce()
    assert.equal(guard.check(reader.did, n, T0, T0), undefined)
    assert.match(guard.check(reader.did, nonce(), T0, T0 + 1) ?? '', /too many/)
    assert.match(guard.check(reader.did, nonce(), T0 + W, T0 + W) ?? '', /too many/, 'not evicted at ts + W')
    assert.equal(guard.check(reader.did, nonce(), T0 + W + 1, T0 + W + 1), undefined, 'evicted after ts + W')
    // the first nonce, with a new time, is fresh again
    const g2 = new ReplayGuard(W, 10)
    assert.equal(g2.check(reader.did, n, T0, T0), undefined)
    assert.equal(g2.check(reader.did, n, T0 + 2 * W, T0 + 2 * W), undefined)
    assert.equal(g2.check(reader.did, n, T0 + 2 * W, T0 + 2 * W), 'replayed request')
  })

  it('a custom window is honoured', () => {
    const guard = new ReplayGuard(1000)
    assert.equal(guard.check(reader.did, nonce(), T0 - 1000, T0), undefined)
    assert.match(guard.check(reader.did, nonce(), T0 - 1001, T0) ?? '', /clock window/)
  })
})
