/**
 * Sealing bytes to a recipient's X25519 key with HPKE (RFC 9180) in base mode:
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (via @hpke/core).
 *
 * `info` binds the sealed value to its context (e.g. the key request it answers), so a
 * sealed box lifted from one response cannot be opened as the answer to another.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { DecryptionError } from './errors.ts'

export interface SealedBox {
  /** the KEM encapsulated key (32 bytes) */
  enc: Uint8Array
  ct: Uint8Array
}

function suite(): CipherSuite {
  return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() })
}

let cached: CipherSuite | undefined
function getSuite(): CipherSuite {
  cached ??= suite()
  return cached
}

export async function sealTo(
  recipientPublicKey: Uint8Array,
  plaintext: Uint8Array,
  info: Uint8Array,
): Promise<SealedBox> {
  const s = getSuite()
  const pk = await s.kem.deserializePublicKey(recipientPublicKey)
  const { enc, ct } = await s.seal({ recipientPublicKey: pk, info }, plaintext)
  return { enc: new Uint8Array(enc), ct: new Uint8Array(ct) }
}

export async function openSealed(
  recipientSecretKey: Uint8Array,
  box: SealedBox,
  info: Uint8Array,
): Promise<Uint8Array> {
  const s = getSuite()
  try {
    const sk = await s.kem.importKey('raw', recipientSecretKey, false)
    const pt = await s.open({ recipientKey: sk, enc: box.enc, info }, box.ct)
    return new Uint8Array(pt)
  } catch (err) {
    throw new DecryptionError(`cannot open sealed box: ${(err as Error).message}`)
  }
}
