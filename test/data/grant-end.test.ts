/**
 * A grant that ends closes the epoch whose keys went out under it: a reader that kept a key
 * past its grant's expiry, its delegation's end or its release limit cannot decrypt what the
 * key holder publishes afterwards, though the epoch (one hour here) has not run out; and the
 * key holder remembers this across a restart. A grant that has not ended closes nothing.
 * Real peers in one process over TCP; the reader asks for keys on the wire, as any peer can.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decryptReadings } from '../../protocols/data/reading.ts'
import { createDelegation } from '../../protocols/policy/records.ts'
import { askKeys, keyRequest, openRelease } from '../support/keys.ts'
import { type GrantOptions, grantTo, HOUR, waitForGrant } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { waitFor } from '../support/wait.ts'

const LEASE_MAX_MS = 1500

describe('a grant that ends closes the epoch its keys were released from', { timeout: 90_000 }, () => {
  const s = suiteNodes('grant-end', ['gw', 'reader', 'admin'], {
    space: 'plant',
    startOf: { gw: { leaseMaxMs: LEASE_MAX_MS } },
  })

  /** Ask the key holder for one epoch's raw key, as the reader; the key as the reader would keep it. */
  const keyOf = async (stream: string, epoch: number, grant: string): Promise<Uint8Array> => {
    const req = keyRequest(s.reader, { space: s.space, stream, epochs: [epoch], grant })
    const res = await askKeys(s.reader.libp2p, s.gw.identity.peerId, req.bytes)
    assert.equal(res.ok, true, JSON.stringify(res))
    if (!res.ok) throw new Error('refused')
    return (await openRelease(s.reader, res, req.bytes))[0].key
  }

  const grant = async ({ exp, ...fields }: GrantOptions & { streams: string[]; exp?: number }, by = s.gw) => {
    const now = Date.now()
    const g = await grantTo(
      by,
      s.space,
      s.reader.identity.principal.did,
      { nbf: now - 1000, exp: exp ?? now + HOUR },
      { ...fields, iat: now },
    )
    await waitForGrant([s.gw, s.reader], s.space, g.id)
    return g
  }

  /** Publish one reading now; the record it went into. */
  const publish = async (stream: string, value: number) => {
    await s.gw.data.publish(s.space, stream, [{ ts: Date.now(), value }])
    return (await s.gw.data.storedReadings(s.space, stream)).at(-1)!
  }

  const until = (t: number) => waitFor(`time ${t}`, async () => (Date.now() > t ? true : undefined), 20_000, 20)

  it('a grant that expires: what is published after its end is under a key its holder never had', async () => {
    const first = await publish('expiring', 1)
    const g = await grant({ streams: ['expiring'], exp: Date.now() + 2000 })
    const kept = await keyOf('expiring', first.epoch, g.id)
    assert.equal(decryptReadings(kept, first)[0].value, 1)
    await until(g.body.exp)
    const later = await publish('expiring', 2)
    assert.equal(later.epoch, first.epoch + 1, 'a new epoch began at the grant’s end')
    assert.throws(() => decryptReadings(kept, later), { name: 'DecryptionError' })
  })

  it('a grant that has not ended closes nothing', async () => {
    const first = await publish('lasting', 1)
    const g = await grant({ streams: ['lasting'] })
    const kept = await keyOf('lasting', first.epoch, g.id)
    // past the lease: the reader renews while its grant lasts
    await until(Date.now() + LEASE_MAX_MS)
    const later = await publish('lasting', 2)
    assert.equal(later.epoch, first.epoch)
    assert.equal(decryptReadings(kept, later)[0].value, 2)
  })

  it('a release limit: the epoch closes when the last release’s lease ends', async () => {
    const first = await publish('limited', 1)
    const g = await grant({ streams: ['limited'], maxReleases: 1 })
    const kept = await keyOf('limited', first.epoch, g.id)
    const leaseEnds = Date.now() + LEASE_MAX_MS
    await until(leaseEnds)
    const later = await publish('limited', 2)
    assert.equal(later.epoch, first.epoch + 1)
    assert.throws(() => decryptReadings(kept, later), { name: 'DecryptionError' })
  })

  it('a grant issued under a delegation ends with the delegation', async () => {
    const first = await publish('delegated', 1)
    const now = Date.now()
    const d = createDelegation(
      s.gw.identity.principal,
      {
        space: s.space,
        admin: s.admin.identity.principal.did,
        streams: ['delegated'],
        nbf: now - 1000,
        exp: now + 3000,
      },
      now,
    )
    await s.gw.policy.write(s.space, [{ kind: 'delegation', record: d }])
    await waitFor('the admin to know its delegation', async () =>
      s.admin.policy.document(s.space).state.delegations.has(d.id) ? true : undefined,
    )
    // the admin's grant claims an hour; the delegation ends in seconds
    const g = await grant({ streams: ['delegated'] }, s.admin)
    const kept = await keyOf('delegated', first.epoch, g.id)
    await until(d.body.exp)
    const later = await publish('delegated', 2)
    assert.equal(later.epoch, first.epoch + 1)
    assert.throws(() => decryptReadings(kept, later), { name: 'DecryptionError' })
  })

  it('the key holder remembers a grant’s end across a restart', async () => {
    const first = await publish('restarted', 1)
    const g = await grant({ streams: ['restarted'], exp: Date.now() + 2500 })
    const kept = await keyOf('restarted', first.epoch, g.id)
    await s.peers.stop(s.gw)
    s.gw = await s.peers.start(s.peers.dir('gw'), { leaseMaxMs: LEASE_MAX_MS })
    await until(g.body.exp)
    const later = await publish('restarted', 2)
    assert.equal(later.epoch, first.epoch + 1)
    assert.throws(() => decryptReadings(kept, later), { name: 'DecryptionError' })
  })
})
