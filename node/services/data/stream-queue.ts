/**
 * Work on one stream, one piece at a time.
 *
 * Guarantees: work queued for a stream runs after everything queued for it before, so the
 * sequence numbers and epochs that publishing, closing windows and rotating assign never race.
 * A piece that fails does not stop the ones after it (its caller gets the failure).
 * Assumes: nothing; streams are named `<space>!<stream>` here and nowhere else stored.
 */

/** Serialises the key holder's work per stream: publishing, closing aggregate windows, rotating. */
export class StreamQueue {
  private readonly chains = new Map<string, Promise<unknown>>()

  /** Run `work` after everything already queued for this stream. */
  run<T>(space: string, stream: string, work: () => Promise<T>): Promise<T> {
    const key = `${space}!${stream}`
    const run = (this.chains.get(key) ?? Promise.resolve()).then(work)
    this.chains.set(
      key,
      run.catch(() => undefined),
    )
    return run
  }
}
