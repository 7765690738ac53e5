/**
 * One request, one response over a libp2p stream, length-prefixed with a size limit on
 * each side, so every request/response protocol of ours shares one framing path.
 *
 * Every one of them also runs over a relayed (limited) connection: a request is a few KiB,
 * well inside a relay's limits (relay.ts). A request goes over a direct connection when there
 * is one, else over an open relayed one, and dials only when the peer has neither.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { EdgewardLibp2p } from '../network.ts'

/** how long one request may take, from the dial to the last byte of the response */
export const REQUEST_TIMEOUT_MS = 10_000

/** The open connection to `peer` a request should take: a direct one first, else a relayed one. */
function openConnectionTo(libp2p: Pick<EdgewardLibp2p, 'getConnections'>, peer: PeerId): Connection | undefined {
  const open = libp2p.getConnections(peer).filter(c => c.status === 'open')
  return open.find(c => c.limits === undefined) ?? open[0]
}

/** Send one request on `protocol` to `peer` and read its response (at most `maxResponseBytes`). */
export async function request(
  libp2p: Pick<EdgewardLibp2p, 'dialProtocol' | 'getConnections'>,
  peer: PeerId,
  protocol: string,
  body: Uint8Array,
  maxResponseBytes: number,
): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  // libp2p's dial reuses only an unlimited connection: a peer reached through a relay would be
  // dialled through it again for every request
  const existing = openConnectionTo(libp2p, peer)
  const stream =
    existing === undefined
      ? await libp2p.dialProtocol(peer, protocol, { signal, runOnLimitedConnection: true })
      : await existing.newStream(protocol, { signal, runOnLimitedConnection: true })
  try {
    const lp = lpStream(stream, { maxDataLength: maxResponseBytes })
    await lp.write(body, { signal })
    const res = await lp.read({ signal })
    await stream.close({ signal })
    return res.subarray()
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

/** Register a handler that reads one request (at most `maxRequestBytes`) and writes one response. */
export async function handle(
  libp2p: Pick<EdgewardLibp2p, 'handle'>,
  protocol: string,
  maxRequestBytes: number,
  maxResponseBytes: number,
  respond: (body: Uint8Array, connection: Connection) => Promise<Uint8Array>,
  onError: (err: Error, connection: Connection) => void,
): Promise<void> {
  await libp2p.handle(
    protocol,
    async (stream: Stream, connection: Connection) => {
      const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
      try {
        const lp = lpStream(stream, { maxDataLength: maxRequestBytes })
        const req = await lp.read({ signal })
        const res = await respond(req.subarray(), connection)
        if (res.byteLength > maxResponseBytes) throw new RangeError('response exceeds its protocol limit')
        await lp.write(res, { signal })
        await stream.close({ signal })
      } catch (err) {
        onError(err as Error, connection)
        stream.abort(err as Error)
      }
    },
    { runOnLimitedConnection: true },
  )
}
