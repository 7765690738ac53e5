/** Access requests approved or denied leave entries in the key holder's audit log. */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { EdgewardNode } from '../../node/node.ts'
import { type DecisionEntry, decodeEntry } from '../../protocols/audit/entries.ts'
import { suitePeers } from '../support/peers.ts'
import { waitFor } from '../support/wait.ts'

describe('decisions on access requests in the audit log', { timeout: 60_000 }, () => {
  const peers = suitePeers('decisions')
  let gw: EdgewardNode
  let reader: EdgewardNode
  let space: string

  before(async () => {
    gw = await peers.node('gw')
    reader = await peers.node('reader', { bootstrap: gw.addresses() })
    space = await gw.createSpace('plant')
    await gw.data.publish(space, 'temp', [{ ts: 1, value: 1 }])
    await reader.joinSpace(space)
    await waitFor('the reader to sync', async () =>
      reader.policy.document(space).state?.streams.has('temp') ? true : undefined,
    )
  })

  const decisions = async (): Promise<DecisionEntry[]> => {
    const out: DecisionEntry[] = []
    for (let i = 0; i < gw.audit!.size; i++) {
      const e = decodeEntry(await gw.audit!.entry(i))
      if (e.t === 'decision') out.push(e)
    }
    return out
  }

  it('logs an approval with the grant it issued, and a denial with its reason', async () => {
    const pending = async (n: number) =>
      waitFor('the request to reach the gateway', async () =>
        (await gw.requests.list(space)).filter(r => r.status === 'pending').length === n ? true : undefined,
      )
    /** The reader asks for an hour of raw temp for `reason`; the request reaches the gateway. */
    const ask = async (reason: string) => {
      const id = await reader.requests.file(space, { streams: ['temp'], forms: ['raw'], durationMs: 3_600_000, reason })
      await pending(1)
      return id
    }
    const first = await ask('calibration')
    const { grant } = await gw.requests.approve(space, first)
    const second = await ask('curiosity')
    await gw.requests.deny(space, second, 'not needed')
    await waitFor('both decisions in the log', async () => ((await decisions()).length === 2 ? true : undefined))
    const [approved, denied] = await decisions()
    assert.deepEqual(
      { request: approved.request, approved: approved.approved, grant: approved.grant, subject: approved.subject },
      { request: first, approved: true, grant, subject: reader.identity.principal.did },
    )
    assert.equal(approved.decidedBy, gw.identity.principal.did)
    assert.deepEqual(approved.streams, ['temp'])
    assert.deepEqual(
      { request: denied.request, approved: denied.approved, reason: denied.reason },
      { request: second, approved: false, reason: 'not needed' },
    )
    // and the report for the subject carries them, verifiably
    const { verifyReport } = await import('../../protocols/audit/report.ts')
    const report = await gw.audit!.report({ space, subject: reader.identity.principal.did })
    const v = verifyReport(JSON.parse(JSON.stringify(report)))
    assert.equal(v.ok, true)
    assert.equal(v.ok && v.entries.filter(e => e.t === 'decision').length, 2)
  })
})
