/**
 * A device (libp2p peer) as the screens show it: the person behind it by name when the node
 * knows who that is, with a short form of its peer id; the whole id in the tooltip.
 */
import { type People, personName } from './person.tsx'

/** `12D3KooW…x7Yt2b`: enough to tell devices apart at a glance. */
export function shortPeer(peer: string): string {
  return peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer
}

/** A peer id as the node accepts one (base58btc); the node checks the rest. */
export function isPeerId(text: string): boolean {
  return /^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(text)
}

/** The words for a peer: "this device", "Ana (12D3KooW…x7Yt2b)" or the short peer id. */
export function peerName(peer: string, did: string | undefined, state: People): string {
  if (peer === state.identity.peerId) return 'this device'
  return did === undefined ? shortPeer(peer) : `${personName(did, state)} (${shortPeer(peer)})`
}

/** A peer by the person behind it, when known, and its short id. */
export function Peer({ peer, did, state }: { peer: string; did?: string; state: People }) {
  if (peer === state.identity.peerId)
    return (
      <span class="peer" title={peer}>
        this device
      </span>
    )
  return (
    <span class="peer" title={peer}>
      {did !== undefined && <span class="peer-person">{personName(did, state)} </span>}
      <span class="peer-id mono">{shortPeer(peer)}</span>
    </span>
  )
}
