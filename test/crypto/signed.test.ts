import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeCanonical, encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { InvalidEncodingError, InvalidSignatureError } from '../../crypto/errors.ts'
import { taggedHash } from '../../crypto/hash.ts'
import { didFromPublicKey, generateSigningKeyPair, type SigningKeyPair, signTagged } from '../../crypto/identity.ts'
import { openSignedRecord, recordId, signRecord } from '../../crypto/signed.ts'

const TAG = 'edgeward/grant/v1'
const MAX = 4096

interface Grant {
  iss: string
  sub: string
  notBefore: number
  notAfter: number
  forms: string[]
}

function errorNamed(name: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof Error && err.name === name
}

function grantBy(signer: SigningKeyPair): Grant {
  return {
    iss: didFromPublicKey(signer.publicKey),
    sub: 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG',
    notBefore: 1_700_000_000_000,
    notAfter: 1_700_172_800_000,
    forms: ['raw', 'aggregate:1h'],
  }
}

/** Compare bytes by value: encodeCanonical may hand back a Buffer, decodeCanonical a Uint8Array. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, message?: string): void {
  assert.equal(toHex(actual), toHex(expected), message)
}

/** Build an envelope by hand, so tests can put anything in it. */
function envelope(body: unknown, sig: Uint8Array): Uint8Array {
  return encodeCanonical({ body: encodeCanonical(body), sig })
}

describe('signRecord / openSignedRecord', () => {
  const alice = generateSigningKeyPair()
  const mallory = generateSigningKeyPair()
  const grant = grantBy(alice)
  const signed = signRecord(TAG, grant, alice)

  it('round-trips body, issuer, signature and id', () => {
    const opened = openSignedRecord<Grant>(TAG, signed.bytes, MAX)
    assert.deepEqual(opened.body, grant)
    assert.equal(opened.issuer, grant.iss)
    assertSameBytes(opened.bodyBytes, signed.bodyBytes)
    assertSameBytes(opened.sig, signed.sig)
    assertSameBytes(opened.bytes, signed.bytes)
    assert.equal(opened.id, signed.id)
  })

  it('writes the envelope as the canonical map { body: bstr, sig: bstr }', () => {
    const outer = decodeCanonical(signed.bytes, MAX) as Record<string, unknown>
    assert.deepEqual(Object.keys(outer).sort(), ['body', 'sig'])
    assertSameBytes(outer.body as Uint8Array, encodeCanonical(grant))
    assert.equal((outer.sig as Uint8Array).length, 64)
  })

  it('gives a stable id: the tagged hash of the canonical body', () => {
    assert.match(signed.id, /^[0-9a-f]{64}$/)
    assert.equal(signed.id, toHex(taggedHash(`${TAG}/id`, encodeCanonical(grant))))
    assert.equal(signed.id, recordId(TAG, signed.bodyBytes))
    // same body, keys in another order, signed again: same id and the same bytes (Ed25519 is deterministic)
    const reordered: Grant = {
      forms: ['raw', 'aggregate:1h'],
      notAfter: grant.notAfter,
      sub: grant.sub,
      notBefore: grant.notBefore,
      iss: grant.iss,
    }
    const again = signRecord(TAG, reordered, alice)
    assert.equal(again.id, signed.id)
    assertSameBytes(again.bytes, signed.bytes)
  })

  it('gives different ids to different bodies and to different kinds of record', () => {
    assert.notEqual(signRecord(TAG, { ...grant, notAfter: grant.notAfter + 1 }, alice).id, signed.id)
    assert.notEqual(signRecord('edgeward/revocation/v1', grant, alice).id, signed.id)
  })

  it('refuses a signature by another key whose body claims the first key as iss', () => {
    const bodyBytes = encodeCanonical(grant)
    const forged = encodeCanonical({ body: bodyBytes, sig: signTagged(TAG, bodyBytes, mallory.secretKey) })
    assert.throws(() => openSignedRecord(TAG, forged, MAX), errorNamed('InvalidSignatureError'))
  })

  it('refuses a record opened under another tag', () => {
    for (const other of ['edgeward/revocation/v1', 'edgeward/grant/v2', `${TAG}/id`, '']) {
      assert.throws(() => openSignedRecord(other, signed.bytes, MAX), errorNamed('InvalidSignatureError'), other)
    }
  })

  it('refuses a body changed after signing', () => {
    // still canonical, still issued by alice, only a value differs
    const tampered = envelope({ ...grant, notAfter: grant.notAfter + 3_600_000 }, signed.sig)
    assert.throws(() => openSignedRecord(TAG, tampered, MAX), errorNamed('InvalidSignatureError'))
    const widened = envelope({ ...grant, forms: ['raw', 'aggregate:1m'] }, signed.sig)
    assert.throws(() => openSignedRecord(TAG, widened, MAX), errorNamed('InvalidSignatureError'))
  })

  it('refuses every single-bit change anywhere in the record', () => {
    const names = new Set(['InvalidEncodingError', 'InvalidSignatureError', 'InvalidDidError'])
    for (let i = 0; i < signed.bytes.length; i++) {
      const damaged = new Uint8Array(signed.bytes) // a copy, whatever kind of view bytes is
      damaged[i] ^= 1 << (i % 8)
      assert.throws(
        () => openSignedRecord(TAG, damaged, MAX),
        (err: unknown) => err instanceof Error && names.has(err.name),
        `byte ${i} of ${signed.bytes.length}`,
      )
    }
  })

  it('refuses extra, missing or mistyped fields in the envelope', () => {
    const { bodyBytes, sig } = signed
    const cases: [string, unknown][] = [
      ['an extra field', { body: bodyBytes, sig, x: 1 }],
      ['an extra field holding a second signature', { body: bodyBytes, sig, sig2: sig }],
      ['no sig', { body: bodyBytes }],
      ['no body', { sig }],
      ['sig as text', { body: bodyBytes, sig: toHex(sig) }],
      ['body as a map instead of bytes', { body: grant, sig }],
      ['an array [body, sig]', [bodyBytes, sig]],
      ['a bare byte string', bodyBytes],
      ['null', null],
    ]
    for (const [what, outer] of cases) {
      assert.throws(() => openSignedRecord(TAG, encodeCanonical(outer), MAX), errorNamed('InvalidEncodingError'), what)
    }
  })

  it('refuses a body that is not canonical, even with a valid signature over it', () => {
    // { iss, ... } with keys out of canonical order: a different byte string for the same map
    const body = grantBy(alice)
    const canonical = encodeCanonical(body)
    const issEntry = encodeCanonical({ iss: body.iss }).subarray(1) // the encoded "iss" key and value
    const others = encodeCanonical({
      sub: body.sub,
      forms: body.forms,
      notAfter: body.notAfter,
      notBefore: body.notBefore,
    })
    const nonCanonical = new Uint8Array([0xa5, ...others.subarray(1), ...issEntry])
    assert.notDeepEqual(nonCanonical, canonical)
    assert.equal(nonCanonical.length, canonical.length)
    const record = encodeCanonical({ body: nonCanonical, sig: signTagged(TAG, nonCanonical, alice.secretKey) })
    assert.throws(() => openSignedRecord(TAG, record, MAX), errorNamed('InvalidEncodingError'))
  })

  it('refuses an envelope that is not canonical', () => {
    // canonical order is { sig, body } ("sig" encodes shorter); write body first
    const sigEntry = encodeCanonical({ sig: signed.sig }).subarray(1)
    const bodyEntry = encodeCanonical({ body: signed.bodyBytes }).subarray(1)
    assertSameBytes(new Uint8Array([0xa2, ...sigEntry, ...bodyEntry]), signed.bytes)
    const swapped = new Uint8Array([0xa2, ...bodyEntry, ...sigEntry])
    assert.throws(() => openSignedRecord(TAG, swapped, MAX), errorNamed('InvalidEncodingError'))
  })

  it('refuses input over maxBytes, and accepts it at exactly maxBytes', () => {
    const n = signed.bytes.length
    assert.equal(openSignedRecord(TAG, signed.bytes, n).id, signed.id)
    assert.throws(() => openSignedRecord(TAG, signed.bytes, n - 1), errorNamed('InvalidEncodingError'))
    const huge = new Uint8Array(10 * MAX)
    assert.throws(() => openSignedRecord(TAG, huge, MAX), errorNamed('InvalidEncodingError'))
  })

  it('refuses a body whose iss is not a did:key', () => {
    for (const iss of ['alice', 'did:web:alice.example', `${grant.iss}x`, '']) {
      const body = { ...grant, iss }
      const bodyBytes = encodeCanonical(body)
      const record = encodeCanonical({ body: bodyBytes, sig: signTagged(TAG, bodyBytes, alice.secretKey) })
      assert.throws(() => openSignedRecord(TAG, record, MAX), errorNamed('InvalidDidError'), iss)
    }
  })

  it('refuses a body with no iss, an iss that is not text, or a body that is not a map', () => {
    const bodies: [string, unknown][] = [
      ['no iss', { sub: grant.sub }],
      ['iss as bytes', { ...grant, iss: alice.publicKey }],
      ['iss as a number', { ...grant, iss: 1 }],
      ['an array', [grant.iss]],
      ['a string', grant.iss],
      ['null', null],
    ]
    for (const [what, body] of bodies) {
      const bodyBytes = encodeCanonical(body)
      const record = encodeCanonical({ body: bodyBytes, sig: signTagged(TAG, bodyBytes, alice.secretKey) })
      assert.throws(() => openSignedRecord(TAG, record, MAX), errorNamed('InvalidEncodingError'), what)
    }
  })

  it('signRecord refuses a body whose iss is not the signer', () => {
    assert.throws(() => signRecord(TAG, grantBy(mallory), alice), errorNamed('InvalidSignatureError'))
    assert.throws(() => signRecord(TAG, { ...grant, iss: 'alice' }, alice), errorNamed('InvalidSignatureError'))
    assert.doesNotThrow(() => signRecord(TAG, grant, alice))
  })

  it('throws typed errors', () => {
    try {
      openSignedRecord(TAG, new Uint8Array([0xa0]), MAX)
      assert.fail('expected a refusal')
    } catch (err) {
      assert.ok(err instanceof InvalidEncodingError)
    }
    try {
      openSignedRecord('edgeward/other/v1', signed.bytes, MAX)
      assert.fail('expected a refusal')
    } catch (err) {
      assert.ok(err instanceof InvalidSignatureError)
    }
  })
})

describe('signed records, properties the protocols rely on', () => {
  // Anyone can write R = identity, S = 0 as a signature for a small-order issuer key; such a
  // record opens under every tag, so an issuer did:key must never be a small-order point.
  it('refuses a record "signed" under a small-order issuer key', () => {
    const identity = new Uint8Array(32)
    identity[0] = 1
    const body = { iss: didFromPublicKey(identity), sub: 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG' }
    const sig = new Uint8Array(64)
    sig[0] = 1
    const record = envelope(body, sig)
    assert.throws(
      () => openSignedRecord(TAG, record, MAX),
      (err: unknown) =>
        err instanceof Error && (err.name === 'InvalidSignatureError' || err.name === 'InvalidDidError'),
    )
  })

  // A TypeScript body with an optional field left undefined is an ordinary value. CBOR can
  // write `undefined`, but openSignedRecord (decodeCanonical) refuses it: a record signed with
  // one could never be opened. signRecord must refuse it at signing time, with a typed error,
  // and sign the same body without the field.
  it('refuses to sign what could not be opened: a field left undefined, and other values CBOR cannot carry canonically', () => {
    const alice = generateSigningKeyPair()
    const base = grantBy(alice)
    const unreadable: [string, Record<string, unknown>][] = [
      ['an optional field left undefined', { parent: undefined }],
      ['undefined in a list', { forms: ['raw', undefined] }],
      ['NaN', { notAfter: Number.NaN }],
      ['Infinity', { notAfter: Number.POSITIVE_INFINITY }],
      ['a bigint', { notAfter: 1n }],
      ['a Map', { forms: new Map([['raw', true]]) }],
    ]
    for (const [what, fields] of unreadable) {
      assert.throws(() => signRecord(TAG, { ...base, ...fields }, alice), errorNamed('InvalidEncodingError'), what)
    }
    // the same body without the undefined field signs, and opens to the same body
    const { parent: _, ...defined } = { ...base, parent: undefined as string | undefined }
    const signed = signRecord(TAG, defined, alice)
    const opened = openSignedRecord<Grant>(TAG, signed.bytes, MAX)
    assert.deepEqual(opened.body, base)
    assert.equal(opened.id, signed.id)
  })
})
