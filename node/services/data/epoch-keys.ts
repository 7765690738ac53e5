/**
 * The key holder's epochs: each stream's current epoch, the data key of each (stream, epoch,
 * form), when each epoch started, the earliest end of a grant its keys went out under, how
 * many revocations a finished rotation covers, and how many releases each grant has had.
 *
 * Guarantees: the only module that reads or writes the `keys` and `epochs` sublevels (see
 * node/store.ts), whose layout is:
 * - keys: `<space>!<stream>!<form>!<epoch>` -> data key wrapped under the storage key, with
 *   its location as associated data; `releases!<grant>` -> key releases under a grant
 * - epochs: `<space>!<stream>` -> the stream's epoch state; `<space>!<stream>!start!<epoch>` ->
 *   when the epoch started (its first key was made); `rotated!<space>` -> revocations a
 *   finished rotation covers; `ends!<space>!<stream>` -> [epoch, at]: the earliest grant end
 * A key is made at most once: it, (for an epoch's first key) the epoch's start and (in a space
 * with custodians) its deal go in the caller's batch, and are remembered here only once the
 * caller has written it durably.
 *
 * Assumes: this process is the only writer of these sublevels (what it wrote last is kept in
 * memory, so a publish or a release does not read it back), and callers serialise the work
 * on one stream (StreamQueue).
 *
 * Refuses nothing: it keeps what the key holder decided; the decisions are elsewhere.
 */
import { generateAeadKey } from '../../../crypto/aead.ts'
import { decodeCanonical, encodeCanonical } from '../../../crypto/encoding.ts'
import type { WindowState } from '../../../protocols/data/forms.ts'
import type { Grant } from '../../../protocols/policy/records.ts'
import { epochInDataWindow } from '../../../protocols/policy/state.ts'
import type { Identity } from '../../identity.ts'
import { DURABLE, pad, type Store, unwrapKey, wrapKey } from '../../store.ts'
import type { KeyDealer } from '../custody/index.ts'

type Batch = ReturnType<Store['db']['batch']>

/** data keys a key holder keeps unwrapped in memory (each 32 bytes) */
const MAX_CACHED_HOLDER_KEYS = 4096

/** What the epoch keys use: their two sublevels, batches, the storage key, and the clock. */
export interface EpochKeysComponents {
  store: Pick<Store, 'db' | 'keys' | 'epochs'>
  identity: Pick<Identity, 'storageKey'>
  now: () => number
}

/** Where a stream is: its current epoch, the next sequence number of each form, open aggregate windows. */
export interface EpochState {
  epoch: number
  started: number
  /** next sequence number of each form */
  seq: Record<string, number>
  /** the open window of each aggregate form */
  windows: Record<string, WindowState>
  /** set by the last publish of a stream that takes no more (an object, after its manifest) */
  closed?: boolean
}

/** The key holder's durable epochs and data keys, with what it last wrote kept in memory. */
export class EpochKeys {
  private readonly c: EpochKeysComponents
  /** per stream (`<space>!<stream>`): the earliest end of a grant a key of epoch `epoch` went out under */
  private readonly grantEnds = new Map<string, { epoch: number; at: number }>()
  private readonly grantEndWrites = new Map<string, Promise<void>>()
  /** per space: how many revocations a finished rotation covers */
  private readonly rotated = new Map<string, number>()
  private readonly rotatedWrites = new Map<string, Promise<void>>()
  /** what this part last wrote durably: epoch states, data keys (unwrapped), epoch starts */
  private readonly states = new Map<string, EpochState>()
  private readonly keys = new Map<string, Uint8Array>()
  private readonly starts = new Map<string, number | null>()
  /** counts epoch start writes, so a read that raced one does not cache "not started" */
  private startWrites = 0

  private readonly dealer: KeyDealer | undefined

  /** `dealer`: deals each key made to the space's custodians, in the key's own batch (custody). */
  constructor(components: EpochKeysComponents, dealer?: KeyDealer) {
    this.c = components
    this.dealer = dealer
  }

  /** A stream's epoch state, as a copy the caller may change (it is kept only once durable). */
  async state(space: string, stream: string): Promise<EpochState> {
    const cached = this.states.get(streamKey(space, stream))
    if (cached !== undefined) return { ...cached, seq: { ...cached.seq }, windows: { ...cached.windows } }
    const raw = await this.c.store.epochs.get(streamKey(space, stream))
    if (raw === undefined) return { epoch: 0, started: this.c.now(), seq: {}, windows: {} }
    return decodeCanonical(raw, 16 * 1024) as EpochState
  }

  /** Add a stream's new epoch state to `batch`; the returned function keeps it once the batch is durable. */
  putState(batch: Batch, space: string, stream: string, st: EpochState): () => void {
    batch.put(streamKey(space, stream), encodeCanonical(st), { sublevel: this.c.store.epochs } as never)
    return () => this.states.set(streamKey(space, stream), st)
  }

  /** The data key of an epoch, if it exists. */
  async existingKey(space: string, stream: string, form: string, epoch: number): Promise<Uint8Array | undefined> {
    const loc = keyLocation(space, stream, form, epoch)
    const cached = this.keys.get(loc)
    if (cached !== undefined) return cached
    const wrapped = await this.c.store.keys.get(loc)
    if (wrapped === undefined) return undefined
    const key = unwrapKey(this.c.identity.storageKey, loc, wrapped)
    this.rememberKey(loc, key)
    return key
  }

  private rememberKey(loc: string, key: Uint8Array): void {
    // bounded: the oldest goes first (a key holder uses recent epochs' keys most)
    if (this.keys.size >= MAX_CACHED_HOLDER_KEYS) this.keys.delete(this.keys.keys().next().value!)
    this.keys.set(loc, key)
  }

  /** When an epoch started (its first key was made), if it has. */
  async epochStart(space: string, stream: string, epoch: number): Promise<number | undefined> {
    const k = epochStartKey(space, stream, epoch)
    const cached = this.starts.get(k)
    if (cached !== undefined) return cached ?? undefined
    const writes = this.startWrites
    const v = await this.c.store.epochs.get(k)
    const start = v === undefined ? undefined : (decodeCanonical(v, 16) as number)
    // "not started" is remembered only if no start was written meanwhile
    if (start !== undefined || writes === this.startWrites) this.starts.set(k, start ?? null)
    return start
  }

  /** The data key of an epoch, created (and stored wrapped, in one synced batch) on first use. */
  async holderKey(space: string, stream: string, form: string, epoch: number): Promise<Uint8Array> {
    const batch = this.c.store.db.batch()
    const { key, made } = await this.prepareKey(space, stream, form, epoch, batch, this.c.now())
    if (made !== undefined) {
      await batch.write(DURABLE)
      made()
    }
    return key
  }

  /**
   * The data key of an epoch: the existing one, or a new one whose wrapped copy (and, for the
   * epoch's first key, the epoch's start, `now`) is added to `batch`; `made` remembers it once
   * the caller has written the batch durably.
   */
  async prepareKey(
    space: string,
    stream: string,
    form: string,
    epoch: number,
    batch: Batch,
    now: number,
  ): Promise<{ key: Uint8Array; made?: () => void }> {
    const existing = await this.existingKey(space, stream, form, epoch)
    if (existing !== undefined) return { key: existing }
    const loc = keyLocation(space, stream, form, epoch)
    const key = generateAeadKey()
    // an epoch starts when its first key is made; data windows are checked against these times
    const startKey = epochStartKey(space, stream, epoch)
    const existingStart = await this.epochStart(space, stream, epoch)
    const started = existingStart === undefined ? now : undefined
    if (started !== undefined) batch.put(startKey, encodeCanonical(started), { sublevel: this.c.store.epochs } as never)
    batch.put(loc, wrapKey(this.c.identity.storageKey, loc, key), { sublevel: this.c.store.keys } as never)
    // its deal to the space's custodians (if it has any) goes in the same batch
    const dealt = await this.dealer?.deal(batch, { space, stream, form, epoch, start: existingStart ?? now }, key)
    const made = () => {
      dealt?.()
      if (started !== undefined) {
        this.startWrites++
        this.starts.set(startKey, started)
      }
      this.rememberKey(loc, key)
    }
    return { key, made }
  }

  /**
   * Start a stream's next epoch at `now`: its start, its key of `form` and the stream's new
   * state, in one synced batch. Returns the new epoch, or undefined for a closed stream (it
   * takes no more readings, so it keeps its key).
   */
  async startNextEpoch(space: string, stream: string, form: string, now: number): Promise<number | undefined> {
    const st = await this.state(space, stream)
    if (st.closed === true) return undefined
    const next: EpochState = { ...st, epoch: st.epoch + 1, started: now }
    const batch = this.c.store.db.batch()
    const { made } = await this.prepareKey(space, stream, form, next.epoch, batch, now)
    const kept = this.putState(batch, space, stream, next)
    await batch.write(DURABLE)
    made?.()
    kept()
    return next.epoch
  }

  /** Does an epoch's time range [its start, the next epoch's start) overlap the grant's data window? */
  async epochInWindow(
    space: string,
    stream: string,
    epoch: number,
    grant: Pick<Grant, 'dataFrom' | 'dataUntil'>,
  ): Promise<boolean> {
    const [begins = 0, ends = Infinity] = await Promise.all([
      this.epochStart(space, stream, epoch),
      this.epochStart(space, stream, epoch + 1),
    ])
    return epochInDataWindow(begins, ends, grant)
  }

  /** Key releases made under a grant so far (for its maxReleases condition). */
  async releaseCount(grant: string): Promise<number> {
    const v = await this.c.store.keys.get(releaseCountKey(grant))
    return v === undefined ? 0 : (decodeCanonical(v, 16) as number)
  }

  /** Store, synced, the number of key releases made under a grant. */
  async setReleaseCount(grant: string, count: number): Promise<void> {
    await this.c.store.keys.put(releaseCountKey(grant), encodeCanonical(count), DURABLE)
  }

  /** The earliest end of a grant a key of the stream's epoch `epoch` went out under, if any. */
  grantEnd(space: string, stream: string): { epoch: number; at: number } | undefined {
    return this.grantEnds.get(streamKey(space, stream))
  }

  /**
   * Remember, durably, that a key of the current epoch of a stream was released under a grant
   * that ends at `at`: the first reading at or after it starts a new epoch. Nothing is kept
   * for an epoch that is over, or that its length (`epochMs`) ends first.
   */
  async noteGrantEnd(
    space: string,
    stream: string,
    epoch: number,
    at: number,
    epochMs: number | undefined,
  ): Promise<void> {
    const [started, next] = await Promise.all([
      this.epochStart(space, stream, epoch),
      this.epochStart(space, stream, epoch + 1),
    ])
    if (next !== undefined) return
    if (started !== undefined && epochMs !== undefined && started + epochMs <= at) return
    const k = streamKey(space, stream)
    const known = this.grantEnds.get(k)
    if (known !== undefined && (known.epoch > epoch || (known.epoch === epoch && known.at <= at))) return
    this.grantEnds.set(k, { epoch, at })
    // one write at a time per stream, each of the earliest end known when it runs
    const write = (this.grantEndWrites.get(k) ?? Promise.resolve()).then(() => {
      const v = this.grantEnds.get(k)!
      return this.c.store.epochs.put(`${GRANT_END_PREFIX}${k}`, encodeCanonical([v.epoch, v.at]), DURABLE)
    })
    this.grantEndWrites.set(
      k,
      write.catch(() => undefined),
    )
    await write
  }

  /** Read the grant ends kept on disk (at start). */
  async loadGrantEnds(): Promise<void> {
    for await (const [k, v] of this.c.store.epochs.iterator({ gt: GRANT_END_PREFIX, lt: `${GRANT_END_PREFIX}~` })) {
      const [epoch, at] = decodeCanonical(v, 64) as [number, number]
      this.grantEnds.set(k.slice(GRANT_END_PREFIX.length), { epoch, at })
    }
  }

  /** How many of a space's revocations a finished rotation covers, as stored (read at start). */
  async loadRotated(space: string): Promise<number> {
    const raw = await this.c.store.epochs.get(rotatedKey(space))
    const covered = raw === undefined ? 0 : (decodeCanonical(raw, 16) as number)
    this.rotated.set(space, Math.max(covered, this.rotated.get(space) ?? 0))
    return covered
  }

  /** Store that a finished rotation covers the first `covers` revocations of a space (never less than before). */
  async markRotated(space: string, covers: number): Promise<void> {
    if (covers <= (this.rotated.get(space) ?? 0)) return
    this.rotated.set(space, covers)
    // one write at a time per space, each of the highest count known when it runs
    const write = (this.rotatedWrites.get(space) ?? Promise.resolve()).then(() =>
      this.c.store.epochs.put(rotatedKey(space), encodeCanonical(this.rotated.get(space)!), DURABLE),
    )
    this.rotatedWrites.set(
      space,
      write.catch(() => undefined),
    )
    await write
  }
}

function streamKey(space: string, stream: string): string {
  return `${space}!${stream}`
}

function keyLocation(space: string, stream: string, form: string, epoch: number): string {
  return `${space}!${stream}!${form}!${pad(epoch)}`
}

function epochStartKey(space: string, stream: string, epoch: number): string {
  return `${space}!${stream}!start!${pad(epoch)}`
}

function releaseCountKey(grant: string): string {
  return `releases!${grant}`
}

/** In the epochs sublevel: how many of a space's revocations a finished rotation covers. */
function rotatedKey(space: string): string {
  return `rotated!${space}`
}

/** In the epochs sublevel, then `<space>!<stream>`: the earliest end of a grant the current epoch's keys went out under. */
const GRANT_END_PREFIX = 'ends!'
