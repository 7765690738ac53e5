/**
 * Typed errors of the node; the CLI maps each to one line and an exit code (1 unless named
 * below), the local API to an HTTP status. Callers compare `err.name === UsageError.name`.
 */

/** Bad input from the user (usage): exit code 2. */
export class UsageError extends Error {
  static override name = 'UsageError'

  constructor(message = 'bad usage') {
    super(message)
    this.name = 'UsageError'
  }
}

/** Access refused by a key holder: exit code 3. */
export class AccessRefusedError extends Error {
  static override name = 'AccessRefusedError'
  /** the refusal's reason code, as the policy names it (`expired`, `revoked`, `not-authorized`…) */
  readonly code: string

  constructor(code: string, reason = 'access refused') {
    super(reason)
    this.name = 'AccessRefusedError'
    this.code = code
  }
}

/** Something the user named does not exist (space, stream, identity). */
export class NotFoundError extends Error {
  static override name = 'NotFoundError'

  constructor(message = 'not found') {
    super(message)
    this.name = 'NotFoundError'
  }
}

/** What must go to peers cannot: no peer of the space is connected. */
export class UnreachableError extends Error {
  static override name = 'UnreachableError'

  constructor(message = 'no peer reachable') {
    super(message)
    this.name = 'UnreachableError'
  }
}

/** The node is not running, or is already running on this data directory. */
export class NodeStateError extends Error {
  static override name = 'NodeStateError'

  constructor(message = 'the node is not in the state this needs') {
    super(message)
    this.name = 'NodeStateError'
  }
}

/** A wait for a condition passed its deadline (a node that does not start, a broker that does not answer). */
export class DeadlineError extends Error {
  static override name = 'DeadlineError'

  constructor(message = 'deadline passed') {
    super(message)
    this.name = 'DeadlineError'
  }
}

/** A process we started (a node, an `edgeward` command) exited other than expected. */
export class ProcessExitError extends Error {
  static override name = 'ProcessExitError'

  constructor(message = 'the process exited other than expected') {
    super(message)
    this.name = 'ProcessExitError'
  }
}

/** The local API answered with a failure that has no more specific type (an internal error). */
export class ApiError extends Error {
  static override name = 'ApiError'

  constructor(message = 'the local API failed') {
    super(message)
    this.name = 'ApiError'
  }
}

/** Content from the local API stopped before its end: nothing partial is kept. */
export class TransferInterruptedError extends Error {
  static override name = 'TransferInterruptedError'

  constructor(message = 'the transfer was cut short') {
    super(message)
    this.name = 'TransferInterruptedError'
  }
}

/** MQTT that cannot go on: a broker that refuses, a port in use, credentials that do not parse. */
export class MqttError extends Error {
  static override name = 'MqttError'

  constructor(message = 'MQTT failed') {
    super(message)
    this.name = 'MqttError'
  }
}
