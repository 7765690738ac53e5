/**
 * Files: share (chunk, encrypt, store, gossip) and open (key request, verify pass, read pass)
 * throughput in MB/s for one file between two peers over TCP loopback, against reading the
 * same file from disk (with its SHA-256) in the same run.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { waitFor } from '../node/cli/local-network.ts'
import { readingCount } from '../protocols/data/reading.ts'
import { withPeers } from '../test/support/peers.ts'
import { type Figure, type SuiteOptions, versus } from './harness.ts'

const MB = 1024 * 1024

async function diskRead(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  return h.digest('hex')
}

export default async function objects(opts: SuiteOptions): Promise<Figure[]> {
  const size = (opts.quick ? 2 : 20) * MB
  const rounds = opts.quick ? 1 : 3
  return withPeers(async peers => {
    const gw = await peers.node('gateway')
    const reader = await peers.node('reader', { bootstrap: gw.addresses() })
    const space = await gw.createSpace('bench')
    await reader.joinSpace(space)
    await waitFor('the reader to sync', async () => (reader.policy.document(space).hasGenesis ? true : undefined))
    const share: number[] = []
    const open: number[] = []
    const disk: number[] = []
    for (let round = 0; round < rounds; round++) {
      const path = peers.dir(`file-${round}.bin`)
      await writeFile(path, randomBytes(size))
      let t = performance.now()
      const sha = await diskRead(path)
      disk.push(size / MB / ((performance.now() - t) / 1000))
      t = performance.now()
      const s = await gw.objects.share(space, path, { to: reader.identity.principal.did, durationMs: 3_600_000 })
      await waitFor(
        'the reader to store every chunk',
        async () =>
          readingCount(await reader.data.storedReadings(space, s.object)) >= s.manifest.chunks + 1 ? true : undefined,
        300_000,
        20,
      )
      share.push(size / MB / ((performance.now() - t) / 1000))
      await waitFor('the grant to reach the reader', async () =>
        reader.policy.document(space).state.grantsOf(reader.identity.principal.did).length > round ? true : undefined,
      )
      t = performance.now()
      const opened = await reader.objects.open(space, s.object)
      const h = createHash('sha256')
      for await (const chunk of opened) h.update(chunk)
      if (h.digest('hex') !== sha) throw new Error('the opened file differs')
      open.push(size / MB / ((performance.now() - t) / 1000))
    }
    const note = `a ${size / MB} MB random file, ${rounds} rounds; disk: read and SHA-256 of the same file`
    const a = versus('file share, to stored on the reader', 'MB/s', share, 'read from disk', disk)
    const b = versus('file open on the reader (key request, verify, decrypt)', 'MB/s', open, 'read from disk', disk)
    a.note = note
    b.note = note
    return [a, b]
  })
}
