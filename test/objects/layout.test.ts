/**
 * The object layout as pure rules: the verifier accepts exactly the chunks-then-manifest
 * sequence that matches its manifest and refuses every other (table of cases), and chunking
 * re-cuts any stream of pieces into full chunks with the same bytes (property).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { chunksOf } from '../../node/services/objects.ts'
import {
  chunkReading,
  decodeManifest,
  manifestReading,
  OBJECT_CHUNK_BYTES,
  type ObjectManifest,
  ObjectVerifier,
} from '../../protocols/data/objects.ts'
import type { Reading } from '../../protocols/data/reading.ts'

type Seq = (Reading & { seq: number })[]

function objectOf(content: Uint8Array, over: Partial<ObjectManifest> = {}): Seq {
  const out: Reading[] = []
  for (let i = 0; i * OBJECT_CHUNK_BYTES < content.length; i++) {
    out.push(chunkReading(i, content.subarray(i * OBJECT_CHUNK_BYTES, (i + 1) * OBJECT_CHUNK_BYTES)))
  }
  const manifest: ObjectManifest = {
    name: 'a.bin',
    size: content.length,
    chunks: out.length,
    sha256: createHash('sha256').update(content).digest('hex'),
    mediaType: 'file',
    ...over,
  }
  out.push(manifestReading(manifest))
  return out.map((r, seq) => ({ ...r, seq }))
}

function verify(readings: Seq): { bytes: number; manifest: ObjectManifest } {
  const v = new ObjectVerifier()
  let bytes = 0
  for (const r of readings) bytes += v.accept(r)?.byteLength ?? 0
  return { bytes, manifest: v.finish() }
}

const content = new Uint8Array(2 * OBJECT_CHUNK_BYTES + 100).map((_, i) => i % 251)

describe('object layout', () => {
  it('accepts an intact object, and an empty one', () => {
    assert.equal(verify(objectOf(content)).bytes, content.length)
    assert.deepEqual(verify(objectOf(new Uint8Array(0))).manifest.chunks, 0)
  })

  const cases: [string, (s: Seq) => Seq, RegExp][] = [
    ['a missing chunk', s => s.filter(r => r.seq !== 1), /chunk 1 is missing/],
    ['chunks swapped', s => [s[1], s[0], ...s.slice(2)], /missing/],
    ['a chunk claiming another index', s => s.map(r => (r.seq === 1 ? { ...r, ts: 2 } : r)), /claims to be chunk 2/],
    ['no manifest', s => s.slice(0, -1), /incomplete/],
    ['a reading after the manifest', s => [...s, { ...s[0], seq: s.length }], /follows the manifest/],
    [
      'a changed byte',
      s => s.map(r => (r.seq === 0 ? { ...r, bytes: r.bytes!.map((b, i) => (i === 7 ? b ^ 1 : b)) } : r)),
      /SHA-256 mismatch/,
    ],
    [
      'a manifest with another size',
      s => objectOf(content, { size: content.length + 1 }).map((r, i) => (i < s.length - 1 ? s[i] : r)),
      /manifest|chunk count/,
    ],
    [
      'a manifest with fewer chunks',
      () => objectOf(content, { size: OBJECT_CHUNK_BYTES, chunks: 1 }),
      /claims to be chunk 1/,
    ],
    ['a chunk with a value', s => s.map(r => (r.seq === 0 ? { ...r, value: 1 } : r)), /malformed/],
    ['an empty chunk', s => s.map(r => (r.seq === 0 ? { ...r, bytes: new Uint8Array(0) } : r)), /malformed/],
    ['a manifest that is not one', s => s.map((r, i) => (i === s.length - 1 ? { ...r, value: 42 } : r)), /neither/],
  ]
  for (const [what, change, message] of cases) {
    it(`refuses ${what} with ObjectIntegrityError`, () => {
      assert.throws(
        () => verify(change(objectOf(content))),
        (err: Error) => err.name === 'ObjectIntegrityError' && message.test(err.message),
      )
    })
  }

  it('decodes only well-formed manifests', () => {
    const m = { name: 'x', size: 1, chunks: 1, sha256: 'a'.repeat(64), mediaType: 'message' }
    assert.deepEqual(decodeManifest(m), m)
    for (const bad of [
      { ...m, mediaType: 'video' },
      { ...m, chunks: 2 },
      { ...m, sha256: 'A'.repeat(64) },
      { ...m, extra: 1 },
      { ...m, name: '' },
    ]) {
      assert.throws(() => decodeManifest(bad), { name: 'InvalidMessageError' })
    }
  })

  it('re-cuts any pieces into full chunks with the same bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.integer({ min: 1, max: 97 }),
        async (pieces, size) => {
          const chunks: Uint8Array[] = []
          for await (const c of chunksOf(
            (async function* () {
              yield* pieces
            })(),
            size,
          ))
            chunks.push(c)
          assert.deepEqual(Buffer.concat(chunks), Buffer.concat(pieces))
          assert.ok(chunks.slice(0, -1).every(c => c.byteLength === size))
          assert.ok(chunks.every(c => c.byteLength > 0))
        },
      ),
    )
  })
})
