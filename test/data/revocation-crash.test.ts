/**
 * A revocation's rotation survives the key holder's crash, with real processes: the gateway
 * (`edgeward start`) has many open streams, a revocation is made through its API, and the
 * process is killed with SIGKILL as soon as the call returns, while the rotation of its streams
 * is still under way. After a restart, every stream's next reading is in an epoch that started
 * after the revocation (its epoch is later than every reading's before it), and the audit log
 * holds the revocation's entry. Several rounds, since the moment of the kill is not chosen.
 */
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fromBase64url } from '../../crypto/encoding.ts'
import { didFromPublicKey, generateSigningKeyPair } from '../../crypto/identity.ts'
import type { ApiClient } from '../../node/cli/client.ts'
import { type LocalPeer, startPeer } from '../../node/cli/local-network.ts'
import { decodeEntry } from '../../protocols/audit/entries.ts'
import { initAndStart, stopPeers } from '../support/local-peers.ts'

const STREAMS = 150
const ROUNDS = 3

describe('a revocation when the key holder is killed right after it', { timeout: 300_000 }, () => {
  let root: string
  let dir: string
  const peers: LocalPeer[] = []
  let gw: LocalPeer
  let space: string
  const streams = Array.from({ length: STREAMS }, (_, i) => `s${i}`)

  const publishAll = async (api: ApiClient, ts: number) => {
    for (const s of streams) {
      await api.call('POST', `/v1/spaces/${space}/streams/${s}/readings`, JSON.stringify({ ts, value: 1 }))
    }
  }

  const readingsOf = async (api: ApiClient, stream: string) => {
    const out: { ts: number; epoch: number }[] = []
    for await (const l of api.lines(`/v1/spaces/${space}/streams/${stream}/readings`)) {
      out.push(l as { ts: number; epoch: number })
    }
    return out
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'edgeward-revocation-crash-'))
    dir = join(root, 'gw')
    gw = (await initAndStart('gw', dir)).peer
    peers.push(gw)
    const api = await gw.api()
    space = (await api.call<{ space: string }>('POST', '/v1/spaces', { name: 'plant' })).space
    await publishAll(api, 1_000)
  })

  after(() => stopPeers(peers, root))

  it('rotates every open stream after the restart, and logs the revocation', async () => {
    for (let round = 1; round <= ROUNDS; round++) {
      const api = await gw.api()
      const subject = didFromPublicKey(generateSigningKeyPair().publicKey)
      const exited = new Promise(resolve => gw.process.once('exit', resolve))
      const { revocation } = await api.call<{ revocation: string }>('POST', `/v1/spaces/${space}/revocations`, {
        subject,
      })
      // the revocation is stored when the call returns; its rotation runs on
      gw.process.kill('SIGKILL')
      await exited
      peers.pop()
      gw = await startPeer('gw', dir)
      peers.push(gw)
      const again = await gw.api()
      const ts = 1_000 + round * 1_000
      await publishAll(again, ts)
      const stale: string[] = []
      for (const s of streams) {
        const readings = await readingsOf(again, s)
        const before = readings.filter(r => r.ts < ts)
        const fresh = readings.filter(r => r.ts === ts)
        assert.equal(fresh.length, 1, `stream ${s} has its reading of round ${round}`)
        const latest = Math.max(...before.map(r => r.epoch))
        if (fresh[0].epoch <= latest) stale.push(`${s} (epoch ${fresh[0].epoch})`)
      }
      assert.deepEqual(stale, [], `round ${round}: streams still in the epoch of before the revocation`)
      const report = await again.call<{ entries: { entry: string }[] }>('GET', `/v1/spaces/${space}/audit/report`)
      const revocations = report.entries
        .map(e => decodeEntry(fromBase64url(e.entry)))
        .flatMap(e => (e.t === 'revocation' ? [e.revocation] : []))
      assert.ok(revocations.includes(revocation), `round ${round}: the audit log holds the revocation`)
      assert.equal(new Set(revocations).size, revocations.length, 'each revocation is logged once')
    }
  })
})
