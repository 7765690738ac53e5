/**
 * The client's in-app viewer, on the local API:
 * - GET /v1/spaces/:id/objects/:object/view: the object's plaintext for the viewer to render
 *   (images, PDF, plain text, video), whether its grant allows download or not. Only for the
 *   client's session, never for the bearer token (the CLI saves what it gets: it has `open`),
 *   and only for a fetch of the page itself (`Sec-Fetch-Dest: empty`, same origin), never a
 *   navigation or a download; with `no-store`, `inline`, and a content type from a short list
 *   (anything else is `application/octet-stream`, which the viewer does not render). Headers
 *   say the view's id, the lease end and whether the grant allows download.
 * - GET /v1/views/:id/events: server-sent events; `closed` (with the cause: revocation or
 *   lease end) when the view must close, at once when its key is dropped.
 * - DELETE /v1/views/:id: the client closed the view.
 * What this cannot stop, the README says: a screenshot, a camera, a modified client.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { AccessRefusedError, NotFoundError } from './errors.ts'
import type { EdgewardNode } from './node.ts'

/** Content types the viewer renders, by the file name's extension; messages are plain text. */
const VIEWABLE: Record<string, string> = {
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  mp4: 'video/mp4',
  webm: 'video/webm',
  txt: 'text/plain; charset=utf-8',
  md: 'text/plain; charset=utf-8',
  csv: 'text/plain; charset=utf-8',
  log: 'text/plain; charset=utf-8',
  json: 'text/plain; charset=utf-8',
}

/** The content type the viewer gets for an object of this name and kind. */
export function viewType(name: string, mediaType: string): string {
  if (mediaType === 'message') return 'text/plain; charset=utf-8'
  const dot = name.lastIndexOf('.')
  return (dot < 0 ? undefined : VIEWABLE[name.slice(dot + 1).toLowerCase()]) ?? 'application/octet-stream'
}

const VIEW_ID = /^[0-9a-f]{32}$/

function refuseOutsideTheClient(req: IncomingMessage, viaSession: boolean): void {
  if (!viaSession)
    throw new AccessRefusedError(
      'view-in-client',
      'the viewer route is for the desktop client only: the command line opens objects with `edgeward open`',
    )
  const dest = req.headers['sec-fetch-dest']
  const site = req.headers['sec-fetch-site']
  if (dest !== 'empty' || site !== 'same-origin')
    throw new AccessRefusedError('view-in-client', 'the viewer route answers the client page only, not a navigation')
}

/** GET /v1/spaces/:id/objects/:object/view */
export async function view(
  node: EdgewardNode,
  space: string,
  object: string,
  req: IncomingMessage,
  res: ServerResponse,
  viaSession: boolean,
): Promise<void> {
  refuseOutsideTheClient(req, viaSession)
  const opened = await node.objects.open(space, object)
  const id = node.objects.openView(opened)
  const m = opened.manifest
  res.writeHead(200, {
    'content-type': viewType(m.name, m.mediaType),
    'content-length': String(m.size),
    'content-disposition': 'inline',
    'x-edgeward-view': id,
    'x-edgeward-name': encodeURIComponent(m.name),
    'x-edgeward-media-type': m.mediaType,
    'x-edgeward-download': String(opened.download),
    ...(opened.leaseEnd === undefined ? {} : { 'x-edgeward-lease-end': String(opened.leaseEnd) }),
  })
  try {
    for await (const chunk of opened) {
      res.write(chunk)
      if (res.destroyed) return
    }
  } catch (err) {
    res.destroy(err as Error)
    node.objects.closeView(id)
    return
  }
  res.end()
}

/** GET /v1/views/:id/events: `closed` when the view must close; nothing while it may stay. */
export function viewEvents(node: EdgewardNode, id: string, req: IncomingMessage, res: ServerResponse): void {
  if (!VIEW_ID.test(id)) throw new NotFoundError('no such view')
  res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' })
  res.write(': open\n\n')
  const unwatch = node.objects.watchView(id, cause => {
    res.end(`event: closed\ndata: ${JSON.stringify({ cause, at: node.now() })}\n\n`)
  })
  // a view that is no longer registered either closed already or is the key holder's (never closes)
  req.on('close', () => unwatch?.())
}

/** DELETE /v1/views/:id */
export function closeView(node: EdgewardNode, id: string): void {
  if (!VIEW_ID.test(id)) throw new NotFoundError('no such view')
  node.objects.closeView(id)
}
