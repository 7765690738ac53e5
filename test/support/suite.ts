/**
 * A suite of real nodes in one process, by name: the first (the gateway) starts first, the
 * others knowing its addresses, in a space the first one made and the others joined, if asked.
 * They start before the suite's own `before` hooks and stop after its tests (`suitePeers`).
 *
 * @example
 * describe('…', () => {
 *   const s = suiteNodes('grant-end', ['gw', 'reader'], { space: 'plant', startOf: { gw: { leaseMaxMs: 1500 } } })
 *   it('…', async () => {
 *     await s.gw.data.publish(s.space, 'temp', [{ ts: Date.now(), value: 1 }])
 *   })
 * })
 */
import { before } from 'node:test'
import type { EdgewardNode, NodeOptions } from '../../node/node.ts'
import { type Peers, spaceWith, suitePeers } from './peers.ts'

type StartOptions = Omit<NodeOptions, 'dataDir'>

/**
 * The nodes of a suite by name (a test may put a restarted node in its place), the `Peers`
 * that started them, and the id of the space asked for ('' without one). Filled in place, so
 * read them once the suite's hooks ran.
 */
export type SuiteNodes<N extends string> = Record<N, EdgewardNode> & { peers: Peers; space: string }

/** What `suiteNodes` starts besides the nodes' names. */
export interface SuiteNodesOptions<N extends string> {
  /** a space, by name, that the first node creates and every other joins; ready once all received its genesis */
  space?: string
  /** what every node starts with */
  start?: StartOptions
  /** what one node starts with besides (a gateway's epoch length) */
  startOf?: Partial<Record<N, StartOptions>>
}

/**
 * Start a node for each of `names` in the temp dir of the enclosing suite (named after
 * `prefix`): the first, then the others one by one; then the space asked for. No node may be
 * called `peers` or `space`.
 */
export function suiteNodes<N extends string>(
  prefix: string,
  names: readonly N[],
  opts: SuiteNodesOptions<N> = {},
): SuiteNodes<N> {
  const peers = suitePeers(prefix)
  const s = { peers, space: '' } as SuiteNodes<N>
  const nodes: Record<N, EdgewardNode> = s
  before(async () => {
    const [first, ...others] = names
    nodes[first] = await peers.node(first, { ...opts.start, ...opts.startOf?.[first] })
    const bootstrap = nodes[first].addresses()
    for (const name of others)
      nodes[name] = await peers.node(name, { ...opts.start, bootstrap, ...opts.startOf?.[name] })
    const joining = others.map(name => nodes[name])
    if (opts.space !== undefined) s.space = await spaceWith(nodes[first], joining, opts.space)
  })
  return s
}
