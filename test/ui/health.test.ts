/**
 * The Health indicator's rule (node/ui/health.ts), a pure function of the API's status and
 * metrics: a table of node states and the verdict each gets (a space's keys are in reach when
 * its key holder is connected, or k of its custodians are), and the Prometheus parser; and
 * who the connected peers are, as far as the spaces say.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { CheckId } from '../../node/ui/contract.ts'
import { assessHealth, type NodeStatus, parsePrometheus, peersOf } from '../../node/ui/health.ts'

const base: NodeStatus = {
  peerId: '12D3KooWexample',
  did: 'did:key:z6Mkexample',
  developmentMode: false,
  addresses: [],
  peers: [],
  refusedPolicyChanges: 0,
  spaces: [],
  audit: { equivocations: [], unverifiable: [] },
}
const owned = { id: 'a'.repeat(64), synchronised: true, name: 'plant-7', keyHolder: true }
const joined = { id: 'b'.repeat(64), synchronised: true, name: 'lab', keyHolder: false }
const waiting = { id: 'c'.repeat(64), synchronised: false }
/** a custodian set of `threshold`, one custodian per entry of `connected` (peers c0, c1, …, people d0, d1, …) */
const custody = (threshold: number, connected: boolean[]) => ({
  threshold,
  custodians: connected.map((c, i) => ({ peer: `c${i}`, did: `d${i}`, connected: c })),
})

describe('health', () => {
  const cases: {
    what: string
    status: Partial<NodeStatus>
    verdict: 'fine' | 'attention' | 'trouble'
    states: Partial<Record<CheckId, string>>
  }[] = [
    { what: 'a new node, alone, in no space', status: {}, verdict: 'fine', states: { peers: 'ok', spaces: 'ok' } },
    {
      what: 'an owner with a peer',
      status: { spaces: [owned], peers: ['p1'] },
      verdict: 'fine',
      states: { 'key-holders': 'ok' },
    },
    {
      what: 'an owner with no peer',
      status: { spaces: [owned] },
      verdict: 'attention',
      states: { peers: 'attention' },
    },
    {
      what: 'a space still waiting for its policy',
      status: { spaces: [waiting], peers: ['p1'] },
      verdict: 'attention',
      states: { spaces: 'attention' },
    },
    {
      what: 'a reader: whether its key holder is reachable is not known, and says so without alarm',
      status: { spaces: [joined], peers: ['p1'] },
      verdict: 'fine',
      states: { 'key-holders': 'unknown' },
    },
    {
      what: 'a reader connected to its space’s key holder',
      status: { spaces: [{ ...joined, holders: [{ peer: 'h1', connected: true }] }], peers: ['h1'] },
      verdict: 'fine',
      states: { 'key-holders': 'ok' },
    },
    {
      what: 'a reader whose key holder is not connected: nothing new opens, and it says so',
      status: { spaces: [{ ...joined, holders: [{ peer: 'h1', connected: false }] }], peers: ['p1'] },
      verdict: 'attention',
      states: { 'key-holders': 'attention' },
    },
    {
      what: 'a reader whose key holder is away but enough custodians are connected: keys stay in reach',
      status: {
        spaces: [{ ...joined, holders: [{ peer: 'h1', connected: false }], custody: custody(2, [true, true, false]) }],
        peers: ['c0', 'c1'],
      },
      verdict: 'fine',
      states: { 'key-holders': 'ok' },
    },
    {
      what: 'a reader whose key holder is away and fewer than k custodians are connected',
      status: {
        spaces: [{ ...joined, holders: [{ peer: 'h1', connected: false }], custody: custody(2, [true, false, false]) }],
        peers: ['c0'],
      },
      verdict: 'attention',
      states: { 'key-holders': 'attention' },
    },
    {
      what: 'refused policy changes',
      status: { spaces: [owned], peers: ['p1'], refusedPolicyChanges: 3 },
      verdict: 'attention',
      states: { 'refused-changes': 'attention' },
    },
    {
      what: 'an unverifiable audit log',
      status: {
        peers: ['p1'],
        audit: {
          equivocations: [],
          unverifiable: [{ log: 'l', acceptedSize: 3, uncheckedSize: 9, tries: 4, since: 0 }],
        },
      },
      verdict: 'attention',
      states: { 'audit-logs': 'attention' },
    },
    {
      what: 'equivocation evidence outranks everything',
      status: {
        spaces: [waiting],
        audit: { equivocations: [{ log: 'l', reason: 'two heads at size 4', seenAt: 0 }], unverifiable: [] },
      },
      verdict: 'trouble',
      states: { equivocations: 'trouble', spaces: 'attention' },
    },
  ]
  for (const c of cases) {
    it(c.what, () => {
      const h = assessHealth({ ...base, ...c.status }, '')
      assert.equal(h.verdict, c.verdict, h.summary)
      for (const [id, state] of Object.entries(c.states))
        assert.equal(h.checks.find(x => x.id === id)?.state, state, id)
      assert.equal(h.checks.length, 6)
      assert.ok(h.summary.length > 0 && h.checks.every(x => x.summary.length > 0))
    })
  }

  it('says in the details how many custodians are connected and how many release a key', () => {
    const h = assessHealth(
      {
        ...base,
        peers: ['c0', 'c1'],
        spaces: [{ ...joined, holders: [{ peer: 'h1', connected: false }], custody: custody(2, [true, true, false]) }],
      },
      '',
    )
    const c = h.checks.find(x => x.id === 'key-holders')
    assert.equal(c?.summary, 'A key holder, or enough custodians to release keys, of every space is connected.')
    assert.deepEqual(c?.details, ['lab: no key holder connected (h1); 2 of 3 custodians connected (2 release a key)'])
  })

  it('names the connected peers it knows: a space’s key holder is its owner, a custodian the person its set names', () => {
    const peers = peersOf({
      ...base,
      peers: ['h1', 'c0', 'x'],
      spaces: [
        {
          ...joined,
          owner: 'did:owner',
          holders: [{ peer: 'h1', connected: true }],
          custody: custody(2, [true, false]),
        },
      ],
    })
    assert.deepEqual(peers, [{ peer: 'h1', did: 'did:owner' }, { peer: 'c0', did: 'd0' }, { peer: 'x' }])
  })

  it('names the refused changes by reason and peer, from the metrics', () => {
    const text = [
      '# HELP edgeward_policy_changes_refused_total policy changes refused, by reason and sending peer',
      '# TYPE edgeward_policy_changes_refused_total counter',
      'edgeward_policy_changes_refused_total{peer="p9",reason="not-owner"} 2',
      'edgeward_policy_changes_refused_total{peer="p8",reason="bad-signature"} 1',
      'edgeward_key_releases_total 0',
      '',
    ].join('\n')
    const m = parsePrometheus(text)
    assert.equal(m.get('edgeward_policy_changes_refused_total')?.series.length, 2)
    const h = assessHealth({ ...base, refusedPolicyChanges: 3 }, text)
    assert.deepEqual(h.checks.find(c => c.id === 'refused-changes')?.details, [
      '2× peer="p9",reason="not-owner"',
      '1× peer="p8",reason="bad-signature"',
    ])
    assert.deepEqual(
      h.counters.map(c => [c.name, c.total]),
      [['edgeward_policy_changes_refused_total', 3]],
      'counters at zero are left out',
    )
  })
})
