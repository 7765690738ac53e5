/**
 * Fuzz: the stream protocols' plain messages, policy-sync catch-up (request, response) and
 * fetch (request, response). Each decoder may only return a value or throw
 * InvalidEncodingError / InvalidMessageError, and refuses any field of the wrong type.
 */
import { describe, it } from 'node:test'
import { randomBytes } from '../../crypto/hash.ts'
import { decodeFetchRequest, decodeFetchResponse } from '../../protocols/sync/fetch.ts'
import { decodeSyncRequest, decodeSyncResponse } from '../../protocols/sync/messages.ts'
import { fakeId } from '../protocols/fixtures.ts'
import { CODEC_ERRORS, checkCodec, SUITE } from './fuzz.ts'

const space = fakeId('3')

describe('fuzz: policy-sync messages', SUITE, () => {
  it('decodeSyncRequest', () => {
    checkCodec(
      decodeSyncRequest,
      CODEC_ERRORS,
      [
        { space, heads: [fakeId('a'), fakeId('b')] },
        { space, heads: [] },
      ],
      {
        strictFields: true,
      },
    )
  })

  it('decodeSyncResponse', () => {
    checkCodec(
      decodeSyncResponse,
      CODEC_ERRORS,
      [
        { envelopes: [randomBytes(40), randomBytes(3)], more: true },
        { envelopes: [], more: false },
      ],
      { strictFields: true },
    )
  })
})

describe('fuzz: fetch messages', SUITE, () => {
  it('decodeFetchRequest', () => {
    checkCodec(
      decodeFetchRequest,
      CODEC_ERRORS,
      [
        { space, stream: 'temp', form: 'raw', from: 0, limit: 10 },
        { space, stream: 'line-1.t', form: 'aggregate:15m', from: 2 ** 40, limit: 256 },
      ],
      { strictFields: true },
    )
  })

  it('decodeFetchResponse', () => {
    checkCodec(
      decodeFetchResponse,
      CODEC_ERRORS,
      [{ records: [randomBytes(60), randomBytes(28)], next: 7 }, { records: [] }],
      { strictFields: true },
    )
  })
})
