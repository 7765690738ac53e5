/**
 * The client's line icons, drawn in the colour of the text around them. They are decoration:
 * hidden from assistive technology, as the control that holds one is named in words.
 */
import type { ComponentChildren } from 'preact'

/** Each icon's drawing, on a square of `size` units. */
const ICONS = {
  copy: {
    size: 16,
    draw: () => (
      <>
        <rect x="5" y="5" width="9" height="9" rx="1.5" />
        <path d="M11 5V3.5A1.5 1.5 0 0 0 9.5 2h-6A1.5 1.5 0 0 0 2 3.5v6A1.5 1.5 0 0 0 3.5 11H5" />
      </>
    ),
  },
  check: { size: 16, draw: () => <path d="M3 8.5l3 3 7-7" /> },
  download: { size: 16, draw: () => <path d="M8 2v8M4.5 6.5 8 10l3.5-3.5M2.5 13.5h11" /> },
  upload: { size: 24, draw: () => <path d="M12 16V4M7 9l5-5 5 5M4 15v4a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-4" /> },
  file: {
    size: 24,
    draw: () => (
      <>
        <path d="M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8z" />
        <path d="M14 3v5h5" />
      </>
    ),
  },
} satisfies Record<string, { size: number; draw: () => ComponentChildren }>

/**
 * One of the client's icons; `class` sets how large it shows (default `icon`, the size of the text).
 * @example
 * <Icon name="download" />
 */
export function Icon({ name, class: cls = 'icon' }: { name: keyof typeof ICONS; class?: string }) {
  const { size, draw } = ICONS[name]
  return (
    <svg class={cls} viewBox={`0 0 ${size} ${size}`} aria-hidden="true" focusable="false">
      {draw()}
    </svg>
  )
}
