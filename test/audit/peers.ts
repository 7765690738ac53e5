/**
 * What the in-process audit tests share: real nodes (LevelDB + libp2p over TCP loopback) in a
 * temp dir that `stopAll` removes after stopping every node it started, and checks that no
 * TCP handle is left behind; the space/grant/publish steps; reading a node's audit log back.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from '../../node/cli/local-network.ts'
import { createIdentity } from '../../node/identity.ts'
import { EdgewardNode, type NodeOptions } from '../../node/node.ts'
import { type AuditEntry, decodeEntry } from '../../protocols/audit/entries.ts'
import { openTreeHead, type TreeHead } from '../../protocols/audit/heads.ts'
import { readingCount } from '../../protocols/data/reading.ts'
import { createGrant, createRevocation, type RevocationTarget } from '../../protocols/policy/records.ts'

export const STREAM = 'temperature'
export const HOUR = 3600 * 1000
export const DEADLINE_MS = 15_000

export class Peers {
  root = ''
  private readonly running = new Set<EdgewardNode>()
  /** set by `stopAll`: a test body that outlives its test (a timeout) may start no more nodes */
  private closed = false

  async init(prefix: string): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), `edgeward-${prefix}-`))
  }

  async identity(name: string): Promise<string> {
    const dir = join(this.root, name)
    await createIdentity(dir, { now: Date.now() })
    return dir
  }

  async start(dataDir: string, opts: Omit<NodeOptions, 'dataDir'> = {}): Promise<EdgewardNode> {
    if (this.closed) throw new Error('the suite has ended: no more nodes')
    const node = await EdgewardNode.create({ dataDir, ...opts })
    this.running.add(node)
    await node.start()
    if (this.closed) {
      this.running.delete(node)
      await node.stop()
      throw new Error('the suite ended while a node was starting')
    }
    return node
  }

  async node(name: string, opts: Omit<NodeOptions, 'dataDir'> = {}): Promise<EdgewardNode> {
    return this.start(await this.identity(name), opts)
  }

  async stop(node: EdgewardNode): Promise<void> {
    this.running.delete(node)
    await node.stop()
  }

  async stopAll(): Promise<void> {
    this.closed = true
    await Promise.all([...this.running].map(n => n.stop()))
    this.running.clear()
    if (this.root !== '') await rm(this.root, { recursive: true, force: true, maxRetries: 3 })
    const tcp = process.getActiveResourcesInfo().filter(r => r.startsWith('TCP'))
    assert.deepEqual(tcp, [], 'every TCP listener and connection is closed')
  }
}

/** Poll a synchronous condition until it holds, or fail at the deadline. */
export function until(what: string, check: () => boolean, deadlineMs = DEADLINE_MS): Promise<true> {
  return waitFor(what, async () => (check() ? true : undefined), deadlineMs, 20)
}

/** Gateway creates a space, readers join it and receive its genesis. */
export async function spaceWith(gateway: EdgewardNode, readers: EdgewardNode[], name: string): Promise<string> {
  const space = await gateway.createSpace(name)
  for (const r of readers) await r.joinSpace(space)
  await until(`readers to receive the genesis of ${name}`, () =>
    readers.every(r => r.policy.document(space).hasGenesis),
  )
  return space
}

export async function grantTo(
  owner: EdgewardNode,
  space: string,
  subject: string,
  window: { nbf: number; exp: number },
  streams = [STREAM],
) {
  const g = createGrant(
    owner.identity.principal,
    { space, sub: subject, streams, forms: ['raw'], ...window },
    Date.now(),
  )
  const outcome = await owner.policy.write(space, [{ kind: 'grant', record: g }])
  assert.equal(outcome.status, 'applied')
  return g
}

export async function revoke(owner: EdgewardNode, space: string, target: RevocationTarget) {
  const rv = createRevocation(owner.identity.principal, space, target, Date.now(), 'test')
  const outcome = await owner.policy.write(space, [{ kind: 'revocation', record: rv }])
  assert.equal(outcome.status, 'applied')
  return rv
}

/** Gateway publishes readings on `stream`; waits until every reader stored their ciphertext. */
export async function publish(
  gateway: EdgewardNode,
  readers: EdgewardNode[],
  space: string,
  stream: string,
  values: number[],
): Promise<void> {
  const before = await Promise.all(readers.map(async r => readingCount(await r.data.storedReadings(space, stream))))
  const t = Date.now()
  await gateway.data.publish(
    space,
    stream,
    values.map((value, i) => ({ ts: t + i, value })),
  )
  await waitFor(`readers to store the ciphertext published on ${stream}`, async () => {
    for (const [i, r] of readers.entries()) {
      if (readingCount(await r.data.storedReadings(space, stream)) < before[i] + values.length) return undefined
      if (!r.policy.document(space).state.streams.has(stream)) return undefined
    }
    return true
  })
}

export interface LoggedEntry {
  index: number
  bytes: Uint8Array
  entry: AuditEntry
}

/** Every entry of a node's own audit log, decoded. */
export async function logOf(node: EdgewardNode): Promise<LoggedEntry[]> {
  const audit = node.audit!
  const out: LoggedEntry[] = []
  for (let index = 0; index < audit.size; index++) {
    const bytes = await audit.entry(index)
    out.push({ index, bytes, entry: decodeEntry(bytes) })
  }
  return out
}

/** Poll a node's audit log until `pick` finds something in it. */
export function waitForEntry<T>(
  node: EdgewardNode,
  what: string,
  pick: (log: LoggedEntry[]) => T | undefined,
): Promise<T> {
  return waitFor(what, async () => pick(await logOf(node)), DEADLINE_MS, 20)
}

/**
 * The head of `log` that a watching node last accepted. The service has no getter for it, so
 * this reads the `seen!<log>` key of its audit store (node/services/audit.ts).
 */
export async function seenHead(watcher: EdgewardNode, log: string): Promise<TreeHead | undefined> {
  const raw = await watcher.store.audit.get(`seen!${log}`)
  return raw === undefined ? undefined : openTreeHead(raw).body
}
