/** A screen of the navigation that is not built yet: says so, and what the command line offers meanwhile. */
import type { Screen } from '../routes.ts'

export function NotBuiltScreen({ screen }: { screen: Screen }) {
  return (
    <section class="card empty">
      <p class="badge badge-neutral">Not built yet</p>
      <p>{screen.purpose}</p>
      {screen.meanwhile !== undefined && screen.meanwhile.length > 0 ? (
        <>
          <p class="muted">Until this screen exists, the command line does it:</p>
          <ul class="plain mono">
            {screen.meanwhile.map(c => (
              <li key={c}>{c}</li>
            ))}
          </ul>
        </>
      ) : (
        <p class="muted">Nothing lists this yet, in the client or on the command line.</p>
      )}
    </section>
  )
}
