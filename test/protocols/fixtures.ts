/**
 * Fixtures shared by the protocol tests: principals with their did:key, libp2p-shaped peer
 * ids, a table of malformed messages a decoder refuses, byte surgery on signed records (the
 * tampering the decoders must refuse), a causal history for policy states built without a
 * document, the clock the policy tests start at, change envelopes signed by hand, and the
 * records most policy tests begin with: a space and its owner, a grant, a device.
 */
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { base58 } from '@scure/base'
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import {
  didFromPublicKey,
  generateSealingKeyPair,
  generateSigningKeyPair,
  type SigningKeyPair,
} from '../../crypto/identity.ts'
import { type OpenedRecord, signRecord } from '../../crypto/signed.ts'
import { type AppliedRecord, addTo, type ChangeEnvelope, ENVELOPE_TAG } from '../../protocols/policy/document.ts'
import {
  createDeviceCert,
  createGenesis,
  createGrant,
  type DeviceCert,
  type Grant,
  type GrantFields,
  type SpaceGenesis,
} from '../../protocols/policy/records.ts'
import { type AddResult, type CausalHistory, PolicyState } from '../../protocols/policy/state.ts'

export type Principal = SigningKeyPair & { did: string }

/** The time the policy tests start at (November 2023), and an hour, in ms. */
export const T0 = 1_700_000_000_000
export const HOUR = 3_600_000
/** The validity window of most grants in the policy tests, and a time inside it. */
export const NBF = T0 + 10 * HOUR
export const EXP = NBF + 48 * HOUR
export const INSIDE = NBF + HOUR

export function newPrincipal(): Principal {
  const kp = generateSigningKeyPair()
  return { ...kp, did: didFromPublicKey(kp.publicKey) }
}

/** A space of the policy tests: a new owner, the genesis it signed at T0, and the space's id. */
export interface TestSpace {
  owner: Principal
  genesis: OpenedRecord<SpaceGenesis>
  space: string
}

/** A new space named `name`, made at T0 by `owner` (a new one by default) with `holders` as key holders (one new peer). */
export function newSpace(
  name: string,
  { owner = newPrincipal(), holders = [newPeerId()] }: { owner?: Principal; holders?: string[] } = {},
): TestSpace {
  const genesis = createGenesis(owner, name, holders, T0)
  return { owner, genesis, space: genesis.id }
}

/** A grant by `by` issued at `iat`: raw readings of `temp` from NBF to EXP, unless `fields` say otherwise. */
export function newGrant(
  by: Principal,
  fields: Pick<GrantFields, 'space' | 'sub'> & Partial<GrantFields>,
  iat: number,
): OpenedRecord<Grant> {
  return createGrant(by, { streams: ['temp'], forms: ['raw'], nbf: NBF, exp: EXP, ...fields }, iat)
}

/** A new device of `who`: its peer id, and its certificate (a new sealing key) valid from T0 to `exp` (a year). */
export function newDevice(
  who: Principal,
  exp = T0 + 365 * 24 * HOUR,
): { peer: string; device: OpenedRecord<DeviceCert> } {
  const peer = newPeerId()
  return { peer, device: createDeviceCert(who, peer, generateSealingKeyPair().publicKey, T0, exp) }
}

/** A peer id shaped like libp2p's Ed25519 ones: identity multihash of the protobuf public key ("12D3KooW…"). */
export function newPeerId(): string {
  const mh = new Uint8Array(38)
  mh.set([0x00, 0x24, 0x08, 0x01, 0x12, 0x20], 0)
  mh.set(randomBytes(32), 6)
  return base58.encode(mh)
}

/** 64 lowercase hex characters, shaped like a record or space id. */
export function fakeId(fill: string): string {
  return fill.repeat(64).slice(0, 64)
}

/** A test per case: `decode` refuses the canonical CBOR of the case's value with InvalidMessageError. */
export function refusesEach(decode: (bytes: Uint8Array) => unknown, cases: [string, unknown][]): void {
  for (const [name, value] of cases) {
    it(`refuses ${name}`, () => {
      assert.throws(() => decode(encodeCanonical(value)), { name: 'InvalidMessageError' })
    })
  }
}

export interface SignedParts {
  body: Uint8Array
  sig: Uint8Array
}

export function splitSigned(bytes: Uint8Array): SignedParts {
  return decodeCanonical(bytes, 1 << 20) as SignedParts
}

export function joinSigned(parts: SignedParts): Uint8Array {
  return encodeCanonical({ body: parts.body, sig: parts.sig })
}

/** A change envelope of `space` around `change`, signed by `signer`: how a test sends an Automerge change it made by hand. */
export function envelopeFor(signer: Principal, space: string, change: Uint8Array): Uint8Array {
  return signRecord<ChangeEnvelope>(ENVELOPE_TAG, { t: 'change', iss: signer.did, space, change }, signer).bytes
}

/** The same signed record with one bit of its signature flipped. */
export function flipSignatureBit(bytes: Uint8Array, bit = 0): Uint8Array {
  const parts = splitSigned(bytes)
  const sig = Uint8Array.from(parts.sig)
  sig[bit >> 3] ^= 1 << (bit & 7)
  return joinSigned({ body: parts.body, sig })
}

/** The same signature over a body whose fields were changed after signing. */
export function editBody(bytes: Uint8Array, edit: (body: Record<string, unknown>) => void): Uint8Array {
  const parts = splitSigned(bytes)
  const body = decodeCanonical(parts.body, 1 << 20) as Record<string, unknown>
  edit(body)
  return joinSigned({ body: encodeCanonical(body), sig: parts.sig })
}

/**
 * A causal history for tests that build a PolicyState without a document: each record is its
 * own change, named by the record's id, and knows the records its writer had seen.
 */
export class TestHistory implements CausalHistory {
  private readonly past = new Map<string, Set<string>>()

  /** Change `id` was written knowing `knew` (and, through them, everything they knew). */
  write(id: string, knew: Iterable<string>): void {
    const past = new Set<string>()
    for (const k of knew) {
      past.add(k)
      for (const x of this.past.get(k) ?? []) past.add(x)
    }
    this.past.set(id, past)
  }

  precedes(earlier: string, later: string): boolean {
    return this.past.get(later)?.has(earlier) ?? false
  }
}

/**
 * A PolicyState fed one record at a time with a TestHistory: by default each record was written
 * knowing every record added before it (a single writer's order); `knew` says otherwise.
 */
export class Timeline {
  readonly history = new TestHistory()
  readonly state: PolicyState
  private readonly seen: string[] = []

  constructor(genesis: OpenedRecord<SpaceGenesis>) {
    this.state = new PolicyState(genesis, this.history)
  }

  /** Add a record; `knew` lists the records its writer had seen (default: all added so far). */
  add(x: AppliedRecord, knew?: { id: string }[]): AddResult {
    this.history.write(x.record.id, knew === undefined ? this.seen : knew.map(k => k.id))
    this.seen.push(x.record.id)
    return addTo(this.state, x, x.record.id)
  }
}
