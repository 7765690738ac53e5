/**
 * Waiting in tests: poll for the event with a deadline, never a blind sleep. A wait that
 * outlives its deadline fails the test with a DeadlineError naming what it waited for.
 */
import { waitFor } from '../../node/cli/local-network.ts'

/** How long a test waits for a condition by default. */
export const DEADLINE_MS = 15_000

/** Poll `check` until it returns a value (not undefined), or fail at the deadline: the CLI's own wait. */
export { waitFor } from '../../node/cli/local-network.ts'

/** Poll a synchronous condition until it holds, or fail at the deadline. */
export function until(what: string, check: () => boolean, deadlineMs = DEADLINE_MS, everyMs = 20): Promise<true> {
  return waitFor(what, async () => (check() ? true : undefined), deadlineMs, everyMs)
}
