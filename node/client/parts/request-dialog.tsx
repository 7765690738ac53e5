/** Asking a space's owner for access to an item, from the Inbox (what ended) or Streams (what was refused). */
import { useEffect, useRef, useState } from 'preact/hooks'
import { useApi } from '../api.ts'
import { Choice } from './choice.tsx'
import { FormError } from './form-error.tsx'
import { ACCESS_DURATIONS } from './time.ts'
import { useSubmit } from './use-submit.ts'

/** Ask the owner for access to one item: a reason and a duration; the request shows in the inbox as requested. */
export function RequestDialog(props: {
  space: string
  spaceName: string
  /** a stream name or an object id */
  resource: string
  /** the item as the person knows it */
  title: string
  onDone: () => void
}) {
  const { space, spaceName, resource, title, onDone } = props
  const api = useApi()
  const dialog = useRef<HTMLDialogElement>(null)
  const [reason, setReason] = useState('')
  const [duration, setDuration] = useState(ACCESS_DURATIONS[2].ms)
  useEffect(() => dialog.current?.showModal(), [])
  const { busy, error, submit } = useSubmit(async () => {
    await api.send('POST', `/v1/spaces/${space}/requests`, {
      streams: [resource],
      durationMs: duration,
      reason: reason.trim(),
    })
    dialog.current?.close()
  })
  return (
    <dialog ref={dialog} class="dialog" aria-labelledby="ask-title" onClose={onDone}>
      <form onSubmit={submit}>
        <h2 id="ask-title">Request access to {title}</h2>
        <p class="muted">The owner of {spaceName} decides; you will see the answer here.</p>
        <label class="field-label">
          Why do you need it?
          <textarea
            class="field"
            required
            maxLength={512}
            value={reason}
            onInput={e => setReason(e.currentTarget.value)}
          />
        </label>
        <label class="field-label">
          For how long
          <Choice class="field" options={ACCESS_DURATIONS} by="ms" value={duration} onChange={setDuration} />
        </label>
        <FormError error={error} class="notice" />
        <div class="dialog-actions">
          <button type="button" class="button button-quiet" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" class="button button-primary" disabled={busy || reason.trim() === ''}>
            Send request
          </button>
        </div>
      </form>
    </dialog>
  )
}
