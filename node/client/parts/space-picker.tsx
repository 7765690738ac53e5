/**
 * Spaces by name, never by id: the label of each (a name two spaces share gets a number), the
 * <select> of them a screen's filters hold, and the picker above a screen that works in one
 * space at a time.
 */
import type { SpaceView } from '../../ui/contract.ts'

/** A space by its name; one that has not synchronised yet says so. */
export function spaceName(s: SpaceView): string {
  return s.name ?? 'A space not synchronised yet'
}

/** Each space's label by id: its name, and a number where two spaces share it. */
export function spaceLabels(spaces: SpaceView[]): Map<string, string> {
  const out = new Map<string, string>()
  const seen = new Map<string, number>()
  const total = new Map<string, number>()
  for (const s of spaces) total.set(spaceName(s), (total.get(spaceName(s)) ?? 0) + 1)
  for (const s of spaces) {
    const name = spaceName(s)
    const n = (seen.get(name) ?? 0) + 1
    seen.set(name, n)
    out.set(s.id, (total.get(name) ?? 0) > 1 ? `${name} (${n})` : name)
  }
  return out
}

interface SelectProps {
  spaces: SpaceView[]
  value: string | undefined
  onChange: (id: string) => void
  id?: string
  /** say the person's role where it is not owner: "plant-7 (admin)" */
  withRole?: boolean
}

/** A <select> of spaces by label; its <label> is the screen's. */
export function SpaceSelect({ spaces, value, onChange, id, withRole }: SelectProps) {
  const labels = spaceLabels(spaces)
  return (
    <select id={id} value={value} onChange={e => onChange((e.target as HTMLSelectElement).value)}>
      {spaces.map(s => (
        <option key={s.id} value={s.id}>
          {labels.get(s.id)}
          {withRole === true && s.role !== 'owner' ? ` (${s.role})` : ''}
        </option>
      ))}
    </select>
  )
}

/** "Space: [plant-7 ▾]" above a screen, shown only when there is a choice. */
export function SpacePicker(props: SelectProps & { id: string }) {
  if (props.spaces.length < 2) return null
  return (
    <div class="space-picker">
      <label for={props.id}>Space</label>
      <SpaceSelect {...props} />
    </div>
  )
}
