/**
 * Typed errors of the protocol layer. Each has a stable name; callers compare
 * `err.name === InvalidMessageError.name`, never a string literal or the message.
 */

/** A message from the network (or a file) that does not decode or validate. */
export class InvalidMessageError extends Error {
  static override name = 'InvalidMessageError'

  constructor(message = 'invalid message') {
    super(message)
    this.name = 'InvalidMessageError'
  }
}

/** A signed change or record whose author lacks the authority for what it writes. */
export class UnauthorizedChangeError extends Error {
  static override name = 'UnauthorizedChangeError'

  constructor(message = 'unauthorized change') {
    super(message)
    this.name = 'UnauthorizedChangeError'
  }
}

/** A record dated further ahead of the receiver's clock than the allowed skew: refused on arrival. */
export class FutureDatedError extends Error {
  static override name = 'FutureDatedError'

  constructor(message = 'dated in the future') {
    super(message)
    this.name = 'FutureDatedError'
  }
}

/** A write to a policy document that cannot be made: a replica without an actor id, nothing to write, or a change that did not apply. */
export class PolicyWriteError extends Error {
  static override name = 'PolicyWriteError'

  constructor(message = 'the policy write failed') {
    super(message)
    this.name = 'PolicyWriteError'
  }
}
