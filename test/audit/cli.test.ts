/**
 * The audit plane as a user meets it: real `edgeward` processes over TCP on 127.0.0.1, a
 * gateway and a reader A. A reads, is revoked two seconds later, and `edgeward audit report`
 * on the gateway says for how long A held a key; `edgeward audit verify` checks the report
 * offline, and refuses it (exit 1, one line naming what failed) after any tampering.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { fromBase64url, toBase64url } from '../../crypto/encoding.ts'
import { auditVerify, ReportInvalidError } from '../../node/cli/audit.ts'
import { type LocalPeer, runCli } from '../../node/cli/local-network.ts'
import { UsageError } from '../../node/errors.ts'
import { suiteLocalPeers } from '../support/local-peers.ts'
import { waitFor } from '../support/wait.ts'

const STREAM = 'temperature'

interface Interval {
  from: number
  until: number
  endedBy: string
}
interface Holding {
  subject: string
  resource: string
  intervals: Interval[]
  minutes: number
}

describe('edgeward audit report / verify across real processes', { timeout: 90_000 }, () => {
  const local = suiteLocalPeers('audit-cli', ['gateway', 'a'])
  const { peers, dids } = local
  let space: string
  let reportFile: string
  const times = { readStart: 0, readEnd: 0, revokeStart: 0, revokeEnd: 0 }

  /** The status through the peer's local API (polling without a process per call). */
  const status = async (p: LocalPeer) => (await p.api()).call<Record<string, any>>('GET', '/v1/status')
  const spaceStatus = async (p: LocalPeer) => (await status(p)).spaces.find((s: { id: string }) => s.id === space)
  const oneLine = (stderr: string) => assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`)

  before(async () => {
    reportFile = join(local.root, 'report.json')
  })

  it('reads, revokes, and reports the interval A held a key, which verifies offline', async () => {
    const created = await peers.gateway.cli(['space', 'create', 'plant-9'])
    assert.equal(created.code, 0, created.stderr)
    space = created.stdout.trim()
    assert.equal((await peers.a.cli(['space', 'join', space])).code, 0)
    await waitFor('A to receive the space', async () => ((await spaceStatus(peers.a))?.synchronised ? true : undefined))
    const t = Date.now()
    const input = [0, 1, 2].map(i => JSON.stringify({ ts: t + i, value: 10 + i })).join('\n')
    const pub = await peers.gateway.cli(['publish', space, STREAM], { input })
    assert.equal(pub.code, 0, pub.stderr)
    await waitFor('A to store the readings', async () =>
      ((await status(peers.a)).counters.edgeward_readings_stored_total?.['source="gossip"'] ?? 0) >= 3
        ? true
        : undefined,
    )
    const g = await peers.gateway.cli(['grant', space, '--to', dids.a, '--stream', STREAM, '--for', '1h', '--json'])
    assert.equal(g.code, 0, g.stderr)
    const grant = JSON.parse(g.stdout).grant as string
    await waitFor('A to receive its grant', async () => ((await spaceStatus(peers.a))?.grants === 1 ? true : undefined))

    times.readStart = Date.now()
    const read = await peers.a.cli(['read', space, STREAM])
    times.readEnd = Date.now()
    assert.equal(read.code, 0, read.stderr)
    assert.equal(read.stdout.trim().split('\n').length, 3)

    // A holds the key for about two seconds: time that must pass, not an event to wait for
    await new Promise(resolve => setTimeout(resolve, 2000))
    times.revokeStart = Date.now()
    const rv = await peers.gateway.cli(['revoke', space, '--grant', grant])
    times.revokeEnd = Date.now()
    assert.equal(rv.code, 0, rv.stderr)

    const rep = await peers.gateway.cli(['audit', 'report', space, '--subject', dids.a, '--out', reportFile])
    assert.equal(rep.code, 0, rep.stderr)
    assert.match(rep.stdout, /^wrote .*report\.json: \d+ entries with inclusion proofs$/m)
    assert.match(rep.stdout, /^subject +resource +from +until +ended by +minutes$/m)
    const row = rep.stdout.split('\n').find(l => l.startsWith(dids.a))
    assert.ok(row !== undefined, `a row for A in:\n${rep.stdout}`)
    assert.match(row, new RegExp(`^${dids.a} +${STREAM} +\\S+Z +\\S+Z +revocation +\\d+\\.\\d\\d$`))

    const verified = await runCli(['audit', 'verify', reportFile])
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(verified.stdout, /^verified: \d+ entries, each proven in log \S+ at size \d+/)
    // what the report vouches for, and that nothing pinned it
    const vouches = `for space "plant-9" (${space}), owner ${dids.gateway}, key holder ${peers.gateway.info.peerId}`
    assert.ok(verified.stdout.split('\n').includes(vouches), verified.stdout)
    assert.match(verified.stdout, /^\(checked against itself only: .*--space ID or --owner DID/m)
    const pinned = await runCli(['audit', 'verify', reportFile, '--space', space])
    assert.equal(pinned.code, 0, pinned.stderr)
    assert.ok(pinned.stdout.split('\n').includes(vouches), pinned.stdout)
    assert.doesNotMatch(pinned.stdout, /checked against itself only/)

    const json = await runCli(['audit', 'verify', reportFile, '--space', space, '--json'])
    assert.equal(json.code, 0, json.stderr)
    const summary = JSON.parse(json.stdout) as {
      ok: boolean
      space: { id: string; name: string }
      owner: string
      keyHolder: string
      log: string
      treeSize: number
      holdings: Holding[]
    }
    assert.equal(summary.ok, true)
    assert.deepEqual(summary.space, { id: space, name: 'plant-9' })
    assert.equal(summary.owner, dids.gateway)
    assert.equal(summary.keyHolder, peers.gateway.info.peerId)
    assert.equal(summary.log, peers.gateway.info.peerId)
    assert.deepEqual(
      summary.holdings.map(h => [h.subject, h.resource, h.intervals.length]),
      [[dids.a, STREAM, 1]],
    )
    const [{ intervals, minutes }] = summary.holdings
    const [held] = intervals
    assert.equal(held.endedBy, 'revocation')
    assert.ok(
      held.from >= times.readStart && held.from <= times.readEnd,
      `the key was released during the read: ${held.from} in [${times.readStart}, ${times.readEnd}]`,
    )
    assert.ok(
      held.until >= times.revokeStart && held.until <= times.revokeEnd,
      `the interval ends with the revocation: ${held.until} in [${times.revokeStart}, ${times.revokeEnd}]`,
    )
    // the commands' own start-up is most of their time: the events sit near their ends
    assert.ok(times.readEnd - held.from < 1000, 'within 1 s of the read')
    assert.ok(times.revokeEnd - held.until < 1000, 'within 1 s of the revocation')
    assert.ok(held.until - held.from >= 2000)
    assert.equal(minutes, Math.round(((held.until - held.from) / 60_000) * 100) / 100)
    console.log(
      `# held ${held.until - held.from} ms: release ${held.from - times.readStart} ms into the ${times.readEnd - times.readStart} ms read, revocation ${held.until - times.revokeStart} ms into the ${times.revokeEnd - times.revokeStart} ms revoke`,
    )
  })

  describe('audit verify refuses what does not check out', () => {
    let original: {
      head: string
      entries: { index: number; entry: string; proof: string[] }[]
      [k: string]: unknown
    }
    let n = 0

    const flip = (b64: string, pos: number): string => {
      const b = fromBase64url(b64)
      b[pos] ^= 0x10
      return toBase64url(b)
    }

    /** Write a tampered copy of the report and run `audit verify` on it. */
    const verifyTampered = async (edit: (r: typeof original) => void, args: string[] = []) => {
      const r = structuredClone(original)
      edit(r)
      const file = join(local.root, `tampered-${n++}.json`)
      await writeFile(file, JSON.stringify(r, null, 2))
      return runCli(['audit', 'verify', file, ...args])
    }

    before(async () => {
      original = JSON.parse(await readFile(reportFile, 'utf8'))
      assert.ok(original.entries.length >= 3, 'grant, release and revocation')
      assert.ok(original.entries.every(e => e.proof.length > 0))
    })

    it('a flipped bit in any entry: exit 1, naming the entry', async () => {
      for (const [i, e] of original.entries.entries()) {
        const len = fromBase64url(e.entry).byteLength
        const r = await verifyTampered(t => (t.entries[i].entry = flip(e.entry, len >> 1)))
        assert.equal(r.code, 1, `entry ${i}: ${r.stderr}`)
        oneLine(r.stderr)
        assert.match(
          r.stderr,
          new RegExp(
            `^edgeward: error: verification failed: entry ${i} \\(log index ${e.index}\\): inclusion proof does not verify`,
          ),
        )
        assert.equal(r.stdout, '')
      }
    })

    it('a flipped bit in a proof: exit 1, naming the entry', async () => {
      const r = await verifyTampered(t => (t.entries[1].proof[0] = flip(t.entries[1].proof[0], 5)))
      assert.equal(r.code, 1, r.stderr)
      oneLine(r.stderr)
      assert.match(r.stderr, /verification failed: entry 1 \(log index \d+\): inclusion proof does not verify/)
    })

    it('a flipped bit in the head: exit 1, naming the tree head', async () => {
      const len = fromBase64url(original.head).byteLength
      for (const pos of [len - 1, len >> 1]) {
        const r = await verifyTampered(t => (t.head = flip(t.head, pos)))
        assert.equal(r.code, 1, r.stderr)
        oneLine(r.stderr)
        assert.match(r.stderr, /verification failed: tree head: /)
      }
    })

    it('a report for another space than --space: exit 1', async () => {
      const r = await verifyTampered(() => undefined, ['--space', 'f'.repeat(64)])
      assert.equal(r.code, 1, r.stderr)
      oneLine(r.stderr)
      assert.match(r.stderr, /verification failed: report is for another space/)
      const same = await verifyTampered(() => undefined, ['--space', space])
      assert.equal(same.code, 0, same.stderr)
    })

    it('--owner pins the owner: another owner is refused naming both', async () => {
      const out: string[] = []
      const o = { json: true, out: (l: string) => void out.push(l), err: () => undefined }
      await auditVerify(reportFile, { owner: dids.gateway }, o)
      assert.equal(JSON.parse(out[0]).owner, dids.gateway)
      await assert.rejects(
        auditVerify(reportFile, { owner: dids.a }, o),
        (err: Error) =>
          err.name === ReportInvalidError.name &&
          err.message === `verification failed: report is for a space of another owner: ${dids.gateway}, not ${dids.a}`,
      )
      await assert.rejects(
        auditVerify(reportFile, { space, owner: dids.a }, o),
        (err: Error) => err.name === ReportInvalidError.name && /another owner/.test(err.message),
      )
      await assert.rejects(
        auditVerify(reportFile, { owner: 'did:key:nope' }, o),
        (err: Error) => err.name === UsageError.name,
      )
      assert.equal(out.length, 1)
      // and from the command line
      const pinned = await verifyTampered(() => undefined, ['--owner', dids.a])
      assert.equal(pinned.code, 1, pinned.stderr)
      oneLine(pinned.stderr)
      assert.match(pinned.stderr, /another owner/)
      assert.equal((await verifyTampered(() => undefined, ['--owner', dids.gateway])).code, 0)
    })

    // junk given to `audit verify` (an image, random bytes, a text whose JSON error would quote
    // it) is refused in one line that does not echo it: no raw bytes, no stack
    it('binary junk, or text that is not JSON: exit 1, one line, the file not echoed', async () => {
      const junk: [string, Uint8Array][] = [
        [
          'png',
          Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]),
        ],
        ['random', Uint8Array.from({ length: 4096 }, (_, i) => (i * 197 + 13) % 256)],
        ['nul', new Uint8Array(64)],
        ['text', new TextEncoder().encode('{"format": "edgeward-audit-report/v1",\r\n\u001b[2J oops\n\n}')],
      ]
      for (const [what, bytes] of junk) {
        const file = join(local.root, `junk-${what}.bin`)
        await writeFile(file, bytes)
        const r = await runCli(['audit', 'verify', file])
        assert.equal(r.code, 1, `${what}: ${r.stderr}`)
        oneLine(r.stderr)
        assert.match(r.stderr, new RegExp(`^edgeward: error: cannot read ${file}: (not UTF-8 text|not JSON)`), what)
        assert.doesNotMatch(r.stderr.trimEnd(), /[\p{Cc}\ufffd]|\bat \S+ \(/u, `${what}: ${r.stderr}`)
        assert.equal(r.stdout, '')
      }
    })

    it('a file that is not JSON, or is missing: exit 1', async () => {
      const file = join(local.root, 'not-json.txt')
      await writeFile(file, 'this is not a report\n')
      for (const f of [file, join(local.root, 'missing.json')]) {
        const r = await runCli(['audit', 'verify', f])
        assert.equal(r.code, 1, r.stderr)
        oneLine(r.stderr)
        assert.match(r.stderr, /^edgeward: error: cannot read /)
      }
    })

    it('bad usage: exit 2', async () => {
      const noOut = await peers.gateway.cli(['audit', 'report', space])
      assert.equal(noOut.code, 2, noOut.stderr)
      assert.match(noOut.stderr, /--out/)
      oneLine(noOut.stderr)
      const noFile = await runCli(['audit', 'verify'])
      assert.equal(noFile.code, 2, noFile.stderr)
      const badSubject = await peers.gateway.cli([
        'audit',
        'report',
        space,
        '--subject',
        'did:key:nope',
        '--out',
        join(local.root, 'x.json'),
      ])
      assert.equal(badSubject.code, 2, badSubject.stderr)
      assert.match(badSubject.stderr, /not a did:key/)
    })
  })

  it('shows the audit log in `edgeward status --json` of the gateway, and none on the reader', async () => {
    const r = await peers.gateway.cli(['status', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const gw = JSON.parse(r.stdout)
    assert.ok(gw.audit.size > 0, 'the gateway keeps a log')
    assert.ok(gw.audit.size >= JSON.parse(await readFile(reportFile, 'utf8')).entries.length)
    assert.equal(typeof gw.audit.head, 'number')
    assert.deepEqual(gw.audit.equivocations, [])
    const a = await status(peers.a)
    assert.equal(a.audit.size, 0)
    assert.deepEqual(a.audit.equivocations, [])
  })
})
