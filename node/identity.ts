/**
 * The node's identity in its data directory: `identity.cbor`, a keystore (crypto/keystore)
 * holding the principal's Ed25519 key, the libp2p peer key, the device's X25519 key and
 * the storage key that wraps data keys at rest, plus the device certificate that binds
 * this peer and its X25519 key to the principal.
 */
import { existsSync } from 'node:fs'
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeCanonical, encodeCanonical } from '../crypto/encoding.ts'
import { randomBytes } from '../crypto/hash.ts'
import {
  didFromPublicKey,
  generateSealingKeyPair,
  generateSigningKeyPair,
  type SealingKeyPair,
  type SigningKeyPair,
  sealingKeyPairFromSecret,
  signingKeyPairFromSecret,
} from '../crypto/identity.ts'
import { isPlaintextKeystore, lockSecrets, unlockSecrets } from '../crypto/keystore.ts'
import type { OpenedRecord } from '../crypto/signed.ts'
import { createDeviceCert, type DeviceCert, openDeviceCert } from '../protocols/policy/records.ts'
import { createDataDir, keepDataDirPrivate, type Warn } from './data-dir.ts'
import { NodeStateError, NotFoundError } from './errors.ts'

const IDENTITY_FILE = 'identity.cbor'
const DEVICE_CERT_YEARS = 10

export interface Identity {
  principal: SigningKeyPair & { did: string }
  peerKey: PrivateKey
  peerId: string
  sealing: SealingKeyPair
  storageKey: Uint8Array
  device: OpenedRecord<DeviceCert>
  /** true when the keys are stored without a passphrase */
  developmentMode: boolean
}

/** Where a data directory keeps the node's keystore. */
export function identityPath(dataDir: string): string {
  return join(dataDir, IDENTITY_FILE)
}

/** Whether a data directory has an identity (init has run). */
export function hasIdentity(dataDir: string): boolean {
  return existsSync(identityPath(dataDir))
}

/**
 * Create the data directory (private to its user: node/data-dir.ts) and a new identity in it.
 * `warn`: where to say what in an existing directory was made private (default stderr).
 */
export async function createIdentity(
  dataDir: string,
  opts: { passphrase?: string; force?: boolean; now: number; warn?: Warn },
): Promise<Identity> {
  if (hasIdentity(dataDir) && opts.force !== true) {
    throw new NodeStateError(`an identity already exists in ${dataDir} (use --force to replace it)`)
  }
  await createDataDir(dataDir, opts.warn)
  const principalKp = generateSigningKeyPair()
  const principal = { ...principalKp, did: didFromPublicKey(principalKp.publicKey) }
  const peerKey = await generateKeyPair('Ed25519')
  const sealing = generateSealingKeyPair()
  const storageKey = randomBytes(32)
  const peerId = peerIdFromPrivateKey(peerKey).toString()
  const year = 365 * 24 * 3600 * 1000
  const device = createDeviceCert(principal, peerId, sealing.publicKey, opts.now, opts.now + DEVICE_CERT_YEARS * year)
  const secrets = encodeCanonical({
    principal: principalKp.secretKey,
    peer: privateKeyToProtobuf(peerKey),
    sealing: sealing.secretKey,
    storage: storageKey,
  })
  const file = encodeCanonical({ keystore: lockSecrets(secrets, opts.passphrase), device: device.bytes })
  const path = identityPath(dataDir)
  await writeFile(`${path}.tmp`, file, { mode: 0o600 })
  await rename(`${path}.tmp`, path)
  await chmod(path, 0o600)
  return {
    principal,
    peerKey,
    peerId,
    sealing,
    storageKey,
    device,
    developmentMode: opts.passphrase === undefined || opts.passphrase === '',
  }
}

/**
 * Load the identity, once its data directory is private to its user (what others could reach
 * is made private and said so through `warn`, default stderr; what another user owns is refused).
 */
export async function loadIdentity(
  dataDir: string,
  passphrase?: string,
  opts: { warn?: Warn } = {},
): Promise<Identity> {
  if (!hasIdentity(dataDir)) throw new NotFoundError(`no identity in ${dataDir}: run \`edgeward init\` first`)
  await keepDataDirPrivate(dataDir, opts.warn)
  const file = decodeCanonical(await readFile(identityPath(dataDir)), 1024 * 1024) as {
    keystore: Uint8Array
    device: Uint8Array
  }
  const secrets = decodeCanonical(unlockSecrets(file.keystore, passphrase), 64 * 1024) as {
    principal: Uint8Array
    peer: Uint8Array
    sealing: Uint8Array
    storage: Uint8Array
  }
  const principalKp = signingKeyPairFromSecret(secrets.principal)
  const peerKey = privateKeyFromProtobuf(secrets.peer)
  return {
    principal: { ...principalKp, did: didFromPublicKey(principalKp.publicKey) },
    peerKey,
    peerId: peerIdFromPrivateKey(peerKey as never).toString(),
    sealing: sealingKeyPairFromSecret(secrets.sealing),
    storageKey: secrets.storage,
    device: openDeviceCert(file.device),
    developmentMode: isPlaintextKeystore(file.keystore),
  }
}
