/**
 * Adversaries. The owner's gateway creates a space that every peer joins; four peers, chosen
 * by the seed, turn adversarial and one honest reader H is watched:
 * - a forger F (a reader the owner granted and then revoked),
 * - a malicious admin M (the owner delegated grant/revoke authority to it),
 * - a spammer S,
 * - a rogue key holder R, owner of a space of its own that its honest neighbours witness.
 * Each attack, one after another:
 * 1. forged grant signed by a non-owner: F gossips a change adding a grant F issued itself,
 *    then asks the key holder for keys under it;
 * 2. forged grant claiming the owner: a grant whose body names the owner as issuer under F's
 *    signature, gossiped in an envelope that also claims the owner (wrong signature) and in
 *    F's own envelope; then a key request under it;
 * 3. an Automerge change by M that deletes the revocation of F's grant; then F asks for keys
 *    under its revoked grant;
 * 4. Automerge changes by M that overwrite grants: F's revoked grant with a fresh one, and
 *    H's grant with one for M; then key requests by F and M under those grant ids;
 * 5. replayed key requests: H's signed request, as the key holder's audit log keeps it, sent
 *    again by F (another device) and by H's own device (past the device check);
 * 6. gossip spam: S gossips junk on the space's policy, readings, audit and requests topics;
 *    afterwards a reading from the gateway must still reach every honest peer;
 * 7. a forked log, two heads of one size: R signs a second head of the size its witnesses
 *    accepted, with another root;
 * 8. a forked log, rewritten: R grows its log and signs a head over a rewritten one (other
 *    entries, a size its real log has), so no consistency proof links it to what was accepted;
 * 9. the forged changes of 1, 3 and 4 served by M in answer to its honest neighbours' catch-up
 *    requests (`/edgeward/policy-sync/1.0.0`) instead of gossiped;
 * 10. an expired admin: S held a delegation that ended an hour ago; it signs a grant to
 *    itself dated inside the old window and lasting a year (a valid change, which every peer
 *    takes: F may write), then asks for keys under it;
 * 11. a future-dated grant: M signs a grant dated a year ahead, which would outlast any
 *    revocation that judged by dates; then asks for keys under it;
 * 12. a fired admin: the owner revokes M's delegation; M, knowing it, revokes H's grant and H
 *    with revocations dated inside its old window (valid changes, taken by every peer), then
 *    H must still read: what a fired admin writes counts for nothing.
 *
 * Per attack: attempted (messages and requests sent), refused (each gossiped attempt refused
 * by every honest peer it reached, each key request refused by the key holder, each fork
 * kept as evidence by every witness), the increase of the honest peers' own counters
 * (node/metrics.ts names), and invariant violations: an honest replica that took the change,
 * a key released, a witness that accepted a forged head or kept no evidence. Over the whole
 * run, every key release in the key holder's audit log is checked: none to an adversary
 * without a live grant, none under a forged grant id, no signed request released twice.
 */
import * as Automerge from '@automerge/automerge'
import { peerIdFromString } from '@libp2p/peer-id'
import { bytesEqual, decodeCanonical, encodeCanonical } from '../../crypto/encoding.ts'
import { randomBytes } from '../../crypto/hash.ts'
import { leafHash, rootFromLeafHashes } from '../../crypto/merkle.ts'
import { recordId, signRecord } from '../../crypto/signed.ts'
import { UsageError } from '../../node/errors.ts'
import type { EdgewardNode } from '../../node/node.ts'
import { handle, request } from '../../node/services/stream-io.ts'
import {
  createKeyRequest,
  decodeKeyResponse,
  KEYS_PROTOCOL,
  type KeyResponse,
  MAX_KEY_RESPONSE_BYTES,
} from '../../protocols/access/messages.ts'
import { decodeEntry, type ReleaseEntry } from '../../protocols/audit/entries.ts'
import { auditTopic, encodeAuditMessage, signTreeHead } from '../../protocols/audit/heads.ts'
import { PolicyWriteError } from '../../protocols/errors.ts'
import {
  actorFor,
  type ChangeEnvelope,
  ENVELOPE_TAG,
  openEnvelope,
  PolicyDocument,
} from '../../protocols/policy/document.ts'
import { createDelegation, createGrant, createRevocation, TAGS } from '../../protocols/policy/records.ts'
import { requestsTopic } from '../../protocols/policy/requests.ts'
import {
  decodeSyncRequest,
  encodeSyncResponse,
  MAX_SYNC_PAGE,
  MAX_SYNC_REQUEST_BYTES,
  MAX_SYNC_RESPONSE_BYTES,
  POLICY_SYNC_PROTOCOL,
  policyTopic,
  readingsTopic,
} from '../../protocols/sync/messages.ts'
import { ScenarioError } from '../errors.ts'
import type { SimNetwork } from '../network.ts'
import { mulberry32, type Random, randomInt, sample } from '../random.ts'
import { stepTimer, unlessDeadline, waitUntil } from '../wait.ts'
import { catchUp, headsKey, type Progress, readWithRetries, STREAM, settle, setUpSpace } from './space.ts'

const RAW = 'raw'

/** What the adversary scenario is run with. */
export interface AdversaryOptions {
  /** the peer whose gateway owns the space (default 0) */
  owner?: number
  /** junk messages the spammer gossips on each of the space's four topics (default 50) */
  spam?: number
  /** how long to wait for any one step (default 120 s) */
  deadlineMs?: number
  onProgress?: Progress
}

/** One attack: what was tried, by whom, what the honest peers counted and any invariant it broke. */
export interface AttackRecord {
  /** a short stable name, e.g. `forged-grant-non-owner` */
  name: string
  what: string
  /** the adversarial peers (and devices) that mounted it */
  by: number[]
  attempted: number
  refused: number
  /** increase, summed over the honest peers, of each of their counters that moved */
  counted: Record<string, number>
  /** honest peers the attack reached (gossip recipients, the key holder, witnesses) */
  recipients: number
  /** why each attempt was refused: a fresh replica's error for a change, the key holder's code, the witnesses' evidence */
  reasons: string[]
  /** invariant violations: must be none */
  violations: string[]
}

/** Every attack of the run, and the checks over the whole run. */
export interface AdversaryResult {
  scenario: 'adversary'
  space: string
  owner: number
  roles: { forger: number; admin: number; spammer: number; rogue: number; honestReader: number }
  /** the rogue's own space, and the honest peers that witnessed its log */
  rogueSpace: string
  witnesses: number[]
  setupMs: number
  attacks: AttackRecord[]
  /** key releases in the key holder's audit log, checked against the invariants */
  releasesChecked: number
  /** releases that should not have happened: must be none */
  releaseViolations: string[]
  /** after the spam: honest peers a new reading reached, of those expected */
  afterSpam: { reached: number; expected: number }
  stepsMs: Record<string, number>
}

/** Counters of the honest peers, by the name node/metrics.ts gives them. */
const POLICY_REFUSED = 'edgeward_policy_changes_refused_total'
const KEY_REFUSALS = 'edgeward_key_refusals_total'
const READINGS_REFUSED = 'edgeward_readings_refused_total'
const HEADS_REFUSED = 'edgeward_audit_heads_refused_total'
const REQUESTS_REFUSED = 'edgeward_access_requests_refused_total'
const EQUIVOCATIONS = 'edgeward_audit_equivocations_total'
const POWERLESS = 'edgeward_policy_records_powerless_total'
const WATCHED = [
  POLICY_REFUSED,
  KEY_REFUSALS,
  READINGS_REFUSED,
  HEADS_REFUSED,
  REQUESTS_REFUSED,
  EQUIVOCATIONS,
  POWERLESS,
]

/** Run the adversary scenario on a started network: every attack attempted, refused and counted by the honest peers. */
export async function runAdversary(net: SimNetwork, opts: AdversaryOptions = {}): Promise<AdversaryResult> {
  const ownerIndex = opts.owner ?? 0
  const deadlineMs = opts.deadlineMs ?? 120_000
  const spam = opts.spam ?? 50
  const random = mulberry32(net.seed ^ 0xad5e)
  const { stepsMs, step } = stepTimer((name, done) => opts.onProgress?.(name, done, 15))
  const t0 = performance.now()
  const space = await setUpSpace(net, { owner: ownerIndex, readings: 3, deadlineMs, onProgress: opts.onProgress })
  const owner = net.node(ownerIndex)
  const candidates = net.running().flatMap(p => (p.index === ownerIndex ? [] : [p.index]))
  if (candidates.length < 6) throw new UsageError('the adversary scenario needs at least 7 peers')
  const [forger, admin, spammer, rogue, honestReader] = sample(random, candidates, 5)
  const F = net.node(forger)
  const M = net.node(admin)
  const S = net.node(spammer)
  const R = net.node(rogue)
  const H = net.node(honestReader)
  const adversaries = new Set([forger, admin, spammer, rogue])
  const honest = () => net.running().filter(p => !adversaries.has(p.index))

  // the owner delegates to M (and to S, for an hour that has passed) and grants F and H; F and H read;
  // then the owner revokes F's grant
  const now = Date.now()
  const delegation = createDelegation(
    owner.identity.principal,
    { space, admin: M.identity.principal.did, streams: ['*'], nbf: now - 60_000, exp: now + 86_400_000 },
    now,
  )
  const expiredDelegation = createDelegation(
    owner.identity.principal,
    { space, admin: S.identity.principal.did, streams: ['*'], nbf: now - 7_200_000, exp: now - 3_600_000 },
    now,
  )
  const grantOf = (subject: string) =>
    createGrant(
      owner.identity.principal,
      { space, sub: subject, streams: [STREAM], forms: [RAW], nbf: now - 60_000, exp: now + 86_400_000 },
      now,
    )
  const fGrant = grantOf(F.identity.principal.did)
  const hGrant = grantOf(H.identity.principal.did)
  await mustApply(
    owner.policy.write(space, [
      { kind: 'delegation', record: delegation },
      { kind: 'delegation', record: expiredDelegation },
      { kind: 'grant', record: fGrant },
      { kind: 'grant', record: hGrant },
    ]),
    'the delegation and the grants',
  )
  await catchUp(
    net,
    'grants everywhere',
    n => !hasRecords(n, space, [hGrant.id, fGrant.id]),
    deadlineMs,
    opts.onProgress,
  )
  for (const reader of [F, H]) await readWithRetries(() => reader.data.read(space, STREAM))
  const { record: revocation } = await owner.policy.revoke(space, { grant: fGrant.id })
  const revokedAt = Date.now()
  const ownerHeads = () => headsKey(owner, space)
  await catchUp(
    net,
    'the same policy everywhere',
    n => headsKey(n, space) !== ownerHeads(),
    deadlineMs,
    opts.onProgress,
  )
  await settle()
  const setupMs = performance.now() - t0
  step('setup')

  const attacks: AttackRecord[] = []
  const forgedIds: string[] = []
  /** forged changes served again over catch-up in the last attack */
  const toServe: Uint8Array[] = []
  const epochs = [...new Set((await owner.data.storedReadings(space, STREAM)).map(r => r.epoch))]

  /** Counters of every honest peer now, to tell what an attack moved. */
  const snapshot = () => new Map(honest().map(p => [p.index, WATCHED.map(name => p.node!.metrics.total(name))]))
  const countedSince = (before: ReturnType<typeof snapshot>): Record<string, number> => {
    const out: Record<string, number> = {}
    for (const p of honest()) {
      const b = before.get(p.index)
      if (b === undefined) continue
      WATCHED.forEach((name, k) => {
        const d = p.node!.metrics.total(name) - b[k]
        if (d > 0) out[name] = (out[name] ?? 0) + d
      })
    }
    return out
  }

  /**
   * Gossip `messages` from `from` on `topic`, then wait until every honest peer that got them
   * (the sender's subscribers of the topic) counted each as refused with `counter`. Returns
   * how many every one of them refused, and how many peers that was.
   */
  const gossip = async (
    from: EdgewardNode,
    topic: string,
    messages: Uint8Array[],
    counter: (n: EdgewardNode) => number,
    what: string,
  ): Promise<{ refused: number; recipients: number[] }> => {
    const recipients = from.libp2p.services.pubsub
      .getSubscribers(topic)
      .map(p => net.indexOf(p))
      .filter((i): i is number => i !== undefined && !adversaries.has(i) && net.peers[i].node !== undefined)
    const before = recipients.map(i => counter(net.node(i)))
    for (const m of messages) await from.libp2p.services.pubsub.publish(topic, m)
    const refusedBy = () => recipients.map((i, k) => counter(net.node(i)) - before[k])
    await waitUntil(
      `every recipient to refuse ${what}`,
      () => refusedBy().every(d => d >= messages.length),
      deadlineMs,
      20,
    ).catch(unlessDeadline)
    const d = refusedBy()
    return { refused: recipients.length === 0 ? 0 : Math.min(messages.length, ...d), recipients }
  }
  const policyRefusalsFrom = (peer: EdgewardNode) => (n: EdgewardNode) =>
    n.metrics.total(POLICY_REFUSED, `peer="${peer.identity.peerId}"`)

  /** A key request sent as `from`'s device, signed by `signer` (default: `from`'s principal). */
  const askKeys = async (from: EdgewardNode, grant: string | undefined, bytes?: Uint8Array): Promise<KeyResponse> => {
    const body =
      bytes ??
      createKeyRequest(from.identity.principal, {
        space,
        stream: STREAM,
        form: RAW,
        epochs,
        grant,
        device: from.identity.device.bytes,
        nonce: randomBytes(16),
        ts: Date.now(),
      }).bytes
    return decodeKeyResponse(
      await request(from.libp2p, peerIdFromString(owner.identity.peerId), KEYS_PROTOCOL, body, MAX_KEY_RESPONSE_BYTES),
    )
  }
  /** Key requests that must all be refused: how many were, and a violation for each that was not. */
  const keyRequests = async (asks: { who: string; send: () => Promise<KeyResponse> }[], violations: string[]) => {
    let refused = 0
    const codes: string[] = []
    for (const a of asks) {
      const res = await a.send()
      if (res.ok) violations.push(`the key holder released keys to ${a.who}`)
      else {
        refused++
        codes.push(res.code)
      }
    }
    return { refused, codes }
  }
  /** Why a fresh replica of the owner's document refuses a change (what every honest peer's validator ran into). */
  const replicaReasons = (changes: Uint8Array[]): string[] => {
    const replica = new PolicyDocument(space)
    for (const e of owner.policy.document(space).envelopesSince([])) replica.applyEnvelope(e)
    return changes.map(change => {
      try {
        return `a replica took it: ${replica.applyEnvelope(change, Date.now()).status}`
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`
      }
    })
  }
  const holderSaid = (codes: string[]) => codes.map(c => `key holder: ${c}`)
  /** Honest replicas must not hold these grant ids, must hold the revocation, and keep F's and H's grants as written. */
  const replicaViolations = (violations: string[], ids: string[]) => {
    for (const p of honest()) {
      const state = p.node!.policy.document(space).state
      for (const id of ids)
        if (state.grants.has(id)) violations.push(`p${p.index} holds the forged grant ${id.slice(0, 8)}`)
      if (!state.revocations.has(revocation.id)) violations.push(`p${p.index} lost the revocation of F's grant`)
      for (const g of [fGrant, hGrant]) {
        const held = state.grants.get(g.id)
        if (held === undefined || !bytesEqual(held.bytes, g.bytes))
          violations.push(`p${p.index} changed grant ${g.id.slice(0, 8)}`)
      }
    }
  }

  /**
   * An attack through the policy document: `changes` gossiped from `from` (each must be
   * refused by every honest recipient), then key requests that must all be refused; honest
   * replicas must hold none of `forgedIds` and keep the revocation and F's and H's grants.
   */
  const policyAttack = async (a: PolicyAttack): Promise<void> => {
    const before = snapshot()
    const violations: string[] = []
    const g = await gossip(a.from, policyTopic(space), a.changes, policyRefusalsFrom(a.from), a.label)
    const k = await keyRequests(a.asks, violations)
    replicaViolations(violations, a.forgedIds)
    attacks.push({
      name: a.name,
      what: a.what,
      by: a.by,
      attempted: a.changes.length + a.asks.length,
      refused: g.refused + k.refused,
      counted: countedSince(before),
      reasons: [...replicaReasons(a.changes), ...holderSaid(k.codes)],
      recipients: new Set([...g.recipients, ownerIndex]).size,
      violations,
    })
  }

  /**
   * A grant `from` signs for itself on `streams` (from a minute ago for a day), dated
   * `issuedAt`, gossiped in a change of its own, then a key request under it, as `who`:
   * a policy attack. Returns the change.
   */
  const selfGrantAttack = async (
    a: Pick<PolicyAttack, 'name' | 'what' | 'by' | 'from' | 'label'> & {
      streams: string[]
      issuedAt: number
      who: string
    },
  ): Promise<Uint8Array> => {
    const principal = a.from.identity.principal
    const grant = createGrant(
      principal,
      { space, sub: principal.did, streams: a.streams, forms: [RAW], nbf: now - 60_000, exp: now + 86_400_000 },
      a.issuedAt,
    )
    forgedIds.push(grant.id)
    const change = craft(a.from, space, principal, a.from.identity.peerId, d => {
      entriesFor(d.grants, grant.id)[grant.id] = grant.bytes
    })
    await policyAttack({
      ...a,
      changes: [change],
      asks: [{ who: a.who, send: () => askKeys(a.from, grant.id) }],
      forgedIds: [grant.id],
    })
    return change
  }

  // 1. a grant F issued itself, in F's own change
  const selfIssued = await selfGrantAttack({
    name: 'forged-grant-non-owner',
    what: 'a grant signed by a reader, not the owner, in its own change; then a key request under it',
    by: [forger],
    from: F,
    streams: ['*'],
    issuedAt: Date.now(),
    label: 'the self-issued grant',
    who: 'F under its own grant',
  })
  toServe.push(selfIssued)
  step('forged grant (non-owner)')

  // 2. a grant claiming the owner as issuer, signed by F
  {
    const mine = createGrant(
      F.identity.principal,
      { space, sub: F.identity.principal.did, streams: ['*'], forms: [RAW], nbf: now - 60_000, exp: now + 86_400_000 },
      Date.now(),
    )
    const claimed = claimIssuer(mine.bytes, owner.identity.principal.did)
    const claimedId = recordId(TAGS.grant, claimed.bodyBytes)
    forgedIds.push(claimedId)
    // under the owner's actor and in an envelope that names the owner, signed by F
    const asOwner = claimIssuer(
      craft(
        F,
        space,
        F.identity.principal,
        `owner-${F.identity.peerId}`,
        d => {
          entriesFor(d.grants, claimedId)[claimedId] = claimed.bytes
        },
        owner.identity.principal.did,
      ),
      owner.identity.principal.did,
    ).bytes
    // in F's own, validly signed envelope
    const inOwn = craft(F, space, F.identity.principal, F.identity.peerId, d => {
      entriesFor(d.grants, claimedId)[claimedId] = claimed.bytes
    })
    await policyAttack({
      name: 'forged-grant-wrong-signature',
      what: "a grant naming the owner as issuer under the forger's signature, in an envelope claiming the owner and in the forger's own; then a key request under it",
      by: [forger],
      from: F,
      changes: [asOwner, inOwn],
      label: 'the owner-claimed grant',
      asks: [{ who: 'F under the owner-claimed grant', send: () => askKeys(F, claimedId) }],
      forgedIds: [claimedId],
    })
  }
  step('forged grant (owner claimed)')

  // 3. the admin deletes the revocation of F's grant
  {
    const change = craft(M, space, M.identity.principal, M.identity.peerId, d => {
      delete entriesFor(d.revocations, revocation.id)[revocation.id]
    })
    toServe.push(change)
    await policyAttack({
      name: 'delete-revocation',
      what: "an admin's Automerge change deleting the revocation of a grant; then a key request under that grant",
      by: [admin, forger],
      from: M,
      changes: [change],
      label: 'the deletion',
      asks: [{ who: 'F under its revoked grant', send: () => askKeys(F, fGrant.id) }],
      forgedIds: [],
    })
  }
  step('delete a revocation')

  // 4. the admin overwrites grants: F's revoked one with a fresh grant, H's with one for M
  {
    const fresh = (sub: string) =>
      createGrant(
        M.identity.principal,
        { space, sub, streams: [STREAM], forms: [RAW], nbf: now - 60_000, exp: now + 86_400_000 },
        Date.now(),
      )
    const overF = craft(M, space, M.identity.principal, M.identity.peerId, d => {
      entriesFor(d.grants, fGrant.id)[fGrant.id] = fresh(F.identity.principal.did).bytes
    })
    const overH = craft(M, space, M.identity.principal, M.identity.peerId, d => {
      entriesFor(d.grants, hGrant.id)[hGrant.id] = fresh(M.identity.principal.did).bytes
    })
    toServe.push(overF)
    await policyAttack({
      name: 'overwrite-grant',
      what: "an admin's Automerge changes overwriting a revoked grant and another reader's grant; then key requests under both",
      by: [admin, forger],
      from: M,
      changes: [overF, overH],
      label: 'the overwrites',
      asks: [
        { who: 'F under its overwritten grant', send: () => askKeys(F, fGrant.id) },
        { who: "M under H's overwritten grant", send: () => askKeys(M, hGrant.id) },
      ],
      forgedIds: [],
    })
  }
  step('overwrite a grant')

  // 5. replays of H's signed key request, as the key holder's audit log keeps it
  {
    const before = snapshot()
    const violations: string[] = []
    const releases = await releasesOf(owner)
    const captured = releases.find(e => e.subject === H.identity.principal.did)
    if (captured === undefined) throw new ScenarioError("no release to H in the key holder's audit log")
    const k = await keyRequests(
      [
        { who: "F replaying H's request", send: () => askKeys(F, undefined, captured.request) },
        { who: "H's device replaying its own request", send: () => askKeys(H, undefined, captured.request) },
      ],
      violations,
    )
    const reasons = holderSaid(k.codes)
    attacks.push({
      name: 'replayed-key-request',
      what: "a reader's signed key request, taken from the key holder's audit log, sent again from another device and from its own",
      by: [forger, honestReader],
      attempted: 2,
      refused: k.refused,
      counted: countedSince(before),
      reasons,
      recipients: 1,
      violations,
    })
  }
  step('replayed key requests')

  // 6. junk on every topic of the space
  let afterSpam = { reached: 0, expected: 0 }
  {
    const before = snapshot()
    const violations: string[] = []
    const junk = () => Array.from({ length: spam }, () => seededBytes(random, 16 + randomInt(random, 1024)))
    const heads = new Map(honest().map(p => [p.index, headsKey(p.node!, space)]))
    const topics: [string, (n: EdgewardNode) => number][] = [
      [policyTopic(space), policyRefusalsFrom(S)],
      [readingsTopic(space), n => n.metrics.total(READINGS_REFUSED)],
      [auditTopic(space), n => n.metrics.total(HEADS_REFUSED)],
      [requestsTopic(space), n => n.metrics.total(REQUESTS_REFUSED)],
    ]
    let refused = 0
    const recipients = new Set<number>()
    const reasons: string[] = []
    for (const [topic, counter] of topics) {
      const g = await gossip(S, topic, junk(), counter, `junk on ${topic}`)
      refused += g.refused
      for (const i of g.recipients) recipients.add(i)
      reasons.push(
        `${topic.split('/')[2]} topic: ${g.refused} of ${spam} refused by each of ${g.recipients.length} peers`,
      )
    }
    for (const p of honest()) {
      if (headsKey(p.node!, space) !== heads.get(p.index))
        violations.push(`p${p.index}'s policy changed under the spam`)
    }
    // the space still works: a new reading reaches every honest peer
    const stored = (n: EdgewardNode) => n.metrics.total('edgeward_readings_stored_total', 'source="gossip"')
    const expected = honest().filter(p => p.index !== ownerIndex)
    const storedBefore = new Map(expected.map(p => [p.index, stored(p.node!)]))
    await owner.data.publish(space, STREAM, [{ ts: Date.now(), value: 42 }])
    const reached = () => expected.filter(p => stored(p.node!) > storedBefore.get(p.index)!).length
    await waitUntil('the reading after the spam everywhere', () => reached() === expected.length, deadlineMs, 20).catch(
      unlessDeadline,
    )
    afterSpam = { reached: reached(), expected: expected.length }
    attacks.push({
      name: 'gossip-spam',
      what: `${spam} junk messages on each of the space's policy, readings, audit and requests topics`,
      by: [spammer],
      attempted: 4 * spam,
      refused,
      counted: countedSince(before),
      reasons,
      recipients: recipients.size,
      violations,
    })
  }
  step('gossip spam')

  // 7 and 8: the rogue key holder's own space, witnessed by its honest neighbours
  const rogueSpace = await R.createSpace('rogue')
  // peers connected to R (they fetch its consistency proofs), the owner's gateway last: R dials
  // it, as anyone may, in case no honest neighbour of R is up
  await net.dial(rogue, ownerIndex)
  const witnesses = R.connectedPeers()
    .map(id => net.indexOf(id))
    .filter((i): i is number => i !== undefined && !adversaries.has(i) && net.peers[i].node !== undefined)
    .sort((a, b) => (a === ownerIndex ? 1 : b === ownerIndex ? -1 : a - b))
    .slice(0, 5)
  if (witnesses.length === 0) {
    throw new ScenarioError('the rogue key holder has no honest neighbour to witness its log')
  }
  for (const w of witnesses) await net.node(w).joinSpace(rogueSpace)
  await waitUntil(
    "the rogue's space at its witnesses",
    async () => {
      const behind = witnesses.filter(w => !net.node(w).policy.document(rogueSpace).hasGenesis)
      for (const w of behind)
        await net
          .node(w)
          .policy.syncWith(R.identity.peerId)
          .catch(() => 0)
      return behind.length === 0
    },
    deadlineMs,
    200,
  )
  const logGrows = async (entries: number) => {
    const size = R.audit!.size
    for (let i = 0; i < entries; i++) {
      const w = net.node(witnesses[i % witnesses.length])
      await R.policy.grant(rogueSpace, {
        sub: w.identity.principal.did,
        streams: ['*'],
        forms: [RAW],
        nbf: now,
        exp: now + 3_600_000,
      })
    }
    await waitUntil("the rogue's log to grow", () => R.audit!.size >= size + entries, deadlineMs)
  }
  const publishHead = (head: Uint8Array) =>
    R.libp2p.services.pubsub.publish(auditTopic(rogueSpace), encodeAuditMessage({ t: 'head', head }))
  const evidenceOf = (w: number, forged: Uint8Array) =>
    net
      .node(w)
      .audit!.equivocations()
      .some(e => e.log === R.identity.peerId && (bytesEqual(e.a, forged) || bytesEqual(e.b, forged)))
  const forkAttack = async (name: string, what: string, forged: Uint8Array, forgedRoot: Uint8Array) => {
    const before = snapshot()
    const violations: string[] = []
    await publishHead(forged)
    await waitUntil(
      `every witness to keep evidence of ${name}`,
      () => witnesses.every(w => evidenceOf(w, forged)),
      deadlineMs,
      20,
    ).catch(unlessDeadline)
    for (const w of witnesses) {
      if (!evidenceOf(w, forged)) violations.push(`witness p${w} kept no evidence`)
      const seen = net.node(w).audit!.seenHead(R.identity.peerId)
      if (seen !== undefined && bytesEqual(seen.body.root, forgedRoot))
        violations.push(`witness p${w} accepted the forged head`)
    }
    attacks.push({
      name,
      what,
      by: [rogue],
      attempted: 1,
      refused: violations.length === 0 ? 1 : 0,
      counted: countedSince(before),
      reasons: [
        ...new Set(
          witnesses.flatMap(w =>
            net
              .node(w)
              .audit!.equivocations()
              .filter(e => bytesEqual(e.a, forged) || bytesEqual(e.b, forged))
              .map(e => `evidence: ${e.reason}`),
          ),
        ),
      ],
      recipients: witnesses.length,
      violations,
    })
  }

  // 7. two heads of one size
  await logGrows(2)
  const genuine = (await R.audit!.publishHead())!
  await waitUntil(
    "every witness to accept the rogue's head",
    () => witnesses.every(w => net.node(w).audit!.seenHead(R.identity.peerId)?.body.size === genuine.body.size),
    deadlineMs,
    20,
  )
  step("the rogue's space")
  {
    const otherRoot = rootFromLeafHashes([leafHash(randomBytes(8)), leafHash(randomBytes(8))])
    const forged = signTreeHead(R.identity.principal, R.identity.peerId, genuine.body.size, otherRoot, Date.now())
    await forkAttack(
      'log-fork-same-size',
      'a key holder signs a second head of the size its witnesses accepted, with another root',
      forged.bytes,
      otherRoot,
    )
  }
  step('fork: two heads of one size')

  // 8. a head over a rewritten log: a size the real log has, other entries
  {
    const size = genuine.body.size
    await logGrows(3)
    const rewritten = Array.from({ length: size + 2 }, () => leafHash(randomBytes(32)))
    const root = rootFromLeafHashes(rewritten)
    const forged = signTreeHead(R.identity.principal, R.identity.peerId, size + 2, root, Date.now())
    await forkAttack(
      'log-fork-rewritten',
      'a key holder signs a head over a rewritten log (other entries, a larger size) while serving proofs of its real one',
      forged.bytes,
      root,
    )
  }
  step('fork: a rewritten log')

  // 9. the same forged changes served over catch-up: M answers its neighbours' requests with them
  {
    const before = snapshot()
    const violations: string[] = []
    let serving = true
    await M.libp2p.unhandle(POLICY_SYNC_PROTOCOL)
    await handle(
      M.libp2p,
      POLICY_SYNC_PROTOCOL,
      MAX_SYNC_REQUEST_BYTES,
      MAX_SYNC_RESPONSE_BYTES,
      async body => {
        const req = decodeSyncRequest(body)
        if (serving && req.space === space) return encodeSyncResponse({ envelopes: toServe, more: false })
        // otherwise as the node answers
        if (!M.policy.spaces().includes(req.space)) return encodeSyncResponse({ envelopes: [], more: false })
        const all = M.policy.document(req.space).envelopesSince(req.heads)
        return encodeSyncResponse({ envelopes: all.slice(0, MAX_SYNC_PAGE), more: all.length > MAX_SYNC_PAGE })
      },
      () => undefined,
    )
    const askers = M.connectedPeers()
      .map(id => net.indexOf(id))
      .filter((i): i is number => i !== undefined && !adversaries.has(i) && net.peers[i].node !== undefined)
    // the changes arrive by catch-up alone now: M gossips nothing more
    const counter = policyRefusalsFrom(M)
    const counts = askers.map(i => counter(net.node(i)))
    for (const i of askers) await net.node(i).policy.syncWith(M.identity.peerId)
    serving = false
    const deltas = askers.map((i, k) => counter(net.node(i)) - counts[k])
    replicaViolations(violations, forgedIds)
    attacks.push({
      name: 'forged-changes-over-catch-up',
      what: "the self-issued grant, the deletion and an overwrite, served by the admin in answer to its neighbours' catch-up requests",
      by: [admin],
      attempted: toServe.length,
      refused: askers.length === 0 ? 0 : Math.min(toServe.length, ...deltas),
      counted: countedSince(before),
      reasons: replicaReasons(toServe),
      recipients: askers.length,
      violations,
    })
  }
  step('forged changes over catch-up')

  /**
   * An attack by valid changes that every honest peer takes, and that must have no effect: wait
   * until every honest peer holds `records`, then check each with `holds` and make the key
   * requests, which must all be refused (or, for `mustRead`, must succeed).
   */
  const acceptedButPowerless = async (a: {
    name: string
    what: string
    by: AttackRecord['by']
    write: () => Promise<unknown>
    records: string[]
    holds: (state: ReturnType<typeof owner.policy.document>['state'], p: number) => string | undefined
    asks: { who: string; send: () => Promise<KeyResponse> }[]
    mustRead?: { who: string; send: () => Promise<KeyResponse> }
  }): Promise<void> => {
    const before = snapshot()
    const violations: string[] = []
    await a.write()
    const has = (n: EdgewardNode) => {
      const doc = n.policy.document(space)
      return a.records.every(id => doc.state.grants.has(id) || doc.state.revocations.has(id))
    }
    await catchUp(net, `${a.name} at every peer`, n => !has(n), deadlineMs, opts.onProgress)
    let reached = 0
    const reasons: string[] = []
    for (const p of honest()) {
      const state = p.node!.policy.document(space).state
      reached++
      const problem = a.holds(state, p.index)
      if (problem !== undefined) violations.push(problem)
    }
    const k = await keyRequests(a.asks, violations)
    reasons.push(...holderSaid(k.codes))
    if (a.mustRead !== undefined) {
      const res = await a.mustRead.send()
      if (!res.ok) violations.push(`${a.mustRead.who} was refused (${res.code}): the attack had an effect`)
      else reasons.push(`${a.mustRead.who}: keys released`)
    }
    const attempted = a.records.length + a.asks.length
    attacks.push({
      name: a.name,
      what: a.what,
      by: a.by,
      attempted,
      // a record taken but without effect at every honest peer counts as refused
      refused: violations.length === 0 ? a.records.length + k.refused : k.refused,
      counted: countedSince(before),
      reasons,
      recipients: reached,
      violations,
    })
  }

  // 10. an expired admin signs itself a year-long grant dated inside its old delegation
  {
    const backdated = createGrant(
      S.identity.principal,
      {
        space,
        sub: S.identity.principal.did,
        streams: [STREAM],
        forms: [RAW],
        nbf: now - 7_000_000,
        exp: now + 365 * 86_400_000,
      },
      now - 5_000_000,
    )
    forgedIds.push(backdated.id)
    await acceptedButPowerless({
      name: 'expired-admin-backdates',
      what: 'an admin whose delegation ended an hour ago signs itself a grant dated inside the old window and lasting a year; then a key request under it',
      by: [spammer],
      write: () => S.policy.write(space, [{ kind: 'grant', record: backdated }]),
      records: [backdated.id],
      holds: (state, p) => {
        const status = state.grantStatus(state.grants.get(backdated.id)!, Date.now())
        return status.status === 'not-honoured'
          ? undefined
          : `p${p} lists the expired admin's grant as ${status.status}`
      },
      asks: [{ who: 'S under the backdated grant', send: () => askKeys(S, backdated.id) }],
    })
  }
  step('expired admin backdates')

  // 11. a grant dated a year ahead, crafted by M (its own node would not sign it)
  await selfGrantAttack({
    name: 'future-dated-grant',
    what: 'an admin gossips a grant dated a year ahead; then a key request under it',
    by: [admin],
    from: M,
    streams: [STREAM],
    issuedAt: Date.now() + 365 * 86_400_000,
    label: 'the future-dated grant',
    who: 'M under the future-dated grant',
  })
  step('future-dated grant')

  // 12. the owner fires M; M, knowing it, backdates revocations of H's grant and of H
  {
    const { record: firing } = await owner.policy.revoke(space, { delegation: delegation.id })
    await catchUp(
      net,
      'the firing at the fired admin',
      n => n === M && !n.policy.document(space).state.revocations.has(firing.id),
      deadlineMs,
      opts.onProgress,
    )
    const backdated = [
      createRevocation(M.identity.principal, space, { grant: hGrant.id }, now - 30_000),
      createRevocation(M.identity.principal, space, { subject: H.identity.principal.did }, now - 30_000),
    ]
    await acceptedButPowerless({
      name: 'fired-admin-backdates',
      what: "the owner revokes an admin's delegation; the admin, knowing it, revokes a reader's grant and the reader with revocations dated inside its old window; the reader must still read",
      by: [admin],
      write: () =>
        M.policy.write(
          space,
          backdated.map(record => ({ kind: 'revocation' as const, record })),
        ),
      records: backdated.map(r => r.id),
      holds: (state, p) => {
        const status = state.grantStatus(state.grants.get(hGrant.id)!, Date.now())
        return status.status === 'active' ? undefined : `p${p} lets the fired admin end H's grant (${status.reason})`
      },
      asks: [],
      mustRead: { who: 'H under its grant', send: () => askKeys(H, hGrant.id) },
    })
  }
  step('fired admin backdates')

  // over the whole run: no key released that should not have been
  const releases = await releasesOf(owner)
  const releaseViolations: string[] = []
  const hashes = new Set<string>()
  const never = new Set([M, S, R].map(n => n.identity.principal.did))
  for (const e of releases) {
    const hash = Buffer.from(e.reqHash).toString('hex')
    if (hashes.has(hash)) releaseViolations.push(`a signed request was released twice (${hash.slice(0, 8)})`)
    hashes.add(hash)
    if (never.has(e.subject))
      releaseViolations.push(`keys released to an adversary that never had a grant (${e.subject})`)
    if (forgedIds.includes(e.grant)) releaseViolations.push(`keys released under a forged grant ${e.grant.slice(0, 8)}`)
    if (e.subject === F.identity.principal.did && e.ts > revokedAt)
      releaseViolations.push('keys released to F after its grant was revoked')
    if (e.subject === F.identity.principal.did && e.grant !== fGrant.id)
      releaseViolations.push(`keys released to F under a grant it was never given (${e.grant.slice(0, 8)})`)
  }
  step('audit log checked')
  return {
    scenario: 'adversary',
    space,
    owner: ownerIndex,
    roles: { forger, admin, spammer, rogue, honestReader },
    rogueSpace,
    witnesses,
    setupMs,
    attacks,
    releasesChecked: releases.length,
    releaseViolations,
    afterSpam,
    stepsMs,
  }
}

async function mustApply(write: Promise<{ status: string }>, what: string): Promise<void> {
  const outcome = await write
  if (outcome.status !== 'applied') throw new PolicyWriteError(`${what} not applied: ${outcome.status}`)
}

function hasRecords(n: EdgewardNode, space: string, grants: string[]): boolean {
  const doc = n.policy.document(space)
  return doc.hasGenesis && grants.every(id => doc.state.grants.has(id))
}

async function releasesOf(holder: EdgewardNode): Promise<ReleaseEntry[]> {
  const out: ReleaseEntry[] = []
  for (let i = 0; i < (holder.audit?.size ?? 0); i++) {
    const e = decodeEntry(await holder.audit!.entry(i))
    if (e.t === 'release') out.push(e)
  }
  return out
}

/** What a policy attack sends and asks; see policyAttack. */
interface PolicyAttack {
  name: string
  what: string
  by: AttackRecord['by']
  from: EdgewardNode
  changes: Uint8Array[]
  label: string
  asks: { who: string; send: () => Promise<KeyResponse> }[]
  forgedIds: string[]
}

type Shape = { grants?: Record<string, unknown>; revocations?: Record<string, unknown>; [k: string]: unknown }

/**
 * An Automerge change made by hand on top of `node`'s replica of the space, under the actor
 * id of `actorDid` (default the signer's) for device `deviceId`, wrapped in an envelope that
 * `signer` signs: how a peer that runs other code than ours writes to a policy document.
 */
function craft(
  node: EdgewardNode,
  space: string,
  signer: EdgewardNode['identity']['principal'],
  deviceId: string,
  edit: (d: Shape) => void,
  actorDid = signer.did,
): Uint8Array {
  const changes = node.policy
    .document(space)
    .envelopesSince([])
    .map(e => openEnvelope(e).body.change)
  const [doc] = Automerge.applyChanges(Automerge.init<Shape>({ actor: actorFor(actorDid, deviceId) }), changes)
  const change = Automerge.getLastLocalChange(Automerge.change(doc, { time: 0 }, edit))
  if (change === undefined) throw new PolicyWriteError('the crafted edit made no change')
  return signRecord<ChangeEnvelope>(ENVELOPE_TAG, { t: 'change', iss: signer.did, space, change }, signer).bytes
}

/**
 * The map of a collection that holds (or would hold) record `id`: the collection itself, or,
 * where the document splits a collection into shards named by the id's first two hex
 * digits, that shard.
 */
function entriesFor(collection: unknown, id: string): Record<string, unknown> {
  const c = collection as Record<string, unknown>
  const shard = c[id.slice(0, 2)]
  return shard !== null && typeof shard === 'object' && !(shard instanceof Uint8Array)
    ? (shard as Record<string, unknown>)
    : c
}

/** The same signed record with its body's issuer replaced: the signature no longer matches the issuer it names. */
function claimIssuer(bytes: Uint8Array, issuer: string): { bytes: Uint8Array; bodyBytes: Uint8Array } {
  const outer = decodeCanonical(bytes, 1 << 20) as { body: Uint8Array; sig: Uint8Array }
  const body = decodeCanonical(outer.body, 1 << 20) as Record<string, unknown>
  body.iss = issuer
  const bodyBytes = encodeCanonical(body)
  return { bytes: encodeCanonical({ body: bodyBytes, sig: outer.sig }), bodyBytes }
}

function seededBytes(random: Random, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = randomInt(random, 256)
  return out
}
