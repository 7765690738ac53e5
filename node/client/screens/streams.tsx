/** The Streams screen: not built yet; says what it will hold. */
import { SCREENS } from '../routes.ts'
import { NotBuiltScreen } from './not-built.tsx'
import type { ScreenProps } from './props.ts'

export function StreamsScreen(_props: ScreenProps) {
  return <NotBuiltScreen screen={SCREENS.find(s => s.id === 'streams')!} />
}
