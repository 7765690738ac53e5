/**
 * What a hostile peer sends that no honest peer can ever apply: policy changes whose history
 * never comes. The tests and the benchmark of the waiting set use it.
 */
import * as Automerge from '@automerge/automerge'
import type { SigningKeyPair } from '../../crypto/identity.ts'
import { signRecord } from '../../crypto/signed.ts'
import { actorFor, type ChangeEnvelope, ENVELOPE_TAG, openEnvelope, shardOf } from '../../protocols/policy/document.ts'
import { createGrant } from '../../protocols/policy/records.ts'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

/**
 * `n` changes by `signer`, each adding a grant, each depending on the one before, the first on a
 * change of the signer's that it never sends: none of them can ever apply. Built on the genesis
 * change as a peer that runs other code than ours would.
 */
export function orphans(
  space: string,
  genesisEnvelope: Uint8Array,
  signer: SigningKeyPair & { did: string },
  n = 1,
): Uint8Array[] {
  const genesisChange = openEnvelope(genesisEnvelope).body.change
  let [doc] = Automerge.applyChanges(Automerge.init<any>({ actor: actorFor(signer.did, 'x') }), [genesisChange])
  const out: Uint8Array[] = []
  for (let i = 0; i <= n; i++) {
    const g = createGrant(
      signer,
      { space, sub: signer.did, streams: ['temp'], forms: ['raw'], nbf: T0, exp: T0 + HOUR },
      Date.now(),
    )
    doc = Automerge.change(doc, { time: 0 }, (d: any) => {
      d.grants[shardOf(g.id)][g.id] = g.bytes
    })
    // the first change stays with the signer: it is the history that never comes
    if (i === 0) continue
    const change = Automerge.getLastLocalChange(doc)!
    out.push(signRecord<ChangeEnvelope>(ENVELOPE_TAG, { t: 'change', iss: signer.did, space, change }, signer).bytes)
  }
  return out
}
