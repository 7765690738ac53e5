/**
 * Backfill: encrypted readings by range from any peer that holds them, on
 * `/edgeward/fetch/1.0.0`. Ciphertext may be replicated freely: the answerer checks nothing
 * about the asker. The asker trusts nothing about the answer: every record is decoded and
 * must carry the coordinates asked for; a record that then fails to decrypt is dropped at
 * read time and fetched again from another peer.
 * Pages are bounded in count and bytes.
 */
import { decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { MAX_READING_BYTES } from '../data/reading.ts'
import { InvalidMessageError } from '../errors.ts'
import { FORM_PATTERN } from '../policy/records.ts'
import { asMap, ID_PATTERN, int, list, NAME_PATTERN, str } from '../validate.ts'

export const FETCH_PROTOCOL = '/edgeward/fetch/1.0.0'
export const MAX_FETCH_REQUEST_BYTES = 512
export const MAX_FETCH_PAGE = 256
export const MAX_FETCH_PAGE_BYTES = 4 * 1024 * 1024
export const MAX_FETCH_RESPONSE_BYTES = MAX_FETCH_PAGE_BYTES + MAX_READING_BYTES + 1024

export interface FetchRequest {
  space: string
  stream: string
  form: string
  /** first sequence number wanted */
  from: number
  limit: number
}

export interface FetchResponse {
  records: Uint8Array[]
  /** the sequence number to ask for next, when more may follow */
  next?: number
}

/** Encode a request for the encrypted records of a stream by range. */
export function encodeFetchRequest(r: FetchRequest): Uint8Array {
  return encodeCanonical(r)
}

/** Decode a fetch request; InvalidMessageError otherwise. */
export function decodeFetchRequest(data: Uint8Array): FetchRequest {
  const m = asMap(decodeCanonical(data, MAX_FETCH_REQUEST_BYTES), 'fetch request', [
    'space',
    'stream',
    'form',
    'from',
    'limit',
  ])
  return {
    space: str(m, 'space', 64, ID_PATTERN),
    stream: str(m, 'stream', 64, NAME_PATTERN),
    form: str(m, 'form', 32, FORM_PATTERN),
    from: int(m, 'from'),
    limit: int(m, 'limit', 1, MAX_FETCH_PAGE),
  }
}

/** Encode a page of encrypted records, and where the next page starts. */
export function encodeFetchResponse(r: FetchResponse): Uint8Array {
  return encodeCanonical(r.next === undefined ? { records: r.records } : r)
}

/** Decode a page of encrypted records; InvalidMessageError otherwise. */
export function decodeFetchResponse(data: Uint8Array): FetchResponse {
  const m = asMap(decodeCanonical(data, MAX_FETCH_RESPONSE_BYTES), 'fetch response', ['records', 'next'])
  const records = list(m, 'records', MAX_FETCH_PAGE, v => {
    if (!(v instanceof Uint8Array) || v.byteLength > MAX_READING_BYTES) throw new InvalidMessageError('bad record')
    return v
  })
  return m.next === undefined ? { records } : { records, next: int(m, 'next') }
}
