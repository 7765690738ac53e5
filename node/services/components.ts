/** What every service of a node is given: one components object, no globals. */
import type { Identity } from '../identity.ts'
import type { Metrics } from '../metrics.ts'
import type { EdgewardLibp2p } from '../network.ts'
import type { Store } from '../store.ts'

export interface NodeComponents {
  libp2p: EdgewardLibp2p
  store: Store
  identity: Identity
  metrics: Metrics
  /** the clock; the simulator passes virtual time */
  now: () => number
}
