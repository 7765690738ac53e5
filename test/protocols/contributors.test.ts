/**
 * Members who contribute (protocols/policy/state.ts): a grant with `contribute` lets its
 * subject write the stream record of a file or message of its own (naming its device) and
 * grant people access to exactly its own objects. Such a grant is honoured while a right to
 * contribute that the member knew when it wrote it is active, never past its end. Nobody else
 * gains anything: a member without the right, a stream that is not an object, an object of
 * someone else's, a pattern; and an owner's object of the same name wins over a member's.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as records from '../../protocols/policy/records.ts'
import { EXP, HOUR, INSIDE, NBF, newPeerId, newPrincipal, newSpace, T0, Timeline } from './fixtures.ts'

const { owner, genesis, space } = newSpace('plant')
const member = newPrincipal()
const other = newPrincipal()
const reader = newPrincipal()
const devicePeer = newPeerId()
const OBJ = 'obj-0123456789abcdef'
const OTHER_OBJ = 'obj-fedcba9876543210'

const right = (to = member, iat = T0 + 1) =>
  records.createGrant(
    owner,
    { space, sub: to.did, streams: ['obj-*'], forms: ['raw'], nbf: NBF, exp: EXP, contribute: true },
    iat,
  )
/** An object's stream record by `by`; `peer` null: naming no device (as the owner's do) */
const objectOf = (by: typeof owner, name = OBJ, peer: string | null = devicePeer) =>
  records.createStream(by, space, name, HOUR, T0 + 2, ['raw'], 'message', peer ?? undefined)
const grantOn = (by: typeof owner, streams: string[], iat = T0 + 3, exp = EXP) =>
  records.createGrant(by, { space, sub: reader.did, streams, forms: ['raw'], nbf: NBF, exp }, iat)
const kindOf = (r: { body: { t: string } }) => ({ kind: r.body.t, body: r.body as unknown as Record<string, unknown> })

describe('members who contribute', () => {
  it('a member without the right writes no stream record and no grant', () => {
    const t = new Timeline(genesis)
    assert.match(t.state.mayWrite(member.did, kindOf(objectOf(member))) ?? '', /only the owner/)
    assert.match(t.state.mayWrite(member.did, kindOf(grantOn(member, [OBJ]))) ?? '', /neither the owner/)
  })

  it('with the right: the record of its own object, naming its device; nothing else', () => {
    const t = new Timeline(genesis)
    t.add({ kind: 'grant', record: right() })
    assert.equal(t.state.mayWrite(member.did, kindOf(objectOf(member))), undefined)
    assert.match(
      t.state.mayWrite(member.did, kindOf(records.createStream(member, space, 'temperature', HOUR, T0 + 2))) ?? '',
      /file or message of its own/,
    )
    assert.match(t.state.mayWrite(member.did, kindOf(objectOf(member, OBJ, null))) ?? '', /naming the device/)
    // a stream of readings of its own, by the members' prefix, naming its device
    assert.equal(t.state.mayWrite(member.did, kindOf(objectOf(member, 'm-boiler'))), undefined)
    assert.match(t.state.mayWrite(member.did, kindOf(objectOf(member, 'm-'))) ?? '', /naming the device/)
    assert.equal(t.add({ kind: 'stream', record: objectOf(member) }).added, true)
  })

  it('grants on exactly its own objects, honoured while its right is active and not past its end', () => {
    const t = new Timeline(genesis)
    const r = right()
    t.add({ kind: 'grant', record: r })
    t.add({ kind: 'stream', record: objectOf(member) })
    t.add({ kind: 'stream', record: objectOf(owner, OTHER_OBJ, null) })
    assert.match(t.state.mayWrite(member.did, kindOf(grantOn(member, [OTHER_OBJ]))) ?? '', /neither the owner/)
    assert.match(t.state.mayWrite(member.did, kindOf(grantOn(member, ['obj-*']))) ?? '', /neither the owner/)
    assert.match(t.state.mayWrite(member.did, kindOf(grantOn(member, [OBJ, OTHER_OBJ]))) ?? '', /neither the owner/)
    const g = grantOn(member, [OBJ], T0 + 3, INSIDE + HOUR)
    assert.equal(t.state.mayWrite(member.did, kindOf(g)), undefined)
    t.add({ kind: 'grant', record: g })
    assert.equal(t.state.grantProblem(g, INSIDE), undefined)
    assert.equal(t.state.activeUntil(g, INSIDE), INSIDE + HOUR)
    assert.equal(t.state.grantProblem(g, INSIDE + HOUR)?.code, 'expired')
    // a grant longer than the right ends with it
    const long = grantOn(member, [OBJ], T0 + 3, EXP + HOUR)
    t.add({ kind: 'grant', record: long })
    assert.equal(t.state.activeUntil(long, INSIDE), EXP)
    assert.equal(t.state.grantProblem(long, EXP)?.code, 'issuer-not-authorized')
    // the owner revokes the right: what the member granted ends with it
    t.add({ kind: 'revocation', record: records.createRevocation(owner, space, { grant: r.id }, T0 + 4) })
    assert.equal(t.state.grantProblem(g, INSIDE)?.code, 'issuer-not-authorized')
    assert.match(t.state.grantProblem(g, INSIDE)?.reason ?? '', /right to share into the space has ended/)
  })

  it('a right the member did not know when it granted does not back the grant', () => {
    const t = new Timeline(genesis)
    const first = right(member, T0 + 1)
    t.add({ kind: 'grant', record: first })
    t.add({ kind: 'stream', record: objectOf(member) })
    const g = grantOn(member, [OBJ])
    t.add({ kind: 'grant', record: g })
    t.add({ kind: 'revocation', record: records.createRevocation(owner, space, { grant: first.id }, T0 + 4) })
    // a new right, written after the grant: it does not revive it
    t.add({ kind: 'grant', record: right(member, T0 + 5) })
    assert.equal(t.state.grantProblem(g, INSIDE)?.code, 'issuer-not-authorized')
  })

  it('another member’s object is not its own, and an owner’s object of the same name wins in either order', () => {
    const t = new Timeline(genesis)
    t.add({ kind: 'grant', record: right(member) })
    t.add({ kind: 'grant', record: right(other, T0 + 2) })
    t.add({ kind: 'stream', record: objectOf(other) })
    assert.match(t.state.mayWrite(member.did, kindOf(grantOn(member, [OBJ]))) ?? '', /neither the owner/)
    const byOwner = objectOf(owner, OBJ, null)
    for (const order of [
      [objectOf(member), byOwner],
      [byOwner, objectOf(member)],
    ]) {
      const u = new Timeline(genesis)
      u.add({ kind: 'grant', record: right(member) })
      for (const rec of order) u.add({ kind: 'stream', record: rec })
      assert.equal(u.state.streams.get(OBJ)?.issuer, owner.did)
    }
  })
})
