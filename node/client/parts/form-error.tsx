/** What went wrong in a form, said once as an alert under its fields. */

/** The words of what went wrong, as an alert; nothing while nothing did ('' or undefined). */
export function FormError({
  error,
  id,
  class: cls = 'form-error',
}: {
  error: string | undefined
  id?: string
  class?: string
}) {
  if (error === undefined || error === '') return null
  return (
    <p id={id} class={cls} role="alert">
      {error}
    </p>
  )
}
