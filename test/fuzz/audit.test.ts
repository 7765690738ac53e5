/**
 * Fuzz: the audit plane's decoders of network input: signed tree heads, the audit gossip
 * topic's messages (head, equivocation), the audit-proof stream protocol (request,
 * response) and the proof checks the answers feed, and log entries (which arrive inside
 * reports). Decoders return a value or throw InvalidEncodingError / InvalidMessageError (and,
 * for signed heads, InvalidSignatureError / InvalidDidError); the proof checks return false,
 * never throw.
 */
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { verifyConsistency, verifyInclusion } from '../../crypto/merkle.ts'
import { decodeEntry, encodeEntry } from '../../protocols/audit/entries.ts'
import {
  decodeAuditMessage,
  decodeProofRequest,
  decodeProofResponse,
  openTreeHead,
  signTreeHead,
  TREE_HEAD_TAG,
} from '../../protocols/audit/heads.ts'
import { fakeId, newPeerId, newPrincipal } from '../protocols/fixtures.ts'
import { budget, CODEC_ERRORS, checkCodec, checkSigned, decodeTyped, SIGNED_ERRORS, SUITE } from './fuzz.ts'

const owner = newPrincipal()
const log = newPeerId()
const head = signTreeHead(owner, log, 42, randomBytes(32), 1_700_000_000_000)
const otherHead = signTreeHead(owner, log, 43, randomBytes(32), 1_700_000_001_000)
const space = fakeId('5')
const subject = newPrincipal().did

describe('fuzz: audit heads and gossip', SUITE, () => {
  it('openTreeHead', () => {
    checkSigned(
      openTreeHead,
      SIGNED_ERRORS,
      [{ tag: TREE_HEAD_TAG, secretKey: owner.secretKey, body: { ...head.body }, bytes: head.bytes }],
      { strictFields: true },
    )
  })

  it('decodeAuditMessage', () => {
    checkCodec(
      decodeAuditMessage,
      CODEC_ERRORS,
      [
        { t: 'head', head: head.bytes },
        { t: 'equivocation', a: head.bytes, b: otherHead.bytes, reason: 'two roots for size 42' },
      ],
      {
        strictFields: true,
        extraKeys: ['t', 'head', 'a', 'b', 'reason'],
        foreignKeys: m => (m.t === 'head' ? ['a', 'b', 'reason'] : ['head']),
      },
    )
  })
})

describe('fuzz: audit-proof protocol', SUITE, () => {
  it('decodeProofRequest', () => {
    checkCodec(
      decodeProofRequest,
      CODEC_ERRORS,
      [
        { kind: 'consistency', from: 3, to: 9 },
        { kind: 'inclusion', index: 2, size: 9 },
      ],
      {
        strictFields: true,
        extraKeys: ['kind', 'from', 'to', 'index', 'size'],
        foreignKeys: m => (m.kind === 'consistency' ? ['index', 'size'] : ['from', 'to']),
      },
    )
  })

  it('decodeProofResponse', () => {
    checkCodec(decodeProofResponse, CODEC_ERRORS, [{ proof: [randomBytes(32), randomBytes(32)] }, { proof: [] }], {
      strictFields: true,
    })
  })

  it('verifyInclusion and verifyConsistency return false on any proof, never throw', () => {
    const size = fc.oneof(
      fc.nat({ max: 64 }),
      fc.constantFrom(-1, 0.5, 2 ** 53 - 1, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY),
    )
    const hash = fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 }))
    const proof = fc.array(hash, { maxLength: 70 })
    fc.assert(
      fc.property(size, size, proof, hash, hash, (a, b, p, h, root) => {
        decodeTyped(() => verifyInclusion(h, a, b, p, root), [], null)
        decodeTyped(() => verifyConsistency(a, b, h, root, p), [], null)
      }),
      budget(),
    )
  })
})

describe('fuzz: audit log entries', SUITE, () => {
  const entries = [
    {
      t: 'release',
      ts: 5,
      space,
      subject,
      device: log,
      grant: fakeId('a'),
      stream: 'temp',
      form: 'raw',
      epochs: [1, 2],
      leaseEnd: 900_005,
      renewal: false,
      request: randomBytes(100),
      reqHash: randomBytes(32),
      purpose: 'maintenance',
    },
    {
      t: 'refusal',
      ts: 6,
      space,
      subject,
      device: log,
      stream: 'temp',
      form: 'hashed',
      code: 'no-grant',
      reason: 'no grant',
      reqHash: randomBytes(32),
    },
    { t: 'grant', ts: 7, space, grant: fakeId('b'), subject, streams: ['temp', '*'], nbf: 1, exp: 2 },
    { t: 'revocation', ts: 8, space, revocation: fakeId('c'), target: { subject } },
    {
      t: 'decision',
      ts: 9,
      space,
      request: fakeId('d'),
      subject,
      requester: subject,
      decidedBy: subject,
      streams: ['line-1*'],
      approved: true,
      grant: fakeId('e'),
    },
  ]
  for (const e of entries) encodeEntry(e as never)

  it('decodeEntry', () => {
    checkCodec(decodeEntry, CODEC_ERRORS, entries, {
      weight: 2,
      strictFields: true,
      extraKeys: ['renewal', 'request', 'purpose', 'code', 'streams', 'target', 'approved', 'grant', 'reason'],
    })
  })

  it('decodeEntry on a revocation target edited', () => {
    const targets = fc.oneof(
      fc.dictionary(fc.constantFrom('grant', 'subject', 'device', 'delegation', 'x'), fc.anything(), { maxKeys: 3 }),
      fc.anything(),
    )
    fc.assert(
      fc.property(targets, target => {
        let bytes: Uint8Array
        try {
          bytes = encodeCanonical({ ...entries[3], target })
        } catch {
          return // not encodable canonically: no peer can send it
        }
        decodeTyped(decodeEntry, CODEC_ERRORS, bytes)
      }),
      budget(0.5),
    )
  })
})
