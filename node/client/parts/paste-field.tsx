/** A field to paste what a machine made into (an invite code, peer ids): monospaced, not spell-checked. */
import './paste-field.css'

/** A labelled textarea to paste into; `class` sizes it where it stands. */
export function PasteField(props: {
  label: string
  class: string
  placeholder: string
  value: string
  onInput: (value: string) => void
}) {
  return (
    <label class="field-label">
      {props.label}
      <textarea
        class={`field paste ${props.class}`}
        value={props.value}
        spellcheck={false}
        placeholder={props.placeholder}
        onInput={e => props.onInput(e.currentTarget.value)}
      />
    </label>
  )
}
