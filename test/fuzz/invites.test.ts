/**
 * Fuzz: invite codes and the invite protocol's messages. An invite code is text a person
 * pastes: whatever it is, decodeInvite returns an invite or throws InvalidMessageError, never
 * anything else. The redemption (signed) and the answer keep to their layers' typed errors.
 */
import { describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import fc from 'fast-check'
import { encodeCanonical, fromHex, toBase64url } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import {
  createRedemption,
  decodeInvite,
  decodeRedeemAnswer,
  encodeInvite,
  INVITE_CODE_PREFIX,
  openRedemption,
  REDEMPTION_TAG,
} from '../../protocols/invites.ts'
import { fakeId, newPeerId, newPrincipal } from '../protocols/fixtures.ts'
import {
  applyEdit,
  budget,
  CODEC_ERRORS,
  checkCodec,
  checkSigned,
  decodeTyped,
  deepCbor,
  fieldEdit,
  mutatedBytes,
  randomBytes as randomInput,
  SIGNED_ERRORS,
  SUITE,
} from './fuzz.ts'

const INVITE_ERRORS = ['InvalidMessageError'] as const
const space = fakeId('5')
const peer = newPeerId()
const fields = {
  v: 1,
  s: fromHex(space),
  n: 'plant-7',
  a: [multiaddr(`/ip4/192.0.2.1/tcp/4001/p2p/${peer}`).bytes, multiaddr(`/ip6/::1/tcp/4001/p2p/${peer}`).bytes],
  t: randomBytes(16),
  e: Date.UTC(2030, 0, 1),
}
const asCode = (b: Uint8Array) => `${INVITE_CODE_PREFIX}${toBase64url(b)}`

describe('fuzz: invite codes', SUITE, () => {
  it('decodeInvite: random text, damaged codes and edited fields give an invite or InvalidMessageError only', () => {
    const valid = encodeInvite({
      space,
      name: 'plant-7',
      addresses: [`/ip4/192.0.2.1/tcp/4001/p2p/${peer}`],
      token: randomBytes(16),
      expiresAt: fields.e,
    })
    decodeTyped(decodeInvite, INVITE_ERRORS, valid)
    const codes: fc.Arbitrary<string>[] = [
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 200 }).map(s => `${INVITE_CODE_PREFIX}${s}`),
      fc.oneof(randomInput, deepCbor).map(asCode),
      mutatedBytes(fc.constant(encodeCanonical(fields))).map(asCode),
      fieldEdit(fields).map(e => asCode(encodeCanonical(applyEdit(fields, e)))),
      fc
        .tuple(fc.nat({ max: valid.length - 1 }), fc.string({ minLength: 1, maxLength: 3 }))
        .map(([i, s]) => valid.slice(0, i) + s + valid.slice(i + 1)),
    ]
    fc.assert(
      fc.property(fc.oneof(...codes), code => {
        decodeTyped(decodeInvite, INVITE_ERRORS, code)
      }),
      budget(),
    )
  })

  it('openRedemption: signed battery', () => {
    const joiner = newPrincipal()
    const r = createRedemption(joiner, { space, token: randomBytes(16), peer: newPeerId() })
    checkSigned(
      openRedemption,
      SIGNED_ERRORS,
      [
        {
          tag: REDEMPTION_TAG,
          secretKey: joiner.secretKey,
          body: r.body as unknown as Record<string, unknown>,
          bytes: r.bytes,
        },
      ],
      { strictFields: true },
    )
  })

  it('decodeRedeemAnswer', () => {
    checkCodec(
      decodeRedeemAnswer,
      CODEC_ERRORS,
      [
        { ok: true },
        { ok: false, refusal: 'used' },
        { ok: true, grant: { id: fakeId('a'), streams: ['temp'], forms: ['raw'], notAfter: 5, download: true } },
      ],
      { strictFields: true },
    )
  })
})
