/**
 * Canonical CBOR (RFC 8949 §4.2.1 core deterministic encoding) of fixed shapes, written
 * directly: encodeCanonical (encoding.ts) builds tokens and sorts map keys for every value,
 * which costs more than a reading's encryption, so hot paths (records, commitments, gossip
 * messages) write their known layout with this instead.
 *
 * Guarantees: what it writes is byte for byte what encodeCanonical writes for the same value.
 * Each step returns false on anything it does not write exactly as encodeCanonical would (a
 * number that is not a safe non-negative integer, a string that is not well-formed), and the
 * caller then falls back to encodeCanonical; the tests compare both on generated values.
 * Assumes: the caller writes map keys in canonical order (shorter first, then bytewise).
 */

const utf8 = new TextEncoder()

/** A growable buffer that writes canonical CBOR heads, integers, byte and text strings. */
export class CborWriter {
  private buf = new Uint8Array(4096)
  private pos = 0

  /** Start again from empty, keeping the buffer. */
  reset(): this {
    this.pos = 0
    return this
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.byteLength) return
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.pos + n))
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  /** The head of major type `major` with argument `n`, in its shortest form; false unless `n` is a safe non-negative integer. */
  head(major: number, n: number): boolean {
    if (!Number.isSafeInteger(n) || n < 0) return false
    this.room(9)
    const b = this.buf
    const m = major << 5
    if (n < 24) b[this.pos++] = m | n
    else if (n < 0x100) {
      b[this.pos++] = m | 24
      b[this.pos++] = n
    } else if (n < 0x10000) {
      b[this.pos++] = m | 25
      b[this.pos++] = n >>> 8
      b[this.pos++] = n & 0xff
    } else if (n < 0x100000000) {
      b[this.pos++] = m | 26
      b[this.pos++] = n >>> 24
      b[this.pos++] = (n >>> 16) & 0xff
      b[this.pos++] = (n >>> 8) & 0xff
      b[this.pos++] = n & 0xff
    } else {
      b[this.pos++] = m | 27
      const hi = Math.floor(n / 0x100000000)
      const lo = n >>> 0
      for (const word of [hi, lo]) {
        b[this.pos++] = word >>> 24
        b[this.pos++] = (word >>> 16) & 0xff
        b[this.pos++] = (word >>> 8) & 0xff
        b[this.pos++] = word & 0xff
      }
    }
    return true
  }

  /** an unsigned integer (major type 0) */
  uint(n: number): boolean {
    return this.head(0, n)
  }

  /** a safe integer, negative ones as CBOR's major type 1 */
  int(n: number): boolean {
    return n < 0 ? this.head(1, -1 - n) : this.head(0, n)
  }

  /** the simple value null */
  null(): boolean {
    this.room(1)
    this.buf[this.pos++] = 0xf6
    return true
  }

  /** bytes as they are, without a head (a prefix of what is hashed) */
  raw(v: Uint8Array): boolean {
    this.room(v.byteLength)
    this.buf.set(v, this.pos)
    this.pos += v.byteLength
    return true
  }

  /** a byte string (major type 2) */
  bytes(v: Uint8Array): boolean {
    this.head(2, v.byteLength)
    this.room(v.byteLength)
    this.buf.set(v, this.pos)
    this.pos += v.byteLength
    return true
  }

  /** a text string (major type 3); false for a string that is not well-formed UTF-16 */
  text(s: string): boolean {
    // JSON.stringify(undefined) is not a string: encodeCanonical refuses it, with its own error
    if (typeof s !== 'string') return false
    let ascii = true
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false
        break
      }
    }
    if (ascii) {
      this.head(3, s.length)
      this.room(s.length)
      const b = this.buf
      for (let i = 0; i < s.length; i++) b[this.pos++] = s.charCodeAt(i)
      return true
    }
    if (!s.isWellFormed()) return false
    const n = Buffer.byteLength(s, 'utf8')
    this.head(3, n)
    this.room(n)
    this.pos += utf8.encodeInto(s, this.buf.subarray(this.pos)).written
    return true
  }

  /** The bytes written, valid only until the writer is used again. */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }

  /** The bytes written, as a copy the caller owns. */
  done(): Uint8Array {
    // Buffer's pool serves small sizes from a shared slab: a typed array of its own per record cost more
    const pooled = Buffer.allocUnsafe(this.pos)
    pooled.set(this.buf.subarray(0, this.pos))
    return new Uint8Array(pooled.buffer, pooled.byteOffset, this.pos)
  }
}
