/**
 * The node's LevelDB: one database per node, with a sublevel per kind of state.
 * - `spaces`: space id -> { genesis, joined } (every space this node created or joined)
 * - `policy`: `<space>!<change hash>` -> signed change envelope
 * - `keys`: `<space>!<stream>!<form>!<epoch>` -> data key wrapped with the storage key;
 *   `releases!<grant>` -> key releases under a grant
 * - `epochs`: `<space>!<stream>` -> the current epoch and next sequence number; when each epoch
 *   started, revocations a finished rotation covers, the earliest grant end of the current epoch
 *   (keys and epochs: read and written only by node/services/data/epoch-keys.ts)
 * - `records`: `<space>!<stream>!<form>!<seq>` -> encrypted record of one or more readings
 * - `peers`: peer id -> multiaddrs last seen, for reconnecting after a restart
 * - `audit`: this node's audit log (entries, Merkle subtrees, signed heads, an index of entries by
 *   space and stream) and the latest heads and equivocation evidence it has seen of other logs
 *   (read and written only by node/services/audit.ts, whose `keys` is its layout)
 * - `requests`: `<space>!<request id>` -> signed access request seen on the space's requests topic
 * - `arrivals`: `<space>!<stream>!<form>!<time>!<seq>` -> nothing: when each record was stored (for retention by age)
 * - `settings`: local settings: retention per stream, and the floor below which retention deleted
 *   (records, arrivals and settings: read and written only by node/services/data/record-store.ts)
 * - `invites`: hex sha256(token) -> an invite this node made: its space, expiry, uses left and the
 *   grant it carries (read and written only by node/services/invites.ts)
 * - `contacts`: did -> the name this person gives someone (or themselves), and where it came from
 *   (read and written only by node/services/contacts.ts)
 * - `custody`: the deals this node holds a share of as a custodian, the deals it made as a
 *   dealer and which custodians have yet to acknowledge them (read and written only by
 *   node/services/custody/store.ts, whose module comment gives the layout)
 * Writes that must not be lost are atomic batches and synced.
 */
import { mkdir } from 'node:fs/promises'
import { isMainThread } from 'node:worker_threads'
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import { MemoryLevel } from 'memory-level'
import { aeadDecrypt, aeadEncrypt } from '../crypto/aead.ts'
import { NodeStateError } from './errors.ts'

type Bytes = Uint8Array
type Db = AbstractLevel<string | Bytes | Buffer, string, Bytes>
export type Sub = AbstractSublevel<Db, string | Bytes | Buffer, string, Bytes>

export interface Store {
  db: Db
  spaces: Sub
  policy: Sub
  keys: Sub
  epochs: Sub
  records: Sub
  peers: Sub
  audit: Sub
  requests: Sub
  arrivals: Sub
  settings: Sub
  invites: Sub
  contacts: Sub
  custody: Sub
  close(): Promise<void>
}

const enc = { keyEncoding: 'utf8', valueEncoding: 'view' } as const

/**
 * Open (creating it 0700 if need be) the LevelDB at `path`. LevelDB creates its files with
 * modes of its own (0644, 0666) as long as the store is open, so opening one also sets this
 * process's umask to keep group and others out of whatever it creates from then on (on top of
 * the umask it had; in worker threads, which cannot, the directory's 0700 keeps them out).
 */
export async function openStore(path: string): Promise<Store> {
  keepNewFilesPrivate()
  await mkdir(path, { recursive: true, mode: 0o700 })
  const db = new Level<string, Bytes>(path, enc)
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause
    if ((err as { code?: string }).code === 'LEVEL_DATABASE_NOT_OPEN' && cause?.code === 'LEVEL_LOCKED') {
      throw new NodeStateError(`the store at ${path} is in use: is a node already running on this data directory?`)
    }
    throw err
  }
  return sublevels(db as unknown as Db)
}

function keepNewFilesPrivate(): void {
  if (!isMainThread || process.platform === 'win32') return
  const umask = process.umask(0o077)
  process.umask(umask | 0o077)
}

/** A store that lives in memory only: for the simulator's runs that do not keep state on disk. */
export async function openMemoryStore(): Promise<Store> {
  const db = new MemoryLevel<string, Bytes>(enc)
  await db.open()
  return sublevels(db as unknown as Db)
}

function sublevels(db: Db): Store {
  const sub = (name: string) => db.sublevel<string, Bytes>(name, enc) as unknown as Sub
  return {
    db,
    spaces: sub('spaces'),
    policy: sub('policy'),
    keys: sub('keys'),
    epochs: sub('epochs'),
    records: sub('records'),
    peers: sub('peers'),
    audit: sub('audit'),
    requests: sub('requests'),
    arrivals: sub('arrivals'),
    settings: sub('settings'),
    invites: sub('invites'),
    contacts: sub('contacts'),
    custody: sub('custody'),
    close: () => db.close(),
  }
}

/** Data keys at rest are wrapped under the node's storage key, with the key's location as AAD. */
export function wrapKey(storageKey: Uint8Array, location: string, key: Uint8Array): Uint8Array {
  return aeadEncrypt(storageKey, key, new TextEncoder().encode(`edgeward/wrapped-key/v1/${location}`))
}

/** Open a data key wrapped by wrapKey at the same location; DecryptionError otherwise. */
export function unwrapKey(storageKey: Uint8Array, location: string, wrapped: Uint8Array): Uint8Array {
  return aeadDecrypt(storageKey, wrapped, new TextEncoder().encode(`edgeward/wrapped-key/v1/${location}`))
}

/** Zero-padded decimal so that string order is numeric order in LevelDB keys. */
export function pad(n: number): string {
  return n.toString().padStart(16, '0')
}

/** Options for writes that must reach the disk before we go on (classic-level's `sync`). */
export const DURABLE = { sync: true } as Record<string, unknown>
