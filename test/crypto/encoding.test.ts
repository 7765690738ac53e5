import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  bytesEqual,
  decodeCanonical,
  encodeCanonical,
  fromBase64url,
  fromHex,
  toBase64url,
  toHex,
} from '../../crypto/encoding.ts'
import { InvalidEncodingError } from '../../crypto/errors.ts'
import { bytes, hexOf } from '../support/crypto.ts'

const LIMIT = 1024

function isInvalidEncoding(err: unknown): boolean {
  return err instanceof InvalidEncodingError && err.name === 'InvalidEncodingError'
}

describe('encodeCanonical', () => {
  it('gives the same bytes whatever the key insertion order', () => {
    const a = { zeta: 1, alpha: { y: [1, 2], x: 'x' }, mid: true, b: new Uint8Array([1, 2]) }
    const b = { b: new Uint8Array([1, 2]), mid: true, alpha: { x: 'x', y: [1, 2] }, zeta: 1 }
    assert.deepEqual(encodeCanonical(a), encodeCanonical(b))
  })

  it('sorts map keys bytewise by their encoded form (RFC 8949 §4.2.1)', () => {
    // "b" encodes as 61 62 and "aa" as 62 61 61: the shorter key sorts first
    assert.equal(hexOf(encodeCanonical({ aa: 1, b: 2 })), 'a261620262616101')
    assert.equal(hexOf(encodeCanonical({ b: [2, 3], a: 1 })), 'a26161016162820203')
  })

  it('matches the RFC 8949 Appendix A encodings of simple values', () => {
    const cases: [unknown, string][] = [
      [0, '00'],
      [23, '17'],
      [24, '1818'],
      [100, '1864'],
      [1000, '1903e8'],
      [1000000, '1a000f4240'],
      [-1, '20'],
      [-100, '3863'],
      [-1000, '3903e7'],
      [1.5, 'f93e00'],
      [true, 'f5'],
      [false, 'f4'],
      [null, 'f6'],
      ['', '60'],
      ['IETF', '6449455446'],
      [new Uint8Array([1, 2, 3, 4]), '4401020304'],
      [[1, 2, 3], '83010203'],
      [{}, 'a0'],
    ]
    for (const [value, hex] of cases) assert.equal(hexOf(encodeCanonical(value)), hex, `encoding of ${String(value)}`)
  })

  // Callers copy signed bytes with slice() before editing them (tests that tamper, caches).
  // A Node Buffer's slice() is a view onto the same memory, so the "copy" edits the original.
  it('returns bytes whose slice() is a copy, at every output size', () => {
    const aliased: number[] = []
    for (let n = 0; n < 400; n += 3) {
      const out = encodeCanonical({ note: 'x'.repeat(n) })
      const copy = out.slice()
      copy[0] ^= 0xff
      if (out[0] === copy[0]) aliased.push(out.length)
    }
    assert.deepEqual(aliased, [], `slice() edited the original encoding for output sizes ${aliased.join(', ')}`)
  })
})

describe('decodeCanonical', () => {
  it('round-trips canonical values', () => {
    const values: unknown[] = [
      0,
      -1,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      1.5,
      0.1,
      'héllo ✓',
      '',
      true,
      null,
      new Uint8Array(0),
      new Uint8Array([0, 255, 7]),
      [],
      [1, [2, [3, 'x']]],
      {
        iss: 'did:key:z6Mk',
        n: 3,
        list: [{ a: 1 }, { b: new Uint8Array([9]) }],
        nested: { deeper: { deepest: null } },
      },
    ]
    for (const value of values) {
      const encoded = encodeCanonical(value)
      const decoded = decodeCanonical(encoded, LIMIT)
      assert.deepEqual(decoded, value)
      assert.deepEqual(encodeCanonical(decoded), encoded)
    }
  })

  it('accepts input of exactly maxBytes', () => {
    const encoded = encodeCanonical({ a: 'x'.repeat(40) })
    assert.deepEqual(decodeCanonical(encoded, encoded.byteLength), { a: 'x'.repeat(40) })
  })

  it('refuses input over maxBytes before reading a single byte of it', () => {
    const encoded = encodeCanonical({ a: 'x'.repeat(40) })
    const touched: PropertyKey[] = []
    // A proxy that records every property read: a size check needs only byteLength/length.
    const spy = new Proxy(encoded, {
      get(target, prop) {
        touched.push(prop)
        const value = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    assert.throws(() => decodeCanonical(spy, encoded.byteLength - 1), isInvalidEncoding)
    const reads = touched.filter(p => p !== 'byteLength' && p !== 'length')
    assert.deepEqual(reads, [], `read ${String(reads)} before refusing on size`)
  })

  it('refuses a large input over the limit however malformed it is', () => {
    const deep = new Uint8Array(200_000).fill(0x81) // 200 000 nested arrays, never terminated
    assert.throws(() => decodeCanonical(deep, 100_000), isInvalidEncoding)
  })

  const refused: [string, string][] = [
    ['map keys out of canonical order', 'a2616201616102'],
    ['map keys sorted length-last', 'a262616101616202'],
    ['integer 23 in one extra byte', '1817'],
    ['integer 23 in two extra bytes', '190017'],
    ['integer 23 in four extra bytes', '1a00000017'],
    ['string length in an extra byte', '780161'],
    ['1.5 as a float64', 'fb3ff8000000000000'],
    ['the integer 1 as a float', 'f93c00'],
    ['indefinite-length array', '9f0102ff'],
    ['indefinite-length map', 'bf616101ff'],
    ['indefinite-length text string', '7f6161ff'],
    ['indefinite-length byte string', '5f4101ff'],
    ['duplicate map key', 'a2616101616102'],
    ['undefined', 'f7'],
    ['undefined inside an array', '81f7'],
    ['undefined as a map value', 'a16161f7'],
    ['NaN', 'f97e00'],
    ['Infinity', 'f97c00'],
    ['integer beyond 2^53', '1b0020000000000000'],
    ['a tag (epoch time)', 'c11a514b67b0'],
    ['a simple value', 'f0'],
    ['a non-string map key', 'a10102'],
    ['trailing bytes', '0000'],
    ['truncated array', '8201'],
    ['truncated string', '6461'],
    ['empty input', ''],
    ['a reserved additional-info value', '1c'],
  ]
  for (const [what, hex] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(() => decodeCanonical(bytes(hex), LIMIT), isInvalidEncoding)
    })
  }

  it('refuses input that is not a Uint8Array', () => {
    assert.throws(() => decodeCanonical('a0' as unknown as Uint8Array, LIMIT), isInvalidEncoding)
    assert.throws(() => decodeCanonical([0xa0] as unknown as Uint8Array, LIMIT), isInvalidEncoding)
  })

  it('refuses nesting deep enough to exhaust the stack with a typed error', () => {
    const deep = new Uint8Array(50_000).fill(0x81)
    deep[deep.length - 1] = 0x00
    assert.throws(() => decodeCanonical(deep, deep.length), isInvalidEncoding)
  })

  it('throws errors a caller can branch on by name', () => {
    try {
      decodeCanonical(bytes('f7'), LIMIT)
      assert.fail('expected a refusal')
    } catch (err) {
      assert.ok(err instanceof Error)
      assert.equal(err.name, 'InvalidEncodingError')
    }
  })
})

describe('encodeCanonical and decodeCanonical agree', () => {
  // Anything encodeCanonical produces must be accepted back by decodeCanonical, otherwise a
  // record can be signed that no peer will ever open. Refusing at encode time is fine.
  it('encodeCanonical refuses every value decodeCanonical would refuse', () => {
    const values: [string, unknown][] = [
      ['undefined', undefined],
      ['an undefined map value', { iss: 'x', note: undefined }],
      ['undefined in an array', [undefined]],
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['a Map with a number key', new Map([[1, 2]])],
    ]
    const accepted: string[] = []
    for (const [what, value] of values) {
      let encoded: Uint8Array
      try {
        encoded = encodeCanonical(value)
      } catch {
        continue // refused at encode time: consistent
      }
      try {
        decodeCanonical(encoded, LIMIT)
      } catch {
        accepted.push(what)
      }
    }
    assert.deepEqual(accepted, [], `encodeCanonical produced bytes decodeCanonical refuses for: ${accepted.join(', ')}`)
  })
})

describe('bytesEqual', () => {
  it('compares length and content', () => {
    assert.equal(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true)
    assert.equal(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false)
    assert.equal(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false)
    assert.equal(bytesEqual(new Uint8Array(0), new Uint8Array(0)), true)
  })
})

describe('hex', () => {
  it('round-trips and writes lowercase', () => {
    const b = new Uint8Array([0x00, 0x0f, 0xa0, 0xff])
    assert.equal(toHex(b), '000fa0ff')
    assert.deepEqual(fromHex('000fa0ff'), b)
    assert.deepEqual(fromHex(''), new Uint8Array(0))
  })

  it('encodes only the bytes of a view, not its whole buffer', () => {
    const view = new Uint8Array([1, 2, 3, 4]).subarray(1, 3)
    assert.equal(toHex(view), '0203')
  })

  for (const bad of ['abc', 'AB', 'Ab', 'zz', '0x00', '00 ', ' 00', '0g', '00\n']) {
    it(`fromHex refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => fromHex(bad), isInvalidEncoding)
    })
  }
})

describe('base64url', () => {
  it('round-trips every length and uses the URL alphabet without padding', () => {
    for (let n = 0; n < 20; n++) {
      const b = new Uint8Array(n).map((_, i) => (i * 97 + n * 31) & 0xff)
      const text = toBase64url(b)
      assert.match(text, /^[A-Za-z0-9_-]*$/)
      assert.deepEqual(fromBase64url(text), b)
    }
    assert.equal(toBase64url(new Uint8Array([0xfb, 0xff])), '-_8')
    assert.deepEqual(fromBase64url('-_8'), new Uint8Array([0xfb, 0xff]))
  })

  it('encodes only the bytes of a view, not its whole buffer', () => {
    const view = new Uint8Array([0xff, 0x00, 0x01, 0xff]).subarray(1, 3)
    assert.equal(toBase64url(view), 'AAE')
  })

  for (const bad of ['AA==', 'AA=', '+/8', 'a+b', 'a/b', 'AA AA', 'AA\n', 'é']) {
    it(`fromBase64url refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => fromBase64url(bad), isInvalidEncoding)
    })
  }

  it('fromBase64url refuses a length no byte string encodes to (4n+1 characters)', () => {
    for (const bad of ['A', 'AAAAA', 'AAAAAAAAA']) {
      assert.throws(() => fromBase64url(bad), isInvalidEncoding, `${bad} was accepted`)
    }
  })

  it('fromBase64url refuses non-canonical encodings (non-zero unused bits)', () => {
    // "AA" is the encoding of 0x00; "AB" decodes to the same byte with a stray bit set
    for (const bad of ['AB', 'AAB', '-_9']) {
      assert.throws(() => fromBase64url(bad), isInvalidEncoding, `${bad} was accepted`)
    }
  })
})
