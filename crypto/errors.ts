/**
 * Typed errors of the crypto layer. Each has a stable name; callers compare
 * `err.name === InvalidEncodingError.name`, never a string literal or the message.
 */

/** Bytes that are not the canonical CBOR (or base encoding) they claim to be. */
export class InvalidEncodingError extends Error {
  static override name = 'InvalidEncodingError'

  constructor(message = 'invalid encoding') {
    super(message)
    this.name = 'InvalidEncodingError'
  }
}

/** A string that is not a did:key this layer can read (wrong prefix, codec or key length). */
export class InvalidDidError extends Error {
  static override name = 'InvalidDidError'

  constructor(message = 'invalid did:key') {
    super(message)
    this.name = 'InvalidDidError'
  }
}

/** A signed record whose signature does not verify under its signer's key and domain tag. */
export class InvalidSignatureError extends Error {
  static override name = 'InvalidSignatureError'

  constructor(message = 'invalid signature') {
    super(message)
    this.name = 'InvalidSignatureError'
  }
}

/** Ciphertext that does not open: wrong key, wrong associated data, or tampered bytes. */
export class DecryptionError extends Error {
  static override name = 'DecryptionError'

  constructor(message = 'decryption failed') {
    super(message)
    this.name = 'DecryptionError'
  }
}

/** A key store that cannot be opened: wrong or missing passphrase, or a damaged file. */
export class KeystoreError extends Error {
  static override name = 'KeystoreError'

  constructor(message = 'keystore cannot be opened') {
    super(message)
    this.name = 'KeystoreError'
  }
}
