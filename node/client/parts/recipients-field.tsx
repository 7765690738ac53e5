/**
 * The people a file or a message goes to, as chips one can remove: a did:key typed or pasted
 * is added with Enter, comma or space, and checked first; the people of the space are offered
 * as one-click chips. People show by the names given them.
 */
import { useMemo, useState } from 'preact/hooks'
import type { SpaceView } from '../../ui/contract.ts'
import { FormError } from './form-error.tsx'
import { type People, personName } from './person.tsx'
import { useFetched } from './use-fetched.ts'
import './recipients-field.css'

/** A did:key as the node accepts it (base58btc multibase); the node checks the key itself. */
export function isDidKey(text: string): boolean {
  return /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(text)
}

/** The people granted anything in a space (besides me), and its owner: who one can share with there. */
export function usePeopleOf(space: SpaceView | undefined, me: string, version: number): string[] {
  const { value } = useFetched<{ grants: { subject: string }[] }>(
    space === undefined ? undefined : `/v1/spaces/${space.id}/grants`,
    version,
  )
  return useMemo(() => {
    const people = new Set<string>()
    if (space?.owner !== undefined) people.add(space.owner)
    for (const g of value?.grants ?? []) people.add(g.subject)
    people.delete(me)
    return [...people]
  }, [value, space?.owner, me])
}

export function RecipientsField(props: {
  id: string
  label: string
  value: string[]
  onChange: (v: string[]) => void
  suggestions: string[]
  state: People
  /** shown beside the suggestions: add every suggestion at once */
  everyone?: boolean
}) {
  const [text, setText] = useState('')
  const [problem, setProblem] = useState<string>()
  const nameOf = (did: string) => personName(did, props.state)
  const add = (raw: string): boolean => {
    const ids = raw.split(/[\s,]+/).filter(t => t !== '')
    for (const did of ids) {
      if (!isDidKey(did)) {
        setProblem(`“${did.length > 24 ? `${did.slice(0, 24)}…` : did}” is not a person's id: ids start with did:key:z`)
        return false
      }
      if (did === props.state.identity.did) {
        setProblem('That is your own id: you already hold what you share.')
        return false
      }
    }
    setProblem(undefined)
    props.onChange([...new Set([...props.value, ...ids])])
    setText('')
    return true
  }
  const onKey = (e: KeyboardEvent) => {
    if ((e.key === 'Enter' || e.key === ',' || e.key === ' ') && text.trim() !== '') {
      e.preventDefault()
      add(text)
    } else if (e.key === 'Backspace' && text === '' && props.value.length > 0) {
      props.onChange(props.value.slice(0, -1))
    }
  }
  const remaining = props.suggestions.filter(s => !props.value.includes(s))
  const hintId = `${props.id}-hint`
  const problemId = `${props.id}-problem`
  return (
    <div class="form-field recipients">
      <label for={props.id} class="field-title">
        {props.label}
      </label>
      <div class={problem === undefined ? 'recipients-input' : 'recipients-input recipients-invalid'}>
        <ul class="recipients-chips" aria-label={`${props.label}: ${props.value.length} chosen`}>
          {props.value.map(did => (
            <li key={did} class="recipients-chip">
              <span title={did}>{nameOf(did)}</span>
              <button
                type="button"
                class="recipients-chip-remove"
                aria-label={`Remove ${nameOf(did)}`}
                title={`Remove ${did}`}
                onClick={() => props.onChange(props.value.filter(d => d !== did))}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
        <input
          id={props.id}
          type="text"
          autocomplete="off"
          spellcheck={false}
          placeholder={props.value.length === 0 ? 'Paste an id: did:key:z6Mk…' : 'Add another'}
          value={text}
          aria-describedby={problem === undefined ? hintId : `${problemId} ${hintId}`}
          aria-invalid={problem !== undefined}
          onInput={e => {
            setText((e.target as HTMLInputElement).value)
            setProblem(undefined)
          }}
          onKeyDown={onKey}
          onBlur={() => {
            if (text.trim() !== '') add(text)
          }}
        />
      </div>
      <FormError error={problem} id={problemId} />
      <p id={hintId} class="form-hint recipients-hint">
        Press Enter after each id.
      </p>
      {remaining.length > 0 && (
        <div class="recipients-suggestions">
          <span class="muted small">People in this space:</span>
          {remaining.slice(0, 8).map(did => (
            <button
              key={did}
              type="button"
              class="recipients-suggestion"
              title={did}
              aria-label={`Add ${nameOf(did)}`}
              onClick={() => props.onChange([...props.value, did])}
            >
              + {nameOf(did)}
            </button>
          ))}
          {props.everyone === true && remaining.length > 1 && (
            <button
              type="button"
              class="recipients-suggestion"
              onClick={() => props.onChange([...new Set([...props.value, ...props.suggestions])])}
            >
              + Everyone ({props.suggestions.length})
            </button>
          )}
        </div>
      )}
    </div>
  )
}
