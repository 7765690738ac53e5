/** Health: one indicator of whether this node is fine, and what it rests on one click away. */
import { useState } from 'preact/hooks'
import type { CheckState, Health } from '../../ui/contract.ts'

const VERDICT_TITLE: Record<Health['verdict'], string> = {
  fine: 'Fine',
  attention: 'Needs attention',
  trouble: 'Trouble',
}

const STATE_LABEL: Record<CheckState, string> = {
  ok: 'OK',
  attention: 'Attention',
  trouble: 'Trouble',
  unknown: 'Not known',
}

export function HealthScreen({ health }: { health: Health }) {
  const [open, setOpen] = useState(false)
  return (
    <>
      <section class={`indicator indicator-${health.verdict}`} aria-labelledby="verdict">
        <span class="indicator-light" aria-hidden="true" />
        <div>
          <p id="verdict" class="indicator-verdict" role="status">
            {VERDICT_TITLE[health.verdict]}
          </p>
          <p class="indicator-summary">{health.summary}</p>
        </div>
        <button
          type="button"
          class="button"
          aria-expanded={open}
          aria-controls="health-details"
          onClick={() => setOpen(!open)}
        >
          {open ? 'Hide details' : 'Show details'}
        </button>
      </section>

      {open && (
        <div id="health-details">
          <ul class="checks" aria-label="Checks">
            {health.checks.map(c => (
              <li key={c.id} class={`check check-${c.state}`}>
                <span class={`pill pill-${c.state}`}>{STATE_LABEL[c.state]}</span>
                <div>
                  <h3>{c.title}</h3>
                  <p>{c.summary}</p>
                  {c.details.length > 0 && (
                    <ul class="plain mono small">
                      {c.details.map(d => (
                        <li key={d}>{d}</li>
                      ))}
                    </ul>
                  )}
                </div>
              </li>
            ))}
          </ul>

          <section class="card" aria-labelledby="counters">
            <h2 id="counters">Counters</h2>
            {health.counters.length === 0 ? (
              <p class="muted">Nothing counted since the node started.</p>
            ) : (
              <table class="counters">
                <thead>
                  <tr>
                    <th scope="col">What</th>
                    <th scope="col" class="num">
                      Since start
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {health.counters.map(c => (
                    <tr key={c.name}>
                      <td>
                        {c.help === '' ? c.name : c.help}
                        <div class="mono small muted">{c.name}</div>
                      </td>
                      <td class="num">{c.total.toLocaleString()}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <p class="muted small">
              The same figures, for Prometheus, are at <code>/metrics</code> on this node.
            </p>
          </section>
        </div>
      )}
    </>
  )
}
