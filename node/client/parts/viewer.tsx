/**
 * The in-app viewer: renders an object the person may see — images, PDF (pdf.js, loaded only
 * when a PDF opens), plain text, video — from the node's viewer route, without a download
 * control, with the viewer's identity and the time written across it, and closes by itself,
 * saying why, when the node says the key was dropped (a revocation, the lease's end).
 * The plaintext lives only in this page's memory (a blob URL revoked on close); the node
 * sends it `no-store`. What a browser cannot stop (a screenshot, a camera, a modified
 * client) is in the README.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { useApi } from '../api.ts'
import './viewer.css'

export interface ViewerProps {
  space: string
  object: string
  /** what the person knows it as, until the node says its name */
  title: string
  /** the person's id, written across the content */
  viewer: string
  onClose: () => void
}

type Content =
  | { kind: 'loading' }
  | { kind: 'image' | 'video'; url: string }
  | { kind: 'text'; text: string }
  | { kind: 'pdf'; data: ArrayBuffer }
  | { kind: 'unsupported'; type: string }
  | { kind: 'refused'; message: string }
  | { kind: 'closed'; cause: string; at: number }

const shortId = (did: string): string => (did.length > 24 ? `${did.slice(0, 14)}…${did.slice(-6)}` : did)

const CLOSE_WORDS: Record<string, string> = {
  revocation: 'Access was revoked: the key was dropped and this view closed.',
  'lease-end': 'Access ended: the key’s lease ran out and this view closed.',
}

/** The viewer, as a modal dialog over the current screen. */
export function Viewer(props: ViewerProps) {
  const api = useApi()
  const [content, setContent] = useState<Content>({ kind: 'loading' })
  const [name, setName] = useState(props.title)
  const [meta, setMeta] = useState<{ download: boolean; leaseEnd?: number }>({ download: false })
  const dialog = useRef<HTMLDialogElement>(null)
  const opened = useRef(new Date())

  useEffect(() => {
    dialog.current?.showModal()
    let url: string | undefined
    let events: EventSource | undefined
    let view: string | undefined
    const ctrl = new AbortController()
    ;(async () => {
      const res = await fetch(
        `/v1/spaces/${encodeURIComponent(props.space)}/objects/${encodeURIComponent(props.object)}/view`,
        { credentials: 'same-origin', signal: ctrl.signal },
      )
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } }
        setContent({ kind: 'refused', message: body.error?.message ?? `HTTP ${res.status}` })
        return
      }
      view = res.headers.get('x-edgeward-view') ?? undefined
      const leaseEnd = Number(res.headers.get('x-edgeward-lease-end') ?? Number.NaN)
      setMeta({
        download: res.headers.get('x-edgeward-download') === 'true',
        ...(Number.isFinite(leaseEnd) ? { leaseEnd } : {}),
      })
      setName(decodeURIComponent(res.headers.get('x-edgeward-name') ?? props.title))
      if (view !== undefined) {
        events = new EventSource(`/v1/views/${view}/events`)
        events.addEventListener('closed', e => {
          const { cause, at } = JSON.parse((e as MessageEvent<string>).data) as { cause: string; at: number }
          events?.close()
          if (url !== undefined) URL.revokeObjectURL(url)
          setContent({ kind: 'closed', cause, at })
        })
      }
      const type = res.headers.get('content-type') ?? ''
      const blob = await res.blob()
      if (type.startsWith('image/') || type.startsWith('video/')) {
        url = URL.createObjectURL(blob)
        setContent(c => (c.kind === 'closed' ? c : { kind: type.startsWith('image/') ? 'image' : 'video', url: url! }))
      } else if (type.startsWith('text/plain')) {
        const text = await blob.text()
        setContent(c => (c.kind === 'closed' ? c : { kind: 'text', text }))
      } else if (type === 'application/pdf') {
        const data = await blob.arrayBuffer()
        setContent(c => (c.kind === 'closed' ? c : { kind: 'pdf', data }))
      } else setContent({ kind: 'unsupported', type })
    })().catch(err => {
      if ((err as Error).name !== 'AbortError') setContent({ kind: 'refused', message: (err as Error).message })
    })
    return () => {
      ctrl.abort()
      events?.close()
      if (url !== undefined) URL.revokeObjectURL(url)
      if (view !== undefined) api.send('DELETE', `/v1/views/${view}`).catch(() => {})
    }
  }, [props.space, props.object])

  const stamp = `${shortId(props.viewer)} · ${opened.current.toLocaleString()}`
  return (
    <dialog
      ref={dialog}
      class="viewer"
      aria-label={`Viewer: ${name}`}
      onClose={props.onClose}
      onContextMenu={e => e.preventDefault()}
    >
      <header class="viewer-bar">
        <div>
          <h2 class="viewer-title">{name}</h2>
          <p class="muted small">
            {meta.download ? 'You may also download this file.' : 'View only: no download.'}
            {meta.leaseEnd !== undefined && ` Key held until ${new Date(meta.leaseEnd).toLocaleTimeString()}.`}
          </p>
        </div>
        <button type="button" class="button" onClick={() => dialog.current?.close()}>
          Close
        </button>
      </header>
      <div class="viewer-body" data-state={content.kind}>
        <Rendered content={content} />
        {(content.kind === 'image' ||
          content.kind === 'video' ||
          content.kind === 'text' ||
          content.kind === 'pdf') && (
          <div class="watermark" aria-hidden="true">
            {Array.from({ length: 24 }, (_, i) => (
              <span key={i}>{stamp}</span>
            ))}
          </div>
        )}
      </div>
    </dialog>
  )
}

function Rendered({ content }: { content: Content }) {
  switch (content.kind) {
    case 'loading':
      return <p class="muted viewer-note">Fetching the key and decrypting…</p>
    case 'image':
      return <img class="viewer-image" src={content.url} alt="" draggable={false} />
    case 'video':
      return (
        // biome-ignore lint/a11y/useMediaCaption: a shared video comes without caption files
        <video
          class="viewer-video"
          src={content.url}
          controls
          controlsList="nodownload noremoteplayback"
          disablePictureInPicture
        />
      )
    case 'text':
      return <pre class="viewer-text">{content.text}</pre>
    case 'pdf':
      return <PdfPages data={content.data} />
    case 'unsupported':
      return (
        <p class="viewer-note">
          This kind of file ({content.type.split(';')[0]}) cannot be shown here. Images, PDF, plain text and video can.
        </p>
      )
    case 'refused':
      return (
        <p class="viewer-note notice" role="alert">
          Cannot open: {content.message}
        </p>
      )
    case 'closed':
      return (
        <p class="viewer-note notice" role="alert" data-testid="viewer-closed">
          {CLOSE_WORDS[content.cause] ?? 'This view closed.'} ({new Date(content.at).toLocaleTimeString()})
        </p>
      )
  }
}

/** A PDF's pages drawn on canvases by pdf.js (its worker served by the node); no text layer to copy from. */
function PdfPages({ data }: { data: ArrayBuffer }) {
  const holder = useRef<HTMLDivElement>(null)
  const [error, setError] = useState<string>()
  const [pages, setPages] = useState(0)
  useEffect(() => {
    let cancelled = false
    let destroy: (() => void) | undefined
    ;(async () => {
      const pdfjs = await import('pdfjs-dist')
      pdfjs.GlobalWorkerOptions.workerSrc = '/ui/pdf.worker.js'
      const task = pdfjs.getDocument({ data: new Uint8Array(data) })
      destroy = () => void task.destroy()
      const doc = await task.promise
      if (cancelled) return
      setPages(doc.numPages)
      for (let i = 1; i <= doc.numPages && !cancelled; i++) {
        const page = await doc.getPage(i)
        const viewport = page.getViewport({ scale: 1.3 })
        const canvas = document.createElement('canvas')
        canvas.width = viewport.width
        canvas.height = viewport.height
        canvas.className = 'viewer-page'
        canvas.setAttribute('role', 'img')
        canvas.setAttribute('aria-label', `Page ${i} of ${doc.numPages}`)
        holder.current?.append(canvas)
        await page.render({ canvas, viewport }).promise
      }
    })().catch(err => setError((err as Error).message))
    return () => {
      cancelled = true
      destroy?.()
    }
  }, [data])
  if (error !== undefined) return <p class="viewer-note notice">This PDF cannot be shown: {error}</p>
  return (
    <div class="viewer-pdf" ref={holder} data-pages={pages}>
      <span class="visually-hidden">{pages > 0 ? `${pages} pages` : 'Loading the PDF…'}</span>
    </div>
  )
}
