/**
 * Fuzz: threshold custody (protocols/custody): the signed custodian set, deal and share
 * release, the share inside a sealed box, and combine. The signed decoders may only return a
 * value or throw InvalidEncodingError, InvalidMessageError, InvalidSignatureError or
 * InvalidDidError; bytes changed after signing are always refused; a re-signed body with a
 * field of the wrong type or an unknown field is refused. decodeShare throws only
 * InvalidMessageError. combine never throws on any shares, and returns a key only when it is
 * the dealt one.
 */
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { generateAeadKey } from '../../crypto/aead.ts'
import { bytesEqual } from '../../crypto/encoding.ts'
import { randomBytes, taggedHash } from '../../crypto/hash.ts'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { combine, type IndexedShare } from '../../protocols/custody/combine.ts'
import { DEAL_TAG, dealKey, openDeal, openDealtShare } from '../../protocols/custody/deal.ts'
import { CUSTODIAN_SET_TAG, createCustodianSet, openCustodianSet } from '../../protocols/custody/records.ts'
import { createShareRelease, openShareRelease, SHARE_RELEASE_TAG } from '../../protocols/custody/release.ts'
import { decodeShare, SHARE_BYTES } from '../../protocols/custody/shares.ts'
import { createDeviceCert } from '../../protocols/policy/records.ts'
import { fakeId, newPeerId, newPrincipal, type Principal } from '../protocols/fixtures.ts'
import { budget, checkSigned, decodeTyped, SIGNED_ERRORS, type SignedSample, SUITE } from './fuzz.ts'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000
const owner = newPrincipal()
const dealer = newPrincipal()
const space = fakeId('7')
const nodes = Array.from({ length: 3 }, () => {
  const principal = newPrincipal()
  const peer = newPeerId()
  const sealing = generateSealingKeyPair()
  return { principal, peer, sealing, cert: createDeviceCert(principal, peer, sealing.publicKey, T0, T0 + HOUR) }
})
const set = createCustodianSet(
  owner,
  space,
  nodes.map((n, i) =>
    i === 0
      ? { peer: n.peer, xpk: n.sealing.publicKey }
      : { peer: n.peer, xpk: n.sealing.publicKey, did: n.principal.did },
  ),
  2,
  T0,
)
const key = generateAeadKey()
const streamDeal = await dealKey(key, set.body.custodians, 2, {
  dealer,
  space,
  resource: { stream: 'temp', form: 'aggregate:15m', epoch: 3 },
  set: set.id,
  now: T0,
})
const objectDeal = await dealKey(generateAeadKey(), set.body.custodians, 1, {
  dealer,
  space,
  resource: { object: 'obj-0123456789abcdef' },
  set: set.id,
  now: T0,
})
const shares: IndexedShare[] = await Promise.all(
  nodes.map(async (n, i) => ({ index: i, share: await openDealtShare(streamDeal, i, n.sealing.secretKey) })),
)
const release = await createShareRelease(nodes[1].principal, {
  device: nodes[1].cert.bytes,
  deal: streamDeal,
  index: 1,
  share: shares[1].share,
  readerXpk: generateSealingKeyPair().publicKey,
  req: taggedHash('test/request', randomBytes(16)),
  lease: T0 + 15 * 60_000,
  now: T0,
})

function sample(tag: string, signer: Principal, rec: OpenedRecord<object>): SignedSample {
  return { tag, secretKey: signer.secretKey, body: { ...(rec.body as Record<string, unknown>) }, bytes: rec.bytes }
}

describe('fuzz: custody records', SUITE, () => {
  it('openCustodianSet', () => {
    checkSigned(openCustodianSet, SIGNED_ERRORS, [sample(CUSTODIAN_SET_TAG, owner, set)], { strictFields: true })
  })

  it('openDeal', () => {
    checkSigned(openDeal, SIGNED_ERRORS, [sample(DEAL_TAG, dealer, streamDeal), sample(DEAL_TAG, dealer, objectDeal)], {
      strictFields: true,
    })
  })

  it('openShareRelease', () => {
    checkSigned(openShareRelease, SIGNED_ERRORS, [sample(SHARE_RELEASE_TAG, nodes[1].principal, release)], {
      strictFields: true,
    })
  })
})

describe('fuzz: custody shares', SUITE, () => {
  it('decodeShare: InvalidMessageError only, and only 33 bytes with x != 0 pass', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 33, maxLength: 33 })), b => {
        const out = decodeTyped(decodeShare, ['InvalidMessageError'], b)
        if (out.ok !== (b.byteLength === SHARE_BYTES && b[SHARE_BYTES - 1] !== 0)) {
          throw new Error(`decodeShare ${out.ok ? 'accepted' : 'refused'} ${b.byteLength} bytes`)
        }
      }),
      budget(),
    )
  })

  it('combine: never throws, and returns only the dealt key, whatever shares it is given', async () => {
    const share: fc.Arbitrary<IndexedShare> = fc.oneof(
      fc.constantFrom(...shares),
      fc.record({
        index: fc.oneof(fc.integer({ min: -2, max: 20 }), fc.constantFrom(0.5, Number.NaN, 2 ** 53)),
        share: fc.oneof(
          fc.uint8Array({ minLength: 33, maxLength: 33 }),
          fc.uint8Array({ maxLength: 40 }),
          fc.constantFrom(...shares).map(s => s.share),
        ),
      }),
      fc
        .record({ s: fc.constantFrom(...shares), at: fc.nat({ max: SHARE_BYTES - 1 }), bit: fc.nat({ max: 7 }) })
        .map(({ s, at, bit }) => {
          const b = s.share.slice()
          b[at] ^= 1 << bit
          return { index: s.index, share: b }
        }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(share, { maxLength: 8 }), async list => {
        const out = await combine(streamDeal, list)
        if (out.ok && !bytesEqual(out.key, key)) throw new Error('combine returned a key that is not the dealt one')
        const good = new Set(
          list.filter(s => shares.some(g => g.index === s.index && bytesEqual(g.share, s.share))).map(s => s.index),
        )
        if (out.ok !== good.size >= 2)
          throw new Error(`combine ${out.ok ? 'made' : 'refused'} a key from ${good.size} good shares`)
      }),
      budget(),
    )
  })
})
