/** A value a person copies to give to someone else: shown whole, selectable, with a copy button. */
import { useEffect, useRef, useState } from 'preact/hooks'

interface Props {
  value: string
  /** what the value is, for the button's accessible name ("Copy your id") */
  label: string
  id?: string
}

export function Copyable({ value, label, id }: Props) {
  const [said, setSaid] = useState('')
  const timer = useRef<number | undefined>(undefined)
  useEffect(() => () => window.clearTimeout(timer.current), [])

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setSaid('Copied')
    } catch {
      setSaid('Could not copy: select the text and copy it')
    }
    window.clearTimeout(timer.current)
    timer.current = window.setTimeout(() => setSaid(''), 4000)
  }

  return (
    <div class="copyable">
      <code id={id} class="copyable-value">
        {value}
      </code>
      <div class="copyable-actions">
        <button type="button" class="button" onClick={copy} aria-label={`Copy ${label}`}>
          <CopyIcon />
          Copy
        </button>
        <span class="copyable-said" role="status" aria-live="polite">
          {said}
        </span>
      </div>
    </div>
  )
}

function CopyIcon() {
  return (
    <svg class="icon" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
      <rect x="5" y="5" width="9" height="9" rx="1.5" />
      <path d="M11 5V3.5A1.5 1.5 0 0 0 9.5 2h-6A1.5 1.5 0 0 0 2 3.5v6A1.5 1.5 0 0 0 3.5 11H5" />
    </svg>
  )
}
