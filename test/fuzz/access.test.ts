/**
 * Fuzz: the key protocol (`/edgeward/keys/1.0.0`): the signed key request with the device
 * certificate inside it, the key response (release or refusal), the sealed box a release
 * carries and the key bundle inside it. Each decoder returns a value or throws its typed
 * errors: InvalidEncodingError / InvalidMessageError (and for the signed request
 * InvalidSignatureError / InvalidDidError); openSealed only DecryptionError.
 */
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { randomBytes } from '../../crypto/hash.ts'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import { openSealed, type SealedBox, sealTo } from '../../crypto/seal.ts'
import {
  createKeyRequest,
  decodeEpochKeys,
  decodeKeyRequest,
  decodeKeyResponse,
  encodeEpochKeys,
  KEY_REQUEST_TAG,
} from '../../protocols/access/messages.ts'
import { createDeviceCert } from '../../protocols/policy/records.ts'
import { fakeId, newPeerId, newPrincipal } from '../protocols/fixtures.ts'
import {
  budget,
  CODEC_ERRORS,
  changedBytes,
  checkCodec,
  checkSigned,
  decodeTypedAsync,
  SIGNED_ERRORS,
  SUITE,
} from './fuzz.ts'

const T0 = 1_700_000_000_000
const reader = newPrincipal()
const sealing = generateSealingKeyPair()
const device = createDeviceCert(reader, newPeerId(), sealing.publicKey, T0, T0 + 3_600_000)
const fields = {
  space: fakeId('1'),
  stream: 'temp',
  form: 'raw',
  epochs: [1, 2, 3],
  device: device.bytes,
  nonce: randomBytes(16),
  ts: T0,
}

describe('fuzz: key protocol', SUITE, () => {
  it('decodeKeyRequest', () => {
    const requests = [
      createKeyRequest(reader, fields),
      createKeyRequest(reader, { ...fields, form: 'aggregate:15m', grant: fakeId('2'), epochs: [0] }),
    ]
    checkSigned(
      decodeKeyRequest,
      SIGNED_ERRORS,
      requests.map(r => ({ tag: KEY_REQUEST_TAG, secretKey: reader.secretKey, body: { ...r.body }, bytes: r.bytes })),
      { strictFields: true, weight: 1.5 },
    )
  })

  it('decodeKeyResponse', () => {
    checkCodec(
      decodeKeyResponse,
      CODEC_ERRORS,
      [
        { ok: true, lease: T0 + 900_000, grant: fakeId('3'), sealed: { enc: randomBytes(32), ct: randomBytes(80) } },
        { ok: false, code: 'no-grant', reason: 'no grant covers temp' },
      ],
      {
        strictFields: true,
        extraKeys: ['lease', 'grant', 'sealed', 'code', 'reason'],
        foreignKeys: m => (m.ok === true ? ['code', 'reason'] : ['lease', 'grant', 'sealed']),
      },
    )
  })

  it('decodeEpochKeys', () => {
    checkCodec(decodeEpochKeys, CODEC_ERRORS, [
      [
        [1, randomBytes(32)],
        [2, randomBytes(32)],
      ],
      [],
    ])
  })

  it('openSealed: a changed or made-up box is refused with DecryptionError only', async () => {
    const info = randomBytes(32)
    const plaintext = encodeEpochKeys([{ epoch: 1, key: randomBytes(32) }])
    const box = await sealTo(sealing.publicKey, plaintext, info)
    const boxes: fc.Arbitrary<{ box: SealedBox; changed: boolean }> = fc.oneof(
      changedBytes(fc.constant(box.enc)).map(({ bytes }) => ({ box: { enc: bytes, ct: box.ct }, changed: true })),
      changedBytes(fc.constant(box.ct)).map(({ bytes }) => ({ box: { enc: box.enc, ct: bytes }, changed: true })),
      fc
        .record({ enc: fc.uint8Array({ maxLength: 40 }), ct: fc.uint8Array({ maxLength: 100 }) })
        .map(b => ({ box: b, changed: true })),
    )
    await fc.assert(
      fc.asyncProperty(boxes, async ({ box: b }) => {
        const out = await decodeTypedAsync(x => openSealed(sealing.secretKey, x, info), ['DecryptionError'], b)
        if (out.ok) throw new Error('a changed sealed box opened')
      }),
      budget(),
    )
  })
})
