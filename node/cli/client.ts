/** The CLI's side of the local API: finds the running node through `DIR/node.json`. */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readApiToken } from '../api-token.ts'
import { AccessRefusedError, ApiError, NodeStateError, NotFoundError, UnreachableError, UsageError } from '../errors.ts'

export interface NodeInfo {
  peerId: string
  did: string
  addresses: string[]
  api: string
  pid: number
}

/** Where a running node writes its node.json (peer id, addresses, local API address). */
export function nodeInfoPath(dataDir: string): string {
  return join(dataDir, 'node.json')
}

/** The running node's node.json; NodeStateError when no node runs on `dataDir`. */
export async function readNodeInfo(dataDir: string): Promise<NodeInfo> {
  const path = nodeInfoPath(dataDir)
  if (!existsSync(path))
    throw new NodeStateError(`no node is running on ${dataDir}: start one with \`edgeward start --data ${dataDir}\``)
  return JSON.parse(await readFile(path, 'utf8')) as NodeInfo
}

function errorFrom(status: number, body: { error?: { name?: string; message?: string; code?: string } }): Error {
  const message = body.error?.message ?? `HTTP ${status}`
  if (status === 403) return new AccessRefusedError(body.error?.code ?? 'refused', message)
  if (status === 400) return new UsageError(message)
  if (status === 404) return new NotFoundError(message)
  if (status === 503) return new UnreachableError(message)
  return new ApiError(message)
}

/** The CLI's client of a running node's local API: the token from the data directory, typed errors from the answers. */
export class ApiClient {
  private readonly base: string
  private readonly token: string

  private constructor(base: string, token: string) {
    this.base = base
    this.token = token
  }

  static async connect(dataDir: string): Promise<ApiClient> {
    const info = await readNodeInfo(dataDir)
    return new ApiClient(info.api, await readApiToken(dataDir))
  }

  private async fetch(method: string, path: string, body?: string): Promise<Response> {
    try {
      return await fetch(`${this.base}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body,
      })
    } catch (err) {
      throw new NodeStateError(`the node at ${this.base} does not answer (${(err as Error).message}): is it running?`)
    }
  }

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.fetch(
      method,
      path,
      body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    )
    const json = (await res.json()) as T & { error?: { message: string } }
    if (!res.ok) throw errorFrom(res.status, json)
    return json
  }

  /** A POST whose body is streamed from `body` (content of any size); the answer is JSON. */
  async upload<T = Record<string, unknown>>(path: string, body: AsyncIterable<Uint8Array>): Promise<T> {
    let res: Response
    try {
      res = await fetch(`${this.base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/octet-stream' },
        body: ReadableStream.from(body),
        duplex: 'half',
      } as RequestInit)
    } catch (err) {
      throw new NodeStateError(`the node at ${this.base} does not answer (${(err as Error).message}): is it running?`)
    }
    const json = (await res.json()) as T & { error?: { message: string } }
    if (!res.ok) throw errorFrom(res.status, json)
    return json
  }

  /** A GET whose answer may be bytes: the response itself once it is known to be a success. */
  async response(path: string): Promise<Response> {
    const res = await this.fetch('GET', path)
    if (!res.ok) throw errorFrom(res.status, (await res.json()) as never)
    return res
  }

  /** A streaming NDJSON GET: yields parsed lines; an error line throws. */
  async *lines(path: string): AsyncGenerator<Record<string, unknown>> {
    const res = await this.fetch('GET', path)
    if (!res.ok) throw errorFrom(res.status, (await res.json()) as never)
    const decoder = new TextDecoder()
    let buf = ''
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true })
      let i = buf.indexOf('\n')
      while (i >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        if (line.trim() !== '') {
          const v = JSON.parse(line) as Record<string, unknown> & { error?: { name: string; code?: string } }
          if (v.error !== undefined) throw errorFrom(v.error.name === AccessRefusedError.name ? 403 : 500, v as never)
          yield v
        }
        i = buf.indexOf('\n')
      }
    }
  }
}
