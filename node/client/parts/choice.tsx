/**
 * A <select> over a fixed list of options that each carry their value and their words (a
 * duration by its `ms`, a period by its `id`): the screen hands over the list, says which field
 * is the value, and gets that value back, typed, instead of parsing the <select>'s string.
 */
export interface ChoiceProps<O extends { label: string }, K extends keyof O> {
  options: readonly O[]
  /** the field of an option that is its value, unique in `options` */
  by: K
  value: O[K]
  onChange: (value: O[K]) => void
  id?: string
  class?: string
  'aria-label'?: string
  disabled?: boolean
}

/**
 * @example
 * <Choice options={ACCESS_DURATIONS} by="ms" value={duration} onChange={setDuration} id="grant-for" />
 */
export function Choice<O extends { label: string }, K extends keyof O>({
  options,
  by,
  value,
  onChange,
  ...attributes
}: ChoiceProps<O, K>) {
  return (
    <select
      {...attributes}
      value={String(value)}
      onChange={e => onChange(options[(e.target as HTMLSelectElement).selectedIndex][by])}
    >
      {options.map(o => (
        <option key={String(o[by])} value={String(o[by])}>
          {o.label}
        </option>
      ))}
    </select>
  )
}
