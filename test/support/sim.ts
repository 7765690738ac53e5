/**
 * The simulator's networks in a test file: `simNetworks` gives the function that creates them
 * (with their peers in memory on a random graph of degree 3, unless told otherwise), and stops
 * every one it created in an `after` hook of the file or suite it was called in;
 * `assertChecksHold`: every check of a scenario's report holds.
 */
import assert from 'node:assert/strict'
import { after } from 'node:test'
import { SimNetwork, type SimNetworkOptions } from '../../sim/network.ts'
import { checksOf, type ScenarioResult } from '../../sim/report.ts'

/** A network of the tests, whose store and topology may be left to the defaults. */
export type SimTestOptions = Omit<SimNetworkOptions, 'store' | 'topology'> &
  Partial<Pick<SimNetworkOptions, 'store' | 'topology'>>

/** `afterStop` runs on each network once it stopped (to check what it left behind). */
export function simNetworks(
  afterStop: (net: SimNetwork) => void = () => {},
): (opts: SimTestOptions) => Promise<SimNetwork> {
  const networks: SimNetwork[] = []
  after(async () => {
    for (const net of networks) {
      await net.stop()
      afterStop(net)
    }
  })
  return async opts => {
    const net = await SimNetwork.create({ store: 'memory', topology: { kind: 'random', degree: 3 }, ...opts })
    networks.push(net)
    return net
  }
}

/** Every check the report makes of a scenario's result holds (the failing ones are shown). */
export function assertChecksHold(result: ScenarioResult): void {
  assert.deepEqual(
    checksOf(result).filter(c => !c.ok),
    [],
  )
}
