/** The last row of a small form: go on, or leave it. */

/** The submit button (disabled, with other words, while the form is busy) and a quiet button that leaves the form. */
export function FormButtons(props: {
  /** the submit button's words, and its words while the form is busy */
  action: string
  doing?: string
  busy?: boolean
  /** the quiet button's words (Cancel, Back) and what it does */
  leave: string
  onLeave: () => void
  /** whether leaving waits too while the form is busy */
  leaveWaits?: boolean
}) {
  return (
    <div class="form-buttons">
      <button type="submit" class="button button-primary" disabled={props.busy}>
        {props.busy ? props.doing : props.action}
      </button>
      <button
        type="button"
        class="button button-quiet"
        disabled={props.leaveWaits && props.busy}
        onClick={props.onLeave}
      >
        {props.leave}
      </button>
    </div>
  )
}
