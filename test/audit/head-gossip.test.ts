/**
 * A key holder's tree head is signed and stored before it is gossiped: when gossip refuses to
 * send it, an auditor's report is still made against it, and the refusal is counted.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { EdgewardNode } from '../../node/node.ts'
import { verifyReport } from '../../protocols/audit/report.ts'
import { suitePeers } from '../support/peers.ts'

describe('audit heads that gossip refuses', { timeout: 60_000 }, () => {
  const peers = suitePeers()
  let gw: EdgewardNode

  before(async () => {
    gw = await peers.node('gw')
  })

  it('makes a report against the new head, and counts the head it could not gossip', async () => {
    const space = await gw.createSpace('alone')
    await gw.data.publish(space, 'temp', [{ ts: 1, value: 1 }])
    // no peer takes the space's audit heads, and from now on gossipsub refuses to publish to no one
    const pubsub = gw.libp2p.services.pubsub as unknown as { opts: { allowPublishToZeroTopicPeers: boolean } }
    pubsub.opts.allowPublishToZeroTopicPeers = false
    const before = gw.metrics.total('edgeward_audit_head_gossip_failures_total')
    const report = await gw.audit!.report({ space, subject: gw.identity.principal.did })
    const v = verifyReport(JSON.parse(JSON.stringify(report)))
    assert.equal(v.ok, true)
    assert.equal(gw.metrics.total('edgeward_audit_head_gossip_failures_total'), before + 1)
  })
})
