/** Typed errors of the node; the CLI maps each to one line and an exit code. */

/** Bad input from the user (usage): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** Access refused by a key holder: exit code 3. */
export class AccessRefusedError extends Error {
  override name = 'AccessRefusedError'
  readonly code: string
  constructor(code: string, reason: string) {
    super(reason)
    this.code = code
  }
}

/** Something the user named does not exist (space, stream, identity). */
export class NotFoundError extends Error {
  override name = 'NotFoundError'
}

/** What must go to peers cannot: no peer of the space is connected. */
export class UnreachableError extends Error {
  override name = 'UnreachableError'
}

/** The node is not running, or is already running on this data directory. */
export class NodeStateError extends Error {
  override name = 'NodeStateError'
}
