/**
 * Objects (files and messages) as streams of chunks: the layout and its check.
 *
 * An object is a stream of its own, named `obj-<16 hex>`, with the raw form only and one
 * epoch as long as a stream record allows (366 days), so the whole object is under one data
 * key. Its readings, in sequence order, are:
 * - the chunks: reading i has `ts = i`, `value = null` and `bytes` = the next at most
 *   OBJECT_CHUNK_BYTES bytes of the content;
 * - then one manifest reading: `ts = chunks`, `value = { name, size, chunks, sha256,
 *   mediaType }`, no bytes.
 * The manifest comes last so that the sharer streams its source once, hashing as it goes,
 * without knowing the size first; a reader knows an object is complete when the manifest
 * is there and agrees with what came before it.
 *
 * Guarantees of ObjectVerifier: it accepts a sequence of decrypted readings only if the
 * sequence numbers run 0, 1, 2, … without a gap, every chunk carries its own index, the
 * manifest is last, and its chunk count, size and SHA-256 match the chunks. Each reading's
 * own integrity and position are the AEAD's (its associated data binds the sequence number);
 * the manifest adds the end, so a truncated or incomplete object is refused too.
 * Pure: no clock, no I/O.
 */
import { toHex } from '../../crypto/encoding.ts'
import { type Sha256Stream, sha256Stream } from '../../crypto/hash.ts'
import { InvalidMessageError } from '../errors.ts'
import { asMap, int, str } from '../validate.ts'
import { MAX_READING_PAYLOAD, type Reading } from './reading.ts'

/** bytes of content per reading */
export const OBJECT_CHUNK_BYTES = MAX_READING_PAYLOAD
/** an object's single epoch: the longest a stream record allows */
export const OBJECT_EPOCH_MS = 366 * 24 * 3600 * 1000
export const OBJECT_PATTERN = /^obj-[0-9a-f]{16}$/
export const MAX_OBJECT_NAME = 255
export const MEDIA_TYPES = ['file', 'message'] as const
export type MediaType = (typeof MEDIA_TYPES)[number]

export interface ObjectManifest {
  name: string
  /** bytes of content */
  size: number
  chunks: number
  /** SHA-256 of the whole content, lowercase hex */
  sha256: string
  mediaType: MediaType
}

/** The content does not match its manifest, or a chunk is missing, out of place or damaged. */
export class ObjectIntegrityError extends Error {
  static override name = 'ObjectIntegrityError'

  constructor(message = 'the object does not match its manifest') {
    super(message)
    this.name = 'ObjectIntegrityError'
  }
}

/** The stream name of a new object, from 8 random bytes. */
export function objectStreamName(random: Uint8Array): string {
  if (random.byteLength !== 8) throw new RangeError('an object id takes 8 random bytes')
  return `obj-${toHex(random)}`
}

/** Whether a stream name is that of an object (a file or a message). */
export function isObjectStream(name: string): boolean {
  return OBJECT_PATTERN.test(name)
}

/** The reading that carries an object's chunk `index`. */
export function chunkReading(index: number, bytes: Uint8Array): Reading {
  if (bytes.byteLength > OBJECT_CHUNK_BYTES) throw new RangeError('chunk larger than OBJECT_CHUNK_BYTES')
  return { ts: index, value: null, bytes }
}

/** The reading that carries an object's manifest (after its last chunk). */
export function manifestReading(m: ObjectManifest): Reading {
  return { ts: m.chunks, value: { ...m } }
}

/** Decode a manifest from a decrypted reading's value; throws InvalidMessageError. */
export function decodeManifest(value: unknown): ObjectManifest {
  const m = asMap(value, 'manifest', ['name', 'size', 'chunks', 'sha256', 'mediaType'])
  const mediaType = str(m, 'mediaType', 16)
  if (!(MEDIA_TYPES as readonly string[]).includes(mediaType)) throw new InvalidMessageError('unknown mediaType')
  const size = int(m, 'size')
  const chunks = int(m, 'chunks')
  if (chunks !== Math.ceil(size / OBJECT_CHUNK_BYTES))
    throw new InvalidMessageError('chunk count does not fit the size')
  return {
    name: str(m, 'name', MAX_OBJECT_NAME),
    size,
    chunks,
    sha256: str(m, 'sha256', 64, /^[0-9a-f]{64}$/),
    mediaType: mediaType as MediaType,
  }
}

/** Checks an object's decrypted readings in sequence order; see the module comment. */
export class ObjectVerifier {
  private next = 0
  private size = 0
  private readonly hash: Sha256Stream = sha256Stream()
  private manifest: ObjectManifest | undefined

  /** The chunk's content, or undefined for the manifest. Throws ObjectIntegrityError. */
  accept(r: { seq: number; ts: number; value: unknown; bytes?: Uint8Array }): Uint8Array | undefined {
    if (this.manifest !== undefined) throw new ObjectIntegrityError(`reading ${r.seq} follows the manifest`)
    if (r.seq !== this.next) {
      throw new ObjectIntegrityError(`chunk ${this.next} is missing (found reading ${r.seq} in its place)`)
    }
    if (r.ts !== this.next) throw new ObjectIntegrityError(`reading ${r.seq} claims to be chunk ${r.ts}`)
    this.next++
    if (r.bytes !== undefined) {
      if (r.value !== null || r.bytes.byteLength === 0 || r.bytes.byteLength > OBJECT_CHUNK_BYTES) {
        throw new ObjectIntegrityError(`chunk ${r.ts} is malformed`)
      }
      this.size += r.bytes.byteLength
      this.hash.update(r.bytes)
      return r.bytes
    }
    let m: ObjectManifest
    try {
      m = decodeManifest(r.value)
    } catch (err) {
      throw new ObjectIntegrityError(`reading ${r.seq} is neither a chunk nor a manifest: ${(err as Error).message}`)
    }
    if (m.chunks !== r.ts)
      throw new ObjectIntegrityError(`the manifest names ${m.chunks} chunks, ${r.ts} came before it`)
    if (m.size !== this.size)
      throw new ObjectIntegrityError(`the manifest says ${m.size} bytes, the chunks hold ${this.size}`)
    const digest = toHex(this.hash.digest())
    if (m.sha256 !== digest) throw new ObjectIntegrityError(`SHA-256 mismatch: manifest ${m.sha256}, content ${digest}`)
    this.manifest = m
    return undefined
  }

  /** The verified manifest; throws ObjectIntegrityError when the object ended without one. */
  finish(): ObjectManifest {
    if (this.manifest === undefined) {
      throw new ObjectIntegrityError(
        `the object is incomplete: ${this.next} chunks and no manifest (still arriving, or cut short)`,
      )
    }
    return this.manifest
  }
}
