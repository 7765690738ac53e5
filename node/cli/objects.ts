/**
 * The object commands: share a file, send a message, open either, and list who holds or
 * asked for access. Content streams through the local API both ways; nothing here holds a
 * whole file in memory.
 */
import { createReadStream } from 'node:fs'
import { open as openFile, rename, rm, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { TransferInterruptedError, UsageError } from '../errors.ts'
import type { Inbox } from '../ui/contract-inbox.ts'
import { ApiClient } from './client.ts'
import { parseDuration } from './duration.ts'
import { type Output, print } from './output.ts'

const DID = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/
/** access lasts this long when --for is not given */
export const DEFAULT_SHARE_DURATION = '7d'
/** files at least this large report progress on stderr */
const PROGRESS_FROM_BYTES = 4 * 1024 * 1024
const MiB = 1024 * 1024

const objectsPath = (space: string) => `/v1/spaces/${encodeURIComponent(space)}/objects`

function needDids(values: string[] | undefined): string[] {
  if (values === undefined || values.length === 0) throw new UsageError('needs --to DID')
  for (const v of values) if (!DID.test(v)) throw new UsageError(`--to is not a did:key: ${v}`)
  return values
}

export interface ShareOptions {
  /** one or more recipients */
  to?: string[]
  for?: string
  noDownload: boolean
  forward?: string
}

function shareQuery(opts: ShareOptions, extra: Record<string, string>): string {
  const q = new URLSearchParams({ for: String(parseDuration(opts.for ?? DEFAULT_SHARE_DURATION)), ...extra })
  for (const to of needDids(opts.to)) q.append('to', to)
  if (opts.noDownload) q.set('download', 'false')
  if (opts.forward !== undefined) {
    if (!['never', 'ask-owner', 'allowed'].includes(opts.forward))
      throw new UsageError('--forward must be never, ask-owner or allowed')
    q.set('forward', opts.forward)
  }
  return q.toString()
}

/** `share SPACE FILE --to DID`: streams FILE to the node, which stores it as an object and grants DID. */
export async function share(
  dataDir: string,
  space: string,
  file: string,
  opts: ShareOptions,
  o: Output,
): Promise<void> {
  const query = shareQuery(opts, { name: basename(file), type: 'file' })
  let size: number
  try {
    const s = await stat(file)
    if (!s.isFile()) throw new UsageError(`${file} is not a file`)
    size = s.size
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
  const client = await ApiClient.connect(dataDir)
  let sent = 0
  let lastReport = Date.now()
  const report = () => o.err(`sent ${(sent / MiB).toFixed(1)} of ${(size / MiB).toFixed(1)} MiB`)
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
      sent += (chunk as Buffer).byteLength
      if (size >= PROGRESS_FROM_BYTES && Date.now() - lastReport >= 1000) {
        lastReport = Date.now()
        report()
      }
      yield chunk as Buffer
    }
  }
  const r = await client.upload(`${objectsPath(space)}?${query}`, counted())
  if (size >= PROGRESS_FROM_BYTES) report()
  print(o, r, sharedText(r))
}

/** What a share printed: the object, and each recipient's grant and end. */
function sharedText(r: Record<string, unknown>): string {
  const grants = (r.grants as { to: string; grant: string; notAfter: string }[] | undefined) ?? []
  if (grants.length <= 1) return `object ${r.object}\ngrant  ${r.grant}\nvalid until ${r.notAfter}`
  return [`object ${r.object}`, ...grants.map(g => `grant  ${g.grant}  to ${g.to}  until ${g.notAfter}`)].join('\n')
}

/** `message SPACE --to DID TEXT`: a small object of media type message. */
export async function message(
  dataDir: string,
  space: string,
  text: string,
  opts: { to?: string[]; for?: string },
  o: Output,
): Promise<void> {
  if (text.length === 0) throw new UsageError('a message needs some text')
  const query = shareQuery({ ...opts, noDownload: false }, { name: 'message', type: 'message' })
  const client = await ApiClient.connect(dataDir)
  const bytes = new TextEncoder().encode(text)
  const r = await client.upload(
    `${objectsPath(space)}?${query}`,
    (async function* () {
      yield bytes
    })(),
  )
  print(o, r, sharedText(r))
}

/**
 * `open SPACE OBJECT [--out FILE]`: the plaintext to stdout (or FILE, which appears only
 * once the whole object arrived), or, when the grant forbids download, where the viewer
 * file is and until when.
 */
export async function open(
  dataDir: string,
  space: string,
  object: string,
  opts: { out?: string },
  o: Output,
  stdout: NodeJS.WritableStream,
): Promise<void> {
  const client = await ApiClient.connect(dataDir)
  const res = await client.response(`${objectsPath(space)}/${encodeURIComponent(object)}`)
  if ((res.headers.get('content-type') ?? '').startsWith('application/json')) {
    const v = (await res.json()) as { viewer: string; until: string }
    if (opts.out !== undefined) o.err('download is not allowed for this object: --out ignored, see the viewer file')
    print(o, v, `viewer: ${v.viewer}\nuntil:  ${v.until}`)
    return
  }
  const mediaType = res.headers.get('x-edgeward-media-type')
  const body = res.body as unknown as AsyncIterable<Uint8Array>
  if (opts.out !== undefined) {
    const part = `${opts.out}.part-${process.pid}`
    const file = await openFile(part, 'w')
    try {
      for await (const chunk of body) await file.write(chunk)
      await file.close()
    } catch (err) {
      await file.close()
      await rm(part, { force: true })
      throw new TransferInterruptedError(
        `the object was cut short (${(err as Error).message}): nothing written to ${opts.out}`,
      )
    }
    await rename(part, opts.out)
    if (o.json) o.out(JSON.stringify({ object, out: opts.out, size: Number(res.headers.get('content-length')) }))
    return
  }
  if (mediaType === 'message') {
    const text = await res.text()
    print(o, { object, text }, text)
    return
  }
  try {
    for await (const chunk of body) {
      if (!stdout.write(chunk)) await new Promise(resolve => stdout.once('drain', resolve))
    }
  } catch (err) {
    throw new TransferInterruptedError(`the object was cut short: ${(err as Error).message}`)
  }
}

/** `access SPACE OBJECT`: grants, requests and (on the key holder) key releases of the object. */
export async function access(dataDir: string, space: string, object: string, o: Output): Promise<void> {
  const r = await (await ApiClient.connect(dataDir)).call<Record<string, any>>(
    'GET',
    `${objectsPath(space)}/${encodeURIComponent(object)}/access`,
  )
  const lines = [`object ${r.object}`, 'grants:']
  for (const g of r.grants)
    lines.push(
      `  ${g.id.slice(0, 12)}  ${g.status.padEnd(12)}  ${g.subject}  until ${g.notAfter}${g.download ? '' : '  view only'}${g.why ? `  (${g.why})` : ''}`,
    )
  if (r.grants.length === 0) lines.push('  (none)')
  lines.push('requests:')
  for (const q of r.requests)
    lines.push(`  ${q.id.slice(0, 12)}  ${q.status.padEnd(9)}  ${q.for}  at ${q.at}  ${q.reason}`)
  if (r.requests.length === 0) lines.push('  (none)')
  if (r.releases === undefined) {
    lines.push('key releases: (only the key holder has them)')
  } else {
    lines.push('key releases:')
    for (const k of r.releases)
      lines.push(
        `  ${k.subject}  at ${k.at}  lease until ${k.leaseEnd}  held until ${k.heldUntil} (${k.endedBy})${k.renewal ? '  renewal' : ''}`,
      )
    if (r.releases.length === 0) lines.push('  (none)')
    for (const k of r.refusals ?? []) lines.push(`  refused ${k.subject}  at ${k.at}  ${k.code}: ${k.reason}`)
  }
  print(o, r, lines.join('\n'))
}

/** `inbox`: what is shared with this person across spaces, newest first, with its state and end. */
export async function inbox(dataDir: string, o: Output): Promise<void> {
  const client = await ApiClient.connect(dataDir)
  const r = await client.call<Inbox>('GET', '/v1/inbox')
  const lines = r.items.map(i => {
    const what = i.name === undefined ? i.resource : `${i.name} (${i.resource})`
    const until = i.notAfter === undefined ? '' : `  until ${new Date(i.notAfter).toISOString()}`
    const why = i.why === undefined ? '' : `  (${i.why})`
    return `${i.state.padEnd(12)}  ${i.kind.padEnd(7)}  ${what}  in ${i.spaceName}  from ${i.fromName ?? i.from}${until}${why}`
  })
  print(o, r, lines.join('\n') || '(nothing shared with you yet)')
}

/** `contacts`, `contact set DID NAME`, `contact remove DID`: the names this person gives people. */
export async function contacts(dataDir: string, args: string[], o: Output): Promise<void> {
  const [verb, did, ...name] = args
  const client = await ApiClient.connect(dataDir)
  if (verb === 'list' && did === undefined) {
    const r = await client.call<{ me: string; contacts: { did: string; name: string; source: string }[] }>(
      'GET',
      '/v1/contacts',
    )
    const lines = r.contacts.map(
      c => `${c.name}${c.did === r.me ? ' (you)' : c.source === 'suggested' ? ' (their own)' : ''}  ${c.did}`,
    )
    return print(o, r, lines.join('\n') || '(no contacts: edgeward contact set DID NAME)')
  }
  if (verb === 'set' && did !== undefined && name.length > 0) {
    if (!DID.test(did)) throw new UsageError(`not a did:key: ${did}`)
    const r = await client.call('PUT', `/v1/contacts/${did}`, { name: name.join(' ') })
    return print(o, r, `${r.name}  ${did}`)
  }
  if (verb === 'remove' && did !== undefined && name.length === 0) {
    if (!DID.test(did)) throw new UsageError(`not a did:key: ${did}`)
    const r = await client.call('DELETE', `/v1/contacts/${did}`)
    return print(o, r, r.removed ? `removed ${did}` : `no contact ${did}`)
  }
  throw new UsageError('usage: edgeward contacts | contact set DID NAME | contact remove DID')
}
