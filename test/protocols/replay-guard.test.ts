/**
 * Replay protection per device, and the refusal budget per peer: pure rules with `now` passed in.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { randomBytes } from '../../crypto/hash.ts'
import { REQUEST_WINDOW_MS, ReplayGuard } from '../../protocols/access/messages.ts'
import { RefusalBudget } from '../../protocols/access/refusal-budget.ts'
import { DeviceReplayGuard } from '../../protocols/access/replay-guard.ts'

const W = REQUEST_WINDOW_MS
const T0 = 1_800_000_000_000
const nonce = () => randomBytes(16)
const guard = (opts: { maxPerDevice?: number; maxEntries?: number; notBefore?: number } = {}) =>
  new DeviceReplayGuard({ windowMs: W, notBefore: T0 - W, ...opts })

describe('DeviceReplayGuard', () => {
  it('refuses the same request again, and tells nonces, issuers and devices apart', () => {
    const g = guard()
    const n = nonce()
    assert.equal(g.check('dev-a', 'alice', n, T0, T0), undefined)
    assert.equal(g.check('dev-a', 'alice', Uint8Array.from(n), T0, T0 + 1), 'replayed request')
    assert.equal(g.check('dev-a', 'alice', nonce(), T0, T0), undefined)
    assert.equal(g.check('dev-a', 'bob', n, T0, T0), undefined)
    assert.equal(g.check('dev-b', 'alice', n, T0, T0), undefined)
  })

  it('accepts request times up to the window away, either way, and remembers a request for as long', () => {
    const g = guard()
    assert.equal(g.check('d', 'a', nonce(), T0 - W, T0), undefined)
    assert.equal(g.check('d', 'a', nonce(), T0 + W, T0), undefined)
    assert.match(g.check('d', 'a', nonce(), T0 - W - 1, T0) ?? '', /clock window/)
    assert.match(g.check('d', 'a', nonce(), T0 + W + 1, T0) ?? '', /clock window/)
    const n = nonce()
    assert.equal(g.check('d', 'a', n, T0, T0), undefined)
    assert.equal(g.check('d', 'a', n, T0, T0 + W), 'replayed request')
  })

  it('refuses a request made before the key holder started (it may have been answered by the process before)', () => {
    const g = guard({ notBefore: T0 })
    assert.match(g.check('d', 'a', nonce(), T0 - 1, T0 + 10) ?? '', /before this key holder started/)
    assert.equal(g.check('d', 'a', nonce(), T0, T0 + 10), undefined)
  })

  it('holds a device to its own limit; others are served; the limit frees as requests leave the window', () => {
    const g = guard({ maxPerDevice: 3 })
    for (let i = 0; i < 3; i++) assert.equal(g.check('flood', 'x', nonce(), T0, T0), undefined)
    assert.match(g.check('flood', 'x', nonce(), T0, T0) ?? '', /too many requests from this device/)
    assert.equal(g.check('reader', 'r', nonce(), T0, T0), undefined)
    assert.equal(g.check('flood', 'x', nonce(), T0 + W + 1, T0 + W + 1), undefined, 'evicted after ts + W')
  })

  it('past the total, refuses only devices at or above their fair share: a flood from a few devices locks nobody out', () => {
    const g = guard({ maxPerDevice: 100, maxEntries: 10 })
    for (let i = 0; i < 5; i++) assert.equal(g.check('flood-1', 'x', nonce(), T0, T0), undefined)
    for (let i = 0; i < 5; i++) assert.equal(g.check('flood-2', 'y', nonce(), T0, T0), undefined)
    assert.match(g.check('flood-1', 'x', nonce(), T0, T0) ?? '', /too many requests in the replay window/)
    assert.equal(g.check('reader', 'r', nonce(), T0, T0), undefined)
    assert.equal(g.check('reader', 'r', nonce(), T0, T0), undefined)
    assert.equal(g.size, 12)
  })

  it('where the guard it replaces, one for all devices, is locked by one flood', () => {
    // the same flood against the former guard: once full, every other requester is refused
    const old = new ReplayGuard(W, 10)
    for (let i = 0; i < 10; i++) assert.equal(old.check('x', nonce(), T0, T0), undefined)
    assert.match(old.check('reader', nonce(), T0, T0) ?? '', /too many/)
    const g = guard({ maxPerDevice: 5, maxEntries: 10 })
    for (let i = 0; i < 10; i++) g.check('flood', 'x', nonce(), T0, T0)
    assert.equal(g.check('reader', 'reader', nonce(), T0, T0), undefined)
  })
})

describe('RefusalBudget', () => {
  it('lets a peer log a number of refusals per window, each peer on its own, and starts again after it', () => {
    const b = new RefusalBudget({ perWindow: 2, windowMs: 1000 })
    assert.equal(b.take('p', T0), true)
    assert.equal(b.take('p', T0 + 1), true)
    assert.equal(b.take('p', T0 + 2), false)
    assert.equal(b.take('q', T0 + 2), true)
    assert.equal(b.take('p', T0 + 1000), true)
  })

  it('forgets peers whose window has passed', () => {
    const b = new RefusalBudget({ perWindow: 1, windowMs: 1000 })
    b.take('p', T0)
    b.take('q', T0 + 500)
    b.sweep(T0 + 1000)
    assert.equal(b.peers, 1)
    b.sweep(T0 + 1500)
    assert.equal(b.peers, 0)
  })
})
