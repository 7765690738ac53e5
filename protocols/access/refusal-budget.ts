/**
 * How many refused key requests of one peer a key holder writes to its audit log.
 *
 * Every refusal is counted; only the first `perWindow` of each remote peer in a window of
 * `windowMs` are each appended to the audit log as a synced entry. Without the bound, any
 * connected peer, grant or none, could grow the key holder's log and its synced writes by one
 * entry per request it sends. Fixed windows per peer, started by the peer's first refusal.
 * Pure apart from its own memory; `now` is passed in.
 */

export interface RefusalBudgetOptions {
  /** refusals of one peer written to the log per window (default 30) */
  perWindow?: number
  /** the window (default 60 s) */
  windowMs?: number
}

/** How many refused key requests of each peer go to the audit log per window (all are counted). */
export class RefusalBudget {
  private readonly used = new Map<string, { since: number; count: number }>()
  readonly perWindow: number
  readonly windowMs: number

  constructor(opts: RefusalBudgetOptions = {}) {
    this.perWindow = opts.perWindow ?? 30
    this.windowMs = opts.windowMs ?? 60_000
  }

  /** May one more refusal of `peer` be logged now? (It is taken from the peer's budget if so.) */
  take(peer: string, now: number): boolean {
    let u = this.used.get(peer)
    if (u === undefined || now - u.since >= this.windowMs) {
      u = { since: now, count: 0 }
      this.used.set(peer, u)
    }
    if (u.count >= this.perWindow) return false
    u.count++
    return true
  }

  /** Forget the peers whose window has passed (the key holder calls it now and then). */
  sweep(now: number): void {
    for (const [peer, u] of this.used) if (now - u.since >= this.windowMs) this.used.delete(peer)
  }

  /** Peers with a window open (for tests). */
  get peers(): number {
    return this.used.size
  }
}
