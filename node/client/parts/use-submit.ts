/**
 * A form's submit as the screens write it: one run at a time, `busy` while it runs, and the
 * words of what went wrong in `error` ('' when nothing did). The action returns a sentence to
 * refuse before it does anything (a field left empty), or throws; `wording` turns what it threw
 * into words (default: the error's message).
 */
import { useState } from 'preact/hooks'

export function useSubmit(
  action: () => Promise<unknown>,
  wording: (err: Error) => string = err => err.message,
): { busy: boolean; error: string; submit: (e?: Event) => Promise<void> } {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  const submit = async (e?: Event) => {
    e?.preventDefault()
    if (busy) return
    setError('')
    setBusy(true)
    try {
      const refused = await action()
      if (typeof refused === 'string') setError(refused)
    } catch (err) {
      setError(wording(err as Error))
    } finally {
      setBusy(false)
    }
  }
  return { busy, error, submit }
}
