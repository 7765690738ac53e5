/**
 * The invite code and the redemption messages (protocols/invites.ts): round trips, the
 * address budget, and every malformed case refused with InvalidMessageError.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeCanonical, fromHex, toBase64url } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { InvalidMessageError } from '../../protocols/errors.ts'
import {
  createRedemption,
  decodeInvite,
  decodeRedeemAnswer,
  encodeInvite,
  encodeRedeemAnswer,
  hasExpired,
  INVITE_CODE_PREFIX,
  MAX_INVITE_ADDRESSES,
  MAX_INVITE_CODE_CHARS,
  openRedemption,
} from '../../protocols/invites.ts'
import { fakeId, newPeerId, newPrincipal } from './fixtures.ts'

const space = fakeId('7')
const peer = newPeerId()
const addresses = [`/ip4/192.0.2.10/tcp/4001/p2p/${peer}`, `/ip4/127.0.0.1/tcp/4001/p2p/${peer}`]
const token = randomBytes(16)
const expiresAt = Date.UTC(2030, 0, 1)
const valid = { space, name: 'plant-7', addresses, token, expiresAt }

/** A code of an arbitrary map: what a hostile or damaged code decodes to. */
const codeOf = (m: unknown) => `${INVITE_CODE_PREFIX}${toBase64url(encodeCanonical(m))}`
const fields = () => ({
  v: 1,
  s: fromHex(space),
  n: 'plant-7',
  a: addresses.map(a => multiaddr(a).bytes),
  t: token,
  e: expiresAt,
})
const refused = (code: string, why: RegExp | string = /./) =>
  assert.throws(
    () => decodeInvite(code),
    (err: Error) => err.name === InvalidMessageError.name && new RegExp(why).test(err.message),
    code.slice(0, 60),
  )

describe('invite codes', () => {
  it('round trip: what encodeInvite makes, decodeInvite gives back, with the inviter’s peer', () => {
    const code = encodeInvite(valid)
    assert.match(code, /^ew1-[A-Za-z0-9_-]+$/)
    const inv = decodeInvite(`  ${code}\n`)
    assert.deepEqual(inv, { ...valid, peer })
  })

  it('carries the inviter’s did and name when given, both or neither', () => {
    const from = { did: newPrincipal().did, name: 'Ana Ruiz' }
    assert.deepEqual(decodeInvite(encodeInvite({ ...valid, from })).from, from)
    assert.throws(() => encodeInvite({ ...valid, from: { ...from, name: 'two\nlines' } }), {
      name: 'InvalidMessageError',
    })
    assert.throws(() => encodeInvite({ ...valid, from: { ...from, name: 'x'.repeat(65) } }), {
      name: 'InvalidMessageError',
    })
    assert.throws(() => encodeInvite({ ...valid, from: { did: 'did:web:example.com', name: 'Web' } }), {
      name: 'InvalidMessageError',
    })
  })

  it('keeps at most 8 addresses, and fewer when a long name would push the code past 1 KiB', () => {
    const many = Array.from({ length: 12 }, (_, i) => `/ip6/2001:db8::${i + 1}/tcp/${4000 + i}/p2p/${peer}`)
    assert.equal(decodeInvite(encodeInvite({ ...valid, addresses: many })).addresses.length, MAX_INVITE_ADDRESSES)
    const named = Array.from(
      { length: 8 },
      (_, i) => `/dns4/gateway-${i}.plant-7.site.example.org/tcp/4001/p2p/${peer}`,
    )
    const long = decodeInvite(encodeInvite({ ...valid, name: '空'.repeat(128), addresses: named }))
    assert.ok(long.addresses.length >= 1 && long.addresses.length < MAX_INVITE_ADDRESSES)
    assert.equal(long.addresses[0], named[0], 'the first addresses are the ones kept')
  })

  it('expiry is a pure check against the clock passed in', () => {
    assert.equal(hasExpired({ expiresAt }, expiresAt - 1), false)
    assert.equal(hasExpired({ expiresAt }, expiresAt), true)
  })

  it('refuses every malformed code with InvalidMessageError', () => {
    const f = fields()
    refused('', 'start with ew1-')
    refused('ew2-AAAA', 'start with ew1-')
    refused('ew1-', 'damaged')
    refused('ew1-***', 'damaged')
    refused(`ew1-${'A'.repeat(MAX_INVITE_CODE_CHARS)}`, 'too long')
    refused(`${encodeInvite(valid)}x`, 'damaged')
    refused(codeOf([1, 2]), 'must be a map')
    refused(codeOf({ ...f, v: 2 }), 'another version')
    refused(codeOf({ ...f, x: 1 }), 'unknown field')
    for (const k of Object.keys(f)) {
      const m: Record<string, unknown> = { ...f }
      delete m[k]
      refused(codeOf(m), `lacks its ${k}`)
    }
    refused(codeOf({ ...f, s: randomBytes(31) }))
    refused(codeOf({ ...f, s: space }))
    refused(codeOf({ ...f, n: '' }))
    refused(codeOf({ ...f, n: 'two\nlines' }))
    refused(codeOf({ ...f, n: 'x'.repeat(129) }))
    refused(codeOf({ ...f, t: randomBytes(15) }))
    refused(codeOf({ ...f, e: -1 }))
    refused(codeOf({ ...f, e: 1.5 }))
    refused(codeOf({ ...f, a: [] }), 'no address')
    refused(codeOf({ ...f, a: addresses }), 'binary multiaddr')
    refused(codeOf({ ...f, a: [randomBytes(9)] }), 'does not parse')
    refused(codeOf({ ...f, a: [multiaddr('/ip4/192.0.2.1/tcp/1').bytes] }), '/p2p/PEER')
    refused(
      codeOf({ ...f, a: [f.a[0], multiaddr(`/ip4/192.0.2.1/tcp/1/p2p/${newPeerId()}`).bytes] }),
      'more than one peer',
    )
    refused(codeOf({ ...f, a: Array.from({ length: 9 }, () => f.a[0]) }), 'at most 8')
  })

  it('encodeInvite refuses what it could not hand out', () => {
    assert.throws(() => encodeInvite({ ...valid, space: 'plant-7' }), InvalidMessageError)
    assert.throws(() => encodeInvite({ ...valid, addresses: ['not an address'] }), InvalidMessageError)
    assert.throws(() => encodeInvite({ ...valid, addresses: [] }), InvalidMessageError)
  })
})

describe('redemptions and answers', () => {
  const joiner = newPrincipal()
  const joinerPeer = newPeerId()

  it('a redemption round trip verifies by the joiner’s key; one bit changed does not', () => {
    const r = createRedemption(joiner, { space, token, peer: joinerPeer })
    const opened = openRedemption(r.bytes)
    assert.equal(opened.issuer, joiner.did)
    assert.deepEqual(opened.body, { t: 'invite-redeem', iss: joiner.did, space, token, peer: joinerPeer })
    const tampered = r.bytes.slice()
    tampered[tampered.length - 1] ^= 1
    assert.throws(() => openRedemption(tampered), { name: 'InvalidSignatureError' })
  })

  it('a redemption may carry the joiner’s name, signed with the rest; a bad name is refused', () => {
    const r = createRedemption(joiner, { space, token, peer: joinerPeer, name: 'Ben Okafor' })
    assert.equal(openRedemption(r.bytes).body.name, 'Ben Okafor')
    assert.throws(() => createRedemption(joiner, { space, token, peer: joinerPeer, name: 'x'.repeat(65) }), {
      name: 'InvalidMessageError',
    })
  })

  it('answers round trip; an unknown refusal or a stray field is refused', () => {
    const grant = { id: fakeId('a'), streams: ['temp'], forms: ['raw'], notAfter: expiresAt, download: false }
    for (const a of [
      { ok: true as const },
      { ok: true as const, grant },
      { ok: false as const, refusal: 'used' as const },
    ])
      assert.deepEqual(decodeRedeemAnswer(encodeRedeemAnswer(a)), a)
    assert.throws(() => decodeRedeemAnswer(encodeCanonical({ ok: false, refusal: 'nope' })), InvalidMessageError)
    assert.throws(() => decodeRedeemAnswer(encodeCanonical({ ok: true, refusal: 'used' })), InvalidMessageError)
    assert.throws(() => decodeRedeemAnswer(encodeCanonical({ ok: 1 })), InvalidMessageError)
    assert.throws(
      () => decodeRedeemAnswer(encodeCanonical({ ok: true, grant: { ...grant, download: 'no' } })),
      InvalidMessageError,
    )
  })
})
