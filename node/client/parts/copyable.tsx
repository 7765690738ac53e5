/**
 * Copying to the clipboard: a value a person gives to someone else, shown whole with a Copy
 * button (`Copyable`), or just the button beside a value shown in short (`CopyButton`: a
 * person's did, whose whole form is in the title).
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { Icon } from './icon.tsx'

/** Copy `value`; what came of it, said for a while, for a live region. */
function useCopy(value: string, failure: string): { said: string; copy: () => Promise<void> } {
  const [said, setSaid] = useState('')
  const timer = useRef<number | undefined>(undefined)
  useEffect(() => () => window.clearTimeout(timer.current), [])
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setSaid('Copied')
    } catch {
      setSaid(failure)
    }
    window.clearTimeout(timer.current)
    timer.current = window.setTimeout(() => setSaid(''), 4000)
  }
  return { said, copy }
}

interface Props {
  value: string
  /** what the value is, for the button's accessible name ("Copy your id") */
  label: string
  id?: string
}

/** A value shown whole, selectable, with a Copy button. */
export function Copyable({ value, label, id }: Props) {
  const { said, copy } = useCopy(value, 'Could not copy: select the text and copy it')
  return (
    <div class="copyable">
      <code id={id} class="copyable-value">
        {value}
      </code>
      <div class="copyable-actions">
        <button type="button" class="button" onClick={copy} aria-label={`Copy ${label}`}>
          <Icon name="copy" />
          Copy
        </button>
        <span class="copyable-said" role="status" aria-live="polite">
          {said}
        </span>
      </div>
    </div>
  )
}

/** The compact form: an icon button ("Copy the full id of …"), its outcome said to screen readers. */
export function CopyButton({ value, label }: Omit<Props, 'id'>) {
  const { said, copy } = useCopy(value, 'Could not copy')
  return (
    <>
      <button type="button" class="icon-button" onClick={copy} aria-label={`Copy ${label}`} title={`Copy ${label}`}>
        <Icon name={said === 'Copied' ? 'check' : 'copy'} />
      </button>
      <span class="visually-hidden" role="status" aria-live="polite">
        {said}
      </span>
    </>
  )
}
