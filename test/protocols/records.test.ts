import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeCanonical, encodeCanonical, toHex } from '../../crypto/encoding.ts'
import { generateSealingKeyPair, signTagged } from '../../crypto/identity.ts'
import { type OpenedRecord, signRecord } from '../../crypto/signed.ts'
import {
  createDeviceCert,
  createGenesis,
  createGrant,
  createRevocation,
  createStream,
  type Grant,
  MAX_RECORD_BYTES,
  openDeviceCert,
  openGenesis,
  openGrant,
  openRevocation,
  openStream,
  spaceIdOf,
  TAGS,
} from '../../protocols/policy/records.ts'
import {
  editBody,
  fakeId,
  flipSignatureBit,
  joinSigned,
  newPeerId,
  newPrincipal,
  newSpace,
  splitSigned,
  T0,
} from './fixtures.ts'

const holder = newPeerId()
const { owner, genesis, space } = newSpace('facility-7', { holders: [holder] })
const reader = newPrincipal()
const attacker = newPrincipal()
const devicePeer = newPeerId()
const deviceXpk = generateSealingKeyPair().publicKey

const stream = createStream(owner, space, 'temp', 3_600_000, T0 + 1)
const grantFields = {
  space,
  sub: reader.did,
  streams: ['temp'],
  forms: ['raw', 'aggregate:15m'],
  nbf: T0,
  exp: T0 + 48 * 3_600_000,
}
const grant = createGrant(owner, grantFields, T0 + 2)
const revokeGrant = createRevocation(owner, space, { grant: grant.id }, T0 + 3, 'contract ended')
const revokeSubject = createRevocation(owner, space, { subject: reader.did }, T0 + 4)
const revokeDevice = createRevocation(owner, space, { device: devicePeer }, T0 + 5)
const device = createDeviceCert(reader, devicePeer, deviceXpk, T0, T0 + 365 * 86_400_000)

type Opener = (data: Uint8Array) => OpenedRecord<unknown>
const kinds: { kind: string; record: OpenedRecord<unknown>; open: Opener }[] = [
  { kind: 'genesis', record: genesis, open: openGenesis },
  { kind: 'stream', record: stream, open: openStream },
  { kind: 'grant', record: grant, open: openGrant },
  { kind: 'revocation', record: revokeGrant, open: openRevocation },
  { kind: 'device', record: device, open: openDeviceCert },
]

function assertSameRecord(opened: OpenedRecord<unknown>, created: OpenedRecord<unknown>): void {
  assert.deepEqual(opened.body, created.body)
  assert.equal(opened.id, created.id)
  assert.equal(opened.issuer, created.issuer)
  assert.equal(toHex(opened.bodyBytes), toHex(created.bodyBytes))
  assert.equal(toHex(opened.sig), toHex(created.sig))
  assert.equal(toHex(opened.bytes), toHex(created.bytes))
}

describe('policy records: create and open round trip', () => {
  it('a space genesis opens to the same body, and the space id is its record id', () => {
    const opened = openGenesis(genesis.bytes)
    assertSameRecord(opened, genesis)
    assert.equal(opened.body.iss, owner.did)
    assert.deepEqual(opened.body.holders, [holder])
    assert.equal(opened.body.nonce.byteLength, 16)
    assert.match(space, /^[0-9a-f]{64}$/)
    assert.equal(spaceIdOf(opened), genesis.id)
  })

  it('two geneses of the same owner, name and time get distinct space ids (nonce)', () => {
    const again = createGenesis(owner, 'facility-7', [holder], T0)
    assert.notEqual(again.id, genesis.id)
  })

  it('a stream record opens to the same body', () => {
    const opened = openStream(stream.bytes)
    assertSameRecord(opened, stream)
    assert.equal(opened.body.name, 'temp')
    assert.equal(opened.body.epochMs, 3_600_000)
  })

  it('a grant opens to the same body, with issuer, iat and a fresh nonce filled in', () => {
    const opened = openGrant(grant.bytes)
    assertSameRecord(opened, grant)
    assert.equal(opened.body.iss, owner.did)
    assert.equal(opened.body.iat, T0 + 2)
    assert.equal(opened.body.sub, reader.did)
    assert.deepEqual(opened.body.forms, ['raw', 'aggregate:15m'])
    const twin = createGrant(owner, grantFields, T0 + 2)
    assert.notEqual(twin.id, grant.id, 'identical fields still give two grants')
  })

  it('a grant for every stream (*) round-trips', () => {
    const all = createGrant(owner, { ...grantFields, streams: ['*'], forms: ['hashed'] }, T0)
    assert.deepEqual(openGrant(all.bytes).body.streams, ['*'])
  })

  for (const [name, rec] of [
    ['a grant', revokeGrant],
    ['a subject', revokeSubject],
    ['a device', revokeDevice],
  ] as const) {
    it(`a revocation of ${name} opens to the same body`, () => {
      const opened = openRevocation(rec.bytes)
      assertSameRecord(opened, rec)
      assert.deepEqual(opened.body.target, rec.body.target)
    })
  }

  it('a revocation keeps its reason only when one is given', () => {
    assert.equal(openRevocation(revokeGrant.bytes).body.reason, 'contract ended')
    assert.equal('reason' in openRevocation(revokeSubject.bytes).body, false)
  })

  it('a device certificate opens to the same body, signed by the principal', () => {
    const opened = openDeviceCert(device.bytes)
    assertSameRecord(opened, device)
    assert.equal(opened.issuer, reader.did)
    assert.equal(opened.body.peer, devicePeer)
    assert.deepEqual(opened.body.xpk, deviceXpk)
  })
})

describe('policy records: open refuses what was not signed as it is', () => {
  for (const { kind, record, open } of kinds) {
    it(`${kind}: a flipped signature bit is refused`, () => {
      for (const bit of [0, 100, 511]) {
        assert.throws(() => open(flipSignatureBit(record.bytes, bit)), { name: 'InvalidSignatureError' })
      }
    })

    it(`${kind}: another key's signature over the same body (iss kept) is refused`, () => {
      const parts = splitSigned(record.bytes)
      const forged = joinSigned({
        body: parts.body,
        sig: signTagged(TAGS[tagKey(kind)], parts.body, attacker.secretKey),
      })
      assert.throws(() => open(forged), { name: 'InvalidSignatureError' })
    })
  }

  it('a grant whose window, subject or streams were changed after signing is refused', () => {
    const edits: ((b: Record<string, unknown>) => void)[] = [
      b => {
        b.exp = (b.exp as number) + 1
      },
      b => {
        b.sub = attacker.did
      },
      b => {
        b.streams = ['*']
      },
      b => {
        b.forms = ['raw', 'hashed']
      },
    ]
    for (const edit of edits) {
      assert.throws(() => openGrant(editBody(grant.bytes, edit)), { name: 'InvalidSignatureError' })
    }
  })

  it('a revocation whose target was changed after signing is refused', () => {
    const moved = editBody(revokeGrant.bytes, b => {
      b.target = { grant: fakeId('a') }
    })
    assert.throws(() => openRevocation(moved), { name: 'InvalidSignatureError' })
  })

  it('a device certificate re-issued to another key (iss changed) is refused', () => {
    const stolen = editBody(device.bytes, b => {
      b.iss = attacker.did
    })
    assert.throws(() => openDeviceCert(stolen), { name: 'InvalidSignatureError' })
  })

  it('a record of one kind never opens as another kind (tag separation)', () => {
    for (const from of kinds) {
      for (const as of kinds) {
        if (from.kind === as.kind) {
          assert.doesNotThrow(() => as.open(from.record.bytes))
        } else {
          assert.throws(
            () => as.open(from.record.bytes),
            { name: 'InvalidSignatureError' },
            `${from.kind} opened as ${as.kind}`,
          )
        }
      }
    }
  })

  it('a body with the right shape signed under another kind of tag does not open', () => {
    // a grant body signed as a stream record: the signature is genuine, the tag is wrong
    const crossSigned = signRecord(TAGS.stream, grant.body as Grant, owner)
    assert.throws(() => openGrant(crossSigned.bytes), { name: 'InvalidSignatureError' })
  })

  it('input over MAX_RECORD_BYTES is refused before parsing', () => {
    const big = signRecord(TAGS.genesis, { ...genesis.body, name: 'x'.repeat(MAX_RECORD_BYTES) }, owner)
    assert.ok(big.bytes.byteLength > MAX_RECORD_BYTES)
    assert.throws(() => openGenesis(big.bytes), { name: 'InvalidEncodingError', message: /exceeds limit/ })
    assert.throws(() => openGrant(new Uint8Array(MAX_RECORD_BYTES + 1)), {
      name: 'InvalidEncodingError',
      message: /exceeds limit/,
    })
  })

  it('non-canonical or malformed outer encodings are refused', () => {
    const parts = splitSigned(grant.bytes)
    // a third field next to body and sig
    assert.throws(() => openGrant(encodeCanonical({ body: parts.body, sig: parts.sig, x: 1 })), {
      name: 'InvalidEncodingError',
    })
    // a truncated record
    assert.throws(() => openGrant(grant.bytes.subarray(0, grant.bytes.length - 1)), { name: 'InvalidEncodingError' })
    // the body as a map instead of its canonical bytes
    assert.throws(() => openGrant(encodeCanonical({ body: grant.body, sig: parts.sig })), {
      name: 'InvalidEncodingError',
    })
  })

  it('a correctly signed body that breaks the field rules is refused on open, not only on create', () => {
    const bad: [Opener, string, Record<string, unknown>][] = [
      [openGrant, TAGS.grant, { ...grant.body, exp: grant.body.nbf }],
      [openGrant, TAGS.grant, { ...grant.body, forms: ['raw', 'sql'] }],
      [openGrant, TAGS.grant, { ...grant.body, extra: true }],
      [openStream, TAGS.stream, { ...stream.body, name: '../etc' }],
      [openRevocation, TAGS.revocation, { ...revokeGrant.body, target: { grant: grant.id, subject: reader.did } }],
      [openDeviceCert, TAGS.device, { ...device.body, xpk: new Uint8Array(31) }],
      [openGenesis, TAGS.genesis, { ...genesis.body, holders: [] }],
    ]
    for (const [open, tag, body] of bad) {
      const signer = body.iss === reader.did ? reader : owner
      const rec = signRecord(tag, body as { iss: string }, signer)
      assert.throws(() => open(rec.bytes), { name: 'InvalidMessageError' }, JSON.stringify(Object.keys(body)))
    }
  })
})

describe('policy records: create refuses bad fields', () => {
  const cases: [string, () => unknown][] = [
    ['grant ending when it starts', () => createGrant(owner, { ...grantFields, exp: grantFields.nbf }, T0)],
    ['grant ending before it starts', () => createGrant(owner, { ...grantFields, exp: grantFields.nbf - 1 }, T0)],
    ['grant with an unknown form', () => createGrant(owner, { ...grantFields, forms: ['csv'] }, T0)],
    ['grant with a malformed aggregate form', () => createGrant(owner, { ...grantFields, forms: ['aggregate:'] }, T0)],
    ['grant with no form', () => createGrant(owner, { ...grantFields, forms: [] }, T0)],
    ['grant with no stream', () => createGrant(owner, { ...grantFields, streams: [] }, T0)],
    ['grant with a bad stream name', () => createGrant(owner, { ...grantFields, streams: ['temp/../x'] }, T0)],
    ['grant for a subject that is not a did:key', () => createGrant(owner, { ...grantFields, sub: 'alice' }, T0)],
    [
      'grant for a did:key that is not Ed25519',
      () => createGrant(owner, { ...grantFields, sub: 'did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F' }, T0),
    ],
    ['grant with a malformed space id', () => createGrant(owner, { ...grantFields, space: 'SPACE' }, T0)],
    ['grant with a negative window', () => createGrant(owner, { ...grantFields, nbf: -10, exp: 10 }, T0)],
    ['grant with a fractional time', () => createGrant(owner, { ...grantFields, exp: grantFields.exp + 0.5 }, T0)],
    [
      'grant with an unknown extra field',
      () => createGrant(owner, { ...grantFields, colour: 'red' } as typeof grantFields, T0),
    ],
    ['stream with a bad name', () => createStream(owner, space, 'has space', 3_600_000, T0)],
    ['stream with an epoch under one second', () => createStream(owner, space, 'temp', 999, T0)],
    ['stream in a malformed space', () => createStream(owner, 'x', 'temp', 3_600_000, T0)],
    ['genesis without key holders', () => createGenesis(owner, 'site', [], T0)],
    ['genesis with a holder that is not a peer id', () => createGenesis(owner, 'site', ['0OIl'], T0)],
    ['genesis with an empty name', () => createGenesis(owner, '', [holder], T0)],
    ['revocation of a malformed grant id', () => createRevocation(owner, space, { grant: 'abc' }, T0)],
    ['revocation of a subject that is not a did', () => createRevocation(owner, space, { subject: 'bob' }, T0)],
    ['revocation of a device that is not a peer id', () => createRevocation(owner, space, { device: 'x' }, T0)],
    [
      'revocation with two targets',
      () => createRevocation(owner, space, { grant: grant.id, device: devicePeer } as { grant: string }, T0),
    ],
    ['revocation with no target', () => createRevocation(owner, space, {} as { grant: string }, T0)],
    ['revocation with an empty reason', () => createRevocation(owner, space, { grant: grant.id }, T0, '')],
    ['device certificate ending when it starts', () => createDeviceCert(reader, devicePeer, deviceXpk, T0, T0)],
    ['device certificate with a short key', () => createDeviceCert(reader, devicePeer, new Uint8Array(16), T0, T0 + 1)],
    ['device certificate for a bad peer id', () => createDeviceCert(reader, 'peer', deviceXpk, T0, T0 + 1)],
  ]
  for (const [name, create] of cases) {
    it(`refuses a ${name}`, () => {
      assert.throws(create, { name: 'InvalidMessageError' })
    })
  }

  it('the refusals are about the field, not the signer: the same records with good fields are created', () => {
    assert.doesNotThrow(() => createGrant(owner, { ...grantFields, exp: grantFields.nbf + 1 }, T0))
    assert.doesNotThrow(() => createGrant(owner, { ...grantFields, forms: ['aggregate:15m', 'hashed'] }, T0))
    assert.doesNotThrow(() => createStream(owner, space, 'temp.v2_a-b', 1000, T0))
    assert.doesNotThrow(() => createDeviceCert(reader, devicePeer, deviceXpk, T0, T0 + 1))
  })

  it('the signature bytes decode to the canonical body the opener returns', () => {
    const parts = splitSigned(grant.bytes)
    assert.deepEqual(decodeCanonical(parts.body, MAX_RECORD_BYTES), grant.body)
  })
})

function tagKey(kind: string): keyof typeof TAGS {
  return kind as keyof typeof TAGS
}
