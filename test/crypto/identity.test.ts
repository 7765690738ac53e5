import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { InvalidDidError } from '../../crypto/errors.ts'
import {
  didFromPublicKey,
  generateSealingKeyPair,
  generateSigningKeyPair,
  isDid,
  publicKeyFromDid,
  sealingKeyPairFromSecret,
  signingKeyPairFromSecret,
  signTagged,
  verifyTagged,
} from '../../crypto/identity.ts'
import { bytes, hexOf } from '../support/crypto.ts'

const utf8 = new TextEncoder()

function isInvalidDid(err: unknown): boolean {
  return err instanceof InvalidDidError && err.name === 'InvalidDidError'
}

/** base58btc decoding written out here, so the did:key vectors are checked without @scure/base. */
function base58Decode(text: string): Uint8Array {
  const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
  let n = 0n
  for (const ch of text) {
    const digit = alphabet.indexOf(ch)
    if (digit < 0) throw new Error(`not base58: ${ch}`)
    n = n * 58n + BigInt(digit)
  }
  const out: number[] = []
  while (n > 0n) {
    out.unshift(Number(n % 256n))
    n /= 256n
  }
  for (const ch of text) {
    if (ch !== '1') break
    out.unshift(0)
  }
  return new Uint8Array(out)
}

function flipBit(b: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = new Uint8Array(b)
  copy[index] ^= 1 << bit
  return copy
}

describe('did:key', () => {
  it('round-trips a generated key', () => {
    for (let i = 0; i < 5; i++) {
      const { publicKey } = generateSigningKeyPair()
      const did = didFromPublicKey(publicKey)
      assert.match(did, /^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/)
      assert.deepEqual(publicKeyFromDid(did), publicKey)
      assert.equal(isDid(did), true)
    }
  })

  // did:key spec test vectors, test-vectors/ed25519-x25519.json in github.com/w3c-ccg/did-method-key
  // (commit 801b0a91ce5af882c389ca399fa1fd1a75229c09): Ed25519 keys derived from the seeds 00..00 and 00..01.
  const didKeyVectors = [
    {
      seed: '0000000000000000000000000000000000000000000000000000000000000000',
      did: 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp',
      publicKeyBase58: '4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS',
    },
    {
      seed: '0000000000000000000000000000000000000000000000000000000000000001',
      did: 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG',
      publicKeyBase58: '6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt',
    },
  ]
  for (const v of didKeyVectors) {
    it(`decodes the did:key spec vector ${v.did.slice(0, 20)}…`, () => {
      const key = base58Decode(v.publicKeyBase58)
      assert.equal(key.length, 32)
      // the multibase body is the ed25519-pub multicodec varint 0xed 0x01 followed by the key
      const multicodec = base58Decode(v.did.slice('did:key:z'.length))
      assert.equal(hexOf(multicodec), `ed01${hexOf(key)}`)
      assert.deepEqual(publicKeyFromDid(v.did), key)
      // and the key is the one the seed derives, written back as the same did
      assert.deepEqual(ed25519.getPublicKey(bytes(v.seed)), key)
      assert.equal(didFromPublicKey(key), v.did)
      assert.deepEqual(signingKeyPairFromSecret(bytes(v.seed)).publicKey, key)
    })
  }

  it('didFromPublicKey refuses a key that is not 32 bytes', () => {
    for (const n of [0, 31, 33, 64]) {
      assert.throws(() => didFromPublicKey(new Uint8Array(n)), isInvalidDid)
    }
  })

  const good = didKeyVectors[0].did
  const key = base58Decode(didKeyVectors[0].publicKeyBase58)
  function didOf(multicodecAndKey: Uint8Array): string {
    // base58btc encoding, the inverse of base58Decode above
    const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
    let n = BigInt(`0x${hexOf(multicodecAndKey) || '0'}`)
    let out = ''
    while (n > 0n) {
      out = alphabet[Number(n % 58n)] + out
      n /= 58n
    }
    for (const b of multicodecAndKey) {
      if (b !== 0) break
      out = `1${out}`
    }
    return `did:key:z${out}`
  }
  function withPrefix(prefix: number[], body: Uint8Array): Uint8Array {
    return new Uint8Array([...prefix, ...body])
  }

  it('builds the same did as the local base58 encoder (guards the test helpers)', () => {
    assert.equal(didOf(withPrefix([0xed, 0x01], key)), good)
  })

  const refused: [string, unknown][] = [
    ['garbage', 'hello'],
    ['the empty string', ''],
    ['a bare prefix', 'did:key:'],
    ['a bare multibase prefix', 'did:key:z'],
    ['another did method', good.replace('did:key:', 'did:web:')],
    ['an upper-case method', good.replace('did:key:', 'DID:KEY:')],
    ['a non-base58btc multibase prefix', good.replace('did:key:z', 'did:key:f')],
    ['characters outside base58', 'did:key:z6Mk0OIl'],
    ['leading whitespace', ` ${good}`],
    ['trailing whitespace', `${good} `],
    ['a did URL fragment', `${good}#${good.slice(8)}`],
    ['an X25519 key (multicodec 0xec)', 'did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW'],
    ['a secp256k1 multicodec (0xe7)', didOf(withPrefix([0xe7, 0x01], key))],
    ['a multicodec whose second byte differs (0xed 0x02)', didOf(withPrefix([0xed, 0x02], key))],
    ['the ed25519-priv multicodec (0x1300)', didOf(withPrefix([0x80, 0x26], key))],
    ['a one-byte prefix', didOf(withPrefix([0xed], key))],
    ['a 31-byte key', didOf(withPrefix([0xed, 0x01], key.subarray(0, 31)))],
    ['a 33-byte key', didOf(withPrefix([0xed, 0x01], new Uint8Array([...key, 0])))],
    ['a leading zero byte', didOf(withPrefix([0x00, 0xed, 0x01], key))],
    ['a point that is not on the curve (y = p, non-canonical)', didOf(withPrefix([0xed, 0x01], invalidPoint()))],
    ['a string over the length limit', `${good}${'1'.repeat(200)}`],
    ['a very long string', `did:key:z${'2'.repeat(100_000)}`],
    ['a number', 42],
    ['undefined', undefined],
  ]
  for (const [what, did] of refused) {
    it(`publicKeyFromDid refuses ${what}`, () => {
      assert.throws(() => publicKeyFromDid(did as string), isInvalidDid)
      assert.equal(isDid(did as string), false)
    })
  }
})

/** y = p = 2^255 - 19, little-endian: a non-canonical encoding, not a valid point */
function invalidPoint(): Uint8Array {
  const b = new Uint8Array(32).fill(0xff)
  b[0] = 0xed
  b[31] = 0x7f
  return b
}

describe('signTagged / verifyTagged', () => {
  const tag = 'edgeward/test/v1'
  const message = utf8.encode('a grant for alice, 48 hours')
  const alice = generateSigningKeyPair()
  const bob = generateSigningKeyPair()
  const sig = signTagged(tag, message, alice.secretKey)

  it('verifies a signature by the right key over the same tag and bytes', () => {
    assert.equal(sig.length, 64)
    assert.equal(verifyTagged(tag, message, sig, alice.publicKey), true)
  })

  it('signs Ed25519 over tag || 0x00 || bytes, deterministically', () => {
    const framed = new Uint8Array([...utf8.encode(tag), 0, ...message])
    assert.equal(ed25519.verify(sig, framed, alice.publicKey), true)
    assert.deepEqual(signTagged(tag, message, alice.secretKey), sig)
  })

  it('fails under a different tag', () => {
    for (const other of ['edgeward/test/v2', 'edgeward/grant/v1', '', `${tag} `, tag.toUpperCase()]) {
      assert.equal(verifyTagged(other, message, sig, alice.publicKey), false, other)
    }
  })

  it('fails when the tag boundary moves into the message', () => {
    // tag "ab" + message "c" must differ from tag "a" + message "bc"
    const s = signTagged('ab', utf8.encode('c'), alice.secretKey)
    assert.equal(verifyTagged('a', utf8.encode('bc'), s, alice.publicKey), false)
  })

  it('fails on a modified message', () => {
    for (const i of [0, 5, message.length - 1]) {
      assert.equal(verifyTagged(tag, flipBit(message, i), sig, alice.publicKey), false)
    }
    assert.equal(verifyTagged(tag, message.subarray(0, message.length - 1), sig, alice.publicKey), false)
    assert.equal(verifyTagged(tag, new Uint8Array([...message, 0]), sig, alice.publicKey), false)
  })

  it('fails on a modified signature (R half and S half)', () => {
    for (const i of [0, 13, 31, 32, 47, 63]) {
      for (const bit of [0, 7]) {
        assert.equal(verifyTagged(tag, message, flipBit(sig, i, bit), alice.publicKey), false, `byte ${i} bit ${bit}`)
      }
    }
  })

  it('fails under the wrong key', () => {
    assert.equal(verifyTagged(tag, message, sig, bob.publicKey), false)
    assert.equal(verifyTagged(tag, message, signTagged(tag, message, bob.secretKey), alice.publicKey), false)
  })

  it('returns false, without throwing, on malformed key or signature lengths', () => {
    for (const n of [0, 31, 33, 64]) {
      assert.equal(verifyTagged(tag, message, sig, new Uint8Array(n)), false, `key of ${n} bytes`)
    }
    for (const n of [0, 63, 65, 128]) {
      assert.equal(verifyTagged(tag, message, new Uint8Array(n), alice.publicKey), false, `signature of ${n} bytes`)
    }
    assert.equal(verifyTagged(tag, message, sig.subarray(0, 63), alice.publicKey), false)
    assert.equal(verifyTagged(tag, message, new Uint8Array([...sig, 0]), alice.publicKey), false)
  })

  it('returns false, without throwing, on a key that is not a curve point', () => {
    assert.equal(verifyTagged(tag, message, sig, invalidPoint()), false)
  })

  it('returns false on a signature whose S is not reduced (S + L)', () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n
    const s = BigInt(`0x${hexOf(sig.slice(32).reverse())}`) + L
    const sBytes = bytes(s.toString(16).padStart(64, '0')).reverse()
    const malleated = new Uint8Array([...sig.subarray(0, 32), ...sBytes])
    assert.equal(verifyTagged(tag, message, malleated, alice.publicKey), false)
  })

  // A small-order public key (here: the identity point and the point of order 2) lets anyone
  // "sign" every message under every tag with R = identity, S = 0. The module promises that a
  // signature made for one kind of record never verifies as another kind.
  it('no signature verifies under a small-order public key', () => {
    const identity = new Uint8Array(32)
    identity[0] = 1
    const orderTwo = new Uint8Array(32).fill(0xff)
    orderTwo[0] = 0xec
    orderTwo[31] = 0x7f
    const forged = new Uint8Array(64)
    forged[0] = 1 // R = identity point, S = 0
    const accepted: string[] = []
    for (const [name, pk] of [
      ['identity', identity],
      ['order 2', orderTwo],
    ] as const) {
      for (const t of ['edgeward/grant/v1', 'edgeward/revocation/v1']) {
        if (verifyTagged(t, utf8.encode(`anything ${t}`), forged, pk)) accepted.push(`${name} / ${t}`)
      }
    }
    assert.deepEqual(accepted, [], `forged signature accepted under small-order keys: ${accepted.join(', ')}`)
  })
})

describe('sealing key pairs', () => {
  it('derive the X25519 public key from the secret', () => {
    const pair = generateSealingKeyPair()
    assert.equal(pair.secretKey.length, 32)
    assert.equal(pair.publicKey.length, 32)
    assert.deepEqual(sealingKeyPairFromSecret(pair.secretKey).publicKey, pair.publicKey)
    assert.notDeepEqual(generateSealingKeyPair().publicKey, pair.publicKey)
  })

  it('match the RFC 7748 §6.1 X25519 example (Alice)', () => {
    const alice = sealingKeyPairFromSecret(bytes('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'))
    assert.equal(hexOf(alice.publicKey), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
  })
})

interface Rfc8032Vector {
  name: string
  secretKey: string
  publicKey: string
  message: string
  signature: string
}

describe('RFC 8032 §7.1 Ed25519 test vectors, against @noble/curves', () => {
  const file = JSON.parse(readFileSync(new URL('../vectors/rfc8032/ed25519.json', import.meta.url), 'utf8')) as {
    vectors: Rfc8032Vector[]
  }

  it('holds the five vectors of §7.1', () => {
    assert.deepEqual(
      file.vectors.map(v => v.name),
      ['TEST 1', 'TEST 2', 'TEST 3', 'TEST 1024', 'TEST SHA(abc)'],
    )
    assert.equal(file.vectors[3].message.length, 2 * 1023)
  })

  it('TEST SHA(abc) signs the SHA-512 digest of "abc"', () => {
    const digest = createHash('sha512').update('abc').digest('hex')
    assert.equal(file.vectors[4].message, digest)
  })

  for (const v of file.vectors) {
    it(`${v.name}: public key, signature bytes, verification`, () => {
      const secretKey = bytes(v.secretKey)
      const msg = bytes(v.message)
      assert.equal(hexOf(ed25519.getPublicKey(secretKey)), v.publicKey)
      assert.equal(hexOf(ed25519.sign(msg, secretKey)), v.signature)
      assert.equal(ed25519.verify(bytes(v.signature), msg, bytes(v.publicKey)), true)
      if (msg.length > 0) assert.equal(ed25519.verify(bytes(v.signature), flipBit(msg, 0), bytes(v.publicKey)), false)
      // our wrapper derives the same key
      assert.equal(hexOf(signingKeyPairFromSecret(secretKey).publicKey), v.publicKey)
    })
  }
})
