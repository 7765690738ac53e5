/**
 * A reader cut off from the revocation keeps its key until the lease ends, and no longer:
 * real nodes over TCP on 127.0.0.1 in one process. The reader gets a key with a lease, is
 * partitioned (a libp2p connection gate refuses every dial and handshake, both ways, and the
 * open connections are closed), and the key holder revokes its grant. What the README says of
 * this case, in both directions: until the lease ends the reader still holds the key and
 * decrypts what it holds (it cannot know of the revocation); at the lease end the key is gone;
 * once reconnected, the key holder refuses to renew it.
 *
 * The nodes run on one test clock (their `now` option), so that "before the lease end" and
 * "at the lease end" are moments the test sets, not wall-clock times a slow machine could miss.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { fromBase64url } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { grant, revoke } from '../../node/api-policy.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { request } from '../../node/services/stream-io.ts'
import {
  createKeyRequest,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  MAX_KEY_RESPONSE_BYTES,
} from '../../protocols/access/messages.ts'
import { decodeEntry } from '../../protocols/audit/entries.ts'
import { readingCount } from '../../protocols/data/reading.ts'
import { HOUR, spaceWith, suitePeers, waitForGrant } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

const STREAM = 'temperature'
const LEASE_MS = 60_000

/** The nodes' clock: real time plus a shift, or held at one moment. It only moves forward. */
class TestClock {
  private shift = 0
  private held: number | undefined
  readonly now = (): number => this.held ?? Date.now() + this.shift
  /** Hold the clock at `t` (later than now). */
  hold(t: number): void {
    assert.ok(t >= this.now(), 'the clock only moves forward')
    this.held = t
  }
  /** Let it run again from where it is held. */
  release(): void {
    if (this.held === undefined) return
    this.shift = this.held - Date.now()
    this.held = undefined
  }
}

/** A gate that, once closed, refuses every connection of its node, dialled or accepted. */
class Gate {
  closed = false
  refused = 0
  private deny = (_peer: PeerId): boolean => {
    if (this.closed) this.refused++
    return this.closed
  }
  readonly gater: ConnectionGater = {
    denyDialPeer: this.deny,
    denyInboundEncryptedConnection: this.deny,
    denyOutboundEncryptedConnection: this.deny,
  }
}

describe('a reader partitioned from a revocation', { timeout: 60_000 }, () => {
  const peers = suitePeers()
  const clock = new TestClock()
  const gate = new Gate()
  let gw: EdgewardNode
  let reader: EdgewardNode
  let witness: EdgewardNode
  let space: string

  before(async () => {
    gw = await peers.node('gw', { now: clock.now, leaseMaxMs: LEASE_MS })
    reader = await peers.node('reader', {
      now: clock.now,
      bootstrap: gw.addresses(),
      redialIntervalMs: 200,
      network: { connectionGater: gate.gater },
    })
    // on the key holder's side of the partition: shows what crossed there
    witness = await peers.node('witness', { now: clock.now, bootstrap: gw.addresses() })
    space = await spaceWith(gw, [reader, witness], 'plant')
    await gw.data.publish(
      space,
      STREAM,
      [1, 2, 3].map(value => ({ ts: clock.now() + value, value })),
    )
    await waitFor('the reader to store the ciphertext', async () =>
      readingCount(await reader.data.storedReadings(space, STREAM)) === 3 ? true : undefined,
    )
  })

  const releases = () => gw.metrics.total('edgeward_key_releases_total')
  const decryptStored = async () =>
    (await reader.data.decryptAll(space, STREAM, await reader.data.storedReadings(space, STREAM))).map(r => r.value)

  it('holds the key until its lease ends, then loses it, and is refused a renewal', async () => {
    const out = await grant(gw, space, {
      to: reader.identity.principal.did,
      streams: [STREAM],
      until: clock.now() + HOUR,
    })
    const grantId = out.grant as string
    await waitForGrant([reader], space, grantId)
    const releasedAt = clock.now()
    assert.deepEqual(
      (await reader.data.read(space, STREAM)).map(r => r.value),
      [1, 2, 3],
    )
    assert.equal(releases(), 1)
    const epoch = (await reader.data.storedReadings(space, STREAM))[0].epoch
    const lease = reader.data.cachedLease(space, STREAM, 'raw', epoch)
    assert.ok(lease !== undefined, 'the reader holds the key')
    assert.equal(lease.grant, grantId)
    assert.ok(
      lease.lease >= releasedAt + LEASE_MS && lease.lease <= clock.now() + LEASE_MS,
      'the lease is the key holder’s lease max',
    )

    // the partition: every connection of the reader is refused, and the open ones are closed
    gate.closed = true
    for (const id of reader.connectedPeers()) await reader.libp2p.hangUp(peerIdFromString(id))
    await waitFor('the reader to be cut off', async () => (reader.connectedPeers().length === 0 ? true : undefined))

    const rv = await revoke(gw, space, { grant: grantId })
    const refusedBefore = gate.refused
    // proof that the partition holds while the revocation spreads: the witness, on the key
    // holder's side, has it, and the reader has tried to reconnect since, and was refused
    await waitFor('the witness to receive the revocation', async () =>
      witness.policy.document(space).state.revocations.has(rv.revocation as string) ? true : undefined,
    )
    await waitFor('the reader to try to reconnect, and be refused', async () =>
      gate.refused > refusedBefore ? true : undefined,
    )
    assert.equal(reader.connectedPeers().length, 0, 'still cut off')
    assert.equal(
      reader.policy.document(space).state.revocations.has(rv.revocation as string),
      false,
      'the revocation did not reach the reader',
    )

    // before the lease end: the reader still holds the key and decrypts what it holds, without asking
    assert.equal(reader.data.cachedKeyCount(), 1)
    assert.deepEqual(await decryptStored(), [1, 2, 3])
    clock.hold(lease.lease - 1)
    assert.equal(reader.data.cachedKeyCount(), 1, 'the key is still held 1 ms before the lease end')
    assert.deepEqual(await decryptStored(), [1, 2, 3])
    assert.equal(releases(), 1, 'no key was asked for while the reader held it')

    // at the lease end: the key is gone, and nothing decrypts
    clock.hold(lease.lease)
    assert.equal(reader.data.cachedKeyCount(), 0, 'the key is dropped at the lease end')
    assert.equal(reader.data.cachedLease(space, STREAM, 'raw', epoch), undefined)
    assert.equal(reader.metrics.total('edgeward_keys_dropped_total', 'lease-end'), 1)
    await assert.rejects(decryptStored(), /no key holder of the space answered/, 'no key, and no key holder to ask')
    clock.release()

    // reconnected: a renewal under the grant the reader held is refused by the key holder
    gate.closed = false
    await reader.libp2p.dial(multiaddr(gw.addresses()[0]))
    const renewal = createKeyRequest(reader.identity.principal, {
      space,
      stream: STREAM,
      form: 'raw',
      epochs: [epoch],
      grant: grantId,
      device: reader.identity.device.bytes,
      nonce: randomBytes(16),
      ts: clock.now(),
    })
    const res = decodeKeyResponse(
      await request(
        reader.libp2p,
        peerIdFromString(gw.identity.peerId),
        KEYS_PROTOCOL,
        renewal.bytes,
        MAX_KEY_RESPONSE_BYTES,
      ),
    )
    assert.equal(res.ok, false, 'the renewal is refused')
    if (!res.ok) assert.equal(res.code, 'revoked', res.reason)
    // and through the reader's own read, whether or not it has caught up on the revocation yet
    await assert.rejects(reader.data.read(space, STREAM), (err: Error) => err.name === 'AccessRefusedError')
    assert.equal(reader.data.cachedKeyCount(), 0)
    assert.equal(releases(), 1, 'no key was released after the revocation')

    // the key holder's log: one release before the revocation, refusals after it
    const report = await gw.audit!.report({ space, subject: reader.identity.principal.did })
    const kinds = report.entries.map(e => decodeEntry(fromBase64url(e.entry)).t)
    assert.deepEqual(kinds, ['grant', 'release', 'revocation', 'refusal', 'refusal'])
  })
})
