/**
 * Revocation propagation. The owner's gateway creates a space and a stream and publishes a
 * few readings; every other peer joins as a reader. Then, for each round: the owner grants a
 * subject S (a peer of the network), S reads (so S holds keys), and the owner revokes S.
 * Measured, from the moment the owner's `policy.revoke` is called (it signs, writes and gossips):
 * - for every peer, when it applied the revocation (its policy service reported the record;
 *   its state then has it in `revocations`);
 * - for S, when its cached keys were dropped (`data.cachedKeyCount() === 0`);
 * - the same-size plain gossip message from the owner on a topic with no validator of ours,
 *   in the same network right after, as the baseline.
 * Checked: no key is released to S after the owner applied the revocation (the owner's audit
 * log), and every read S starts after it has seen the revocation is refused.
 */

import { AccessRefusedError } from '../../node/errors.ts'
import { decodeEntry } from '../../protocols/audit/entries.ts'
import { type AppliedRecord, PolicyDocument } from '../../protocols/policy/document.ts'
import { policyTopic } from '../../protocols/sync/messages.ts'
import { ScenarioError } from '../errors.ts'
import type { SimNetwork } from '../network.ts'
import { mulberry32, sample } from '../random.ts'
import { cdf, type Summary, summarize } from '../stats.ts'
import { sleep, stepTimer, unlessDeadline, waitUntil } from '../wait.ts'
import {
  BASELINE_TOPIC,
  countDefined,
  DeliveryTracker,
  meanMesh,
  type Progress,
  readWithRetries,
  STREAM,
  settle,
  setUpSpace,
  timeBaseline,
} from './space.ts'

/** What the revoke scenario is run with. */
export interface RevokeOptions {
  /** the peer whose gateway owns the space (default 0) */
  owner?: number
  /** grant-read-revoke rounds, each with a different subject (default 1) */
  rounds?: number
  /** readings published before the first grant (default 5) */
  readings?: number
  /** how long to wait for every peer, per step (default 120 s) */
  deadlineMs?: number
  onProgress?: Progress
}

/** One read the subject started while the revocation spread (ms from the revoke call). */
export interface ReadAttempt {
  /** ms after the revoke call */
  startedMs: number
  endedMs: number
  /** had S applied the revocation when the read started? */
  afterSeen: boolean
  outcome: 'read' | 'refused' | 'error'
  detail?: string
}

/** What one round (grant, read, revoke one subject) measured. */
export interface RevokeRound {
  subject: number
  subjectDid: string
  /** bytes of the revocation's change envelope, and of the baseline message */
  messageBytes: number
  /** per peer index: ms from the revoke call until the peer applied it (undefined: never, or the owner for the baseline) */
  applied: (number | undefined)[]
  /** running peers whose policy state holds the revocation once the wait ended */
  inState: number
  /** ms from the revoke call until S's cached keys were gone */
  keysDroppedMs: number | undefined
  /** per peer index: ms from publishing the baseline message until the peer received it */
  baseline: (number | undefined)[]
  /** over every peer but the owner */
  revocation: Summary
  baselineSummary: Summary
  revocationCdf: [number, number][]
  baselineCdf: [number, number][]
  reads: ReadAttempt[]
  /** ms after the revoke call at which S's first refused read ended */
  firstRefusalMs: number | undefined
  /**
   * key releases to S in the owner's audit log dated after the owner applied the revocation
   * (its policy service reported it, a few ms after its state changed): must be 0
   */
  releasesAfterRevocation: number
  /** reads S started after it had seen the revocation that were not refused: must be 0 */
  readsAfterSeenNotRefused: number
  /** gossip hops from the owner to each peer (first copy), for the revocation and the baseline */
  revocationHops: (number | undefined)[]
  baselineHops: (number | undefined)[]
  /** connections at the moment of revoking: the owner's, and the mean over peers */
  ownerConnections: number
  meanConnections: number
  /** mean gossip mesh peers per peer when revoking: policy topic, baseline topic */
  meanMesh: { policy: number; baseline: number }
  /**
   * ms one peer spends applying the revocation's envelope (signatures, authority, Automerge),
   * measured alone on a fresh replica: in one process, N peers pay it one after another
   */
  validationMs: number
  /** how long each step of the round took, ms (setup steps included, for finding slow ones) */
  stepsMs: Record<string, number>
}

/** What a round derives from what it measured: summaries and CDFs without the owner, and the reads' outcomes. */
type DerivedOfRound =
  | 'revocation'
  | 'baselineSummary'
  | 'revocationCdf'
  | 'baselineCdf'
  | 'firstRefusalMs'
  | 'readsAfterSeenNotRefused'

/** A round's record from its measurements; `counted(i)`: is peer i one of the peers the figures are over? */
export function roundRecord(measured: Omit<RevokeRound, DerivedOfRound>, counted: (i: number) => boolean): RevokeRound {
  const only = <T>(xs: T[]) => xs.filter((_, i) => counted(i))
  return {
    ...measured,
    revocation: summarize(only(measured.applied)),
    baselineSummary: summarize(only(measured.baseline)),
    revocationCdf: cdf(only(measured.applied)),
    baselineCdf: cdf(only(measured.baseline)),
    firstRefusalMs: measured.reads.find(a => a.outcome === 'refused')?.endedMs,
    readsAfterSeenNotRefused: measured.reads.filter(a => a.afterSeen && a.outcome !== 'refused').length,
  }
}

/** What the revoke scenario measured over every round. */
export interface RevokeResult {
  scenario: 'revoke'
  space: string
  owner: number
  setupMs: number
  rounds: RevokeRound[]
}

/** Run the revoke scenario on a started network: per round, grant a subject, let it read, revoke it, time the spread. */
export async function runRevoke(net: SimNetwork, opts: RevokeOptions = {}): Promise<RevokeResult> {
  const ownerIndex = opts.owner ?? 0
  const deadlineMs = opts.deadlineMs ?? 120_000
  const rounds = Math.min(opts.rounds ?? 1, net.peers.length - 1)
  const t0 = performance.now()
  const space = await setUpSpace(net, {
    owner: ownerIndex,
    readings: opts.readings ?? 5,
    deadlineMs,
    onProgress: opts.onProgress,
  })
  const setupMs = performance.now() - t0
  net.sampleMemory('space joined')
  const owner = net.node(ownerIndex)
  const candidates = net.running().flatMap(p => (p.index === ownerIndex ? [] : [p.index]))
  const subjects = sample(mulberry32(net.seed ^ 0x5eed), candidates, rounds)

  // one listener per peer for the whole run (the policy service has no way to remove one)
  let onApplied: ((peer: number, records: AppliedRecord[]) => void) | undefined
  for (const p of net.running()) {
    p.node!.policy.onRecords((s, records) => {
      if (s === space) onApplied?.(p.index, records)
    })
  }

  const out: RevokeRound[] = []
  for (const [r, subject] of subjects.entries()) {
    const phase = `round ${r + 1}/${rounds}`
    const { stepsMs, step } = stepTimer(name => opts.onProgress?.(`${phase}: ${name}`, 1, 1))
    const S = net.node(subject)
    const now = owner.now()
    const { record: grant } = await owner.policy.grant(space, {
      sub: S.identity.principal.did,
      streams: [STREAM],
      forms: ['raw'],
      nbf: now - 60_000,
      exp: now + 3_600_000,
    })
    await waitUntil(
      `${phase}: S receives its grant`,
      () => S.policy.document(space).state.grants.has(grant.id),
      deadlineMs,
    )
    step('grant reached the subject')
    const firstRead = await readWithRetries(() => S.data.read(space, STREAM))
    if (firstRead.length === 0 || S.data.cachedKeyCount() === 0) throw new ScenarioError(`${phase}: S read nothing`)
    step('subject read')
    await settle()
    step('settle')

    // the revocation's id is known once it is signed, inside the write: its target tells it apart
    const subjectDid = S.identity.principal.did
    const applied: (number | undefined)[] = net.peers.map(() => undefined)
    let keysDroppedMs: number | undefined
    let ownerAppliedAt = Number.POSITIVE_INFINITY
    let start = 0
    onApplied = (peer, records) => {
      if (applied[peer] !== undefined || !records.some(x => revokesSubject(x, subjectDid))) return
      applied[peer] = performance.now() - start
      if (peer === ownerIndex) ownerAppliedAt = Date.now()
      // the data service's listener ran first and dropped what the revocation ends
      if (peer === subject && S.data.cachedKeyCount() === 0) keysDroppedMs = applied[peer]
    }
    const degrees = net.degrees()
    const ownerConnections = owner.connectedPeers().length
    const mesh = { policy: meanMesh(net, policyTopic(space)), baseline: meanMesh(net, BASELINE_TOPIC) }
    const tracker = new DeliveryTracker(net, policyTopic(space))
    const reads: ReadAttempt[] = []
    let reading = true
    start = performance.now()
    const readLoop = (async () => {
      let refusedAfterSeen = 0
      while (reading && refusedAfterSeen < 3) {
        const attempt: ReadAttempt = {
          startedMs: performance.now() - start,
          endedMs: 0,
          afterSeen: applied[subject] !== undefined,
          outcome: 'read',
        }
        try {
          await S.data.read(space, STREAM)
        } catch (err) {
          attempt.outcome = (err as Error).name === AccessRefusedError.name ? 'refused' : 'error'
          attempt.detail = (err as Error).message
        }
        attempt.endedMs = performance.now() - start
        reads.push(attempt)
        if (attempt.afterSeen && attempt.outcome === 'refused') refusedAfterSeen++
        await sleep(5)
      }
    })()

    const { record: rv, change } = await owner.policy.revoke(space, { subject: subjectDid })
    const expected = net.running().length
    await waitUntil(
      `${phase}: every peer applies the revocation`,
      () => {
        opts.onProgress?.(`${phase}: revocation`, countDefined(applied), expected)
        if (keysDroppedMs === undefined && applied[subject] !== undefined && S.data.cachedKeyCount() === 0) {
          keysDroppedMs = performance.now() - start
        }
        return countDefined(applied) === expected && keysDroppedMs !== undefined
      },
      deadlineMs,
      5,
    ).catch(unlessDeadline)
    onApplied = undefined
    tracker.stop()
    const inState = net.running().filter(p => p.node!.policy.document(space).state.revocations.has(rv.id)).length
    step('revocation everywhere')
    // a deadline here is reported by the checks (no refused read after the revocation was seen), not thrown
    await waitUntil(
      `${phase}: S is refused`,
      () => reads.some(a => a.afterSeen && a.outcome === 'refused'),
      deadlineMs,
    ).catch(unlessDeadline)
    reading = false
    await readLoop
    step('subject refused')

    let releasesAfterRevocation = 0
    for (let i = 0; i < (owner.audit?.size ?? 0); i++) {
      const e = decodeEntry(await owner.audit!.entry(i))
      if (e.t === 'release' && e.subject === S.identity.principal.did && e.ts > ownerAppliedAt)
        releasesAfterRevocation++
    }
    const envelope = await owner.policy.storedChange(space, change)
    const messageBytes = envelope?.byteLength ?? 0
    const validationMs = envelope === undefined ? Number.NaN : timeValidation(owner.policy.document(space), envelope)
    step('audit log checked')
    await settle()
    step('settle before the baseline')
    opts.onProgress?.(`${phase}: baseline`, 0, 1)
    const { times: baseline, hops: baselineHops } = await timeBaseline(net, ownerIndex, messageBytes, deadlineMs)
    step('baseline')
    const record = {
      subject,
      subjectDid,
      messageBytes,
      applied,
      inState,
      keysDroppedMs,
      baseline,
      reads,
      releasesAfterRevocation,
      revocationHops: envelope === undefined ? [] : tracker.hops(net, ownerIndex, envelope),
      baselineHops,
      ownerConnections,
      meanConnections: degrees.reduce((a, b) => a + b, 0) / Math.max(1, degrees.length),
      meanMesh: mesh,
      validationMs,
      stepsMs,
    }
    out.push(roundRecord(record, i => i !== ownerIndex && net.peers[i].node !== undefined))
    await settle()
  }
  return { scenario: 'revoke', space, owner: ownerIndex, setupMs, rounds: out }
}

/** Whether an applied record is a revocation of the subject `subject` (the revocation a round writes). */
export function revokesSubject(r: AppliedRecord, subject: string): boolean {
  return r.kind === 'revocation' && 'subject' in r.record.body.target && r.record.body.target.subject === subject
}

/** Median ms to apply `envelope` to a fresh replica that has every other change of `doc` (5 tries). */
export function timeValidation(doc: PolicyDocument, envelope: Uint8Array): number {
  const others = doc.envelopesSince([]).filter(e => Buffer.compare(e, envelope) !== 0)
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const replica = new PolicyDocument(doc.spaceId)
    for (const e of others) replica.applyEnvelope(e)
    const t = performance.now()
    replica.applyEnvelope(envelope)
    times.push(performance.now() - t)
  }
  return Math.round(times.sort((a, b) => a - b)[2] * 100) / 100
}
