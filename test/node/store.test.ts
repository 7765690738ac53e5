/**
 * The node's LevelDB store: sublevels keep their entries apart, durable writes survive a
 * close and reopen, one data directory is opened by one node at a time, data keys at rest
 * are wrapped under the storage key and bound to their location, and `pad` makes string
 * order numeric order.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import { generateAeadKey } from '../../crypto/aead.ts'
import { DecryptionError } from '../../crypto/errors.ts'
import { DURABLE, openStore, pad, type Store, unwrapKey, wrapKey } from '../../node/store.ts'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
/** LevelDB hands values back as Buffers; compare their text */
const text = (v: Uint8Array | undefined): string | undefined =>
  v === undefined ? undefined : new TextDecoder().decode(v)

describe('store', () => {
  let root: string
  const open: Store[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-store-'))
  })

  after(async () => {
    for (const s of open.splice(0)) await s.close()
    await rm(root, { recursive: true, force: true })
  })

  async function openAt(name: string): Promise<Store> {
    const s = await openStore(join(root, name))
    open.push(s)
    return s
  }

  async function close(s: Store): Promise<void> {
    open.splice(open.indexOf(s), 1)
    await s.close()
  }

  it('puts and gets in sublevels, which keep their entries apart', async () => {
    const s = await openAt('sublevels')
    await s.spaces.put('k', bytes('space'))
    await s.keys.put('k', bytes('key'))
    await s.records.put('a!1', bytes('r1'))
    await s.records.put('a!2', bytes('r2'))
    await s.records.put('b!1', bytes('other'))
    assert.equal(text(await s.spaces.get('k')), 'space')
    assert.equal(text(await s.keys.get('k')), 'key')
    assert.equal(await s.policy.get('k'), undefined, 'a key in one sublevel is not in another')
    assert.equal(await s.db.get('k'), undefined, 'nor in the root')
    const inRange: string[] = []
    for await (const k of s.records.keys({ gt: 'a!', lt: 'a!~' })) inRange.push(k)
    assert.deepEqual(inRange, ['a!1', 'a!2'])
    const everyKey: string[] = []
    for await (const k of s.spaces.keys()) everyKey.push(k)
    assert.deepEqual(everyKey, ['k'], 'iterating a sublevel sees only its own entries')
    await close(s)
  })

  it('keeps DURABLE writes and atomic batches across a close and reopen', async () => {
    const s = await openAt('durable')
    await s.policy.put('space!hash', bytes('envelope'), DURABLE)
    const batch = s.db.batch()
    batch.put('space!temp!raw!0000000000000000', bytes('reading'), { sublevel: s.records } as never)
    batch.put('space!temp', bytes('epoch state'), { sublevel: s.epochs } as never)
    await batch.write(DURABLE)
    await close(s)

    const again = await openAt('durable')
    assert.equal(text(await again.policy.get('space!hash')), 'envelope')
    assert.equal(text(await again.records.get('space!temp!raw!0000000000000000')), 'reading')
    assert.equal(text(await again.epochs.get('space!temp')), 'epoch state')
    await close(again)
  })

  it('refuses a second open of a data directory in use, with NodeStateError, and allows it once closed', async () => {
    const first = await openAt('locked')
    await first.peers.put('p', bytes('addrs'), DURABLE)
    await assert.rejects(openStore(join(root, 'locked')), (err: Error) => {
      assert.equal(err.name, 'NodeStateError')
      assert.match(err.message, /in use/)
      return true
    })
    assert.equal(text(await first.peers.get('p')), 'addrs', 'the first store still works')
    await close(first)
    const second = await openAt('locked')
    assert.equal(text(await second.peers.get('p')), 'addrs')
    await close(second)
  })
})

describe('wrapped data keys', () => {
  const storageKey = generateAeadKey()
  const location = 'space!temp!raw!0000000000000003'

  it('round-trips, and the wrapped form does not contain the key', () => {
    const key = generateAeadKey()
    const wrapped = wrapKey(storageKey, location, key)
    assert.deepEqual(unwrapKey(storageKey, location, wrapped), key)
    assert.equal(Buffer.from(wrapped).indexOf(Buffer.from(key)), -1)
    assert.notDeepEqual(wrapKey(storageKey, location, key), wrapped, 'each wrap uses a fresh nonce')
  })

  it('refuses to unwrap at another location, under another storage key, or when changed', () => {
    const wrapped = wrapKey(storageKey, location, generateAeadKey())
    const isDecryptionError = (err: Error) => err instanceof DecryptionError && err.name === 'DecryptionError'
    assert.throws(() => unwrapKey(storageKey, 'space!temp!raw!0000000000000004', wrapped), isDecryptionError)
    assert.throws(() => unwrapKey(storageKey, 'other!temp!raw!0000000000000003', wrapped), isDecryptionError)
    assert.throws(() => unwrapKey(generateAeadKey(), location, wrapped), isDecryptionError)
    const changed = Uint8Array.from(wrapped)
    changed[20] ^= 1
    assert.throws(() => unwrapKey(storageKey, location, changed), isDecryptionError)
  })
})

describe('pad', () => {
  it('is 16 characters for every safe non-negative integer', () => {
    assert.equal(pad(0), '0000000000000000')
    assert.equal(pad(42), '0000000000000042')
    assert.equal(pad(Number.MAX_SAFE_INTEGER), '9007199254740991')
  })

  it('orders numerically as strings', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { maxLength: 50 }), ns => {
        const byNumber = [...ns].sort((a, b) => a - b).map(pad)
        const byString = ns.map(pad).sort()
        assert.deepEqual(byString, byNumber)
      }),
    )
    // the case plain decimal strings get wrong
    assert.ok(pad(9) < pad(10))
    assert.ok(pad(99) < pad(100))
  })
})
