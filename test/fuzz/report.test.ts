/**
 * Fuzz: audit report files, as `edgeward audit verify` reads them (JSON text, parsed, then
 * verifyReport). verifyReport returns a result and never throws, whatever the file holds;
 * any change to what the report proves (the genesis, the head, an entry, a proof, an index,
 * the stated holdings) is a failure, never ok.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { generateSealingKeyPair } from '../../crypto/identity.ts'
import { inclusionProof, leafHash, rootFromLeafHashes } from '../../crypto/merkle.ts'
import { createKeyRequest } from '../../protocols/access/messages.ts'
import { type AuditEntry, encodeEntry, requestHash } from '../../protocols/audit/entries.ts'
import { signTreeHead } from '../../protocols/audit/heads.ts'
import { buildReport, verifyReport } from '../../protocols/audit/report.ts'
import { createDeviceCert, createGenesis } from '../../protocols/policy/records.ts'
import { fakeId, newPeerId, newPrincipal } from '../protocols/fixtures.ts'
import { budget, changedBytes, decodeTyped, SUITE, show } from './fuzz.ts'

const MIN = 60_000
const T0 = Date.UTC(2025, 0, 1)
const owner = newPrincipal()
const holder = newPeerId()
const genesis = createGenesis(owner, 'plant-7', [holder], T0)
const space = genesis.id
const alice = newPrincipal()
const alicePeer = newPeerId()
const device = createDeviceCert(alice, alicePeer, generateSealingKeyPair().publicKey, 0, T0 + 1000 * MIN)

function release(ts: number, grant: string): AuditEntry {
  const req = createKeyRequest(alice, {
    space,
    stream: 'temp',
    form: 'raw',
    epochs: [0],
    grant,
    device: device.bytes,
    nonce: randomBytes(16),
    ts,
  })
  return {
    t: 'release',
    ts,
    space,
    subject: alice.did,
    device: alicePeer,
    grant,
    stream: 'temp',
    form: 'raw',
    epochs: [0],
    leaseEnd: ts + 15 * MIN,
    renewal: false,
    request: req.bytes,
    reqHash: requestHash(req.bytes),
  }
}

const log: AuditEntry[] = [
  { t: 'grant', ts: T0, space, grant: fakeId('a'), subject: alice.did, streams: ['temp'], nbf: T0, exp: T0 + 60 * MIN },
  release(T0 + MIN, fakeId('a')),
  release(T0 + 20 * MIN, fakeId('a')),
  { t: 'revocation', ts: T0 + 25 * MIN, space, revocation: fakeId('b'), target: { grant: fakeId('a') } },
]
const bytes = log.map(encodeEntry)
const leaves = bytes.map(leafHash)
const head = signTreeHead(owner, holder, leaves.length, rootFromLeafHashes(leaves), T0 + 30 * MIN)
const good = JSON.parse(
  JSON.stringify(
    buildReport(
      { space },
      genesis.bytes,
      head,
      bytes.map((b, index) => ({ index, bytes: b, proof: inclusionProof(leaves, index) })),
    ),
  ),
)
const goodText = JSON.stringify(good)

/** Never throws; returns the result. */
const verify = (r: unknown) => decodeTyped(x => verifyReport(x), [], r)

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** Paths to every value of a JSON document. */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at]
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]))
  } else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]))
  return out
}

function setAt(doc: Json, path: (string | number)[], value: Json | undefined): Json {
  const copy = structuredClone(doc)
  if (path.length === 0) return value ?? null
  let o: any = copy
  for (const p of path.slice(0, -1)) o = o[p]
  const last = path[path.length - 1]
  if (value === undefined) {
    if (Array.isArray(o)) o.splice(last as number, 1)
    else delete o[last]
  } else o[last] = value
  return copy
}

function getAt(doc: Json, path: (string | number)[]): Json {
  let o: any = doc
  for (const p of path) o = o[p]
  return o
}

const allPaths = paths(good)
/** The base64url fields: the genesis, the head, each entry and proof hash. */
const isBase64 = (p: (string | number)[]) =>
  ['genesis', 'head', 'entries'].includes(String(p[0])) &&
  p[p.length - 1] !== 'index' &&
  typeof getAt(good, p) === 'string'
/** What the report proves: a change in any of these must fail verification. */
const provenPaths = allPaths.filter(
  p => p.length > 0 && ['genesis', 'head', 'entries', 'holdings'].includes(String(p[0])) && p.length <= 4,
)

describe('fuzz: audit report files', SUITE, () => {
  it('the report built for the fuzzing verifies', () => {
    assert.equal(verifyReport(good).ok, true)
  })

  it('verifyReport never throws, whatever JSON a file holds', () => {
    const docs = fc.oneof(
      fc.jsonValue(),
      fc
        .tuple(fc.constantFrom(...allPaths), fc.oneof(fc.jsonValue(), fc.constant(undefined)))
        .map(([p, v]) => setAt(good, p, v as Json | undefined)),
      // the text of the file edited, where it still parses
      fc.tuple(fc.nat(), fc.string({ maxLength: 4 }), fc.nat({ max: 4 })).map(([i, s, cut]) => {
        const at = i % goodText.length
        const text = goodText.slice(0, at) + s + goodText.slice(at + cut)
        try {
          return JSON.parse(text) as Json
        } catch {
          return null
        }
      }),
    )
    fc.assert(
      fc.property(docs, doc => {
        verify(doc)
      }),
      budget(0.5),
    )
  })

  it('a change to anything the report proves is refused', () => {
    const edits = fc.oneof(
      // a value replaced, or removed
      fc
        .tuple(fc.constantFrom(...provenPaths), fc.oneof(fc.jsonValue(), fc.constant(undefined)))
        .filter(([p, v]) => JSON.stringify(getAt(good, p)) !== JSON.stringify(v))
        // leaving a whole entry out is not a change a report can show (README: it cannot prove the log is complete)
        .filter(([p, v]) => !(v === undefined && p.length === 2 && p[0] === 'entries'))
        .map(([p, v]) => ({ doc: setAt(good, p, v as Json | undefined), how: `${p.join('.')} set to ${show(v)}` })),
      // the bytes of a base64url field (genesis, head, an entry, a proof hash) changed
      fc.constantFrom(...provenPaths.filter(isBase64)).chain(p =>
        changedBytes(fc.constant(fromBase64url(getAt(good, p) as string))).map(({ bytes: b }) => ({
          doc: setAt(good, p, toBase64url(b)),
          how: `bytes of ${p.join('.')} changed`,
        })),
      ),
    )
    fc.assert(
      fc.property(edits, ({ doc, how }) => {
        const out = verify(doc)
        if (out.ok && out.value.ok) throw new Error(`accepted a report whose ${how}`)
      }),
      budget(0.5),
    )
  })
})
