import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { fromHex, toHex } from '../../crypto/encoding.ts'
import { sha256 } from '../../crypto/hash.ts'
import {
  consistencyProof,
  consistencyProofFrom,
  consistencyProofNodeIds,
  emptyRoot,
  frontierNodeIds,
  HASH_SIZE,
  hashOfRange,
  inclusionProof,
  inclusionProofFrom,
  inclusionProofNodeIds,
  leafHash,
  MerkleFrontier,
  type NodeHashReader,
  nodeHash,
  rootFrom,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../../crypto/merkle.ts'

const VECTORS = join(import.meta.dirname, '..', 'vectors', 'rfc9162')

// The tree the vectors' happy paths are built over: LeafInputs() and RootHashes() of
// transparency-dev/merkle testonly/constants.go (RFC 6962 test data), roots indexed by size.
const LEAF_INPUTS = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(fromHex)
const ROOTS_BY_SIZE = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
]
const KAT_LEAVES = LEAF_INPUTS.map(leafHash)

/**
 * Vector cases where this verifier is deliberately stricter than transparency-dev/merkle,
 * which compares roots of any length when the sizes are equal: we accept only 32-byte hashes.
 */
const STRICTER_THAN_UPSTREAM: Record<string, string> = {
  'consistency/additional/sizes-are-equal-one-and-proof-is-empty.json': 'its equal roots are 12 bytes, not 32',
}

interface InclusionVector {
  leafIdx: number
  treeSize: number
  root: string
  leafHash: string
  proof: string[] | null
  desc: string
  wantErr: boolean
}

interface ConsistencyVector {
  size1: number
  size2: number
  root1: string
  root2: string
  proof: string[] | null
  desc: string
  wantErr: boolean
}

function vectorFiles(kind: 'inclusion' | 'consistency'): string[] {
  return readdirSync(join(VECTORS, kind), { recursive: true, encoding: 'utf8' })
    .filter(name => name.endsWith('.json'))
    .map(name => `${kind}/${name}`)
    .sort()
}

function readVector<T>(file: string): T {
  return JSON.parse(readFileSync(join(VECTORS, file), 'utf8')) as T
}

function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'))
}

const hex = (hashes: Uint8Array[]) => hashes.map(toHex)

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = new Uint8Array(bytes)
  copy[bit >> 3] ^= 1 << (bit & 7)
  return copy
}

function flipProofBit(proof: Uint8Array[], bit: number): Uint8Array[] {
  const k = Math.floor(bit / (HASH_SIZE * 8))
  return proof.map((p, i) => (i === k ? flipBit(p, bit % (HASH_SIZE * 8)) : p))
}

/** `verify` returns false for each case's arguments, passed as they are (wrong types too); the case's name says which failed. */
function assertEachFalse(verify: (...a: never[]) => boolean, cases: [string, unknown[]][]): void {
  for (const [name, args] of cases) {
    assert.equal((verify as (...a: unknown[]) => boolean)(...args), false, name)
  }
}

/** A copy of `proof` with no element at all (not even `undefined`) at index `hole`. */
function withHole(proof: Uint8Array[], hole: number): Uint8Array[] {
  const sparse: Uint8Array[] = new Array(proof.length)
  proof.forEach((p, i) => {
    if (i !== hole) sparse[i] = p
  })
  return sparse
}

function leavesOf(size: number, salt: number): Uint8Array[] {
  const utf8 = new TextEncoder()
  return Array.from({ length: size }, (_, i) => leafHash(utf8.encode(`${salt}/${i}`)))
}

// --- RFC 9162 §2.1 transcribed literally (recursive), as an oracle for the iterative code -----

function largestPowerOfTwoBelow(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

function rfcMth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return sha256()
  if (d.length === 1) return d[0]
  const k = largestPowerOfTwoBelow(d.length)
  return nodeHash(rfcMth(d.slice(0, k)), rfcMth(d.slice(k)))
}

function rfcPath(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length === 1) return []
  const k = largestPowerOfTwoBelow(d.length)
  return m < k
    ? [...rfcPath(m, d.slice(0, k)), rfcMth(d.slice(k))]
    : [...rfcPath(m - k, d.slice(k)), rfcMth(d.slice(0, k))]
}

function rfcSubproof(m: number, d: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === d.length) return b ? [] : [rfcMth(d)]
  const k = largestPowerOfTwoBelow(d.length)
  return m <= k
    ? [...rfcSubproof(m, d.slice(0, k), b), rfcMth(d.slice(k))]
    : [...rfcSubproof(m - k, d.slice(k), false), rfcMth(d.slice(0, k))]
}

/**
 * The shape of PATH(m, D[n]) from the RFC's recursion: per element, whether the sibling is to the
 * right (R) or left (L). Verification hashes exactly along this shape, so a proof also verifies
 * for another size with the same shape: the size is bound by the signed tree head, not the proof.
 */
function pathShape(m: number, n: number): string {
  if (n === 1) return ''
  const k = largestPowerOfTwoBelow(n)
  return m < k ? `${pathShape(m, k)}R` : `${pathShape(m - k, n - k)}L`
}

/** The shape of PROOF(m, D[n]): S for a leading old subtree, then R/L as for `pathShape`. */
function proofShape(m: number, n: number, b = true): string {
  if (m === n) return b ? '' : 'S'
  const k = largestPowerOfTwoBelow(n)
  return m <= k ? `${proofShape(m, k, b)}R` : `${proofShape(m - k, n - k, false)}L`
}

// --- a key-value store of perfect subtrees, filled by MerkleFrontier --------------------------

interface Store {
  read: NodeHashReader
  reads: () => number
  rootsBySize: Uint8Array[]
}

function storeOf(leafHashes: Uint8Array[]): Store {
  const nodes = new Map<string, Uint8Array>()
  const rootsBySize = [MerkleFrontier.empty().root()]
  let frontier = MerkleFrontier.empty()
  for (const leaf of leafHashes) {
    const next = frontier.append(leaf)
    for (const node of next.completed) {
      assert.equal(nodes.has(`${node.level}/${node.index}`), false, 'a stored subtree is never rewritten')
      nodes.set(`${node.level}/${node.index}`, node.hash)
    }
    frontier = next.frontier
    rootsBySize.push(frontier.root())
  }
  let reads = 0
  const read = async (level: number, index: number) => {
    reads += 1
    const hash = nodes.get(`${level}/${index}`)
    if (hash === undefined) throw new Error(`no stored node (${level}, ${index})`)
    return hash
  }
  return { read, reads: () => reads, rootsBySize }
}

/** A tree of `size` identical leaves, of any size up to 2^53 - 1: a perfect subtree's hash depends only on its level. */
function uniformTree(): NodeHashReader {
  const byLevel = [leafHash(new Uint8Array([7]))]
  for (let l = 1; l <= 53; l++) byLevel.push(nodeHash(byLevel[l - 1], byLevel[l - 1]))
  return (level: number) => byLevel[level]
}

// -----------------------------------------------------------------------------------------------

describe('RFC 9162 hashing', () => {
  it('hashes leaves, nodes and the empty tree with their prefixes', () => {
    const a = new Uint8Array([1, 2, 3])
    const b = new Uint8Array(HASH_SIZE).fill(9)
    assert.deepEqual(leafHash(a), sha256(new Uint8Array([0, 1, 2, 3])))
    assert.deepEqual(nodeHash(b, a), sha256(new Uint8Array([1]), b, a))
    assert.equal(toHex(emptyRoot()), ROOTS_BY_SIZE[0])
    assert.notEqual(emptyRoot(), emptyRoot(), 'a fresh copy, so a caller cannot corrupt a shared constant')
  })

  it('gives the known roots of the RFC 6962 test tree for every size 0..8', () => {
    for (let size = 0; size <= 8; size++) {
      assert.equal(toHex(rootFromLeafHashes(KAT_LEAVES.slice(0, size))), ROOTS_BY_SIZE[size], `size ${size}`)
    }
  })

  it('matches the recursive RFC definitions of MTH, PATH and PROOF for every size 1..33', () => {
    const leaves = leavesOf(33, 1)
    for (let n = 1; n <= leaves.length; n++) {
      const d = leaves.slice(0, n)
      assert.deepEqual(hex([rootFromLeafHashes(d)]), hex([rfcMth(d)]), `MTH of ${n}`)
      for (let m = 0; m < n; m++) assert.deepEqual(hex(inclusionProof(d, m)), hex(rfcPath(m, d)), `PATH(${m}, ${n})`)
      for (let m = 1; m <= n; m++) {
        assert.deepEqual(hex(consistencyProof(d, m)), hex(rfcSubproof(m, d, true)), `PROOF(${m}, ${n})`)
      }
    }
  })

  it('refuses to build proofs outside the tree', () => {
    const leaves = leavesOf(5, 2)
    for (const index of [-1, 5, 6, 1.5, Number.NaN]) {
      assert.throws(() => inclusionProof(leaves, index), { name: 'RangeError' })
      assert.throws(() => inclusionProofNodeIds(index, 5), { name: 'RangeError' })
    }
    assert.throws(() => inclusionProof([], 0), { name: 'RangeError' })
    for (const oldSize of [0, -1, 6, 2.5]) {
      assert.throws(() => consistencyProof(leaves, oldSize), { name: 'RangeError' })
      assert.throws(() => consistencyProofNodeIds(oldSize, 5), { name: 'RangeError' })
    }
    assert.deepEqual(consistencyProof(leaves, 5), [])
  })
})

describe('RFC 9162 vectors (test/vectors/rfc9162)', () => {
  const inclusionFiles = vectorFiles('inclusion')
  const consistencyFiles = vectorFiles('consistency')

  it('has the expected vector layout', () => {
    assert.equal(inclusionFiles.length, 98)
    assert.equal(consistencyFiles.length, 98)
    for (const dir of ['additional/', 'single-entry/']) {
      assert.ok(
        inclusionFiles.some(f => f.startsWith(`inclusion/${dir}`)),
        `inclusion/${dir}`,
      )
    }
    assert.ok(consistencyFiles.some(f => f.startsWith('consistency/additional/')))
  })

  describe('inclusion', () => {
    for (const file of inclusionFiles) {
      const v = readVector<InclusionVector>(file)
      it(`${file}: ${v.desc} (${v.wantErr ? 'rejected' : 'verifies'})`, () => {
        const proof = (v.proof ?? []).map(fromBase64)
        const isValid = verifyInclusion(fromBase64(v.leafHash), v.leafIdx, v.treeSize, proof, fromBase64(v.root))
        assert.equal(isValid, !v.wantErr)
      })
    }
  })

  describe('consistency', () => {
    for (const file of consistencyFiles) {
      const v = readVector<ConsistencyVector>(file)
      const stricter = STRICTER_THAN_UPSTREAM[file]
      const title = `${file}: ${v.desc} (${v.wantErr || stricter ? 'rejected' : 'verifies'})`
      it(stricter ? `${title}, stricter than upstream: ${stricter}` : title, () => {
        const proof = (v.proof ?? []).map(fromBase64)
        const isValid = verifyConsistency(v.size1, v.size2, fromBase64(v.root1), fromBase64(v.root2), proof)
        if (stricter) assert.equal(v.wantErr, false, 'upstream accepts this case')
        assert.equal(isValid, !v.wantErr && !stricter)
      })
    }
  })

  it('equal sizes with equal 32-byte roots and no proof verify (the stricter case done right)', () => {
    const root = rootFromLeafHashes(KAT_LEAVES.slice(0, 1))
    assert.equal(verifyConsistency(1, 1, root, root, []), true)
    assert.equal(verifyConsistency(1, 1, root, new Uint8Array(12), []), false)
  })

  it('regenerates every happy-path proof over the RFC 6962 test tree, from the list and from a store', async () => {
    const store = storeOf(KAT_LEAVES)
    let checked = 0
    for (const file of inclusionFiles.filter(f => /^inclusion\/\d+\/happy-path\.json$/.test(f))) {
      const v = readVector<InclusionVector>(file)
      const leaves = KAT_LEAVES.slice(0, v.treeSize)
      const want = hex((v.proof ?? []).map(fromBase64))
      assert.equal(toHex(fromBase64(v.leafHash)), toHex(KAT_LEAVES[v.leafIdx]), file)
      assert.equal(toHex(fromBase64(v.root)), toHex(rootFromLeafHashes(leaves)), file)
      assert.deepEqual(hex(inclusionProof(leaves, v.leafIdx)), want, file)
      assert.deepEqual(hex(await inclusionProofFrom(store.read, v.leafIdx, v.treeSize)), want, file)
      checked += 1
    }
    for (const file of consistencyFiles.filter(f => /^consistency\/\d+\/happy-path\.json$/.test(f))) {
      const v = readVector<ConsistencyVector>(file)
      const want = hex((v.proof ?? []).map(fromBase64))
      assert.equal(toHex(fromBase64(v.root1)), ROOTS_BY_SIZE[v.size1], file)
      assert.equal(toHex(fromBase64(v.root2)), ROOTS_BY_SIZE[v.size2], file)
      assert.deepEqual(hex(consistencyProof(KAT_LEAVES.slice(0, v.size2), v.size1)), want, file)
      assert.deepEqual(hex(await consistencyProofFrom(store.read, v.size1, v.size2)), want, file)
      checked += 1
    }
    assert.ok(checked >= 10, `${checked} happy paths regenerated`)
  })
})

describe('verifyInclusion', () => {
  it('rejects malformed input with false, never an exception', () => {
    const leaves = leavesOf(6, 3)
    const root = rootFromLeafHashes(leaves)
    const proof = inclusionProof(leaves, 4)
    assert.equal(verifyInclusion(leaves[4], 4, 6, proof, root), true)
    const cases: [string, unknown[]][] = [
      ['index equal to size', [leaves[4], 6, 6, proof, root]],
      ['negative index', [leaves[4], -1, 6, proof, root]],
      ['fractional index', [leaves[4], 4.5, 6, proof, root]],
      ['NaN size', [leaves[4], 4, Number.NaN, proof, root]],
      ['size zero', [leaves[4], 0, 0, [], root]],
      ['unsafe size', [leaves[4], 4, 2 ** 53, proof, root]],
      ['index as a string', [leaves[4], '4', 6, proof, root]],
      ['31-byte leaf', [leaves[4].subarray(1), 4, 6, proof, root]],
      ['33-byte root', [leaves[4], 4, 6, proof, new Uint8Array([...root, 0])]],
      ['short proof element', [leaves[4], 4, 6, [proof[0].subarray(0, 31), ...proof.slice(1)], root]],
      ['proof element not bytes', [leaves[4], 4, 6, [hex(proof)[0], ...proof.slice(1)], root]],
      ['sparse proof', [leaves[4], 4, 6, withHole(proof, 1), root]],
      ['proof not an array', [leaves[4], 4, 6, proof[0], root]],
      ['proof of 65 hashes', [leaves[4], 4, 6, Array(65).fill(proof[0]), root]],
      ['root missing', [leaves[4], 4, 6, proof, undefined]],
    ]
    assertEachFalse(verifyInclusion, cases)
  })

  it('rejects every single-bit change of the proof, the leaf and the root (all bits, trees of 1..7)', () => {
    for (let n = 1; n <= 7; n++) {
      const leaves = leavesOf(n, 4)
      const root = rootFromLeafHashes(leaves)
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(leaves, i)
        assert.equal(verifyInclusion(leaves[i], i, n, proof, root), true)
        for (let bit = 0; bit < proof.length * HASH_SIZE * 8; bit++) {
          assert.equal(verifyInclusion(leaves[i], i, n, flipProofBit(proof, bit), root), false)
        }
        for (let bit = 0; bit < HASH_SIZE * 8; bit++) {
          assert.equal(verifyInclusion(flipBit(leaves[i], bit), i, n, proof, root), false)
          assert.equal(verifyInclusion(leaves[i], i, n, proof, flipBit(root, bit)), false)
        }
      }
    }
  })

  it('property: every proof verifies; a changed bit, index, size or length fails unless the size keeps the shape', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.nat(), fc.nat(), fc.nat(), (n, a, bit, salt) => {
        const leaves = leavesOf(n, salt)
        const root = rootFromLeafHashes(leaves)
        const i = a % n
        const leaf = leaves[i]
        const proof = inclusionProof(leaves, i)
        assert.equal(verifyInclusion(leaf, i, n, proof, root), true)
        if (proof.length > 0) {
          const flipped = flipProofBit(proof, bit % (proof.length * HASH_SIZE * 8))
          assert.equal(verifyInclusion(leaf, i, n, flipped, root), false)
          assert.equal(verifyInclusion(leaf, i, n, proof.slice(1), root), false)
          assert.equal(verifyInclusion(leaf, i, n, proof.slice(0, -1), root), false)
        }
        assert.equal(verifyInclusion(flipBit(leaf, bit % 256), i, n, proof, root), false)
        assert.equal(verifyInclusion(leaf, i, n, proof, flipBit(root, bit % 256)), false)
        assert.equal(verifyInclusion(leaf, i, n, [...proof, root], root), false)
        assert.equal(verifyInclusion(leaf, i, n, [leaf, ...proof], root), false)
        for (let j = 0; j <= n + 1; j++) {
          if (j !== i) assert.equal(verifyInclusion(leaf, j, n, proof, root), false, `index ${j} for ${i}`)
        }
        for (let size = 0; size <= 2 * n + 1; size++) {
          if (size === n) continue
          const isSameShape = i < size && pathShape(i, size) === pathShape(i, n)
          assert.equal(verifyInclusion(leaf, i, size, proof, root), isSameShape, `size ${size} for ${n}`)
        }
      }),
      { numRuns: 40 },
    )
  })
})

describe('verifyConsistency', () => {
  it('rejects malformed input with false, never an exception', () => {
    const leaves = leavesOf(7, 5)
    const oldRoot = rootFromLeafHashes(leaves.slice(0, 3))
    const newRoot = rootFromLeafHashes(leaves)
    const proof = consistencyProof(leaves, 3)
    assert.equal(verifyConsistency(3, 7, oldRoot, newRoot, proof), true)
    const empty = emptyRoot()
    const cases: [string, unknown[]][] = [
      ['old size zero', [0, 7, empty, newRoot, proof]],
      ['both sizes zero, empty roots', [0, 0, empty, empty, []]],
      ['old size above new size', [7, 3, newRoot, oldRoot, proof]],
      ['negative size', [-3, 7, oldRoot, newRoot, proof]],
      ['fractional size', [3, 7.5, oldRoot, newRoot, proof]],
      ['unsafe size', [3, 2 ** 53, oldRoot, newRoot, proof]],
      ['equal sizes, non-empty proof', [7, 7, newRoot, newRoot, [newRoot]]],
      ['equal sizes, different roots', [7, 7, oldRoot, newRoot, []]],
      ['empty proof', [3, 7, oldRoot, newRoot, []]],
      ['31-byte old root', [3, 7, oldRoot.subarray(1), newRoot, proof]],
      ['empty new root', [3, 7, oldRoot, new Uint8Array(0), proof]],
      ['proof element of 33 bytes', [3, 7, oldRoot, newRoot, [new Uint8Array([...proof[0], 1]), ...proof.slice(1)]]],
      ['sparse proof', [3, 7, oldRoot, newRoot, withHole(proof, 1)]],
      ['proof not an array', [3, 7, oldRoot, newRoot, null]],
      ['proof of 65 hashes', [3, 7, oldRoot, newRoot, Array(65).fill(proof[0])]],
    ]
    assertEachFalse(verifyConsistency, cases)
  })

  it('rejects every single-bit change of the proof and of both roots (all bits, trees of 1..7)', () => {
    for (let n = 1; n <= 7; n++) {
      const leaves = leavesOf(n, 6)
      const newRoot = rootFromLeafHashes(leaves)
      for (let m = 1; m <= n; m++) {
        const oldRoot = rootFromLeafHashes(leaves.slice(0, m))
        const proof = consistencyProof(leaves, m)
        assert.equal(verifyConsistency(m, n, oldRoot, newRoot, proof), true)
        for (let bit = 0; bit < proof.length * HASH_SIZE * 8; bit++) {
          assert.equal(verifyConsistency(m, n, oldRoot, newRoot, flipProofBit(proof, bit)), false)
        }
        for (let bit = 0; bit < HASH_SIZE * 8; bit++) {
          assert.equal(verifyConsistency(m, n, flipBit(oldRoot, bit), newRoot, proof), false)
          assert.equal(verifyConsistency(m, n, oldRoot, flipBit(newRoot, bit), proof), false)
        }
      }
    }
  })

  it('property: every proof verifies; a changed bit, size or length fails unless the sizes keep the shape', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.nat(), fc.nat(), fc.nat(), (n, a, bit, salt) => {
        const leaves = leavesOf(n, salt)
        const m = 1 + (a % n)
        const oldRoot = rootFromLeafHashes(leaves.slice(0, m))
        const newRoot = rootFromLeafHashes(leaves)
        const proof = consistencyProof(leaves, m)
        assert.equal(verifyConsistency(m, n, oldRoot, newRoot, proof), true)
        if (proof.length > 0) {
          const flipped = flipProofBit(proof, bit % (proof.length * HASH_SIZE * 8))
          assert.equal(verifyConsistency(m, n, oldRoot, newRoot, flipped), false)
          assert.equal(verifyConsistency(m, n, oldRoot, newRoot, proof.slice(1)), false)
          assert.equal(verifyConsistency(m, n, oldRoot, newRoot, proof.slice(0, -1)), false)
          assert.equal(verifyConsistency(m, n, newRoot, oldRoot, proof), false)
        }
        assert.equal(verifyConsistency(m, n, flipBit(oldRoot, bit % 256), newRoot, proof), false)
        assert.equal(verifyConsistency(m, n, oldRoot, flipBit(newRoot, bit % 256), proof), false)
        assert.equal(verifyConsistency(m, n, oldRoot, newRoot, [...proof, newRoot]), false)
        assert.equal(verifyConsistency(m, n, oldRoot, newRoot, [oldRoot, ...proof]), false)
        const expectFor = (m2: number, n2: number) => 1 <= m2 && m2 <= n2 && proofShape(m2, n2) === proofShape(m, n)
        for (let m2 = 0; m2 <= n + 1; m2++) {
          if (m2 === m) continue
          assert.equal(verifyConsistency(m2, n, oldRoot, newRoot, proof), expectFor(m2, n), `old size ${m2} for ${m}`)
        }
        for (let n2 = 0; n2 <= 2 * n + 1; n2++) {
          if (n2 === n) continue
          assert.equal(verifyConsistency(m, n2, oldRoot, newRoot, proof), expectFor(m, n2), `new size ${n2} for ${n}`)
        }
      }),
      { numRuns: 40 },
    )
  })
})

describe('MerkleFrontier and proofs from stored subtrees', () => {
  it('property: agrees with the list functions for every size, index and old size (trees of 1..300)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), fc.nat(), async (n, a, b, salt) => {
        const leaves = leavesOf(n, salt)
        const store = storeOf(leaves)
        assert.equal(toHex(store.rootsBySize[n]), toHex(rootFromLeafHashes(leaves)))
        for (let size = 0; size <= n; size++) {
          assert.equal(toHex(await rootFrom(store.read, size)), toHex(store.rootsBySize[size]), `root of ${size}`)
        }
        for (let i = 0; i < n; i++) {
          const proof = await inclusionProofFrom(store.read, i, n)
          assert.deepEqual(hex(proof), hex(inclusionProof(leaves, i)), `inclusion of ${i} in ${n}`)
        }
        for (let m = 1; m <= n; m++) {
          const proof = await consistencyProofFrom(store.read, m, n)
          assert.deepEqual(hex(proof), hex(consistencyProof(leaves, m)), `consistency of ${m} with ${n}`)
        }
        // an earlier size: its proofs must ignore the subtrees stored since
        const size = 1 + (a % n)
        const prefix = leaves.slice(0, size)
        assert.equal(toHex(store.rootsBySize[size]), toHex(rootFromLeafHashes(prefix)))
        const i = b % size
        assert.deepEqual(hex(await inclusionProofFrom(store.read, i, size)), hex(inclusionProof(prefix, i)))
        const m = 1 + (b % size)
        assert.deepEqual(hex(await consistencyProofFrom(store.read, m, size)), hex(consistencyProof(prefix, m)))
      }),
      { numRuns: 3, examples: [[300, 122, 77, 0]] },
    )
  })

  it('property: reads O(log n) stored subtrees, all perfect and inside the tree, for sizes up to 2^53 - 1', () => {
    const bitLength = (n: number) => n.toString(2).length
    const isInside = (size: number) => (id: { level: number; index: number }) =>
      Number.isSafeInteger(id.index) && id.index >= 0 && (id.index + 1) * 2 ** id.level <= size
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.maxSafeNat(), fc.maxSafeNat(), (x, y, z) => {
        const n = Math.max(1, x)
        const index = y % n
        const oldSize = 1 + (z % n)
        const frontier = frontierNodeIds(n)
        assert.ok(frontier.length <= bitLength(n) && frontier.every(isInside(n)))
        const inclusion = inclusionProofNodeIds(index, n)
        assert.equal(inclusion.length, pathShape(index, n).length)
        assert.ok(inclusion.flat().length <= 2 * bitLength(n))
        assert.ok(inclusion.flat().every(isInside(n)))
        assert.ok(inclusion.filter(ids => ids.length > 1).length <= 1, 'one element at most is not perfect')
        const consistency = consistencyProofNodeIds(oldSize, n)
        assert.equal(consistency.length, proofShape(oldSize, n).length)
        assert.ok(consistency.flat().length <= 2 * bitLength(n) + 1)
        assert.ok(consistency.flat().every(isInside(n)))
      }),
      { numRuns: 300 },
    )
  })

  it('proves and verifies in trees beyond 2^32 leaves, where 32-bit arithmetic would break', async () => {
    const read = uniformTree()
    const sizes = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]
    for (const n of sizes) {
      const root = await rootFrom(read, n)
      const leaf = await read(0, 0)
      for (const i of [0, 1, 2 ** 31, 2 ** 32 - 2, Math.floor(n / 2), n - 2, n - 1]) {
        const proof = await inclusionProofFrom(read, i, n)
        assert.equal(verifyInclusion(leaf, i, n, proof, root), true, `leaf ${i} of ${n}`)
        assert.equal(verifyInclusion(leaf, i, n, proof.slice(1), root), false)
      }
      for (const m of [1, 2, 3, 2 ** 31 + 7, 2 ** 32 - 1, 2 ** 32, n - 1, n].filter(m => m <= n)) {
        const oldRoot = await rootFrom(read, m)
        const proof = await consistencyProofFrom(read, m, n)
        assert.equal(verifyConsistency(m, n, oldRoot, root, proof), true, `${m} to ${n}`)
        if (m < n) assert.equal(verifyConsistency(m, n, root, oldRoot, proof), false)
      }
      if (n < Number.MAX_SAFE_INTEGER) {
        const hashes = await Promise.all(frontierNodeIds(n).map(id => read(id.level, id.index)))
        const { frontier } = MerkleFrontier.fromHashes(n, hashes).append(leaf)
        assert.equal(toHex(frontier.root()), toHex(await rootFrom(read, n + 1)), `append to ${n}`)
      }
    }
  })

  it('needs about 2 log2 n reads per proof in a store of a million entries', async () => {
    const n = 1_000_000
    let reads = 0
    const read = uniformTree()
    const counting: NodeHashReader = (level, index) => {
      reads += 1
      return read(level, index)
    }
    await rootFrom(counting, n)
    assert.ok(reads <= 20, `${reads} reads for the root`)
    for (const i of [0, 123_456, 999_999]) {
      reads = 0
      await inclusionProofFrom(counting, i, n)
      assert.ok(reads <= 40, `${reads} reads for leaf ${i}`)
    }
    reads = 0
    await consistencyProofFrom(counting, 777_777, n)
    assert.ok(reads <= 41, `${reads} reads for a consistency proof`)
  })

  it('restores from stored subtrees, appends as a value and reports what each append completes', () => {
    const leaves = leavesOf(23, 7)
    let frontier = MerkleFrontier.empty()
    for (let size = 0; size < leaves.length; size++) {
      const before = frontier
      const { frontier: after, completed } = frontier.append(leaves[size])
      assert.equal(before.size, size, 'append leaves the old frontier as it was')
      assert.equal(after.size, size + 1)
      const trailingOnes = size.toString(2).length - size.toString(2).replace(/1+$/, '').length
      assert.equal(completed.length, 1 + trailingOnes)
      assert.deepEqual(completed[0], { level: 0, index: size, hash: leaves[size] })
      assert.deepEqual(
        completed.map(node => [node.level, node.index]),
        completed.map((_, level) => [level, Math.floor(size / 2 ** level)]),
      )
      assert.equal(toHex(after.root()), toHex(rootFromLeafHashes(leaves.slice(0, size + 1))))
      assert.equal(after.hashes.length, frontierNodeIds(size + 1).length)
      const restored = MerkleFrontier.fromHashes(after.size, after.hashes)
      assert.equal(toHex(restored.root()), toHex(after.root()))
      frontier = after
    }
    assert.equal(toHex(MerkleFrontier.empty().root()), ROOTS_BY_SIZE[0])
    assert.equal(toHex(hashOfRange([])), ROOTS_BY_SIZE[0])
  })

  it('refuses a frontier that does not match its size, and a leaf hash of the wrong length', () => {
    const h = leafHash(new Uint8Array([1]))
    assert.throws(() => MerkleFrontier.fromHashes(3, [h]), { name: 'RangeError' })
    assert.throws(() => MerkleFrontier.fromHashes(2, [h, h]), { name: 'RangeError' })
    assert.throws(() => MerkleFrontier.fromHashes(1, [h.subarray(1)]), { name: 'RangeError' })
    assert.throws(() => MerkleFrontier.fromHashes(-1, []), { name: 'RangeError' })
    assert.throws(() => MerkleFrontier.empty().append(new Uint8Array(31)), { name: 'RangeError' })
    assert.equal(MerkleFrontier.fromHashes(3, [h, h]).size, 3)
  })

  it('fails loudly when the store returns something that is not a hash', async () => {
    await assert.rejects(
      inclusionProofFrom(() => new Uint8Array(5), 3, 10),
      { name: 'TypeError' },
    )
  })
})
