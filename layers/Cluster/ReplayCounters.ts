import { Context, Effect, Layer } from "effect"
import { ClusterBroker } from "./Broker.ts"

/**
 * The last counter per signing key, shared by the nodes of one server (Neighbourhood's replay check
 * across nodes). Only a cluster node has it; one process keeps its counters in memory.
 */
export interface ReplayCountersService {
  /**
   * Makes `counter` the last of `key` when it is greater, in one atomic step across the nodes, and
   * returns the last before it (-1 when none): `counter` is a replay when it is not greater. While
   * the broker is away it returns -1 (the node's own counters still refuse what it saw itself).
   */
  readonly advance: (key: string, counter: number) => Effect.Effect<number>
}

export class ReplayCounters extends Context.Tag("switchboard/ReplayCounters")<
  ReplayCounters,
  ReplayCountersService
>() {}

/** ReplayCounters on the cluster broker's monotonic maxima (needs a ClusterBroker). */
export const BrokerReplayCountersLive = Layer.effect(
  ReplayCounters,
  Effect.map(ClusterBroker, (broker): ReplayCountersService => {
    let warned = false
    return {
      advance: (key, counter) =>
        broker.counters.raise(`replay/${key}`, counter).pipe(
          Effect.tap(() => Effect.sync(() => void (warned = false))),
          Effect.catchAll((error) =>
            Effect.as(
              warned
                ? Effect.void
                : Effect.zipRight(
                    Effect.sync(() => void (warned = true)),
                    Effect.logWarning(`cluster replay counters: checked on this node alone (${error.message})`)
                  ),
              -1
            )
          )
        )
    }
  })
)
