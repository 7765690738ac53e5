/**
 * A space's custodians on its card in the Spaces screen: which devices keep shares of its keys
 * and release them while the owner is offline, any k of n together, each by the person behind
 * it and whether it is connected now; what this device keeps (under Details); and, for the
 * owner, naming them: devices connected now to tick, peer ids to paste, a threshold, and a
 * confirmation of what that means before the node signs the set. The node checks every
 * custodian and decides; the screen says what went wrong in words.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { PeerView, SpaceView } from '../../ui/contract.ts'
import type { CustodyAnswer, CustodyRequest } from '../../ui/contract-spaces.ts'
import { ApiError, useApi } from '../api.ts'
import { Choice } from '../parts/choice.tsx'
import { FormButtons } from '../parts/form-buttons.tsx'
import { FormError } from '../parts/form-error.tsx'
import { PasteField } from '../parts/paste-field.tsx'
import { isPeerId, Peer, peerName } from '../parts/peer.tsx'
import type { People } from '../parts/person.tsx'
import { useFetched } from '../parts/use-fetched.ts'
import { useSubmit } from '../parts/use-submit.ts'

type State = People & { peers: PeerView[]; inboxVersion: number }

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** "2 of 3 custodians release keys while the owner is offline." */
function custodyLine(c: NonNullable<SpaceView['custody']>): string {
  return `${c.threshold} of ${c.custodians.length} custodians release keys while the owner is offline.`
}

/** The custodians of a space, on its card; the owner's button to name them (or change them). */
export function CustodySection({ space, state, name }: { space: SpaceView; state: State; name: string }) {
  const [naming, setNaming] = useState(false)
  const opener = useRef<HTMLButtonElement>(null)
  const wasNaming = useRef(false)
  // the form closed (named, or cancelled): the focus goes back to the button that opened it
  useEffect(() => {
    if (wasNaming.current && !naming) opener.current?.focus()
    wasNaming.current = naming
  }, [naming])
  const custody = space.custody
  const mayName = space.role === 'owner' && space.synchronised
  if (custody === undefined && !mayName) return null
  const id = `custody-${space.id.slice(0, 12)}`
  return (
    <section class="custody" aria-labelledby={id}>
      <h4 id={id}>Custodians</h4>
      {custody === undefined ? (
        <p class="muted">
          None yet: the space's keys are released only while its key holder is online. Custodians keep shares of the
          keys and release them, as the owner would, while the owner is offline.
        </p>
      ) : (
        <>
          <p>{custodyLine(custody)}</p>
          <ul class="custody-list" aria-label={`Custodians of ${name}`}>
            {custody.custodians.map(c => (
              <li key={c.peer}>
                <Peer peer={c.peer} did={c.did} state={state} />
                {c.peer === state.identity.peerId ? (
                  <span class="badge badge-neutral">You keep a share</span>
                ) : c.connected ? (
                  <span class="badge badge-ok">Connected</span>
                ) : (
                  <span class="badge badge-attention">Not connected</span>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      {mayName && !naming && (
        <button
          ref={opener}
          type="button"
          class="button"
          onClick={() => setNaming(true)}
          aria-label={`${custody === undefined ? 'Name' : 'Change'} the custodians of ${name}`}
        >
          {custody === undefined ? 'Name custodians…' : 'Change custodians…'}
        </button>
      )}
      {naming && <CustodyForm space={space} state={state} name={name} onClose={() => setNaming(false)} />}
    </section>
  )
}

/** Under a space's Details: what this device keeps for custody (over all its spaces), fetched when shown. */
export function CustodyHere({ space, state }: { space: SpaceView; state: State }) {
  const mine = space.custody?.custodians.some(c => c.peer === state.identity.peerId) === true
  const dealer = space.keyHolder && space.custody !== undefined
  const { value, error } = useFetched<CustodyAnswer>(
    mine || dealer ? `/v1/spaces/${space.id}/custody` : undefined,
    state.inboxVersion,
  )
  if (!mine && !dealer) return null
  return (
    <>
      <dt>Custody on this device</dt>
      <dd>
        {error !== undefined
          ? `Not known: ${error}`
          : value === undefined
            ? 'Asking the node…'
            : [
                mine ? `keeps ${plural(value.held ?? 0, 'key share')} as a custodian (all spaces)` : '',
                dealer
                  ? (value.unacknowledged ?? 0) === 0
                    ? 'every key dealt to the custodians was acknowledged'
                    : `${plural(value.unacknowledged ?? 0, 'deal')} waiting for a custodian to acknowledge it`
                  : '',
              ]
                .filter(s => s !== '')
                .join('; ')}
      </dd>
    </>
  )
}

/** What naming custodians went wrong with, in words a person can act on. */
function custodyProblem(err: Error, state: State): string {
  if (err.name !== ApiError.name) return `Something went wrong: ${err.message}`
  const e = err as ApiError
  const peer = /(?:custodian|peer) (\S+) /.exec(e.message)?.[1]
  const who = peer === undefined ? 'A custodian' : peerName(peer, undefined, state)
  if (e.status === 503)
    return `${who} could not be reached. Each custodian's device has to be on and online when you name it: try again when it is, or name another.`
  if (e.status === 400 && /^bad --custodian/.test(e.message))
    return 'One of the peer ids is not one: copy it from the custodian\'s "Your identity" screen, under This device.'
  if (e.status === 403) return 'Only the owner of the space names its custodians.'
  return e.message
}

/** The threshold's options: any 2..n of them; a majority by default. */
const majority = (n: number) => Math.max(2, Math.floor(n / 2) + 1)

function CustodyForm({
  space,
  state,
  name,
  onClose,
}: {
  space: SpaceView
  state: State
  name: string
  onClose: () => void
}) {
  const current = space.custody?.custodians ?? []
  // the devices to tick: connected now, and the ones already named; never this device, which holds the keys
  const offered = useMemo(() => {
    const byPeer = new Map<string, string | undefined>()
    for (const c of current) byPeer.set(c.peer, c.did)
    for (const p of state.peers) if (!byPeer.has(p.peer) || p.did !== undefined) byPeer.set(p.peer, p.did)
    byPeer.delete(state.identity.peerId)
    return [...byPeer].map(([peer, did]) => ({
      peer,
      did,
      connected: state.peers.some(p => p.peer === peer),
    }))
  }, [state.peers, space.custody])
  const [ticked, setTicked] = useState<string[]>(current.map(c => c.peer))
  const [pasted, setPasted] = useState('')
  const [threshold, setThreshold] = useState<number | undefined>(space.custody?.threshold)
  const [reviewing, setReviewing] = useState(false)
  const form = useRef<HTMLFormElement>(null)
  const reviewed = useRef(false)
  // opened: the focus goes to its first field; back from the review: to its Review button
  useEffect(() => {
    if (reviewing) return
    form.current?.querySelector<HTMLElement>(reviewed.current ? 'button[type=submit]' : 'input, textarea')?.focus()
    reviewed.current = true
  }, [reviewing])

  const typed = pasted.split(/[\s,]+/).filter(t => t !== '')
  const chosen = [...new Set([...ticked, ...typed])]
  const n = chosen.length
  const k = threshold !== undefined && threshold >= 2 && threshold <= n ? threshold : majority(n)
  const didOf = (peer: string) => offered.find(o => o.peer === peer)?.did

  const check = (): string | undefined => {
    const bad = typed.find(t => !isPeerId(t))
    if (bad !== undefined)
      return `“${bad.length > 24 ? `${bad.slice(0, 24)}…` : bad}” is not a peer id. A custodian finds its own on its "Your identity" screen, under This device.`
    if (chosen.includes(state.identity.peerId))
      return 'That is this device: it holds the keys already. Name other devices.'
    if (n < 2) return 'Choose at least two custodians: with one, that device alone could release a key.'
    if (n > 16) return 'At most 16 custodians.'
    return undefined
  }

  const [problem, setProblem] = useState<string>()

  if (reviewing)
    return (
      <CustodyReview
        space={space}
        state={state}
        name={name}
        custodians={chosen.map(peer => ({ peer, did: didOf(peer) }))}
        threshold={k}
        onBack={() => setReviewing(false)}
        onDone={onClose}
      />
    )

  return (
    <form
      ref={form}
      class="custody-form"
      aria-label={`Custodians of ${name}`}
      onSubmit={e => {
        e.preventDefault()
        const p = check()
        setProblem(p)
        if (p === undefined) setReviewing(true)
      }}
    >
      <fieldset class="custody-peers">
        <legend>Devices connected now</legend>
        {offered.length === 0 ? (
          <p class="muted">No other device is connected now. Paste the peer ids of the custodians below.</p>
        ) : (
          offered.map(o => (
            <label key={o.peer} class="checkbox">
              <input
                type="checkbox"
                checked={ticked.includes(o.peer)}
                onChange={e =>
                  setTicked(e.currentTarget.checked ? [...ticked, o.peer] : ticked.filter(x => x !== o.peer))
                }
              />
              <Peer peer={o.peer} did={o.did} state={state} />
              {!o.connected && <span class="muted small"> · not connected</span>}
            </label>
          ))
        )}
      </fieldset>
      <PasteField
        label="Other custodians: peer ids, one per line"
        class="custody-paste"
        placeholder="12D3KooW…"
        value={pasted}
        onInput={setPasted}
      />
      <p class="muted small">
        A custodian's peer id is on its "Your identity" screen, under This device. Each must be on and online when you
        name it.
      </p>
      <label class="field-label">
        How many together release a key
        <Choice
          class="field custody-threshold"
          aria-label="How many together release a key"
          options={Array.from({ length: Math.max(n - 1, 1) }, (_, i) => ({
            k: i + 2,
            label:
              n < 2
                ? 'any 2 (choose at least two)'
                : `any ${i + 2} of ${n}${i + 2 === majority(n) ? ' (a majority)' : ''}`,
          }))}
          by="k"
          value={n < 2 ? 2 : k}
          onChange={setThreshold}
        />
      </label>
      <FormError error={problem} />
      <FormButtons action="Review…" leave="Cancel" onLeave={onClose} />
    </form>
  )
}

/** The last step: what naming these custodians means, said before the node asks each of them and signs the set. */
function CustodyReview(props: {
  space: SpaceView
  state: State
  name: string
  custodians: { peer: string; did?: string }[]
  threshold: number
  onBack: () => void
  onDone: () => void
}) {
  const api = useApi()
  const { space, state, custodians, threshold: k } = props
  const n = custodians.length
  const titleId = `custody-review-${space.id.slice(0, 12)}`
  const title = useRef<HTMLHeadingElement>(null)
  // the question first, for keyboard and screen reader alike
  useEffect(() => title.current?.focus(), [])
  const { busy, error, submit } = useSubmit(
    async () => {
      const body: CustodyRequest = { custodians: custodians.map(c => c.peer), threshold: k }
      await api.send<CustodyAnswer>('POST', `/v1/spaces/${space.id}/custody`, body)
      props.onDone()
    },
    err => custodyProblem(err, state),
  )
  return (
    <form class="custody-form" onSubmit={submit} aria-labelledby={titleId}>
      <h5 id={titleId} ref={title} tabIndex={-1}>
        Name these custodians of {props.name}?
      </h5>
      <ul class="custody-list">
        {custodians.map(c => (
          <li key={c.peer}>
            <Peer peer={c.peer} did={c.did} state={state} />
          </li>
        ))}
      </ul>
      <p class="custody-meaning" role="status">
        Any {k} of these {n} together can release keys; fewer learn nothing. This applies to keys made from now on: what
        was shared before stays with the key holder. Each device is asked now, and has to answer.
      </p>
      <FormError error={error} />
      <FormButtons
        action={`Name ${n} custodians`}
        doing="Asking each custodian…"
        busy={busy}
        leave="Back"
        onLeave={props.onBack}
        leaveWaits
      />
    </form>
  )
}
