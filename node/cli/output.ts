/**
 * Where a command writes: stdout for what it answers, stderr for diagnostics, and whether
 * the answer is one JSON document (--json) or lines for a person.
 */

/** The sinks a command prints to, and whether it answers in JSON. */
export interface Output {
  json: boolean
  out: (line: string) => void
  err: (line: string) => void
}

/** Writes a command's answer: `value` as JSON under --json, `human` otherwise. */
export function print(o: Output, value: unknown, human: string): void {
  o.out(o.json ? JSON.stringify(value) : human)
}
