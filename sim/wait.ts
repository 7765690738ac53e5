/** Waiting for a condition in the simulator: poll it, with a deadline, never a blind sleep. */
import { DeadlineError } from '../node/errors.ts'

export { DeadlineError }

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

/**
 * For the `.catch` of a wait whose step is measured: a deadline is reported by the scenario's
 * checks, not thrown; any other error is.
 */
export function unlessDeadline(err: unknown): void {
  if ((err as Error).name !== DeadlineError.name) throw err
}

/** Resolve after `ms`: for pacing a scenario, never for waiting on a condition (waitUntil). */
export function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms))
}

/**
 * Time the named steps of a scenario, one after another: `step(name)` records the ms since the
 * previous step (or the timer's start) under `name` in `stepsMs`, then calls `onStep` with the
 * name and how many steps are done.
 */
export function stepTimer(onStep?: (name: string, done: number) => void): {
  stepsMs: Record<string, number>
  step: (name: string) => void
} {
  const stepsMs: Record<string, number> = {}
  let stepStart = performance.now()
  const step = (name: string) => {
    const now = performance.now()
    stepsMs[name] = Math.round(now - stepStart)
    stepStart = now
    onStep?.(name, Object.keys(stepsMs).length)
  }
  return { stepsMs, step }
}
