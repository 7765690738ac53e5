/**
 * Seeded randomness for the simulator: every choice that is ours (topology, link latencies,
 * who is revoked, which side of a cut a peer is on) comes from one of these, so a run is
 * repeatable from its seed. What libp2p and the node choose themselves (peer keys, gossipsub
 * mesh selection, nonces) is not seeded.
 */

/** A seeded PRNG (mulberry32): a function returning floats in [0, 1). */
export type Random = () => number

/** A seeded pseudo-random generator in [0, 1), so that a run can be repeated. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer in [0, n). */
export function randomInt(random: Random, n: number): number {
  return Math.floor(random() * n)
}

/** A new array with the items in random order (Fisher–Yates). */
export function shuffled<T>(random: Random, items: readonly T[]): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** `k` distinct items, in random order. */
export function sample<T>(random: Random, items: readonly T[], k: number): T[] {
  return shuffled(random, items).slice(0, k)
}

/** A float in [0, 1) fixed by the seed and the numbers given (a hash, not a stream): the same inputs, the same value. */
export function hashToUnit(seed: number, ...xs: number[]): number {
  let h = seed >>> 0
  for (const x of xs) h = Math.imul(h ^ (x >>> 0), 0x9e3779b1) ^ (h >>> 15)
  return mulberry32(h)()
}
