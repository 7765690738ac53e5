/**
 * What a connected peer without a grant can make a key holder do, bounded per peer: refused key
 * requests beyond a budget per peer and minute are counted but not each written to the audit
 * log; replay protection is kept per device, so a flood from some devices neither blocks nor
 * evicts another's; and a request answered before the key holder restarted is refused after it.
 * Real peers in one process over TCP; the attackers are bare libp2p peers with principals and
 * device certificates of their own, sending signed key requests on `/edgeward/keys/1.0.0`.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { EdgewardLibp2p } from '../../node/network.ts'
import type { NodeOptions } from '../../node/node.ts'
import { askKeys, keyRequest, stranger } from '../support/keys.ts'
import { grantTo, HOUR, waitForGrant } from '../support/peers.ts'
import { suiteNodes } from '../support/suite.ts'
import { waitFor } from '../support/wait.ts'

const STREAM = 'temp'
const PER_DEVICE = 20
const GW_OPTS: Omit<NodeOptions, 'dataDir'> = { replayMaxPerDevice: PER_DEVICE, replayMaxEntries: 50 }

describe('key release under abuse', { timeout: 90_000 }, () => {
  const s = suiteNodes('key-abuse', ['gw', 'reader'], { space: 'plant', startOf: { gw: GW_OPTS } })
  let grantId: string

  const ask = (from: EdgewardLibp2p, body: Uint8Array) => askKeys(from, s.gw.identity.peerId, body)

  const readerRequest = (fields: { epochs?: number[] } = {}) =>
    keyRequest(s.reader, { space: s.space, stream: STREAM, grant: grantId, ...fields })

  /** A peer of its own, certified by a principal of its own, with no grant; its next request, signed. */
  const attacker = async () => {
    const p = await s.peers.attacker()
    await p.dial(multiaddr(s.gw.addresses()[0]))
    const self = stranger(p.peerId.toString())
    const next = () => keyRequest(self, { space: s.space, stream: STREAM }).bytes
    return { p, next }
  }

  const refusals = (code?: string) =>
    s.gw.metrics.total('edgeward_key_refusals_total', code === undefined ? undefined : `reason="${code}"`)
  const loggedRefusals = () => s.gw.metrics.total('edgeward_audit_entries_total', 'kind="refusal"')

  before(async () => {
    await s.gw.data.publish(s.space, STREAM, [{ ts: Date.now(), value: 1 }])
    const now = Date.now()
    grantId = (
      await grantTo(
        s.gw,
        s.space,
        s.reader.identity.principal.did,
        { nbf: now - 1000, exp: now + HOUR },
        { streams: [STREAM] },
      )
    ).id
    await waitForGrant([s.reader], s.space, grantId)
  })

  it('logs a bounded number of one peer’s refusals per minute, counts every one, and still logs other peers’', async () => {
    const { p, next } = await attacker()
    const [total, logged] = [refusals(), loggedRefusals()]
    const unlogged = s.gw.metrics.total('edgeward_key_refusals_unlogged_total')
    const sent = 60
    for (let i = 0; i < sent; i++) assert.equal((await ask(p, next())).ok, false)
    // and copies of the reader's own signed request, from the attacker's connection
    for (let i = 0; i < 20; i++) {
      const res = await ask(p, readerRequest().bytes)
      assert.equal(res.ok ? 'released' : res.code, 'wrong-device')
    }
    assert.equal(refusals() - total, sent + 20, 'every refusal is counted')
    assert.equal(loggedRefusals() - logged, 30, 'thirty are written to the audit log')
    assert.equal(s.gw.metrics.total('edgeward_key_refusals_unlogged_total') - unlogged, sent + 20 - 30)
    // another peer's refusal is still written
    const res = await ask(s.reader.libp2p, readerRequest({ epochs: [0, 9] }).bytes)
    assert.equal(res.ok ? 'released' : res.code, 'unknown-epoch')
    assert.equal(loggedRefusals() - logged, 31)
  })

  it('keeps replay protection per device: floods from other devices neither block nor crowd out a reader', async () => {
    const replaysBefore = refusals('replay')
    // three devices, each past its own limit; together past the key holder's total
    let refusedAsReplay = 0
    for (let a = 0; a < 3; a++) {
      const { p, next } = await attacker()
      for (let i = 0; i < PER_DEVICE + 10; i++) {
        const res = await ask(p, next())
        assert.equal(res.ok, false)
        if (!res.ok && res.code === 'replay') {
          assert.match(res.reason, /too many requests/)
          refusedAsReplay++
        }
      }
    }
    assert.ok(refusedAsReplay >= 30, `each device is held to ${PER_DEVICE} requests in the window (${refusedAsReplay})`)
    assert.equal(refusals('replay') - replaysBefore, refusedAsReplay)
    // the reader, asking at an ordinary rate, is served, and its own replays are still refused
    const valid = readerRequest()
    const first = await ask(s.reader.libp2p, valid.bytes)
    assert.equal(first.ok, true, first.ok ? '' : `${first.code}: ${first.reason}`)
    const again = await ask(s.reader.libp2p, valid.bytes)
    assert.equal(again.ok ? 'released' : again.code, 'replay')
  })

  it('refuses after a restart a request it answered before', async () => {
    const valid = readerRequest()
    const first = await ask(s.reader.libp2p, valid.bytes)
    assert.equal(first.ok, true, first.ok ? '' : `${first.code}: ${first.reason}`)
    await s.peers.stop(s.gw)
    s.gw = await s.peers.start(s.peers.dir('gw'), GW_OPTS)
    await waitFor('the reader to reconnect', async () =>
      s.reader.libp2p.getConnections(peerIdFromString(s.gw.identity.peerId)).length > 0 ? true : undefined,
    )
    const replayed = await ask(s.reader.libp2p, valid.bytes)
    assert.equal(replayed.ok ? 'released' : replayed.code, 'replay')
    // a request made now is served
    const fresh = await ask(s.reader.libp2p, readerRequest().bytes)
    assert.equal(fresh.ok, true, fresh.ok ? '' : `${fresh.code}: ${fresh.reason}`)
  })
})
