/**
 * Waiting in tests: poll for the event with a deadline, never a blind sleep. A wait that
 * outlives its deadline fails the test with a DeadlineError naming what it waited for.
 */
import { DeadlineError } from '../../node/errors.ts'

/** How long a test waits for a condition by default. */
export const DEADLINE_MS = 15_000

/** Poll `check` every `everyMs` until it returns a value (not undefined), or fail at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  deadlineMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const end = Date.now() + deadlineMs
  let value = await check()
  while (value === undefined) {
    if (Date.now() > end) throw new DeadlineError(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise(r => setTimeout(r, everyMs))
    value = await check()
  }
  return value
}

/** Poll a synchronous condition until it holds, or fail at the deadline. */
export function until(what: string, check: () => boolean, deadlineMs = DEADLINE_MS, everyMs = 20): Promise<true> {
  return waitFor(what, async () => (check() ? true : undefined), deadlineMs, everyMs)
}
