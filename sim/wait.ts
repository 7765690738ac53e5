/** Waiting for a condition in the simulator: poll it, with a deadline, never a blind sleep. */

export class DeadlineError extends Error {
  override name = 'DeadlineError'
}

/** Poll `check` every `everyMs` until it holds; throw a DeadlineError at the deadline. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  deadlineMs: number,
  everyMs = 10,
): Promise<void> {
  const end = performance.now() + deadlineMs
  while (!(await check())) {
    if (performance.now() > end) throw new DeadlineError(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise(r => setTimeout(r, everyMs))
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms))
}
