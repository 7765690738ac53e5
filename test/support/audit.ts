/** Reading a node's audit trail back in tests: its own log decoded, and the heads it accepted of others. */
import type { EdgewardNode } from '../../node/node.ts'
import { type AuditEntry, decodeEntry } from '../../protocols/audit/entries.ts'
import { openTreeHead, type TreeHead } from '../../protocols/audit/heads.ts'
import { DEADLINE_MS, waitFor } from './wait.ts'

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
