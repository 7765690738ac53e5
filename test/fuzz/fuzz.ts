/**
 * Shared machinery of the decoder fuzz suites (test/fuzz/*.test.ts): the run budget, the
 * property every decoder of network input must hold, and the generators of hostile input.
 *
 * The property: on any input a decoder returns a value or throws one of its typed errors
 * (compared by `err.name`, as callers branch), never a TypeError, RangeError or anything
 * else, and returns within MAX_MS. A hang cannot be interrupted inside a synchronous call,
 * so each suite also runs under node:test's `timeout`.
 *
 * Budget: FUZZ_RUNS (runs per property; CI default below keeps the directory a few seconds),
 * or FUZZ_SECONDS (time per property, runs unbounded); FUZZ_SEED replays a reported seed.
 * `npm run fuzz` sets FUZZ_RUNS high.
 */
import fc from 'fast-check'
import { bytesEqual, encodeCanonical } from '../../crypto/encoding.ts'
import { signTagged } from '../../crypto/identity.ts'

/** Runs per property when no budget is set: small, so that the whole directory stays well under 20 s in CI. */
const CI_RUNS = 100
const RUNS = Number(process.env.FUZZ_RUNS) || CI_RUNS
const SECONDS = Number(process.env.FUZZ_SECONDS) || 0
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED)
/** True when run by `npm run fuzz` (or with any explicit budget). */
export const LONG = RUNS !== CI_RUNS || SECONDS > 0
/** The longest one input may take: far above any decoder's real cost, far below a hang. */
export const MAX_MS = Number(process.env.FUZZ_MAX_MS) || 1000

/**
 * Report a failure by its seed, path and the decoder's own message (which shows the input
 * shortened): fast-check's default report prints the whole counterexample, megabytes for deep input.
 */
function report(details: fc.RunDetails<unknown>): void {
  if (!details.failed) return
  const cause = details.errorInstance as Error | undefined
  throw new Error(
    `property failed after ${details.numRuns} runs (replay: FUZZ_SEED=${details.seed}, path ${details.counterexamplePath}): ${cause?.message ?? 'no error'}`,
    { cause },
  )
}

/** fast-check parameters for one property; `weight` scales the run count of a cheap or costly property. */
export function budget(weight = 1): fc.Parameters<unknown> {
  const numRuns = Math.max(10, Math.round(RUNS * weight))
  return {
    reporter: report,
    numRuns: SECONDS > 0 ? Number.MAX_SAFE_INTEGER : numRuns,
    ...(SECONDS > 0 ? { interruptAfterTimeLimit: SECONDS * 1000, markInterruptAsFailure: false } : {}),
    ...(SEED === undefined ? {} : { seed: SEED }),
  }
}

/** node:test options of a fuzz suite: a deadline that catches a hang in CI, none in a long run. */
export const SUITE = { timeout: LONG ? Number.POSITIVE_INFINITY : 60_000 } as const

/** What decoding one input gave: its value, or the typed error it threw. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error }

/** Describe an input for a failure message: its length and its first bytes in hex. */
export function show(input: unknown): string {
  if (input instanceof Uint8Array) {
    const hex = Buffer.from(input.subarray(0, 96)).toString('hex')
    return `${input.byteLength} bytes: ${hex}${input.byteLength > 96 ? '…' : ''}`
  }
  const text = JSON.stringify(input, (_k, v) =>
    v instanceof Uint8Array
      ? v.byteLength <= 64
        ? `<hex ${Buffer.from(v).toString('hex')}>`
        : `<${v.byteLength} bytes>`
      : v,
  )
  return text === undefined ? String(input) : text.length > 300 ? `${text.slice(0, 300)}…` : text
}

/**
 * Decode one input and check the property: a value or a typed error (by name), within MAX_MS.
 * Throws (failing the property) otherwise; returns the outcome for further checks.
 */
export function decodeTyped<I, T>(decode: (input: I) => T, allowed: readonly string[], input: I): Outcome<T> {
  const t0 = performance.now()
  let outcome: Outcome<T>
  try {
    outcome = { ok: true, value: decode(input) }
  } catch (err) {
    outcome = { ok: false, error: err as Error }
  }
  const ms = performance.now() - t0
  if (!outcome.ok) {
    const e = outcome.error
    if (!(e instanceof Error) || !allowed.includes(e.name)) {
      const what = e instanceof Error ? `${e.name}: ${e.message}` : `a non-Error ${String(e)}`
      throw new Error(`threw ${what} (allowed: ${allowed.join(', ')}) on ${show(input)}`, { cause: e })
    }
  }
  if (ms > MAX_MS) throw new Error(`took ${ms.toFixed(0)} ms (limit ${MAX_MS}) on ${show(input)}`)
  return outcome
}

/** As decodeTyped, for a decoder that returns a promise. */
export async function decodeTypedAsync<I, T>(
  decode: (input: I) => Promise<T>,
  allowed: readonly string[],
  input: I,
): Promise<Outcome<T>> {
  const t0 = performance.now()
  let outcome: Outcome<T>
  try {
    outcome = { ok: true, value: await decode(input) }
  } catch (err) {
    outcome = { ok: false, error: err as Error }
  }
  const ms = performance.now() - t0
  if (!outcome.ok && (!(outcome.error instanceof Error) || !allowed.includes(outcome.error.name))) {
    const e = outcome.error
    throw new Error(`threw ${e?.name}: ${e?.message} (allowed: ${allowed.join(', ')}) on ${show(input)}`, { cause: e })
  }
  if (ms > MAX_MS) throw new Error(`took ${ms.toFixed(0)} ms (limit ${MAX_MS}) on ${show(input)}`)
  return outcome
}

/** Fail unless the input was refused: for garbage no decoder may accept. */
export function mustRefuse<I, T>(decode: (input: I) => T, allowed: readonly string[], input: I, why: string): void {
  const out = decodeTyped(decode, allowed, input)
  if (out.ok) throw new Error(`accepted ${why}: ${show(input)} gave ${show(out.value)}`)
}

// ---------------------------------------------------------------------------------------------
// Errors each layer may throw, by name

/** decodeCanonical and the shape checks of protocols/validate.ts. */
export const CODEC_ERRORS = ['InvalidEncodingError', 'InvalidMessageError'] as const
/** openSignedRecord plus the record's own checks: a did that does not parse, a signature that does not verify. */
export const SIGNED_ERRORS = [...CODEC_ERRORS, 'InvalidSignatureError', 'InvalidDidError'] as const

// ---------------------------------------------------------------------------------------------
// Generators

/** Random bytes, mostly short, sometimes a few KiB. */
export const randomBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096 }) },
)

/** A CBOR head of `major` with an argument encoded in `len` extra bytes (non-minimal when small). */
function cborHead(major: number, len: 1 | 2 | 4 | 8, value: bigint): Uint8Array {
  const info = len === 1 ? 24 : len === 2 ? 25 : len === 4 ? 26 : 27
  const out = new Uint8Array(1 + len)
  out[0] = (major << 5) | info
  let v = value
  for (let i = len; i >= 1; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

/** Heads that claim huge or non-minimal lengths and values (up to 2^64 - 1), and indefinite/reserved ones. */
export const hostileHead: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .record({
      major: fc.integer({ min: 0, max: 7 }),
      len: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
      value: fc.oneof(
        fc.constantFrom(0n, 23n, 0xffn, 0xffffn, 0xffffffffn, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      ),
    })
    .map(({ major, len, value }) => cborHead(major, len, value & ((1n << BigInt(8 * len)) - 1n))),
  // indefinite lengths, reserved additional info, break codes, undefined, NaN/Infinity as half floats
  fc.constantFrom(
    Uint8Array.of(0x5f),
    Uint8Array.of(0x7f),
    Uint8Array.of(0x9f),
    Uint8Array.of(0xbf),
    Uint8Array.of(0xff),
    Uint8Array.of(0x1c),
    Uint8Array.of(0xf7),
    Uint8Array.of(0xf9, 0x7e, 0x00),
    Uint8Array.of(0xf9, 0x7c, 0x00),
    Uint8Array.of(0xc2, 0x41, 0x01),
  ),
)

/** Raw CBOR nested `depth` levels deep (arrays of one, or maps of one key), ending in 0. */
export function nestedCbor(depth: number, kind: 'array' | 'map'): Uint8Array {
  const open = kind === 'array' ? [0x81] : [0xa1, 0x61, 0x61]
  const out = new Uint8Array(open.length * depth + 1)
  for (let i = 0; i < depth; i++) out.set(open, i * open.length)
  return out
}

/** Deeply nested CBOR, from a little to far past any parser's stack. */
export const deepCbor: fc.Arbitrary<Uint8Array> = fc
  .record({
    // 2 500..8 000 is where cborg decodes but cannot encode again (found by this suite)
    depth: fc.oneof(
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: 2500, max: 8000 }),
      fc.integer({ min: 200, max: 20_000 }),
    ),
    map: fc.boolean(),
  })
  .map(({ depth, map }) => nestedCbor(depth, map ? 'map' : 'array'))

type Mutation = (b: Uint8Array) => Uint8Array

const at = (b: Uint8Array, i: number) => (b.byteLength === 0 ? 0 : i % b.byteLength)

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  return out
}

/** One edit of a byte string: the ways a wire message gets damaged or forged. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ i: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }).map(({ i, bit }) => (b: Uint8Array) => {
    const out = b.slice()
    if (out.byteLength > 0) out[at(b, i)] ^= 1 << bit
    return out
  }),
  fc.record({ i: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }).map(({ i, v }) => (b: Uint8Array) => {
    const out = b.slice()
    if (out.byteLength > 0) out[at(b, i)] = v
    return out
  }),
  fc.nat().map(i => (b: Uint8Array) => b.slice(0, at(b, i))),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map(extra => (b: Uint8Array) => concat(b, extra)),
  fc.record({ i: fc.nat(), extra: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 16 }), hostileHead) }).map(
    ({ i, extra }) =>
      (b: Uint8Array) =>
        concat(b.subarray(0, at(b, i)), extra, b.subarray(at(b, i))),
  ),
  fc.record({ i: fc.nat(), n: fc.integer({ min: 1, max: 32 }) }).map(
    ({ i, n }) =>
      (b: Uint8Array) =>
        concat(b.subarray(0, at(b, i)), b.subarray(at(b, i) + n)),
  ),
  fc
    .record({ i: fc.nat(), n: fc.integer({ min: 1, max: 64 }), times: fc.integer({ min: 1, max: 8 }) })
    .map(({ i, n, times }) => (b: Uint8Array) => {
      const slice = b.subarray(at(b, i), at(b, i) + n)
      return concat(
        b.subarray(0, at(b, i)),
        ...Array.from({ length: times + 1 }, () => slice),
        b.subarray(at(b, i) + n),
      )
    }),
  // overwrite a head with one that claims a huge or odd length
  fc.record({ i: fc.nat(), head: hostileHead }).map(
    ({ i, head }) =>
      (b: Uint8Array) =>
        concat(b.subarray(0, at(b, i)), head, b.subarray(at(b, i) + 1)),
  ),
)

/** 1 to 4 edits of `valid`, in sequence. */
export function mutatedBytes(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([b, ms]) => ms.reduce((acc, m) => m(acc), b))
}

/** Edited bytes of `valid` that differ from it (for properties that need the input to have changed). */
export function changedBytes(
  valid: fc.Arbitrary<Uint8Array>,
): fc.Arbitrary<{ original: Uint8Array; bytes: Uint8Array }> {
  return fc
    .tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([b, ms]) => ({ original: b, bytes: ms.reduce((acc, m) => m(acc), b) }))
    .filter(({ original, bytes }) => !bytesEqual(original, bytes))
}

/** Values that canonical CBOR can carry: the leaves. */
export const cborLeaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.constantFrom(0, -1, 2 ** 32, 2 ** 53 - 1, -(2 ** 53) + 1, 2 ** 53, 2 ** 64, -(2 ** 64), 1e300, 0.5, -0.5),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.uint8Array({ maxLength: 48 }),
  fc.boolean(),
  fc.constant(null),
)

/** Any value canonical CBOR can carry, nested a few levels. */
export const cborValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    cborLeaf,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 5 }),
  ),
})).value

/** The CBOR type of a value, as the decoders tell them apart. */
export function cborType(v: unknown): string {
  if (v === null) return 'null'
  if (v instanceof Uint8Array) return 'bytes'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'int' : 'float'
  return typeof v
}

/** One value of each CBOR type, to swap in for a field of another type. */
export const valueOfType: Record<string, fc.Arbitrary<unknown>> = {
  null: fc.constant(null),
  bytes: fc.uint8Array({ maxLength: 40 }),
  array: fc.array(cborLeaf, { maxLength: 3 }),
  int: fc.oneof(fc.integer(), fc.constantFrom(-1, 2 ** 53 - 1)),
  float: fc.oneof(
    fc.constantFrom(0.5, -1.5, 2 ** 60, 1e300),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter(n => !Number.isSafeInteger(n)),
  ),
  string: fc.string({ maxLength: 20 }),
  boolean: fc.boolean(),
  object: fc.dictionary(fc.string({ maxLength: 8 }), cborLeaf, { maxKeys: 3 }),
}

/** A value of some CBOR type other than that of `v`. */
export function otherType(v: unknown): fc.Arbitrary<unknown> {
  const mine = cborType(v)
  return fc.oneof(
    ...Object.entries(valueOfType)
      .filter(([t]) => t !== mine)
      .map(([, a]) => a),
  )
}

/** Values far past any field's limits: long strings, big byte strings, long lists, deep nesting. */
export const hugeValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 257, max: 70_000 }).map(n => 'x'.repeat(n)),
  fc.integer({ min: 33, max: 70_000 }).map(n => new Uint8Array(n)),
  fc.integer({ min: 17, max: 2000 }).map(n => Array.from({ length: n }, (_, i) => i)),
  fc.integer({ min: 10, max: 400 }).map(depth => {
    let v: unknown = 0
    for (let i = 0; i < depth; i++) v = [v]
    return v
  }),
)

/** One edit of a decoded CBOR map's fields. */
export type FieldEdit =
  | { kind: 'delete'; key: string }
  | { kind: 'set'; key: string; value: unknown }
  | { kind: 'retype'; key: string; value: unknown }
  | { kind: 'add'; key: string; value: unknown }
  | { kind: 'whole'; value: unknown }

/** Apply an edit to a copy of `m` (a 'whole' edit replaces the map). */
export function applyEdit(m: Record<string, unknown>, e: FieldEdit): unknown {
  if (e.kind === 'whole') return e.value
  const out = { ...m }
  if (e.kind === 'delete') delete out[e.key]
  else out[e.key] = e.value
  return out
}

/**
 * Edits of a map's fields: delete one, replace one with any value, with a value of another
 * type, or with a huge one, add an unknown field or one of `extraKeys` (another variant's
 * fields), or replace the whole map with another value.
 */
export function fieldEdit(m: Record<string, unknown>, extraKeys: readonly string[] = []): fc.Arbitrary<FieldEdit> {
  const keys = Object.keys(m)
  const key = fc.constantFrom(...keys)
  const edits: fc.Arbitrary<FieldEdit>[] = [
    key.map(k => ({ kind: 'delete' as const, key: k })),
    fc.tuple(key, fc.oneof(cborValue, hugeValue)).map(([k, value]) => ({ kind: 'set' as const, key: k, value })),
    key.chain(k => otherType(m[k]).map(value => ({ kind: 'retype' as const, key: k, value }))),
    fc
      .tuple(
        fc.oneof(
          fc.string({ minLength: 1, maxLength: 10 }),
          ...(extraKeys.length ? [fc.constantFrom(...extraKeys)] : []),
        ),
        cborValue,
      )
      .filter(([k]) => !(k in m))
      .map(([k, value]) => ({ kind: 'add' as const, key: k, value })),
    cborValue.map(value => ({ kind: 'whole' as const, value })),
  ]
  return fc.oneof(...edits)
}

/** Encode an edited value canonically; edits only ever produce encodable values. */
export function encodeEdited(v: unknown): Uint8Array {
  return encodeCanonical(v)
}

// ---------------------------------------------------------------------------------------------
// Signed records: re-signing an edited body, so that the edit reaches the checks behind the signature

/** A valid signed record and how to make more like it. */
export interface SignedSample {
  tag: string
  secretKey: Uint8Array
  body: Record<string, unknown>
  bytes: Uint8Array
}

/** Sign arbitrary body bytes as a signed record would be: `{ body, sig }` over (tag, body). */
export function signBodyBytes(tag: string, secretKey: Uint8Array, bodyBytes: Uint8Array): Uint8Array {
  return encodeCanonical({ body: bodyBytes, sig: signTagged(tag, bodyBytes, secretKey) })
}

/**
 * Inputs built from valid signed records, with what a decoder must do with each: `refuse`
 * when the signed bytes were changed after signing (nothing but the original verifies),
 * `typed` when an edited body was signed again (a typed error or a value, never a crash).
 */
export function signedInputs(
  samples: readonly SignedSample[],
  extraKeys: readonly string[] = [],
): fc.Arbitrary<{ bytes: Uint8Array; mustRefuse: boolean; how: string }> {
  const sample = fc.constantFrom(...samples)
  return fc.oneof(
    // bytes edited after signing
    sample
      .chain(s => changedBytes(fc.constant(s.bytes)))
      .map(({ bytes }) => ({ bytes, mustRefuse: true, how: 'signed bytes edited after signing' })),
    // a field edited, then signed again by the same key
    sample.chain(s =>
      fieldEdit(s.body, extraKeys).map(e => ({
        bytes: signBodyBytes(s.tag, s.secretKey, encodeEdited(applyEdit(s.body, e))),
        mustRefuse: false,
        how: `body edit ${e.kind}${'key' in e ? ` ${e.key}` : ''}, signed again`,
      })),
    ),
    // the body's bytes edited, then signed again
    sample.chain(s =>
      mutatedBytes(fc.constant(encodeCanonical(s.body))).map(b => ({
        bytes: signBodyBytes(s.tag, s.secretKey, b),
        mustRefuse: false,
        how: 'body bytes edited, signed again',
      })),
    ),
    // a valid record of another kind (its tag differs: the signature must not transfer)
    fc
      .tuple(sample, fc.constantFrom('edgeward/other/v1', 'edgeward/grant/v1', 'edgeward/change/v1'))
      .filter(([s, tag]) => s.tag !== tag)
      .map(([s, tag]) => ({
        bytes: signBodyBytes(tag, s.secretKey, encodeCanonical(s.body)),
        mustRefuse: true,
        how: `signed under tag ${tag}`,
      })),
    // raw hostile bytes
    fc.oneof(randomBytes, deepCbor).map(bytes => ({ bytes, mustRefuse: false, how: 'random or deep bytes' })),
  )
}

/** Options of the standard batteries. */
export interface BatteryOptions {
  /** scales the run count */
  weight?: number
  /** fields of the message's other variants, to add in field edits */
  extraKeys?: readonly string[]
  /** a present field set to a value of another type, or an unknown field added, must be refused */
  strictFields?: boolean
  /** fields a sample's variant must not carry (another variant's): adding one must be refused too */
  foreignKeys?: (m: Record<string, unknown>) => readonly string[]
}

/**
 * A standard battery for one decoder of network input: `decode` may throw only the errors named
 * in `allowed`, and is tried on valid `samples` and on what is made from them.
 */
export type Battery<Sample> = (
  decode: (b: Uint8Array) => unknown,
  allowed: readonly string[],
  samples: readonly Sample[],
  opts?: BatteryOptions,
) => void

/** Edits the strict check makes: a present field retyped, an unknown or foreign field added. */
function strictEdits(
  maps: readonly Record<string, unknown>[],
  opts: BatteryOptions,
): fc.Arbitrary<{ m: Record<string, unknown>; key: string; value: unknown }> {
  return fc.constantFrom(...maps).chain(m =>
    fc.oneof(
      fc.constantFrom(...Object.keys(m)).chain(k => otherType(m[k]).map(v => ({ m, key: k, value: v }))),
      fc
        .oneof(
          fc.string({ minLength: 1, maxLength: 10 }).map(k => `x-${k}`),
          ...(opts.foreignKeys?.(m).length ? [fc.constantFrom(...opts.foreignKeys(m))] : []),
        )
        .filter(k => !(k in m))
        .chain(k => cborValue.map(v => ({ m, key: k, value: v }))),
    ),
  )
}

/**
 * The standard battery for one decoder of a signed record: generated and mutated inputs,
 * typed errors only, and no tampered signed bytes accepted; with `strictFields`, a re-signed
 * body with a field of the wrong type (or one it may not carry) is refused.
 */
export const checkSigned: Battery<SignedSample> = (decode, allowed, samples, opts = {}) => {
  for (const s of samples) decodeTyped(decode, allowed, s.bytes)
  fc.assert(
    fc.property(signedInputs(samples, opts.extraKeys), ({ bytes, mustRefuse: refuse, how }) => {
      if (refuse) mustRefuse(decode, allowed, bytes, how)
      else decodeTyped(decode, allowed, bytes)
    }),
    budget(opts.weight),
  )
  if (!opts.strictFields) return
  const signer = new Map(samples.map(s => [s.body, s]))
  fc.assert(
    fc.property(strictEdits([...signer.keys()], opts), ({ m, key, value }) => {
      const s = signer.get(m)!
      const bytes = signBodyBytes(s.tag, s.secretKey, encodeCanonical({ ...m, [key]: value }))
      mustRefuse(decode, allowed, bytes, `body field ${key} set to ${show(value)}, signed again`)
    }),
    budget(opts.weight),
  )
}

/**
 * The standard battery for one decoder of an unsigned canonical-CBOR message: random bytes,
 * deep nesting, byte edits of valid encodings, and field edits of valid values, typed errors only;
 * with `strictFields`, a field of the wrong type (or a field the message does not have) is refused.
 */
export const checkCodec: Battery<unknown> = (decode, allowed, samples, opts = {}) => {
  const encoded = samples.map(s => encodeCanonical(s))
  for (const b of encoded) decodeTyped(decode, allowed, b)
  const maps = samples.filter(
    (s): s is Record<string, unknown> =>
      s !== null && typeof s === 'object' && !Array.isArray(s) && !(s instanceof Uint8Array),
  )
  const inputs: fc.Arbitrary<Uint8Array>[] = [
    randomBytes,
    deepCbor,
    mutatedBytes(fc.constantFrom(...encoded)),
    cborValue.map(v => encodeCanonical(v)),
  ]
  if (maps.length > 0) {
    inputs.push(
      fc.constantFrom(...maps).chain(m => fieldEdit(m, opts.extraKeys).map(e => encodeEdited(applyEdit(m, e)))),
    )
  }
  fc.assert(
    fc.property(fc.oneof(...inputs), bytes => {
      decodeTyped(decode, allowed, bytes)
    }),
    budget(opts.weight),
  )
  if (!opts.strictFields || maps.length === 0) return
  fc.assert(
    fc.property(strictEdits(maps, opts), ({ m, key, value }) => {
      mustRefuse(decode, allowed, encodeCanonical({ ...m, [key]: value }), `field ${key} set to ${show(value)}`)
    }),
    budget(opts.weight),
  )
}
