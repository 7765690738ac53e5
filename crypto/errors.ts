/** Typed errors of the crypto layer; callers branch on `err.name`. */

export class InvalidEncodingError extends Error {
  override name = 'InvalidEncodingError'
}

export class InvalidDidError extends Error {
  override name = 'InvalidDidError'
}

export class InvalidSignatureError extends Error {
  override name = 'InvalidSignatureError'
}

export class DecryptionError extends Error {
  override name = 'DecryptionError'
}

export class KeystoreError extends Error {
  override name = 'KeystoreError'
}
