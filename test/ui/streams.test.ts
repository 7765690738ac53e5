/**
 * The Streams screen in a real browser (Debian's chromium, through playwright-core) against
 * real `edgeward` processes, as a person uses it: a gateway's owner with no stream yet is told
 * how to make one; once the CLI creates a stream and publishes readings, the open page charts
 * them (uPlot, loaded as a chunk of its own) with a text alternative that counts them; readings
 * published while the page is open arrive without a reload; the hashed form is a table of
 * commitments; an MQTT message that is not a reading shows in the ingestion's error counts.
 * A second node, in no space, says what to do; once it joins, a read without a grant is a
 * sentence, a grant lets it read, and a revocation ends the live read with a sentence too.
 * Every control has an accessible name. Screenshots go to docs/screenshots/ with
 * UPDATE_SCREENSHOTS=1 (else to the test's own folder).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import mqtt from 'mqtt'
import type { Page } from 'playwright-core'
import { type LocalPeer, waitFor } from '../../node/cli/local-network.ts'
import type { IngestionList, StreamList } from '../../node/ui/contract-streams.ts'
import { credentialsIn } from '../mqtt/brokers.ts'
import { interactiveNames } from './browser.ts'
import { suitePeople } from './people.ts'

type GatewayInfo = LocalPeer['info'] & { mqtt: string; ingestSpace: string }

/** `count` readings, ten seconds apart, in whole minutes that ended minutes ago (two closed 1-minute windows). */
function history(count: number): string {
  const start = Math.floor((Date.now() - 5 * 60_000) / 60_000) * 60_000
  return Array.from({ length: count }, (_, i) => JSON.stringify({ ts: start + i * 10_000, value: 20 + i / 2 })).join(
    '\n',
  )
}

describe('Streams screen in a browser', { timeout: 240_000 }, () => {
  const people = suitePeople('streams', ['gateway', 'reader'], {
    startOf: { gateway: { command: 'gateway', args: ['--mqtt-port', '0', '--space', 'plant-7'] } },
  })
  const { peers, dids, errors } = people
  let space = ''
  let page: Page
  const requests: string[] = []

  before(async () => {
    space = (peers.gateway.info as GatewayInfo).ingestSpace
  })

  it('tells the owner of a space with no stream how to create one', async () => {
    page = await people.signIn('gateway', 'Streams', { watch: p => p.on('request', r => requests.push(r.url())) })
    await page.getByRole('heading', { level: 2, name: 'No streams in plant-7 yet' }).waitFor()
    assert.ok(await page.getByText('edgeward stream create SPACE NAME').isVisible())
    assert.equal(await selected(page, 'Space'), 'plant-7', 'the space by its name')
    // the gateway's own ingestion, from its embedded broker
    const ingestion = page.getByRole('region', { name: 'MQTT ingestion on this node' })
    await ingestion.getByText('Connected').waitFor()
    assert.match((await ingestion.textContent()) ?? '', /Every topic → plant-7/)
    assert.doesNotMatch(
      (await page.locator('main').textContent()) ?? '',
      /[0-9a-f]{64}/,
      'no space id where a person reads',
    )
    await page.screenshot({ path: join(people.shots, 'streams-empty.png') })
  })

  it('lists the streams with their forms through the API', async () => {
    const created = await peers.gateway.cli(['stream', 'create', space, 'temperature', '--aggregate', '1m'])
    assert.equal(created.code, 0, created.stderr)
    const list = await (await peers.gateway.api()).call<StreamList>('GET', `/v1/spaces/${space}/streams`)
    assert.deepEqual(list, {
      space,
      streams: [{ name: 'temperature', forms: ['raw', 'hashed', 'aggregate:1m'], epochMs: 3_600_000 }],
    })
    const bad = await fetch(`${peers.gateway.info.api}/v1/spaces/not-a-space/streams`, {
      headers: { authorization: 'Bearer wrong' },
    })
    assert.equal(bad.status, 401, 'the token is checked before anything else')
  })

  it('charts the readings, loading uPlot only now, with a text alternative that counts them', async () => {
    await inPage(page, 'window.notReloaded = true')
    const chunksBefore = requests.filter(u => /\/ui\/chunk-[\w-]+\.js$/.test(u)).length
    const published = await peers.gateway.cli(['publish', space, 'temperature'], { input: history(12) })
    assert.equal(published.code, 0, published.stderr)
    // the page saw the new stream by itself (server-sent events), and opened it
    const summary = page.locator('#stream-summary')
    await summary.filter({ hasText: /^12 readings from / }).waitFor({ timeout: 20_000 })
    assert.match((await summary.textContent()) ?? '', /Latest value 25\.5 at /)
    assert.equal(await inPage(page, 'window.notReloaded'), true)
    await page.locator('.stream-chart canvas').waitFor()
    assert.equal(await page.locator('.stream-chart').getAttribute('aria-hidden'), 'true', 'the caption speaks for it')
    assert.ok(
      requests.filter(u => /\/ui\/chunk-[\w-]+\.js$/.test(u)).length > chunksBefore,
      'the chart library came as a chunk of its own when the chart was first drawn',
    )
    assert.equal(await selected(page, 'Stream'), 'temperature')
    assert.equal(await page.getByRole('status').filter({ hasText: 'Live' }).count(), 1)
  })

  it('adds readings published while the page is open, without a reload', async () => {
    const now = Date.now()
    const more = [0, 1, 2].map(i => JSON.stringify({ ts: now + i, value: 30 + i })).join('\n')
    const published = await peers.gateway.cli(['publish', space, 'temperature'], { input: more })
    assert.equal(published.code, 0, published.stderr)
    const summary = page.locator('#stream-summary')
    await summary.filter({ hasText: /^15 readings from / }).waitFor({ timeout: 20_000 })
    assert.match((await summary.textContent()) ?? '', /Latest value 32 at /)
    assert.equal(await inPage(page, 'window.notReloaded'), true)
    await page.getByText('Latest readings as a table').click()
    assert.equal(await page.locator('.stream-readings-table tbody tr').count(), 15)
  })

  it('shows the hashed form as a table of commitments, and an aggregate as windows', async () => {
    await page.getByLabel('Form').selectOption('hashed')
    await page
      .locator('#stream-summary')
      .filter({ hasText: /^15 commitments from / })
      .waitFor()
    const commitments = page.locator('.stream-commitments tbody tr')
    assert.equal(await commitments.count(), 15)
    assert.match((await commitments.first().locator('.stream-commitment').textContent()) ?? '', /^[0-9a-f]{64}$/)
    assert.ok(await page.getByText('there is nothing to plot').isVisible(), 'says why there is no chart')
    await page.screenshot({ path: join(people.shots, 'streams-hashed.png'), fullPage: true })

    await page.getByLabel('Form').selectOption('aggregate:1m')
    // two whole minutes of history closed two windows; the live readings may have closed one more
    await page
      .locator('#stream-summary')
      .filter({ hasText: /^[23] windows from .* Latest mean / })
      .waitFor()
    await page.locator('.stream-chart canvas').waitFor()
    await page.getByLabel('Form').selectOption('raw')
    await page
      .locator('#stream-summary')
      .filter({ hasText: /^15 readings from / })
      .waitFor()
  })

  it('shows the MQTT ingestion’s error counts', async () => {
    const { mqtt: url } = peers.gateway.info as GatewayInfo
    const client = await mqtt.connectAsync(url, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      ...(await credentialsIn(peers.gateway.dataDir)),
    })
    try {
      await client.publishAsync('plant-7/temperature', 'not a number', { qos: 1 })
    } finally {
      await client.endAsync()
    }
    const listed = await (await peers.gateway.api()).call<IngestionList>('GET', '/v1/ingest')
    assert.equal(listed.ingestions[0].stats.errors['not-json'], 1)
    // the node's counters moved: its state event brings the screen to list the ingestions again
    const ingestion = page.getByRole('region', { name: 'MQTT ingestion on this node' })
    await ingestion.getByText(/Refused messages: not JSON 1/).waitFor({ timeout: 10_000 })
    await page
      .locator('#stream-summary')
      .filter({ hasText: /^15 readings/ })
      .waitFor()
    await page.mouse.move(0, 0)
    await page.screenshot({ path: join(people.shots, 'streams.png'), fullPage: true })
  })

  it('gives every control an accessible name, and can be worked from the keyboard', async () => {
    await page.getByText('Latest readings as a table').click()
    const controls = await interactiveNames(page)
    const selects = controls.filter(c => c.role === 'combobox').map(c => c.name)
    assert.deepEqual(selects, ['Space', 'Stream', 'Form', 'Time range'])
    assert.deepEqual(
      controls.filter(c => c.name === ''),
      [],
      'controls without an accessible name',
    )
    await page.getByLabel('Form').focus()
    await page.keyboard.press('ArrowDown')
    await page
      .locator('#stream-summary')
      .filter({ hasText: /^15 commitments/ })
      .waitFor()
    await page.getByLabel('Form').selectOption('raw')
  })

  it('on a node in no space, says how to begin; once joined, a read without a grant is refused in words', async () => {
    // refusals (a read without a grant) are logged by the browser and said on the page in words
    const other = await people.signIn('reader', 'Streams', { allow: /status of \d{3}/ })
    await other.getByRole('heading', { level: 2, name: 'You are in no space yet' }).waitFor()
    assert.ok(await other.getByText('edgeward space join SPACE_ID').isVisible())

    const joined = await peers.reader.cli(['space', 'join', space])
    assert.equal(joined.code, 0, joined.stderr)
    const refused = other.getByRole('alert').filter({ hasText: 'You have no grant for this stream.' })
    await refused.waitFor({ timeout: 30_000 })
    assert.equal(await selected(other, 'Space'), 'plant-7')
    assert.ok(await other.getByText(/edgeward request SPACE --stream temperature/).isVisible())
    await other.screenshot({ path: join(people.shots, 'streams-refused.png') })
    // asked from the page: the request reaches the gateway with its reason
    await refused.getByRole('button', { name: 'Request access' }).click()
    const ask = other.getByRole('dialog', { name: /Request access to temperature/ })
    await ask.getByLabel('Why do you need it?').fill('commissioning the chiller')
    await ask.getByRole('button', { name: 'Send request' }).click()
    await ask.waitFor({ state: 'hidden' })
    await waitFor('the gateway to receive the request', async () => {
      const r = JSON.parse((await peers.gateway.cli(['requests', space, '--json'])).stdout)
      return r.requests.some((q: any) => q.reason === 'commissioning the chiller' && q.streams[0] === 'temperature')
        ? true
        : undefined
    })

    const granted = await peers.gateway.cli([
      'grant',
      space,
      '--to',
      dids.reader,
      '--for',
      '1h',
      '--stream',
      'temperature',
    ])
    assert.equal(granted.code, 0, granted.stderr)
    // the person tries again until the grant has reached the key holder's answer
    await waitFor(
      'the reader to chart the readings under its grant',
      async () => {
        if (
          await other
            .locator('#stream-summary')
            .filter({ hasText: /^15 readings/ })
            .isVisible()
        )
          return true
        const again = other.getByRole('button', { name: 'Try again' })
        if (await again.isVisible()) await again.click()
        return undefined
      },
      30_000,
      500,
    )

    const revoked = await peers.gateway.cli(['revoke', space, '--subject', dids.reader, '--reason', 'test'])
    assert.equal(revoked.code, 0, revoked.stderr)
    // the reader's live read ends when the next reading cannot be decrypted
    await waitFor('the live read to end', async () => {
      const r = await peers.gateway.cli(['publish', space, 'temperature'], {
        input: JSON.stringify({ ts: Date.now(), value: 40 }),
      })
      assert.equal(r.code, 0, r.stderr)
      const ended = other.getByRole('alert').filter({ hasText: /^The node stopped sending readings: / })
      return (await ended
        .waitFor({ timeout: 2_000 })
        .then(() => true)
        .catch(() => undefined)) as true | undefined
    })
    const ended = (await other.getByRole('alert').first().textContent()) ?? ''
    assert.match(ended, /revoked|access ended/i, ended)
    await other.close()
  })

  it('asked nothing of anyone but the nodes, with no script error', async () => {
    const own = new Set([new URL(peers.gateway.info.api).origin, new URL(peers.reader.info.api).origin])
    assert.deepEqual(
      requests.filter(u => !own.has(new URL(u).origin)),
      [],
    )
    assert.deepEqual(errors, [], 'no script or console errors')
  })
})

/** The text of the option chosen in the select labelled `label`. */
async function selected(page: Page, label: string): Promise<string> {
  return page.getByLabel(label).evaluate(e => {
    const select = e as unknown as { selectedOptions: { textContent: string }[] }
    return select.selectedOptions[0]?.textContent ?? ''
  })
}

/** Evaluate an expression in the page (a string: this file is type-checked without the DOM's types). */
function inPage<T = unknown>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>
}
