/**
 * Reading canonical CBOR of a known layout directly, without the general decoder: the fast
 * path of decoders whose messages arrive often (encrypted readings, readings messages).
 *
 * Guarantees: every method returns undefined for anything that is not minimal canonical CBOR
 * of the asked type (a non-minimal head, a length past the end, a number above 2^53 - 1, a
 * non-ASCII text where ASCII is asked), so a caller that gets undefined hands the input to
 * decodeCanonical (encoding.ts), which refuses it with its own error. Reads only what is
 * there: never past the end of the input.
 */

/** A cursor over canonical CBOR that reads heads, byte strings and ASCII text strings. */
export class CborReader {
  pos = 0
  readonly b: Uint8Array

  constructor(b: Uint8Array) {
    this.b = b
  }

  /** the argument of a head of `major`, if it is minimal and at most 2^53 - 1 */
  head(major: number): number | undefined {
    const b = this.b
    if (this.pos >= b.byteLength || b[this.pos] >> 5 !== major) return undefined
    const info = b[this.pos++] & 0x1f
    if (info < 24) return info
    const len = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0
    if (len === 0 || this.pos + len > b.byteLength) return undefined
    let n = 0
    for (let i = 0; i < len; i++) n = n * 256 + b[this.pos++]
    const min = len === 1 ? 24 : len === 2 ? 0x100 : len === 4 ? 0x10000 : 0x100000000
    return n < min || !Number.isSafeInteger(n) ? undefined : n
  }

  /** a byte string, as a view of the input */
  bytes(): Uint8Array | undefined {
    const n = this.head(2)
    if (n === undefined || this.pos + n > this.b.byteLength) return undefined
    this.pos += n
    return this.b.subarray(this.pos - n, this.pos)
  }

  /** an ASCII text string */
  ascii(): string | undefined {
    const n = this.head(3)
    if (n === undefined || this.pos + n > this.b.byteLength) return undefined
    const chars = this.b.subarray(this.pos, this.pos + n)
    for (let i = 0; i < n; i++) if (chars[i] > 0x7f) return undefined
    this.pos += n
    return String.fromCharCode.apply(null, chars as unknown as number[])
  }

  /** Whether the next item is the ASCII text `k` (a map key in a fixed layout). */
  key(k: string): boolean {
    return this.ascii() === k
  }
}
