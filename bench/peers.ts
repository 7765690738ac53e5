/** What the suites share: a seeded PRNG, and every node and data directory a suite creates. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdentity, type Identity } from '../node/identity.ts'
import { EdgewardNode, type NodeOptions } from '../node/node.ts'

/** mulberry32: a small seeded PRNG, so runs are reproducible (the simulator's). */
export { mulberry32 as rng } from '../sim/random.ts'

/** Every node and data directory the suite creates, so one call ends them all. */
export class Peers {
  private root = ''
  private readonly running = new Set<EdgewardNode>()

  async init(): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), 'edgeward-bench-'))
  }

  dir(name: string): string {
    return join(this.root, name)
  }

  async identity(name: string): Promise<Identity> {
    return createIdentity(this.dir(name), { now: Date.now() })
  }

  async node(name: string, opts: Omit<NodeOptions, 'dataDir'> = {}): Promise<EdgewardNode> {
    await this.identity(name)
    const node = await EdgewardNode.create({ dataDir: this.dir(name), ...opts })
    this.running.add(node)
    await node.start()
    return node
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map(n => n.stop()))
    this.running.clear()
    if (this.root !== '') await rm(this.root, { recursive: true, force: true })
  }
}
