/**
 * The field rules of the control plane's records hold on both sides: a `create*` function
 * refuses to sign what breaks them, and an `open*` function refuses the same body when a
 * peer signed it anyway (with its own code, bypassing `create*`). Each case below is run both
 * ways. The rules are the ones a peer needs to honour and show a record: times it can print
 * (`grant --data-until 9000000000000000` once replicated and then broke every peer's
 * `grants`), windows that end after they start, aggregate windows a gateway can publish
 * (`aggregate:0m` once made a stream no one could publish to), epochs the data plane runs,
 * counts of at least one, text within limits.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import { type OpenedRecord, signRecord } from '../../crypto/signed.ts'
import * as records from '../../protocols/policy/records.ts'
import { MAX_TIME_MS } from '../../protocols/validate.ts'
import { HOUR, newPeerId, newPrincipal, newSpace, T0 } from './fixtures.ts'

const holder = newPeerId()
const { owner, genesis, space } = newSpace('facility-7', { holders: [holder] })
const reader = newPrincipal()
const devicePeer = newPeerId()
const xpk = generateSealingKeyPair().publicKey
/** a safe integer past JavaScript's Date range (±8.64e15 ms): the value that once broke every peer's listing */
const PAST_DATE_RANGE = 9_000_000_000_000_000

const stream = records.createStream(owner, space, 'temp', HOUR, T0)
const grant = records.createGrant(
  owner,
  { space, sub: reader.did, streams: ['temp'], forms: ['raw'], nbf: T0, exp: T0 + 48 * HOUR },
  T0,
)
const delegation = records.createDelegation(
  owner,
  { space, admin: reader.did, streams: ['*'], nbf: T0, exp: T0 + HOUR },
  T0,
)
const revocation = records.createRevocation(owner, space, { grant: grant.id }, T0, 'contract ended')
const device = records.createDeviceCert(reader, devicePeer, xpk, T0, T0 + HOUR)

type Body = Record<string, any>
type Kind = 'genesis' | 'stream' | 'grant' | 'delegation' | 'revocation' | 'device'

/** For each kind: a good record, how `create*` makes one from a body, and how a peer opens one. */
const KINDS: Record<
  Kind,
  { good: OpenedRecord<any>; create: (b: Body) => unknown; open: (data: Uint8Array) => unknown; tag: string }
> = {
  genesis: {
    good: genesis,
    create: b => records.createGenesis(owner, b.name, b.holders, b.iat),
    open: records.openGenesis,
    tag: records.TAGS.genesis,
  },
  stream: {
    good: stream,
    create: b => records.createStream(owner, b.space, b.name, b.epochMs, b.iat, b.forms),
    open: records.openStream,
    tag: records.TAGS.stream,
  },
  grant: {
    good: grant,
    create: ({ t, iss, iat, nonce, ...fields }) => records.createGrant(owner, fields as records.GrantFields, iat),
    open: records.openGrant,
    tag: records.TAGS.grant,
  },
  delegation: {
    good: delegation,
    create: ({ t, iss, iat, nonce, ...fields }) =>
      records.createDelegation(owner, fields as Omit<records.Delegation, 't' | 'iss' | 'nonce' | 'iat'>, iat),
    open: records.openDelegation,
    tag: records.TAGS.delegation,
  },
  revocation: {
    good: revocation,
    create: b => records.createRevocation(owner, b.space, b.target as records.RevocationTarget, b.iat, b.reason),
    open: records.openRevocation,
    tag: records.TAGS.revocation,
  },
  device: {
    good: device,
    create: b => records.createDeviceCert(reader, b.peer, b.xpk, b.nbf, b.exp),
    open: records.openDeviceCert,
    tag: records.TAGS.device,
  },
}

const signer = (kind: Kind) => (kind === 'device' ? reader : owner)

const REFUSED: [string, Kind, Body][] = [
  // times a peer could not show: past the Date range, or past year 9999
  ['grant with a data window ending past the Date range', 'grant', { dataUntil: PAST_DATE_RANGE }],
  ['grant with a data window starting past the Date range', 'grant', { dataFrom: PAST_DATE_RANGE }],
  ['grant ending past the Date range (--until)', 'grant', { exp: PAST_DATE_RANGE }],
  ['grant ending one ms after year 9999', 'grant', { exp: MAX_TIME_MS + 1 }],
  ['grant starting past the Date range', 'grant', { nbf: PAST_DATE_RANGE, exp: PAST_DATE_RANGE + 1 }],
  ['grant issued past the Date range', 'grant', { iat: PAST_DATE_RANGE }],
  ['grant with a negative data window start', 'grant', { dataFrom: -1 }],
  ['grant with a fractional data window end', 'grant', { dataUntil: T0 + 0.5 }],
  ['stream created past the Date range', 'stream', { iat: PAST_DATE_RANGE }],
  ['delegation ending past the Date range', 'delegation', { exp: PAST_DATE_RANGE }],
  ['delegation issued past the Date range', 'delegation', { iat: PAST_DATE_RANGE }],
  ['revocation issued past the Date range', 'revocation', { iat: PAST_DATE_RANGE }],
  ['device certificate ending past the Date range', 'device', { exp: PAST_DATE_RANGE }],
  ['space created past the Date range', 'genesis', { iat: PAST_DATE_RANGE }],
  // windows that end before they start
  ['grant whose data window ends when it starts', 'grant', { dataFrom: T0, dataUntil: T0 }],
  ['grant whose data window ends before it starts', 'grant', { dataFrom: T0, dataUntil: T0 - 1 }],
  ['delegation ending when it starts', 'delegation', { exp: T0 }],
  ['device certificate ending before it starts', 'device', { exp: T0 - 1 }],
  // aggregate windows: positive, one name each, at most 366 days
  ['grant for an aggregate window of zero minutes', 'grant', { forms: ['aggregate:0m'] }],
  ['grant for an aggregate window of zero seconds', 'grant', { forms: ['aggregate:0s'] }],
  ['grant for an aggregate window with a leading zero', 'grant', { forms: ['aggregate:015m'] }],
  ['grant for an aggregate window over 366 days', 'grant', { forms: ['aggregate:367d'] }],
  ['grant for an aggregate window of 999999 days', 'grant', { forms: ['aggregate:999999d'] }],
  ['stream producing an aggregate window of zero (--aggregate 0m)', 'stream', { forms: ['raw', 'aggregate:0m'] }],
  ['stream producing an aggregate window over 366 days', 'stream', { forms: ['raw', 'aggregate:8785h'] }],
  // epochs the data plane runs: 1 s to 366 days
  ['stream with epochs of 999 ms', 'stream', { epochMs: 999 }],
  ['stream with epochs over 366 days', 'stream', { epochMs: records.MAX_EPOCH_MS + 1 }],
  ['stream with epochs past the Date range', 'stream', { epochMs: PAST_DATE_RANGE }],
  ['stream with fractional epochs', 'stream', { epochMs: 1500.5 }],
  // counts of at least one
  ['grant allowing zero key releases', 'grant', { maxReleases: 0 }],
  ['grant allowing -1 key releases', 'grant', { maxReleases: -1 }],
  ['grant allowing 1.5 key releases', 'grant', { maxReleases: 1.5 }],
  // text within limits, on one line
  ['grant with an empty purpose', 'grant', { purpose: '' }],
  ['grant with a purpose of 257 characters', 'grant', { purpose: 'p'.repeat(257) }],
  ['grant whose purpose has a line break', 'grant', { purpose: 'maintenance\nforged line' }],
  ['revocation whose reason has a control character', 'revocation', { reason: 'ended\u0007' }],
  ['revocation with a reason of 513 characters', 'revocation', { reason: 'r'.repeat(513) }],
  ['space whose name has a line break', 'genesis', { name: 'plant\n7' }],
  ['space naming one key holder twice', 'genesis', { holders: [holder, holder] }],
]

describe('record field rules: refused when signed and when opened', () => {
  for (const [name, kind, edit] of REFUSED) {
    const k = KINDS[kind]
    const body = { ...k.good.body, ...edit }
    it(`create refuses a ${name}`, () => {
      assert.throws(() => k.create(body), { name: 'InvalidMessageError' })
    })
    it(`open refuses a ${name}, signed by a peer that skipped the rules`, () => {
      const forged = signRecord(k.tag, body as { iss: string }, signer(kind))
      assert.throws(() => k.open(forged.bytes), { name: 'InvalidMessageError' })
    })
  }
})

describe('record field rules: the limits themselves are allowed', () => {
  const ACCEPTED: [string, Kind, Body][] = [
    ['grant ending at the last ms of year 9999', 'grant', { exp: MAX_TIME_MS }],
    ['grant whose data window is 1970 to year 9999', 'grant', { dataFrom: 0, dataUntil: MAX_TIME_MS }],
    ['grant with only a data window end', 'grant', { dataUntil: T0 }],
    ['grant for aggregate windows of 1s and 366d', 'grant', { forms: ['aggregate:1s', 'aggregate:366d'] }],
    ['grant allowing one key release', 'grant', { maxReleases: 1 }],
    ['grant with a purpose of 256 characters', 'grant', { purpose: 'p'.repeat(256) }],
    ['stream with epochs of 1 s', 'stream', { epochMs: 1000 }],
    ['stream with epochs of 366 days', 'stream', { epochMs: records.MAX_EPOCH_MS }],
    ['stream producing an aggregate of 8784h (366 days)', 'stream', { forms: ['raw', 'aggregate:8784h'] }],
    ['revocation with a reason in another script', 'revocation', { reason: 'Vertrag beendet – 契約終了' }],
    ['device certificate until year 9999', 'device', { exp: MAX_TIME_MS }],
  ]
  for (const [name, kind, edit] of ACCEPTED) {
    it(`a ${name} is created and opens to the same body`, () => {
      const k = KINDS[kind]
      const rec = k.create({ ...k.good.body, ...edit }) as OpenedRecord<Body>
      const opened = k.open(rec.bytes) as OpenedRecord<Body>
      assert.deepEqual(opened.body, rec.body)
      for (const [key, v] of Object.entries(edit)) assert.deepEqual(opened.body[key], v)
    })
  }

  it('MAX_TIME_MS is a Date every peer prints with a four-digit year', () => {
    assert.equal(new Date(MAX_TIME_MS).toISOString(), '9999-12-31T23:59:59.999Z')
    assert.equal(records.MAX_AGGREGATE_WINDOW_MS, 366 * 24 * HOUR)
  })

  it('isForm is the rule both sides use: raw, hashed and aggregates of 1 s to 366 days', () => {
    for (const f of ['raw', 'hashed', 'aggregate:1s', 'aggregate:15m', 'aggregate:24h', 'aggregate:366d'])
      assert.ok(records.isForm(f), f)
    for (const f of ['', 'csv', 'aggregate:', 'aggregate:0m', 'aggregate:01h', 'aggregate:367d', 'aggregate:1w', 7])
      assert.ok(!records.isForm(f), String(f))
  })
})

describe('record field rules: what is signed can be shown (property)', () => {
  const { t: _t, iss: _iss, iat: _iat, nonce: _nonce, ...fields } = grant.body
  it('a grant with any data window end either is refused, or opens and prints as an ISO date', () => {
    const t = fc.oneof(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: MAX_TIME_MS - 1000, max: MAX_TIME_MS + 1000 }),
      fc.integer({ min: 8.64e15 - 1000, max: 8.64e15 + 1000 }),
    )
    fc.assert(
      fc.property(t, dataUntil => {
        let rec: OpenedRecord<Body>
        try {
          rec = records.createGrant(owner, { ...fields, dataUntil }, T0)
        } catch (err) {
          assert.equal((err as Error).name, 'InvalidMessageError')
          assert.ok(dataUntil > MAX_TIME_MS, `refused ${dataUntil}, which a Date shows`)
          return
        }
        const opened = records.openGrant(rec.bytes)
        assert.match(new Date(opened.body.dataUntil as number).toISOString(), /^\d{4}-/)
      }),
      { numRuns: 300 },
    )
  })
})
