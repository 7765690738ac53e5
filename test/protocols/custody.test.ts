/**
 * Threshold custody, the pure layer (protocols/custody): a key dealt k-of-n to a custodian
 * set, released share by share to a reader's device and combined there; what fewer than k
 * shares, a tampered share, a share opened by the wrong custodian and a forged or altered
 * deal come to; the records' validation; and a known-answer check of the Shamir library.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { combine as shamirCombine, split as shamirSplit } from 'shamir-secret-sharing'
import { generateAeadKey } from '../../crypto/aead.ts'
import { bytesEqual } from '../../crypto/encoding.ts'
import { randomBytes, taggedHash } from '../../crypto/hash.ts'
import { generateSealingKeyPair, type SealingKeyPair } from '../../crypto/identity.ts'
import { sealTo } from '../../crypto/seal.ts'
import { type OpenedRecord, signRecord } from '../../crypto/signed.ts'
import { combine } from '../../protocols/custody/combine.ts'
import {
  type CustodyResource,
  checkDealForSet,
  DEAL_TAG,
  type Deal,
  dealKey,
  dealtShareInfo,
  openDeal,
  openDealtShare,
  verifyShare,
} from '../../protocols/custody/deal.ts'
import {
  CUSTODIAN_SET_TAG,
  type Custodian,
  type CustodianSet,
  createCustodianSet,
  openCustodianSet,
} from '../../protocols/custody/records.ts'
import {
  checkShareRelease,
  createShareRelease,
  openReleasedShare,
  openShareRelease,
  SHARE_RELEASE_TAG,
} from '../../protocols/custody/release.ts'
import {
  combineShares,
  decodeShare,
  KEY_BYTES,
  keyCommitment,
  MAX_CUSTODIANS,
  matchesKeyCommitment,
  SHARE_BYTES,
  shareCommitment,
  splitKey,
} from '../../protocols/custody/shares.ts'
import { InvalidMessageError } from '../../protocols/errors.ts'
import { createDeviceCert } from '../../protocols/policy/records.ts'
import { flipBit, isDecryptionError } from '../support/crypto.ts'
import { editBody, fakeId, flipSignatureBit, newPeerId, newPrincipal, type Principal } from './fixtures.ts'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000
const LEASE = 15 * 60_000
const owner = newPrincipal()
const dealer = newPrincipal()
const space = fakeId('5')
const resource: CustodyResource = { stream: 'temp', form: 'raw', epoch: 42 }

/** A custodian node: its principal, peer, sealing keys and device certificate. */
interface CustodianNode {
  principal: Principal
  peer: string
  sealing: SealingKeyPair
  cert: OpenedRecord<unknown> & { bytes: Uint8Array }
}

function custodianNode(): CustodianNode {
  const principal = newPrincipal()
  const peer = newPeerId()
  const sealing = generateSealingKeyPair()
  return { principal, peer, sealing, cert: createDeviceCert(principal, peer, sealing.publicKey, T0 - HOUR, T0 + HOUR) }
}

const nodes = Array.from({ length: MAX_CUSTODIANS }, custodianNode)
const entryOf = (c: CustodianNode): Custodian => ({ peer: c.peer, xpk: c.sealing.publicKey, did: c.principal.did })

/** The reader's device: the key shares are released to, and its request's hash. */
const reader = generateSealingKeyPair()
const req = taggedHash('test/request', randomBytes(32))

async function setup(k: number, n: number, key = generateAeadKey()) {
  const set = createCustodianSet(owner, space, nodes.slice(0, n).map(entryOf), k, T0)
  const deal = await dealKey(key, set.body.custodians, k, { dealer, space, resource, set: set.id, now: T0 })
  return { key, set, deal: openDeal(deal.bytes) }
}

/** Custodian `i` opens its share of the deal and releases it to the reader. */
async function release(deal: OpenedRecord<Deal>, i: number, lease = T0 + LEASE): Promise<Uint8Array> {
  const c = nodes[i]
  const share = await openDealtShare(deal, i, c.sealing.secretKey)
  const rel = await createShareRelease(c.principal, {
    device: c.cert.bytes,
    deal,
    index: i,
    share,
    readerXpk: reader.publicKey,
    req,
    lease,
    now: T0,
  })
  return rel.bytes
}

/** The reader's side: open, check and unseal each release. */
async function receive(set: OpenedRecord<CustodianSet>, deal: OpenedRecord<Deal>, releases: Uint8Array[]) {
  const shares = []
  for (const bytes of releases) {
    const opened = openShareRelease(bytes)
    assert.equal(checkShareRelease(opened, { deal, set, req, now: T0 + 1 }), undefined)
    shares.push(await openReleasedShare(opened.release, reader.secretKey))
  }
  return shares
}

const pick = (n: number, count: number): number[] => {
  const all = Array.from({ length: n }, (_, i) => i)
  for (let i = all.length - 1; i > 0; i--) {
    const j = randomBytes(1)[0] % (i + 1)
    ;[all[i], all[j]] = [all[j], all[i]]
  }
  return all.slice(0, count)
}

describe('custody: deal, release, combine', () => {
  // a set's threshold is at least 2: no custodian releases alone
  for (const [k, n] of [
    [2, 2],
    [2, 3],
    [3, 5],
    [16, 16],
  ]) {
    it(`${k}-of-${n}: any k custodians' releases give the reader the key`, async () => {
      const { key, set, deal } = await setup(k, n)
      assert.equal(checkDealForSet(deal, set), undefined)
      assert.equal(deal.body.k, k)
      assert.equal(deal.body.n, n)
      for (let round = 0; round < 3; round++) {
        const who = pick(n, k)
        const shares = await receive(set, deal, await Promise.all(who.map(i => release(deal, i))))
        const out = await combine(deal, shares)
        assert.ok(out.ok, out.ok ? '' : out.reason)
        assert.ok(bytesEqual(out.key, key))
        assert.deepEqual(out.used, who)
        assert.deepEqual(out.skipped, [])
      }
    })
  }

  it('a deal carries no key and no share in the clear', async () => {
    const { key, deal } = await setup(2, 3)
    const hex = Buffer.from(deal.bytes).toString('hex')
    assert.ok(!hex.includes(Buffer.from(key).toString('hex')))
    for (let i = 0; i < 3; i++) {
      const share = await openDealtShare(deal, i, nodes[i].sealing.secretKey)
      assert.ok(!hex.includes(Buffer.from(share.subarray(0, KEY_BYTES)).toString('hex')))
    }
  })
})

describe('custody: fewer than k shares', () => {
  for (const [k, n] of [
    [2, 3],
    [3, 5],
    [16, 16],
  ]) {
    it(`${k}-of-${n}: k - 1 shares are refused, and interpolated directly they miss the commitment`, async () => {
      const { key, set, deal } = await setup(k, n)
      const who = pick(n, k - 1)
      const shares = await receive(set, deal, await Promise.all(who.map(i => release(deal, i))))
      const out = await combine(deal, shares)
      assert.equal(out.ok, false)
      assert.match(out.ok ? '' : out.reason, new RegExp(`${k - 1} good shares of the ${k} needed`))
      if (k - 1 >= 2) {
        // the library interpolates whatever it is given: k - 1 points give a value, not the key
        const wrong = await shamirCombine(shares.map(s => s.share))
        assert.equal(wrong.byteLength, KEY_BYTES)
        assert.ok(!bytesEqual(wrong, key))
        assert.equal(matchesKeyCommitment(wrong, deal.body.commitment), false)
      }
    })
  }
})

describe('custody: tampered and misplaced shares', () => {
  it('a tampered share is skipped and named; the key still comes from k good ones', async () => {
    const { key, set, deal } = await setup(3, 5)
    const shares = await receive(set, deal, await Promise.all([0, 1, 2, 3].map(i => release(deal, i))))
    shares[1] = { index: shares[1].index, share: flipBit(shares[1].share, 7, 3) }
    const out = await combine(deal, shares)
    assert.ok(out.ok)
    assert.ok(bytesEqual(out.key, key))
    assert.deepEqual(out.used, [0, 2, 3])
    assert.deepEqual(
      out.skipped.map(s => s.index),
      [1],
    )
  })

  it('with a tampered share and only k in all, nothing is combined', async () => {
    const { set, deal } = await setup(3, 5)
    const shares = await receive(set, deal, await Promise.all([0, 1, 2].map(i => release(deal, i))))
    shares[2] = { index: 2, share: flipBit(shares[2].share, SHARE_BYTES - 1) }
    const out = await combine(deal, shares)
    assert.equal(out.ok, false)
    assert.deepEqual(
      out.skipped.map(s => s.index),
      [2],
    )
  })

  it('a good share under another index, a duplicate, or a share of another deal is skipped', async () => {
    const { key, set, deal } = await setup(2, 3)
    const other = await setup(2, 3)
    const [s0, s1] = await receive(set, deal, [await release(deal, 0), await release(deal, 1)])
    const [o2] = await receive(other.set, other.deal, [await release(other.deal, 2)])
    assert.equal(verifyShare(deal, 1, s0.share), false)
    assert.equal(verifyShare(deal, 2, o2.share), false)
    const out = await combine(deal, [{ index: 1, share: s0.share }, s0, s0, { index: 2, share: o2.share }, s1])
    assert.ok(out.ok)
    assert.ok(bytesEqual(out.key, key))
    assert.deepEqual(out.used, [0, 1])
    assert.deepEqual(
      out.skipped.map(s => s.index),
      [1, 0, 2],
    )
  })

  it('a dealer that commits to shares of another key is found out at combine', async () => {
    const { set } = await setup(2, 3)
    // shares of one key, each sealed and committed to as dealKey does, under the commitment of another key
    const commitment = keyCommitment(generateAeadKey())
    const split = await splitKey(generateAeadKey(), 3, 2)
    const shares = await Promise.all(
      split.map(async (share, i) => ({
        commitment: shareCommitment(i, share),
        sealed: await sealTo(nodes[i].sealing.publicKey, share, dealtShareInfo(space, resource, set.id, i, commitment)),
      })),
    )
    const body: Deal = {
      t: 'deal',
      iss: dealer.did,
      space,
      resource,
      set: set.id,
      k: 2,
      n: 3,
      commitment,
      shares,
      iat: T0,
    }
    const deal = openDeal(signRecord(DEAL_TAG, body, dealer).bytes)
    const received = await receive(set, deal, [await release(deal, 0), await release(deal, 2)])
    const out = await combine(deal, received)
    assert.equal(out.ok, false)
    assert.match(out.ok ? '' : out.reason, /inconsistent/)
    assert.match(out.ok ? '' : out.reason, new RegExp(dealer.did))
  })
})

describe('custody: sealing binds the share to its holder and its context', () => {
  it("custodian j cannot open custodian i's share", async () => {
    const { deal } = await setup(2, 3)
    for (const [i, j] of [
      [0, 1],
      [1, 2],
      [2, 0],
    ]) {
      await assert.rejects(openDealtShare(deal, i, nodes[j].sealing.secretKey), isDecryptionError)
    }
  })

  it("a sealed share moved to another index or another deal's place does not open", async () => {
    const { set, deal } = await setup(2, 3)
    const moved = (d: Deal, from: number, to: number): Deal => {
      const shares = d.shares.slice()
      shares[to] = d.shares[from]
      return { ...d, shares }
    }
    // custodian 1's box in slot 0, re-signed: custodian 1 opens slot 0 with its own key but the info differs
    const d1 = openDeal(signRecord(DEAL_TAG, moved(deal.body, 0, 1), dealer).bytes)
    await assert.rejects(openDealtShare(d1, 1, nodes[0].sealing.secretKey), isDecryptionError)
    // the same box under another epoch of the same stream
    const d2 = openDeal(signRecord(DEAL_TAG, { ...deal.body, resource: { ...resource, epoch: 43 } }, dealer).bytes)
    await assert.rejects(openDealtShare(d2, 0, nodes[0].sealing.secretKey), isDecryptionError)
    assert.equal(checkDealForSet(d2, set), undefined)
  })

  it('a released share opens only for the reader it was sealed to, and only as an answer to its request', async () => {
    const { deal } = await setup(2, 3)
    const opened = openShareRelease(await release(deal, 0))
    await assert.rejects(openReleasedShare(opened.release, generateSealingKeyPair().secretKey), isDecryptionError)
    await assert.rejects(
      openReleasedShare(
        { ...opened.release, body: { ...opened.release.body, req: randomBytes(32) } },
        reader.secretKey,
      ),
      isDecryptionError,
    )
    await assert.rejects(
      openReleasedShare({ ...opened.release, body: { ...opened.release.body, index: 1 } }, reader.secretKey),
      isDecryptionError,
    )
  })

  it('a custodian refuses to release a share that is not the one the deal commits to', async () => {
    const { deal } = await setup(2, 3)
    const share = await openDealtShare(deal, 0, nodes[0].sealing.secretKey)
    await assert.rejects(
      createShareRelease(nodes[0].principal, {
        device: nodes[0].cert.bytes,
        deal,
        index: 0,
        share: flipBit(share, 0),
        readerXpk: reader.publicKey,
        req,
        lease: T0 + LEASE,
        now: T0,
      }),
      RangeError,
    )
  })
})

describe('custody: deals signed by someone else, or altered', () => {
  it('an altered deal or signature is refused', async () => {
    const { deal } = await setup(2, 3)
    const badSignature = { name: 'InvalidSignatureError' }
    assert.throws(() => openDeal(flipSignatureBit(deal.bytes, 5)), badSignature)
    for (const change of [{ resource: { ...resource, epoch: 7 } }, { k: 1 }, { iss: newPrincipal().did }])
      assert.throws(() => openDeal(editBody(deal.bytes, b => Object.assign(b, change))), badSignature)
  })

  it('a deal signed by another key opens with that issuer, for the policy state to judge', async () => {
    const { set } = await setup(2, 3)
    const mallory = newPrincipal()
    const forged = await dealKey(generateAeadKey(), set.body.custodians, 2, {
      dealer: mallory,
      space,
      resource,
      set: set.id,
      now: T0,
    })
    const opened = openDeal(forged.bytes)
    assert.equal(opened.issuer, mallory.did)
    assert.notEqual(opened.issuer, dealer.did)
  })

  it('a deal that does not fit its custodian set is told apart', async () => {
    const { set, deal } = await setup(2, 3)
    const other = createCustodianSet(owner, space, nodes.slice(0, 3).map(entryOf), 3, T0 + 1)
    assert.match(checkDealForSet(deal, other) ?? '', /another custodian set/)
    const lowK = openDeal(signRecord(DEAL_TAG, { ...deal.body, k: 1 }, dealer).bytes)
    assert.match(checkDealForSet(lowK, set) ?? '', /threshold/)
    const elsewhere = openDeal(signRecord(DEAL_TAG, { ...deal.body, space: fakeId('6') }, dealer).bytes)
    assert.match(checkDealForSet(elsewhere, set) ?? '', /different spaces/)
  })
})

describe('custody: release checks', () => {
  it('refuses a release for another request, after its lease, from a peer not at its index, or a lapsed certificate', async () => {
    const { set, deal } = await setup(2, 3)
    const opened = openShareRelease(await release(deal, 0))
    const ctx = { deal, set, req, now: T0 + 1 }
    assert.equal(checkShareRelease(opened, ctx), undefined)
    assert.match(checkShareRelease(opened, { ...ctx, req: randomBytes(32) }) ?? '', /another request/)
    assert.match(checkShareRelease(opened, { ...ctx, now: T0 + LEASE }) ?? '', /lease has ended/)
    assert.match(checkShareRelease(opened, { ...ctx, now: T0 + HOUR - 1 }) ?? '', /lease has ended/)
    const other = await setup(2, 3)
    assert.match(checkShareRelease(opened, { ...ctx, deal: other.deal, set: other.set }) ?? '', /another deal/)

    // custodian 1 signs a release that claims custodian 0's index
    const c1 = nodes[1]
    const share1 = await openDealtShare(deal, 1, c1.sealing.secretKey)
    await assert.rejects(
      createShareRelease(c1.principal, {
        device: c1.cert.bytes,
        deal,
        index: 0,
        share: share1,
        readerXpk: reader.publicKey,
        req,
        lease: T0 + LEASE,
        now: T0,
      }),
      RangeError,
    )
    const claimed = signRecord(
      SHARE_RELEASE_TAG,
      { ...opened.release.body, iss: c1.principal.did, device: c1.cert.bytes },
      c1.principal,
    )
    assert.match(checkShareRelease(openShareRelease(claimed.bytes), ctx) ?? '', /not the custodian at its index/)

    // the right peer, but certified by a principal other than the set's
    const stranger = newPrincipal()
    const cert = createDeviceCert(stranger, nodes[0].peer, nodes[0].sealing.publicKey, T0 - HOUR, T0 + HOUR)
    const byStranger = signRecord(
      SHARE_RELEASE_TAG,
      { ...opened.release.body, iss: stranger.did, device: cert.bytes },
      stranger,
    )
    assert.match(checkShareRelease(openShareRelease(byStranger.bytes), ctx) ?? '', /custodian's principal/)

    // a certificate that lapsed before the lease ends
    const short = createDeviceCert(nodes[0].principal, nodes[0].peer, nodes[0].sealing.publicKey, T0 - HOUR, T0 + 10)
    const late = signRecord(SHARE_RELEASE_TAG, { ...opened.release.body, device: short.bytes }, nodes[0].principal)
    assert.match(
      checkShareRelease(openShareRelease(late.bytes), { ...ctx, now: T0 + 10 }) ?? '',
      /certificate is not in force/,
    )
  })

  it("a release whose signer is not its device certificate's principal is refused on decode", async () => {
    const { deal } = await setup(2, 3)
    const opened = openShareRelease(await release(deal, 0))
    const mallory = newPrincipal()
    const forged = signRecord(SHARE_RELEASE_TAG, { ...opened.release.body, iss: mallory.did }, mallory)
    assert.throws(() => openShareRelease(forged.bytes), InvalidMessageError)
  })
})

describe('custody: custodian sets', () => {
  const entries = nodes.slice(0, 4).map(entryOf)

  it('round trips, with and without the principals', () => {
    const set = createCustodianSet(owner, space, entries, 3, T0)
    assert.deepEqual(openCustodianSet(set.bytes).body, set.body)
    assert.equal(openCustodianSet(set.bytes).id, set.id)
    const anonymous = createCustodianSet(
      owner,
      space,
      entries.map(({ peer, xpk }) => ({ peer, xpk })),
      2,
      T0,
    )
    assert.equal(openCustodianSet(anonymous.bytes).body.custodians[0].did, undefined)
  })

  it('refuses a threshold outside 2..n, fewer than two custodians, more than 16, or one party twice', () => {
    const bad: [string, Custodian[], number][] = [
      ['k = 0', entries, 0],
      ['k = 1: one custodian would release alone', entries, 1],
      ['k > n', entries, 5],
      ['no custodians', [], 2],
      ['one custodian, k = 1', [entries[0]], 1],
      ['one custodian, k = 2', [entries[0]], 2],
      ['17 custodians', [...nodes.map(entryOf), entryOf(custodianNode())], 2],
      ['a peer twice', [...entries, { ...entryOf(custodianNode()), peer: entries[0].peer }], 2],
      ['a sealing key twice', [...entries, { ...entryOf(custodianNode()), xpk: entries[1].xpk }], 2],
      ['a principal twice', [...entries, { ...entryOf(custodianNode()), did: entries[2].did }], 2],
      ['a bad key', [{ ...entries[0], xpk: new Uint8Array(31) }, entries[1]], 2],
      ['a bad peer', [{ ...entries[0], peer: 'not a peer' }, entries[1]], 2],
    ]
    for (const [why, list, k] of bad) {
      assert.throws(() => createCustodianSet(owner, space, list, k, T0), InvalidMessageError, why)
    }
    // the smallest set there is: two custodians, both needed
    assert.equal(createCustodianSet(owner, space, entries.slice(0, 2), 2, T0).body.k, 2)
  })

  it('refuses a re-signed set whose threshold is 1', () => {
    const set = createCustodianSet(owner, space, entries, 2, T0)
    const lowK = signRecord(CUSTODIAN_SET_TAG, { ...set.body, k: 1 }, owner)
    assert.throws(() => openCustodianSet(lowK.bytes), InvalidMessageError)
  })

  it('refuses a changed set or signature', () => {
    const set = createCustodianSet(owner, space, entries, 2, T0)
    const badSignature = { name: 'InvalidSignatureError' }
    assert.throws(() => openCustodianSet(flipSignatureBit(set.bytes)), badSignature)
    assert.throws(() => openCustodianSet(editBody(set.bytes, b => Object.assign(b, { k: 1 }))), badSignature)
  })
})

describe('custody: the Shamir library, used as documented', () => {
  const secret = Uint8Array.from({ length: KEY_BYTES }, (_, i) => (i * 37 + 11) & 0xff)

  it('known answer, degree 1: f(x) = s + x over GF(2^8), a share is y-bytes then x', async () => {
    // addition in GF(2^8) is XOR, and 1 * x = x: no multiplication needed to write the shares
    const share = (x: number) => Uint8Array.from([...secret.map(b => b ^ x), x])
    for (const [a, b] of [
      [1, 2],
      [2, 3],
      [7, 200],
    ]) {
      assert.ok(bytesEqual(await shamirCombine([share(a), share(b)]), secret))
    }
  })

  it('known answer, degree 2: f(x) = s + x^2, with 1^2 = 1, 2^2 = 4, 3^2 = 5 in GF(2^8)', async () => {
    const share = (x: number, sq: number) => Uint8Array.from([...secret.map(b => b ^ sq), x])
    assert.ok(bytesEqual(await shamirCombine([share(1, 1), share(2, 4), share(3, 5)]), secret))
    // two points of a degree-2 polynomial do not determine it: they interpolate to something else
    assert.ok(!bytesEqual(await shamirCombine([share(1, 1), share(2, 4)]), secret))
  })

  it('split gives n shares of 33 bytes, distinct non-zero x, any k of which combine', async () => {
    const shares = await shamirSplit(secret, 5, 3)
    assert.equal(shares.length, 5)
    assert.ok(shares.every(s => s.byteLength === KEY_BYTES + 1 && s.constructor === Uint8Array))
    const xs = shares.map(s => s[KEY_BYTES])
    assert.equal(new Set(xs).size, 5)
    assert.ok(xs.every(x => x !== 0))
    for (const trio of [
      [0, 1, 2],
      [0, 2, 4],
      [4, 3, 1],
    ]) {
      assert.ok(bytesEqual(await shamirCombine(trio.map(i => shares[i])), secret))
    }
  })

  it('splitKey and combineShares: the library for k >= 2, the key itself for k = 1', async () => {
    const key = generateAeadKey()
    for (const [k, n] of [
      [1, 1],
      [1, 4],
      [2, 2],
      [5, 9],
      [16, 16],
    ]) {
      const shares = await splitKey(key, n, k)
      assert.equal(shares.length, n)
      for (const s of shares) assert.equal(decodeShare(s).byteLength, SHARE_BYTES)
      assert.ok(bytesEqual(await combineShares(shares.slice(n - k), k), key))
    }
    await assert.rejects(splitKey(key, 17, 2), RangeError)
    await assert.rejects(splitKey(key, 3, 4), RangeError)
    await assert.rejects(splitKey(key, 3, 0), RangeError)
    await assert.rejects(splitKey(key.subarray(1), 3, 2), RangeError)
  })

  it('decodeShare refuses the wrong length and the x-coordinate 0', () => {
    assert.throws(() => decodeShare(new Uint8Array(32)), InvalidMessageError)
    assert.throws(() => decodeShare(new Uint8Array(34)), InvalidMessageError)
    assert.throws(() => decodeShare(new Uint8Array(33)), InvalidMessageError)
  })
})
