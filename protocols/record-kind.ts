/**
 * A kind of signed record (crypto/signed.ts): its domain tag, its size limit and the rules of
 * its body, in one value that signs and opens it.
 *
 * Guarantees: `sign` checks the body by the kind's rules before it signs, so a record this
 * code signs is one every peer opens; `open` refuses more than the size limit before parsing,
 * verifies the signature, then checks the body by the same rules, so what it returns can be
 * trusted as far as the signature goes. Authority (who may sign what) is not checked here.
 */
import type { SigningKeyPair } from '../crypto/identity.ts'
import { type OpenedRecord, openSignedRecord, signRecord } from '../crypto/signed.ts'
import { InvalidMessageError } from './errors.ts'
import { did, type Fields, ID_PATTERN, str } from './validate.ts'

/** A principal that signs records: its key pair and its did:key. */
export type Signer = SigningKeyPair & { did: string }

/** Signs and opens the records of one kind; see {@link recordKind}. */
export interface RecordKind<T> {
  /** Check `body` by the kind's rules, then sign it; InvalidMessageError for a body no peer would open. */
  sign(body: T, signer: SigningKeyPair): OpenedRecord<T>
  /** Decode (at most the kind's size), verify and check a signed record; throws a typed error. */
  open(data: Uint8Array): OpenedRecord<T>
}

/**
 * The signer and opener of the records tagged `tag`, whose bodies `check` accepts.
 * @example
 * const GRANT = recordKind<Grant>('edgeward/grant/v1', 8 * 1024, checkGrant)
 * const opened = GRANT.open(GRANT.sign(body, owner).bytes)
 */
export function recordKind<T extends { iss: string }>(
  tag: string,
  maxBytes: number,
  check: (m: Fields) => void,
): RecordKind<T> {
  return {
    sign: (body, signer) => {
      check(body as unknown as Fields)
      return signRecord(tag, body, signer)
    },
    open: data => {
      const rec = openSignedRecord<T>(tag, data, maxBytes)
      check(rec.body as unknown as Fields)
      return rec
    },
  }
}

/**
 * The head of a signed record of a space: its kind is `t` (`not ${what}` otherwise), its
 * issuer a did:key, its space a space id.
 */
export function checkSpaceRecordHead(m: Fields, t: string, what: string): void {
  if (m.t !== t) throw new InvalidMessageError(`not ${what}`)
  did(m, 'iss')
  str(m, 'space', 64, ID_PATTERN)
}
