/**
 * Your identity: the id others grant access to, this device (its peer id, which an owner names
 * to make it a custodian, and the spaces it is one of), and how its keys are kept.
 */
import { useState } from 'preact/hooks'
import type { IdentityView, SpaceView } from '../../ui/contract.ts'
import { useApi } from '../api.ts'
import { Copyable } from '../parts/copyable.tsx'
import { spaceName } from '../parts/space-picker.tsx'

export function IdentityScreen({
  identity,
  name,
  spaces,
}: {
  identity: IdentityView
  name?: string
  spaces: SpaceView[]
}) {
  const custodianOf = spaces.filter(s => s.custody?.custodians.some(c => c.peer === identity.peerId) === true)
  return (
    <>
      <p class="lead">
        Give your id to the people who share with you: it is how they grant you access. It is yours alone and the same
        on every space.
      </p>

      <YourName did={identity.did} name={name} />

      <section class="card" aria-labelledby="your-id">
        <h2 id="your-id">Your id</h2>
        <Copyable id="did" value={identity.did} label="your id" />
      </section>

      <section class="card" aria-labelledby="device">
        <h2 id="device">This device</h2>
        <p class="muted">The peer id names this device on the network. Each device has its own keys.</p>
        <Copyable id="peer-id" value={identity.peerId} label="this device's peer id" />
        <p class="muted">
          To make this device a custodian of a space, its owner names this peer id: the device then keeps a share of the
          space's keys and releases it, as the owner would, while the owner is offline.
        </p>
        {custodianOf.length > 0 && (
          <p>
            <span class="badge badge-neutral">Custodian</span> of {custodianOf.map(spaceName).join(', ')}
          </p>
        )}
      </section>

      <section class="card" aria-labelledby="keys">
        <h2 id="keys">Keys on this device</h2>
        {identity.keysEncrypted ? (
          <>
            <p>
              <span class="badge badge-ok">Encrypted with a passphrase</span>
            </p>
            <p>
              Your private keys are stored encrypted. Without the passphrase, a copy of this device's data directory
              cannot act as you. The node asks for it (EDGEWARD_PASSPHRASE) each time it starts.
            </p>
          </>
        ) : (
          <>
            <p>
              <span class="badge badge-attention">Development mode</span>
            </p>
            <p>
              Your private keys are stored unencrypted in this device's data directory. Anyone who can read that
              directory, or a copy of it, can act as you: read what was shared with you and sign in your name.
            </p>
            <p class="muted">
              For real use, create the identity with a passphrase: set EDGEWARD_PASSPHRASE before{' '}
              <code>edgeward init</code>. Your id changes when you do.
            </p>
          </>
        )}
      </section>

      <details class="card disclosure">
        <summary>Network addresses of this device</summary>
        <ul class="plain mono">
          {identity.addresses.map(a => (
            <li key={a}>{a}</li>
          ))}
        </ul>
      </details>
    </>
  )
}

/** The name the person goes by: kept on this node, carried by the invites they make. */
function YourName({ did, name }: { did: string; name?: string }) {
  const api = useApi()
  const [value, setValue] = useState(name ?? '')
  const [said, setSaid] = useState<string>()
  const save = async (e: Event) => {
    e.preventDefault()
    try {
      await api.send('PUT', `/v1/contacts/${did}`, { name: value })
      setSaid('Saved.')
    } catch (err) {
      setSaid((err as Error).message)
    }
  }
  return (
    <section class="card" aria-labelledby="your-name">
      <h2 id="your-name">Your name</h2>
      <p class="muted">
        How you appear in the invitations you send. Others see the name they give you; yours is only a suggestion.
      </p>
      <form class="inline-form" onSubmit={save}>
        <input
          class="field"
          aria-label="Your name"
          maxLength={64}
          value={value}
          placeholder="e.g. Ana Ruiz, Plant 7 operations"
          onInput={e => {
            setValue(e.currentTarget.value)
            setSaid(undefined)
          }}
        />
        <button type="submit" class="button" disabled={value.trim() === '' || value.trim() === name}>
          Save
        </button>
        {said !== undefined && (
          <span class="muted" role="status">
            {said}
          </span>
        )}
      </form>
    </section>
  )
}
