/**
 * Replay protection for key requests, kept per requesting device so that no device can crowd
 * out another.
 *
 * Guarantees: a request is fresh if its time is within the window of `now`, not older than
 * `notBefore` (the start of the key holder's process: what an earlier process saw is not
 * remembered, so a request made before the start is refused as a possible replay), and its
 * (issuer, nonce) has not been seen from the same device inside the window. A device holds at
 * most `maxPerDevice` requests in the window: past that its own requests are refused, nobody
 * else's. Past `maxEntries` in all, a device is refused only while it holds at least its fair
 * share (the average per device), so a flood from one device, or a few, never locks out a
 * device that asks at an ordinary rate.
 * Assumes: the caller has checked that the request comes from the device it names, so a
 * request's replays all come from one device. Pure apart from its own memory; `now` is passed in.
 */

export interface DeviceReplayGuardOptions {
  /** how far a request's time may be from now, either way */
  windowMs: number
  /** requests made before this time are refused (the key holder's start) */
  notBefore: number
  /** requests remembered per device inside the window (default 4096) */
  maxPerDevice?: number
  /** requests remembered in all, past which only devices under their fair share are admitted (default 1 000 000) */
  maxEntries?: number
}

/** Remembers the nonces of recent key requests per device, so that a replayed request is refused. */
export class DeviceReplayGuard {
  /** per device: `issuer/nonce` -> until when it is remembered, in arrival order */
  private readonly seen = new Map<string, Map<string, number>>()
  private total = 0
  private readonly windowMs: number
  private readonly notBefore: number
  private readonly maxPerDevice: number
  private readonly maxEntries: number

  constructor(opts: DeviceReplayGuardOptions) {
    this.windowMs = opts.windowMs
    this.notBefore = opts.notBefore
    this.maxPerDevice = opts.maxPerDevice ?? 4096
    this.maxEntries = opts.maxEntries ?? 1_000_000
  }

  /** Returns a refusal reason, or undefined if fresh (and records it as seen). */
  check(device: string, issuer: string, nonce: Uint8Array, ts: number, now: number): string | undefined {
    if (Math.abs(now - ts) > this.windowMs) return 'request time is outside the allowed clock window'
    if (ts < this.notBefore) return 'request made before this key holder started: it may have been answered already'
    let mine = this.seen.get(device)
    if (mine !== undefined) this.evict(device, mine, now)
    const key = `${issuer}/${Buffer.from(nonce).toString('hex')}`
    if (mine?.has(key) === true) return 'replayed request'
    const held = mine?.size ?? 0
    if (held >= this.maxPerDevice) return 'too many requests from this device in the replay window'
    if (this.total >= this.maxEntries) {
      this.evictAll(now)
      if (this.total >= this.maxEntries && held * this.seen.size >= this.total) {
        return 'too many requests in the replay window'
      }
    }
    if (mine === undefined) {
      mine = new Map()
      this.seen.set(device, mine)
    }
    mine.set(key, ts + this.windowMs)
    this.total++
    return undefined
  }

  /** Requests remembered in all (for tests and metrics). */
  get size(): number {
    return this.total
  }

  /** Forget what has left the window, for every device (the key holder calls it now and then). */
  evictAll(now: number): void {
    for (const [device, mine] of this.seen) this.evict(device, mine, now)
  }

  private evict(device: string, mine: Map<string, number>, now: number): void {
    for (const [k, until] of mine) {
      // kept in arrival order, close to expiry order; one that lingers only makes the guard stricter
      if (until >= now) break
      mine.delete(k)
      this.total--
    }
    if (mine.size === 0) this.seen.delete(device)
  }
}
