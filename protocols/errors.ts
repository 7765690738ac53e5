/** Typed errors of the protocol layer; callers branch on `err.name`. */

/** A message from the network (or a file) that does not decode or validate. */
export class InvalidMessageError extends Error {
  override name = 'InvalidMessageError'
}

/** A signed change or record whose author lacks the authority for what it writes. */
export class UnauthorizedChangeError extends Error {
  override name = 'UnauthorizedChangeError'
}

/** A record dated further ahead of the receiver's clock than the allowed skew: refused on arrival. */
export class FutureDatedError extends Error {
  override name = 'FutureDatedError'
}
