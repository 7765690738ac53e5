/**
 * What one hostile peer leaves behind: the CPU an idle two-node space (a key holder and a
 * reader, real libp2p over TCP on 127.0.0.1, each with its LevelDB) spends per second, before
 * and after a third peer gossips 700 policy changes signed by a throwaway identity whose
 * history never comes, then leaves. The baseline is the same space before the attack, in the
 * same run; the goal is a ratio of at most 1.1 (such changes used to be kept, stored and paged
 * through again at every catch-up, for good).
 */

import { policyTopic } from '../protocols/sync/messages.ts'
import { newPrincipal } from '../test/protocols/fixtures.ts'
import { orphans } from '../test/support/hostile.ts'
import { withPeers } from '../test/support/peers.ts'
import { until } from '../test/support/wait.ts'
import type { Figure, Suite } from './harness.ts'
import { versus } from './harness.ts'

const ATTACK = 700
/** how long each step of the set-up and the attack may take */
const WAIT_MS = 60_000

/** CPU time of this process (both honest nodes run in it), in ms per second of wall time, over `ms`. */
async function cpuPerSecond(ms: number): Promise<number> {
  const start = process.cpuUsage()
  const t0 = performance.now()
  await new Promise(r => setTimeout(r, ms))
  const d = process.cpuUsage(start)
  return ((d.user + d.system) / 1000 / (performance.now() - t0)) * 1000
}

async function windows(n: number, ms: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(await cpuPerSecond(ms))
  return out
}

const hostile: Suite = async ({ quick }) => {
  const count = quick ? 2 : 10
  const windowMs = quick ? 500 : 3000
  return withPeers(async peers => {
    const gw = await peers.node('gw')
    const reader = await peers.node('reader')
    const attacker = await peers.node('hostile')
    const space = await gw.createSpace('plant')
    await gw.data.createStream(space, 'temp')
    for (const n of [reader, attacker]) {
      await n.libp2p.dial(gw.libp2p.getMultiaddrs()[0])
      await n.joinSpace(space)
    }
    await attacker.libp2p.dial(reader.libp2p.getMultiaddrs()[0])
    await until(
      'the space everywhere',
      () => [reader, attacker].every(n => n.policy.document(space).state.streams.has('temp')),
      WAIT_MS,
    )
    await until(
      'gossip peers',
      () => attacker.libp2p.services.pubsub.getSubscribers(policyTopic(space)).length >= 2,
      WAIT_MS,
    )
    // settle after the set-up, then measure the idle space
    await new Promise(r => setTimeout(r, windowMs))
    const before = await windows(count, windowMs)

    const genesis = gw.policy.document(space).allEnvelopes()[0]
    const flood = orphans(space, genesis, newPrincipal(), ATTACK)
    for (const m of flood) await attacker.libp2p.services.pubsub.publish(policyTopic(space), m)
    const handled = (n: typeof gw) =>
      n.metrics.total('edgeward_policy_changes_dropped_total') + n.policy.document(space).waiting
    await until(
      'both honest nodes to take the flood',
      () => handled(gw) >= ATTACK && handled(reader) >= ATTACK,
      WAIT_MS,
    )
    await attacker.stop()
    await new Promise(r => setTimeout(r, windowMs))
    const after = await windows(count, windowMs)
    const kept = [gw, reader].map(n => n.policy.document(space).waiting)
    const f: Figure = versus(
      `CPU of an idle two-node space after a hostile peer's ${ATTACK} changes with a missing history`,
      'ms/s',
      after,
      'the same space before the attack',
      before,
    )
    return [
      { ...f, note: `${count} windows of ${windowMs / 1000} s each side; changes left waiting: ${kept.join(', ')}` },
    ]
  })
}

export default hostile
