/**
 * Who is linked to whom at the start of a run: a random graph of a chosen degree, or sites
 * (a full-ish mesh inside each site, a few bridges between sites). Pure and seeded: the same
 * seed gives the same links. Links are undirected; the lower-numbered peer dials.
 */
import { mulberry32, type Random, randomInt, sample, shuffled } from './random.ts'

export type TopologySpec =
  | { kind: 'random'; degree: number }
  | {
      kind: 'sites'
      sites: number
      /** links per peer inside its site (a full mesh when the site is smaller) */
      degree: number
      /** links between each pair of sites */
      bridges: number
    }

export interface Topology {
  /** undirected links [a, b] with a < b */
  links: [number, number][]
  /** the site of each peer (all 0 for a random graph) */
  site: number[]
}

/**
 * Whether two peers may be connected at all (partitions aside): with a strict topology, two it
 * links or a pair with a public peer (which anyone may dial); otherwise any two.
 */
export function linkRule(
  topology: Topology,
  publicPeers: Iterable<number>,
  strict: boolean,
): (a: number, b: number) => boolean {
  const linked = new Set(topology.links.map(([a, b]) => `${a}-${b}`))
  const open = new Set(publicPeers)
  return (a, b) => !strict || open.has(a) || open.has(b) || linked.has(`${Math.min(a, b)}-${Math.max(a, b)}`)
}

/**
 * The topology a network with these options starts from: the coordinator of a run in worker
 * processes and each of its workers build the same one from the seed.
 */
export function seededTopology(opts: { peers: number; topology: TopologySpec; seed: number }): Topology {
  return buildTopology(opts.peers, opts.topology, mulberry32(opts.seed))
}

/** The links of `n` peers: a connected random graph of a given degree, or sites joined by bridges. */
export function buildTopology(n: number, spec: TopologySpec, random: Random): Topology {
  if (spec.kind === 'random') {
    const peers = Array.from({ length: n }, (_, i) => i)
    return { links: connectComponents(n, randomGraph(peers, spec.degree, random), random), site: Array(n).fill(0) }
  }
  const sites = Math.max(1, Math.min(spec.sites, n))
  const site = Array.from({ length: n }, (_, i) => Math.floor((i * sites) / n))
  const members = Array.from({ length: sites }, (_, s) => site.flatMap((x, i) => (x === s ? [i] : [])))
  const links: [number, number][] = []
  for (const m of members) links.push(...randomGraph(m, spec.degree, random))
  for (let s = 0; s < sites; s++) {
    for (let t = s + 1; t < sites; t++) {
      for (let k = 0; k < spec.bridges; k++) {
        const a = members[s][randomInt(random, members[s].length)]
        const b = members[t][randomInt(random, members[t].length)]
        links.push([Math.min(a, b), Math.max(a, b)])
      }
    }
  }
  return { links: connectComponents(n, dedupe(links), random), site }
}

/**
 * A random graph over `peers` in which every peer has about `degree` links: peers, in random
 * order, link to random peers that still have room, so degrees stay close to `degree`.
 */
function randomGraph(peers: number[], degree: number, random: Random): [number, number][] {
  const d = Math.min(degree, peers.length - 1)
  const adj = new Map(peers.map(p => [p, new Set<number>()]))
  for (const p of shuffled(random, peers)) {
    const mine = adj.get(p)!
    if (mine.size >= d) continue
    const room = peers.filter(q => q !== p && !mine.has(q) && adj.get(q)!.size < d)
    for (const q of sample(random, room, d - mine.size)) {
      mine.add(q)
      adj.get(q)!.add(p)
    }
  }
  const links: [number, number][] = []
  for (const [p, qs] of adj) for (const q of qs) if (p < q) links.push([p, q])
  return links
}

/** Join the graph's connected components with one random link each, so every peer can reach every other. */
function connectComponents(n: number, links: [number, number][], random: Random): [number, number][] {
  const parent = Array.from({ length: n }, (_, i) => i)
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]]
      x = parent[x]
    }
    return x
  }
  for (const [a, b] of links) parent[find(a)] = find(b)
  const components = new Map<number, number[]>()
  for (let i = 0; i < n; i++) {
    const root = find(i)
    const members = components.get(root)
    if (members === undefined) components.set(root, [i])
    else members.push(i)
  }
  const groups = [...components.values()]
  const out = [...links]
  for (let g = 1; g < groups.length; g++) {
    const a = groups[g - 1][randomInt(random, groups[g - 1].length)]
    const b = groups[g][randomInt(random, groups[g].length)]
    out.push([Math.min(a, b), Math.max(a, b)])
  }
  return out
}

function dedupe(links: [number, number][]): [number, number][] {
  const seen = new Set<string>()
  return links.filter(([a, b]) => {
    const k = `${a}-${b}`
    if (a === b || seen.has(k)) return false
    seen.add(k)
    return true
  })
}

/** Each peer's neighbours. */
export function neighbours(n: number, links: [number, number][]): number[][] {
  const out = Array.from({ length: n }, () => [] as number[])
  for (const [a, b] of links) {
    out[a].push(b)
    out[b].push(a)
  }
  return out
}
