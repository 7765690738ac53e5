/**
 * Fuzz: the policy topic past the envelope: Automerge changes inside validly signed
 * envelopes, as PolicyDocument.applyEnvelope and applyEnvelopes take them from gossip and
 * catch-up. A change is random bytes, or a real change (the genesis, or one adding a grant)
 * with bytes edited and its chunk checksum made right again, so that the edit reaches
 * Automerge's decoder and the document's checks. applyEnvelope may only return an outcome or
 * throw InvalidMessageError, InvalidEncodingError, InvalidSignatureError, InvalidDidError or
 * UnauthorizedChangeError (its doc comment); applyEnvelopes never throws and refuses with those.
 */
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { actorFor, openEnvelope, PolicyDocument } from '../../protocols/policy/document.ts'
import { createGenesis, createGrant, createStream } from '../../protocols/policy/records.ts'
import { envelopeFor, HOUR, newPeerId, newPrincipal, T0 } from '../protocols/fixtures.ts'
import { budget, decodeTyped, mutatedBytes, randomBytes, SIGNED_ERRORS, SUITE, show } from './fuzz.ts'

const owner = newPrincipal()
const genesis = createGenesis(owner, 'facility', [newPeerId()], T0)
const space = genesis.id
const { document, envelope: genesisEnvelope } = PolicyDocument.create(owner, actorFor(owner.did, 'a'), genesis, T0)
const grantEnvelope = document.write(
  owner,
  [
    { kind: 'stream', record: createStream(owner, space, 'temp', HOUR, T0) },
    {
      kind: 'grant',
      record: createGrant(
        owner,
        { space, sub: newPrincipal().did, streams: ['temp'], forms: ['raw'], nbf: T0, exp: T0 + HOUR },
        T0,
      ),
    },
  ],
  T0,
).envelope
const changes = [genesisEnvelope, grantEnvelope].map(e => openEnvelope(e).body.change)
const ERRORS = [...SIGNED_ERRORS, 'UnauthorizedChangeError']

/** An Automerge chunk's checksum (bytes 4..8) is the first 4 bytes of SHA-256 over what follows it. */
function withChecksum(b: Uint8Array): Uint8Array {
  if (b.byteLength < 9 || b[0] !== 0x85 || b[1] !== 0x6f || b[2] !== 0x4a || b[3] !== 0x83) return b
  const out = b.slice()
  out.set(createHash('sha256').update(b.subarray(8)).digest().subarray(0, 4), 4)
  return out
}

const envelopeOf = (change: Uint8Array): Uint8Array => envelopeFor(owner, space, change)

const changeBytes = fc.oneof(
  { weight: 4, arbitrary: mutatedBytes(fc.constantFrom(...changes)).map(withChecksum) },
  { weight: 1, arbitrary: mutatedBytes(fc.constantFrom(...changes)) },
  { weight: 1, arbitrary: randomBytes.filter(b => b.byteLength > 0) },
)

/** A replica that has the genesis (and so checks records), or one that has nothing yet. */
function replica(withGenesis: boolean): PolicyDocument {
  const doc = new PolicyDocument(space)
  if (withGenesis) doc.applyEnvelope(genesisEnvelope)
  return doc
}

describe('fuzz: Automerge changes on the policy topic', SUITE, () => {
  it('applyEnvelope returns an outcome or throws a typed refusal', () => {
    fc.assert(
      fc.property(changeBytes, fc.boolean(), (change, withGenesis) => {
        const doc = replica(withGenesis)
        decodeTyped(e => doc.applyEnvelope(e), ERRORS, envelopeOf(change))
      }),
      budget(0.5),
    )
  })

  it('applyEnvelopes never throws and refuses each bad change with a typed error', () => {
    fc.assert(
      fc.property(fc.array(changeBytes, { minLength: 1, maxLength: 4 }), fc.boolean(), (batch, withGenesis) => {
        const doc = replica(withGenesis)
        const envelopes = [...batch.map(envelopeOf), grantEnvelope]
        const out = decodeTyped(e => doc.applyEnvelopes(e), [], envelopes)
        if (!out.ok) return
        for (const [i, o] of out.value.outcomes.entries()) {
          if (o.status === 'refused' && !ERRORS.includes(o.error.name)) {
            throw new Error(`refused change ${i} with ${o.error.name}: ${o.error.message} (${show(batch[i])})`)
          }
        }
      }),
      budget(0.3),
    )
  })
})
