/**
 * Fuzz: every signed record opener of the control plane (space genesis, stream, grant,
 * revocation, delegation, device certificate), access requests and decisions (the requests
 * topic and the decisions collection), and the policy topic's change envelope. Each may only
 * return a value or throw InvalidEncodingError, InvalidMessageError, InvalidSignatureError or
 * InvalidDidError; bytes changed after signing are always refused; a re-signed body with a
 * field of the wrong type, an unknown field or a field of the other variant is refused.
 */
import { describe, it } from 'node:test'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import type { OpenedRecord } from '../../crypto/signed.ts'
import { actorFor, ENVELOPE_TAG, openEnvelope, PolicyDocument } from '../../protocols/policy/document.ts'
import * as records from '../../protocols/policy/records.ts'
import {
  createAccessRequest,
  createDecision,
  DECISION_TAG,
  openAccessRequest,
  openDecision,
  REQUEST_TAG,
} from '../../protocols/policy/requests.ts'
import { fakeId, HOUR, newPeerId, newPrincipal, type Principal, T0 } from '../protocols/fixtures.ts'
import { checkSigned, SIGNED_ERRORS, type SignedSample, SUITE } from './fuzz.ts'

const owner = newPrincipal()
const reader = newPrincipal()
const genesis = records.createGenesis(owner, 'facility', [newPeerId(), newPeerId()], T0)
const space = genesis.id

function sample(tag: string, signer: Principal, rec: OpenedRecord<object>): SignedSample {
  return { tag, secretKey: signer.secretKey, body: { ...(rec.body as Record<string, unknown>) }, bytes: rec.bytes }
}

const grantFields = { space, sub: reader.did, streams: ['temp', 'line-1.*'], forms: ['raw'], nbf: T0, exp: T0 + HOUR }
const fullGrant = records.createGrant(
  owner,
  {
    ...grantFields,
    streams: ['*'],
    forms: ['raw', 'hashed', 'aggregate:15m'],
    dataFrom: T0 - HOUR,
    dataUntil: T0,
    download: false,
    forward: 'ask-owner',
    devices: [newPeerId()],
    maxReleases: 3,
    purpose: 'maintenance',
    parent: fakeId('a'),
  },
  T0,
)
const request = createAccessRequest(
  reader,
  { space, sub: reader.did, streams: ['temp'], forms: ['raw'], durationMs: 48 * HOUR, reason: 'audit' },
  T0,
)
const forwarded = createAccessRequest(
  reader,
  {
    space,
    sub: newPrincipal().did,
    streams: ['temp*'],
    forms: ['hashed'],
    durationMs: HOUR,
    reason: 'x',
    via: fakeId('b'),
  },
  T0,
)

describe('fuzz: signed records of the policy document', SUITE, () => {
  it('openGenesis', () => {
    checkSigned(records.openGenesis, SIGNED_ERRORS, [sample(records.TAGS.genesis, owner, genesis)], {
      strictFields: true,
    })
  })

  it('openStream', () => {
    checkSigned(
      records.openStream,
      SIGNED_ERRORS,
      [
        sample(records.TAGS.stream, owner, records.createStream(owner, space, 'temp', HOUR, T0)),
        sample(
          records.TAGS.stream,
          owner,
          records.createStream(owner, space, 'hum', HOUR, T0, ['raw', 'aggregate:1h']),
        ),
      ],
      { strictFields: true },
    )
  })

  it('openGrant', () => {
    checkSigned(
      records.openGrant,
      SIGNED_ERRORS,
      [
        sample(records.TAGS.grant, owner, records.createGrant(owner, grantFields, T0)),
        sample(records.TAGS.grant, owner, fullGrant),
      ],
      { strictFields: true, weight: 1.5 },
    )
  })

  it('openRevocation', () => {
    checkSigned(
      records.openRevocation,
      SIGNED_ERRORS,
      [
        sample(
          records.TAGS.revocation,
          owner,
          records.createRevocation(owner, space, { grant: fakeId('c') }, T0, 'left'),
        ),
        sample(records.TAGS.revocation, owner, records.createRevocation(owner, space, { subject: reader.did }, T0)),
        sample(records.TAGS.revocation, owner, records.createRevocation(owner, space, { device: newPeerId() }, T0)),
        sample(records.TAGS.revocation, owner, records.createRevocation(owner, space, { delegation: fakeId('d') }, T0)),
      ],
      { strictFields: true },
    )
  })

  it('openDelegation', () => {
    const d = records.createDelegation(owner, { space, admin: reader.did, streams: ['*'], nbf: T0, exp: T0 + HOUR }, T0)
    checkSigned(records.openDelegation, SIGNED_ERRORS, [sample(records.TAGS.delegation, owner, d)], {
      strictFields: true,
    })
  })

  it('openDeviceCert', () => {
    const cert = records.createDeviceCert(reader, newPeerId(), generateSealingKeyPair().publicKey, T0, T0 + HOUR)
    checkSigned(records.openDeviceCert, SIGNED_ERRORS, [sample(records.TAGS.device, reader, cert)], {
      strictFields: true,
    })
  })
})

describe('fuzz: access requests and decisions', SUITE, () => {
  it('openAccessRequest', () => {
    checkSigned(
      openAccessRequest,
      SIGNED_ERRORS,
      [sample(REQUEST_TAG, reader, request), sample(REQUEST_TAG, reader, forwarded)],
      { strictFields: true },
    )
  })

  it('openDecision', () => {
    const approved = createDecision(owner, request, { approved: true, grant: fakeId('e') }, T0)
    const denied = createDecision(owner, forwarded, { approved: false, reason: 'no' }, T0)
    checkSigned(
      openDecision,
      SIGNED_ERRORS,
      [sample(DECISION_TAG, owner, approved), sample(DECISION_TAG, owner, denied)],
      {
        strictFields: true,
        extraKeys: ['grant', 'reason'],
        foreignKeys: m => (m.approved === true ? ['reason'] : ['grant']),
      },
    )
  })
})

describe('fuzz: the policy topic', SUITE, () => {
  it('openEnvelope', () => {
    const { document, envelope } = PolicyDocument.create(owner, actorFor(owner.did, 'a'), genesis, T0)
    const write = document.write(owner, [{ kind: 'grant', record: records.createGrant(owner, grantFields, T0) }], T0)
    const samples = [envelope, write.envelope].map(bytes => {
      const rec = openEnvelope(bytes)
      return { tag: ENVELOPE_TAG, secretKey: owner.secretKey, body: { ...rec.body }, bytes }
    })
    checkSigned(openEnvelope, SIGNED_ERRORS, samples, { strictFields: true })
  })
})
