/**
 * Contacts: the names this person gives the people they deal with, so that screens and
 * listings say "Ana Ruiz", not a did:key. Local to this node, never sent anywhere but in an
 * invite (the inviter's own name, which the joiner keeps as a suggestion) and an invite's
 * redemption (the joiner's). A name the person typed wins over a suggested one; the person's
 * own name is the contact of their own did.
 */
import { isDid } from '../../crypto/identity.ts'
import { TEXT_PATTERN } from '../../protocols/validate.ts'
import { UsageError } from '../errors.ts'
import type { Store } from '../store.ts'

/** at most this many contacts are kept; beyond it, suggested names are not taken */
export const MAX_CONTACTS = 10_000
/** a name shown for a person: 1..64 characters of printable text */
export const MAX_NAME_LENGTH = 64

/** Where a name came from: typed by the person, or suggested by the named one (through an invite). */
export type ContactSource = 'me' | 'suggested'

export interface Contact {
  did: string
  name: string
  source: ContactSource
  /** when it was set (ms) */
  at: number
}

export interface ContactsComponents {
  store: Pick<Store, 'contacts'>
  now: () => number
}

/** A name as a person may give one: trimmed, 1..64 printable characters; UsageError otherwise. */
export function checkName(name: unknown): string {
  if (typeof name !== 'string') throw new UsageError('a name is text')
  const n = name.trim()
  if (n.length === 0 || n.length > MAX_NAME_LENGTH || !TEXT_PATTERN.test(n))
    throw new UsageError(`a name is 1..${MAX_NAME_LENGTH} printable characters`)
  return n
}

/** The person's address book, kept in memory and in LevelDB. */
export class ContactsService {
  private readonly c: ContactsComponents
  private readonly byDid = new Map<string, Contact>()
  private changes = 0

  constructor(components: ContactsComponents) {
    this.c = components
  }

  async start(): Promise<void> {
    for await (const [did, v] of this.c.store.contacts.iterator()) {
      try {
        const c = JSON.parse(new TextDecoder().decode(v)) as Contact
        if (isDid(did) && typeof c.name === 'string') this.byDid.set(did, { ...c, did })
      } catch {
        // a damaged entry is dropped: it is only a name
      }
    }
  }

  /** Changes whenever a name does. */
  get version(): number {
    return this.changes
  }

  /** The name given to `did`, if any. */
  nameOf(did: string): string | undefined {
    return this.byDid.get(did)?.name
  }

  list(): Contact[] {
    return [...this.byDid.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  /** Every did with a name, as a map (for the client). */
  names(): Record<string, string> {
    return Object.fromEntries([...this.byDid.values()].map(c => [c.did, c.name]))
  }

  /** Name a person (the person's own choice): replaces any name. */
  async set(did: string, name: string): Promise<Contact> {
    if (!isDid(did)) throw new UsageError(`not a did:key: ${did}`)
    return this.put({ did, name: checkName(name), source: 'me', at: this.c.now() })
  }

  /**
   * A name someone suggested for themselves (through an invite): kept only where the person
   * gave none, and while the book has room. Invalid names are ignored, never an error.
   */
  async suggest(did: string, name: unknown): Promise<void> {
    if (!isDid(did) || this.byDid.get(did)?.source === 'me') return
    if (!this.byDid.has(did) && this.byDid.size >= MAX_CONTACTS) return
    let checked: string
    try {
      checked = checkName(name)
    } catch {
      return
    }
    await this.put({ did, name: checked, source: 'suggested', at: this.c.now() })
  }

  async remove(did: string): Promise<boolean> {
    if (!this.byDid.delete(did)) return false
    await this.c.store.contacts.del(did)
    this.changes++
    return true
  }

  private async put(c: Contact): Promise<Contact> {
    if (!this.byDid.has(c.did) && this.byDid.size >= MAX_CONTACTS)
      throw new UsageError(`at most ${MAX_CONTACTS} contacts`)
    await this.c.store.contacts.put(c.did, new TextEncoder().encode(JSON.stringify(c)))
    this.byDid.set(c.did, c)
    this.changes++
    return c
  }
}
