/**
 * Merkle tree hashing and proofs of RFC 9162 §2.1 (Certificate Transparency v2; the same tree
 * as RFC 6962), with SHA-256: leaf = H(0x00 || entry), node = H(0x01 || left || right), and the
 * empty tree hashes to H("").
 *
 * Guarantees: no clock, no I/O and no randomness here; the `*From` helpers only call the reader
 * they are given. `verifyInclusion` and `verifyConsistency` never throw: they return false for
 * any malformed input (sizes that are not safe non-negative integers or out of range, hashes
 * that are not 32 bytes, a proof of the wrong length) and compare the final hash in constant
 * time. Proof generators throw `RangeError` for
 * an index or size outside the tree, which is a caller bug, not a refusal.
 *
 * Two ways to build proofs:
 * - from the whole list of leaf hashes (`rootFromLeafHashes`, `inclusionProof`,
 *   `consistencyProof`): O(n) time and memory, for small trees and tests;
 * - from a store of perfect subtree hashes addressed by (level, index), for a log too big to
 *   hold in memory: `MerkleFrontier` appends leaves in O(log n) and hands back every subtree it
 *   completes, for the caller to store; `rootFrom`, `inclusionProofFrom` and
 *   `consistencyProofFrom` then read O(log n) of those subtrees each.
 *
 * Assumes: sizes and indexes are below 2^53 (JavaScript safe integers); larger ones are refused.
 * A proof binds the tree size only through its shape, so a verifier must take the size from the
 * same signed tree head as the root, never from the prover.
 */
import { constantTimeEqual, sha256 } from './hash.ts'

/** Byte length of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32

/** Longer than any proof for a tree of fewer than 2^53 leaves; longer proofs are refused unread. */
const MAX_PROOF_LENGTH = 64

const LEAF_PREFIX = new Uint8Array([0x00])
const NODE_PREFIX = new Uint8Array([0x01])

/** Hash of one log entry: SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256(LEAF_PREFIX, entry)
}

/** Hash of an interior node: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(NODE_PREFIX, left, right)
}

/** Root of the empty tree: SHA-256 of the empty string (a fresh copy on every call). */
export function emptyRoot(): Uint8Array {
  return sha256()
}

/**
 * MTH(D[n]): the root of the tree whose leaves have these hashes, in O(n) time, without
 * recursion. An unpaired last node moves up a level unchanged, which builds exactly the RFC's
 * split at the largest power of two below n.
 */
export function rootFromLeafHashes(leafHashes: Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return emptyRoot()
  let level = leafHashes
  while (level.length > 1) level = parentLevel(level)
  return level[0]
}

/**
 * PATH(index, D[n]) of RFC 9162 §2.1.3.1: the inclusion proof of leaf `index`, ordered from the
 * leaf's sibling up to the child of the root.
 * @throws RangeError unless 0 <= index < leafHashes.length
 */
export function inclusionProof(leafHashes: Uint8Array[], index: number): Uint8Array[] {
  if (!isSize(index) || index >= leafHashes.length) {
    throw new RangeError(`leaf index ${index} is outside a tree of size ${leafHashes.length}`)
  }
  return pathFrom(treeLevels(leafHashes), 0, index)
}

/**
 * PROOF(oldSize, D[n]) of RFC 9162 §2.1.4.1: proves that the tree of the first `oldSize` leaves
 * is a prefix of the whole tree. Empty when oldSize equals the tree size.
 * @throws RangeError unless 0 < oldSize <= leafHashes.length
 */
export function consistencyProof(leafHashes: Uint8Array[], oldSize: number): Uint8Array[] {
  if (!isSize(oldSize) || oldSize === 0 || oldSize > leafHashes.length) {
    throw new RangeError(`old size ${oldSize} is not within 1..${leafHashes.length}`)
  }
  if (oldSize === leafHashes.length) return []
  const levels = treeLevels(leafHashes)
  const { level, index } = lastFullSubtree(oldSize)
  const seed = oldSize === 2 ** level ? [] : [levels[level][index]]
  return [...seed, ...pathFrom(levels, level, index)]
}

/**
 * Verifies an inclusion proof as RFC 9162 §2.1.3.2 specifies: true only if `proof` is exactly
 * the path that leads from `leafHash` at `index` to `root` in a tree of `treeSize` leaves.
 * Returns false, never throws, on malformed input.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(leafHash) || !isHash(root) || !isHashList(proof)) return false
  if (!isSize(index) || !isSize(treeSize) || index >= treeSize) return false
  let r = leafHash
  const isAtRoot = walkPath(index, treeSize - 1, proof, 0, (p, isLeft) => {
    r = isLeft ? nodeHash(p, r) : nodeHash(r, p)
  })
  const isRootEqual = constantTimeEqual(r, root)
  return isAtRoot && isRootEqual
}

/**
 * Verifies a consistency proof as RFC 9162 §2.1.4.2 specifies: true only if the tree of
 * `oldSize` leaves with root `oldRoot` is a prefix of the tree of `newSize` leaves with root
 * `newRoot`. Equal sizes need an empty proof and equal roots. A proof from the empty tree proves
 * nothing (every tree extends it), so `oldSize` 0 is refused. Returns false, never throws, on
 * malformed input.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: Uint8Array[],
): boolean {
  if (!isHash(oldRoot) || !isHash(newRoot) || !isHashList(proof)) return false
  if (!isSize(oldSize) || !isSize(newSize) || oldSize === 0 || newSize < oldSize) return false
  if (oldSize === newSize) {
    const isRootEqual = constantTimeEqual(oldRoot, newRoot)
    return proof.length === 0 && isRootEqual
  }
  if (proof.length === 0) return false
  // a power-of-two old tree is a whole subtree of the new one: its root starts the path
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof
  let fn = oldSize - 1
  let sn = newSize - 1
  while (isOdd(fn)) {
    fn = half(fn)
    sn = half(sn)
  }
  let fr = path[0]
  let sr = path[0]
  const isAtRoot = walkPath(fn, sn, path, 1, (c, isLeft) => {
    if (isLeft) fr = nodeHash(c, fr)
    sr = isLeft ? nodeHash(c, sr) : nodeHash(sr, c)
  })
  const isOldRootEqual = constantTimeEqual(fr, oldRoot)
  const isNewRootEqual = constantTimeEqual(sr, newRoot)
  return isAtRoot && isOldRootEqual && isNewRootEqual
}

/**
 * The walk up the tree that both verifications of RFC 9162 (§2.1.3.2, §2.1.4.2) make, from node
 * `fn` of a tree whose last node is `sn`: hands `fold` each hash of `path` from `from` on, with
 * whether it is the left sibling, and returns whether the path ends exactly at the root.
 */
function walkPath(
  fn: number,
  sn: number,
  path: Uint8Array[],
  from: number,
  fold: (sibling: Uint8Array, isLeft: boolean) => void,
): boolean {
  for (let k = from; k < path.length; k++) {
    if (sn === 0) return false
    const isLeft = isOdd(fn) || fn === sn
    fold(path[k], isLeft)
    if (isLeft) {
      // on the right border a node may have no sibling for several levels: climb past them
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn)
        sn = half(sn)
      }
    }
    fn = half(fn)
    sn = half(sn)
  }
  return sn === 0
}

// ---------------------------------------------------------------------------------------------
// Storage-backed trees: perfect subtrees addressed by (level, index)

/**
 * Address of a perfect subtree: the 2^level leaves [index * 2^level, (index + 1) * 2^level).
 * Level 0 holds the leaf hashes. Once complete, a perfect subtree never changes, so a store of
 * them is append-only and a proof for size n reads only subtrees completed by size n, which
 * later appends cannot disturb.
 */
export interface NodeId {
  level: number
  index: number
}

/** A perfect subtree and its hash, as `MerkleFrontier.append` hands it over for storage. */
export interface StoredNode extends NodeId {
  hash: Uint8Array
}

/**
 * Reads the hash of a stored perfect subtree (for example one key-value `get` of
 * `level/index`). It must return the 32-byte hash stored for that node or throw.
 */
export type NodeHashReader = (level: number, index: number) => Uint8Array | Promise<Uint8Array>

/**
 * The right edge of a growing tree: the hashes of the perfect subtrees that cover leaves
 * [0, size), largest (leftmost) first, one per set bit of `size`. It is a value: `append`
 * returns a new frontier, so a caller can write the completed subtrees and the new frontier in
 * one atomic batch and adopt the frontier only once the batch is stored.
 *
 * To restart from a store, read `frontierNodeIds(size)` and pass the hashes to `fromHashes`.
 */
export class MerkleFrontier {
  /** Number of leaves appended so far. */
  readonly size: number
  /** Hashes of the perfect subtrees listed by `frontierNodeIds(size)`, in that order. */
  readonly hashes: readonly Uint8Array[]

  private constructor(size: number, hashes: readonly Uint8Array[]) {
    this.size = size
    this.hashes = hashes
  }

  /** The frontier of the empty tree. */
  static empty(): MerkleFrontier {
    return new MerkleFrontier(0, [])
  }

  /**
   * Restores a frontier from the hashes of `frontierNodeIds(size)`, in that order.
   * @throws RangeError if the size is not a safe non-negative integer, or the hashes are not
   * 32-byte values, one per set bit of `size`
   */
  static fromHashes(size: number, hashes: readonly Uint8Array[]): MerkleFrontier {
    if (!isSize(size)) throw new RangeError(`tree size ${size} is not a safe non-negative integer`)
    const expected = frontierNodeIds(size).length
    if (hashes.length !== expected || !isHashList(hashes)) {
      throw new RangeError(`a tree of size ${size} needs exactly ${expected} hashes of ${HASH_SIZE} bytes`)
    }
    return new MerkleFrontier(size, [...hashes])
  }

  /**
   * Appends one leaf in O(log n). `completed` lists every perfect subtree this leaf completes,
   * the leaf itself first and then each new parent up the right edge; storing all of them keeps
   * the store able to answer `rootFrom`, `inclusionProofFrom` and `consistencyProofFrom`.
   * @throws RangeError if `leafHash` is not 32 bytes or the tree is full (2^53 - 1 leaves)
   */
  append(leafHash: Uint8Array): { frontier: MerkleFrontier; completed: StoredNode[] } {
    if (!isHash(leafHash)) throw new RangeError(`leaf hash must be ${HASH_SIZE} bytes`)
    if (this.size >= Number.MAX_SAFE_INTEGER) throw new RangeError('tree is full')
    const hashes = [...this.hashes]
    let hash = leafHash
    let level = 0
    let index = this.size
    const completed: StoredNode[] = [{ level, index, hash }]
    // each trailing one bit of the old size is a same-level subtree to the left: merge with it
    for (let rest = this.size; isOdd(rest); rest = half(rest)) {
      hash = nodeHash(hashes.pop()!, hash)
      level += 1
      index = half(index)
      completed.push({ level, index, hash })
    }
    hashes.push(hash)
    return { frontier: new MerkleFrontier(this.size + 1, hashes), completed }
  }

  /** MTH of the leaves appended so far, in O(log n). */
  root(): Uint8Array {
    return hashOfRange(this.hashes)
  }
}

/**
 * Perfect subtrees covering leaves [0, treeSize), largest first: what a frontier holds and
 * what `rootFrom` reads.
 * @throws RangeError if the size is not a safe non-negative integer
 */
export function frontierNodeIds(treeSize: number): NodeId[] {
  if (!isSize(treeSize)) throw new RangeError(`tree size ${treeSize} is not a safe non-negative integer`)
  return rangeNodeIds(0, treeSize)
}

/**
 * Which stored subtrees make up PATH(index, D[treeSize]): one list per proof element, each the
 * perfect subtrees (left to right) that cover that element's leaves; `hashOfRange` of their
 * hashes is the element. At most one element is not itself perfect (the one that holds the last
 * leaf), so the whole proof needs at most 2 * bitLength(treeSize) reads. Lets a caller batch the reads
 * itself; `inclusionProofFrom` does it with a reader.
 * @throws RangeError unless 0 <= index < treeSize
 */
export function inclusionProofNodeIds(index: number, treeSize: number): NodeId[][] {
  if (!isSize(treeSize) || !isSize(index) || index >= treeSize) {
    throw new RangeError(`leaf index ${index} is outside a tree of size ${treeSize}`)
  }
  return pathNodeIds(0, index, treeSize)
}

/**
 * Which stored subtrees make up PROOF(oldSize, D[newSize]), in the form of
 * `inclusionProofNodeIds`; at most 2 * bitLength(newSize) + 1 reads.
 * @throws RangeError unless 0 < oldSize <= newSize
 */
export function consistencyProofNodeIds(oldSize: number, newSize: number): NodeId[][] {
  if (!isSize(newSize) || !isSize(oldSize) || oldSize === 0 || oldSize > newSize) {
    throw new RangeError(`old size ${oldSize} is not within 1..${newSize}`)
  }
  if (oldSize === newSize) return []
  const { level, index } = lastFullSubtree(oldSize)
  const seed = oldSize === 2 ** level ? [] : [[{ level, index }]]
  return [...seed, ...pathNodeIds(level, index, newSize)]
}

/**
 * MTH of a range of leaves from the hashes of the perfect subtrees that cover it, left to right
 * (largest first), as the `*NodeIds` functions list them. The empty range hashes to `emptyRoot()`.
 */
export function hashOfRange(subtreeHashes: readonly Uint8Array[]): Uint8Array {
  if (subtreeHashes.length === 0) return emptyRoot()
  let hash = subtreeHashes[subtreeHashes.length - 1]
  for (let i = subtreeHashes.length - 2; i >= 0; i--) hash = nodeHash(subtreeHashes[i], hash)
  return hash
}

/** MTH(D[treeSize]) from a store of perfect subtrees: one read per set bit of `treeSize`. */
export async function rootFrom(readNode: NodeHashReader, treeSize: number): Promise<Uint8Array> {
  return hashOfRange(await readNodes(readNode, frontierNodeIds(treeSize)))
}

/** `inclusionProof` from a store of perfect subtrees, reading `inclusionProofNodeIds`. */
export async function inclusionProofFrom(
  readNode: NodeHashReader,
  index: number,
  treeSize: number,
): Promise<Uint8Array[]> {
  return proofFrom(readNode, inclusionProofNodeIds(index, treeSize))
}

/** `consistencyProof` from a store of perfect subtrees, reading `consistencyProofNodeIds`. */
export async function consistencyProofFrom(
  readNode: NodeHashReader,
  oldSize: number,
  newSize: number,
): Promise<Uint8Array[]> {
  return proofFrom(readNode, consistencyProofNodeIds(oldSize, newSize))
}

async function proofFrom(readNode: NodeHashReader, elements: NodeId[][]): Promise<Uint8Array[]> {
  const hashes = await readNodes(readNode, elements.flat())
  let next = 0
  return elements.map(ids => {
    next += ids.length
    return hashOfRange(hashes.slice(next - ids.length, next))
  })
}

async function readNodes(readNode: NodeHashReader, ids: NodeId[]): Promise<Uint8Array[]> {
  const hashes = await Promise.all(ids.map(id => readNode(id.level, id.index)))
  hashes.forEach((hash, i) => {
    if (!isHash(hash)) {
      throw new TypeError(`stored node (${ids[i].level}, ${ids[i].index}) is not a ${HASH_SIZE}-byte hash`)
    }
  })
  return hashes
}

// ---------------------------------------------------------------------------------------------
// Tree shape. Arithmetic instead of bit operators, which would truncate sizes to 32 bits.

/** Each level of the tree, leaves first, root last; an unpaired last node moves up unchanged. */
function treeLevels(leafHashes: Uint8Array[]): Uint8Array[][] {
  const levels = [leafHashes]
  while (levels[levels.length - 1].length > 1) levels.push(parentLevel(levels[levels.length - 1]))
  return levels
}

function parentLevel(level: Uint8Array[]): Uint8Array[] {
  const parents: Uint8Array[] = []
  for (let i = 0; i + 1 < level.length; i += 2) parents.push(nodeHash(level[i], level[i + 1]))
  if (isOdd(level.length)) parents.push(level[level.length - 1])
  return parents
}

/** Siblings on the way from node (level, index) up to the root. */
function pathFrom(levels: Uint8Array[][], level: number, index: number): Uint8Array[] {
  const proof: Uint8Array[] = []
  for (let l = level; l < levels.length; l++, index = half(index)) {
    const sibling = isOdd(index) ? index - 1 : index + 1
    if (sibling < levels[l].length) proof.push(levels[l][sibling])
  }
  return proof
}

/** `pathFrom` for a tree of `treeSize` leaves, each sibling as the perfect subtrees covering it. */
function pathNodeIds(level: number, index: number, treeSize: number): NodeId[][] {
  const path: NodeId[][] = []
  for (let width = 2 ** level; width < treeSize; width *= 2, index = half(index)) {
    const sibling = isOdd(index) ? index - 1 : index + 1
    const begin = sibling * width
    if (begin < treeSize) path.push(rangeNodeIds(begin, Math.min(begin + width, treeSize)))
  }
  return path
}

/**
 * Perfect subtrees covering [begin, end), largest first: the binary digits of end - begin.
 * Requires begin to be a multiple of the largest of them, which holds for [0, n) and for any
 * subtree's range cut off by the end of the tree.
 */
function rangeNodeIds(begin: number, end: number): NodeId[] {
  const ids: NodeId[] = []
  let width = 1
  let level = 0
  while (width * 2 <= end - begin) {
    width *= 2
    level += 1
  }
  for (let lo = begin; lo < end; width /= 2, level -= 1) {
    if (end - lo >= width) {
      ids.push({ level, index: lo / width })
      lo += width
    }
  }
  return ids
}

/** The largest perfect subtree that ends at leaf `size` (size > 0): where a consistency proof starts. */
function lastFullSubtree(size: number): NodeId {
  let level = 0
  let rest = size
  while (!isOdd(rest)) {
    rest /= 2
    level += 1
  }
  return { level, index: rest - 1 }
}

function isOdd(n: number): boolean {
  return n % 2 === 1
}

function half(n: number): number {
  return Math.floor(n / 2)
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && lastFullSubtree(n).index === 0
}

function isSize(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.byteLength === HASH_SIZE
}

function isHashList(list: unknown): list is Uint8Array[] {
  if (!Array.isArray(list) || list.length > MAX_PROOF_LENGTH) return false
  // an index loop, not `every`, which would skip the holes of a sparse array
  for (let i = 0; i < list.length; i++) if (!isHash(list[i])) return false
  return true
}
