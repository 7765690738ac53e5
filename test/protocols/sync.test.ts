import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MAX_ENVELOPE_BYTES } from '../../protocols/policy/document.ts'
import {
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  MAX_SYNC_HEADS,
  MAX_SYNC_PAGE,
  MAX_SYNC_REQUEST_BYTES,
  POLICY_SYNC_PROTOCOL,
  policyTopic,
  readingsTopic,
} from '../../protocols/sync/messages.ts'
import { fakeId, refusesEach } from './fixtures.ts'

const space = fakeId('3')
const heads = [fakeId('a'), fakeId('b')]

describe('sync: names', () => {
  it('protocol and topics are versioned and per space', () => {
    assert.equal(POLICY_SYNC_PROTOCOL, '/edgeward/policy-sync/1.0.0')
    assert.equal(policyTopic(space), `/edgeward/policy/1.0.0/${space}`)
    assert.equal(readingsTopic(space), `/edgeward/readings/1.0.0/${space}`)
    assert.notEqual(policyTopic(space), policyTopic(fakeId('4')))
  })
})

describe('sync request codec', () => {
  it('round-trips, with and without heads', () => {
    assert.deepEqual(decodeSyncRequest(encodeSyncRequest({ space, heads })), { space, heads })
    assert.deepEqual(decodeSyncRequest(encodeSyncRequest({ space, heads: [] })), { space, heads: [] })
  })

  it('accepts exactly MAX_SYNC_HEADS heads and refuses one more', () => {
    const many = Array.from({ length: MAX_SYNC_HEADS + 1 }, (_, i) => i.toString(16).padStart(64, '0'))
    assert.equal(decodeSyncRequest(encodeSyncRequest({ space, heads: many.slice(1) })).heads.length, MAX_SYNC_HEADS)
    const tooMany = encodeSyncRequest({ space, heads: many })
    assert.ok(tooMany.byteLength <= MAX_SYNC_REQUEST_BYTES, 'refused for its count, not its size')
    assert.throws(() => decodeSyncRequest(tooMany), { name: 'InvalidMessageError' })
  })

  const bad: [string, unknown][] = [
    ['a head that is too short', { space, heads: ['abc'] }],
    ['a head in upper case', { space, heads: [fakeId('A')] }],
    ['a head that is not a string', { space, heads: [new Uint8Array(32)] }],
    ['heads that are not a list', { space, heads: fakeId('a') }],
    ['a malformed space id', { space: 'space-1', heads }],
    ['a missing space', { heads }],
    ['an extra field', { space, heads, since: 0 }],
  ]
  refusesEach(decodeSyncRequest, bad)

  it('refuses input over MAX_SYNC_REQUEST_BYTES before parsing', () => {
    assert.throws(() => decodeSyncRequest(new Uint8Array(MAX_SYNC_REQUEST_BYTES + 1)), {
      name: 'InvalidEncodingError',
      message: /exceeds limit/,
    })
  })
})

describe('sync response codec', () => {
  const envelopes = [new Uint8Array([1, 2, 3]), new Uint8Array(100).fill(4)]

  it('round-trips, keeping order and the more flag', () => {
    for (const more of [true, false]) {
      const out = decodeSyncResponse(encodeSyncResponse({ envelopes, more }))
      assert.equal(out.more, more)
      assert.deepEqual(
        out.envelopes.map(e => [...e]),
        envelopes.map(e => [...e]),
      )
    }
  })

  const bad: [string, unknown][] = [
    ['more missing', { envelopes }],
    ['more that is not a boolean', { envelopes, more: 1 }],
    ['an envelope that is not bytes', { envelopes: ['abc'], more: false }],
    ['an envelope over MAX_ENVELOPE_BYTES', { envelopes: [new Uint8Array(MAX_ENVELOPE_BYTES + 1)], more: false }],
    [
      'more than MAX_SYNC_PAGE envelopes',
      { envelopes: Array.from({ length: MAX_SYNC_PAGE + 1 }, () => new Uint8Array(1)), more: true },
    ],
    ['an extra field', { envelopes, more: false, page: 2 }],
  ]
  refusesEach(decodeSyncResponse, bad)
})
