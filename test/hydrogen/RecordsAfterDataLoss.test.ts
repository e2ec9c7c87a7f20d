import { describe, expect } from "bun:test"
import { Duration, Effect, ExecutionStrategy, Exit, Layer, Scope, TestClock } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { makeNatsBroker } from "../../layers/Cluster/NatsBroker.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import type { Tokens } from "../../layers/Tokens/Tokens.ts"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { recordKey, sessionDigest, sessionRecordTtlMillis } from "../../src/hydrogen/SessionRecords.ts"
import { adminRedis, deleteKeys, keysUnder, redisBackend, redisUrl, runPrefix } from "../layers/Cluster/backends.ts"
import { nextReconnect } from "../layers/Cluster/outageNodes.ts"
import { it } from "../support/effect.ts"
import { natsServerAvailable, startNatsServer } from "../support/natsServer.ts"
import { pollUntil } from "../support/redisCluster.ts"
import { type HydrogenNode, nodeMetric, publishEvents, publisher, ReliableClient, startNode } from "./clusterNodes.ts"
import { ok } from "./support.ts"

const channel = "orders"
type NodeLayer = Layer.Layer<ClusterBroker | Tokens | StreamStore>

/**
 * Nodes A and B on a broker that can lose its data while node A's connection is down; `loseData` returns once
 * node A is back. Tokens and history are in a store that keeps them (as MySQL does): only the broker loses.
 */
interface DataLoss {
  readonly a: NodeLayer
  readonly b: NodeLayer
  readonly loseData: (a: HydrogenNode) => Effect.Effect<void>
}

interface Scenario {
  readonly name: string
  readonly skip: boolean
  readonly live: boolean
  readonly setup: Effect.Effect<DataLoss, never, Scope.Scope>
}

/** Runs `outage`, then waits until node A's broker is back. */
const untilBack = (a: HydrogenNode, outage: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const back = yield* nextReconnect(a.get(ClusterBroker))
    yield* outage
    yield* back
  })

const keptStores = Effect.map(Layer.build(Layer.merge(MemoryTokensLive, MemoryStreamStore)), Layer.succeedContext)

const redisRun = runPrefix("hydrogen-records")
const redis = redisBackend(redisRun)

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "memory hub: an outage longer than a record's TTL (TestClock)",
    skip: false,
    live: false,
    setup: Effect.gen(function* () {
      const hub = new MemoryBrokerHub()
      const kept = yield* keptStores
      const nodeLayer = (id: string) => Layer.merge(Layer.succeed(ClusterBroker, hub.node(id)), kept)
      return {
        a: nodeLayer("a"),
        b: nodeLayer("b"),
        loseData: (a) =>
          untilBack(
            a,
            Effect.gen(function* () {
              hub.setDown(true)
              // Every refresh sweep meanwhile fails: the records expire.
              yield* TestClock.adjust(sessionRecordTtlMillis + 1000)
              hub.setDown(false)
            })
          )
      }
    })
  },
  {
    name: "Redis: the records deleted behind node A's cut connection",
    skip: redis.skip,
    live: true,
    setup: Effect.gen(function* () {
      const cluster = yield* redis.cluster()
      const outage = yield* cluster.cuttable("a")
      const kept = yield* keptStores
      return {
        a: Layer.merge(outage.layer, kept),
        b: Layer.merge(cluster.broker("b"), kept),
        loseData: () =>
          Effect.gen(function* () {
            yield* outage.cut
            yield* Effect.promise(async () => {
              const admin = await adminRedis(redisUrl)
              const keys = await keysUnder(admin, redisRun)
              await deleteKeys(
                admin,
                keys.filter((key) => key.includes(":record:"))
              )
              admin.disconnect()
            })
            yield* outage.restore
          })
      }
    })
  },
  {
    name: "NATS: a private server restarted without its JetStream storage",
    skip: !natsServerAvailable,
    live: true,
    setup: Effect.gen(function* () {
      // Acquired first, so stopped last: the nodes close over a live server.
      const server = yield* Effect.acquireRelease(Effect.promise(startNatsServer), (server) =>
        Effect.promise(server.stop)
      )
      const kept = yield* keptStores
      const nodeLayer = (nodeId: string) =>
        Layer.merge(
          Layer.scoped(ClusterBroker, makeNatsBroker({ url: server.url, prefix: "sbtest.records", nodeId })).pipe(
            Layer.orDie
          ),
          kept
        )
      return {
        a: nodeLayer("a"),
        b: nodeLayer("b"),
        loseData: (a) => untilBack(a, Effect.promise(server.restartWithoutStorage))
      }
    })
  }
]

/**
 * Waits until the broker holds the session's record again. Memory: a few turns of the scheduler, no time passes.
 * Live: polled, for well under the 20 s refresh sweep (which would put it again anyway, too late for a resume).
 */
const recordBack = (scenario: Scenario, node: HydrogenNode, sessionId: string) => {
  const held = Effect.map(node.get(ClusterBroker).records.get(recordKey(sessionDigest(sessionId))), (record) =>
    record === undefined ? undefined : record.holder
  )
  if (scenario.live)
    return Effect.promise(() => pollUntil("the session's record put again", () => Effect.runPromise(held), 10_000))
  return Effect.gen(function* () {
    for (let turn = 0; turn < 100; turn++) {
      const holder = yield* Effect.orDie(held)
      if (holder !== undefined) return holder
      yield* Effect.yieldNow()
    }
    throw new Error("the session's record was not put again")
  })
}

describe("Hydrogen cluster: session records after the broker lost its data", () => {
  for (const scenario of scenarios) {
    const test = scenario.live ? it.skipIf(scenario.skip).live : it.skipIf(scenario.skip).effect
    test(
      `${scenario.name}: the holder puts its records again once back; the session resumes on another node, nothing lost or twice`,
      () =>
        Effect.gen(function* () {
          const loss = yield* scenario.setup
          const network = yield* Effect.provide(MemoryNetwork, MemoryNetwork.Default)
          const settings = { ackRetryInterval: Duration.hours(1) }
          const a = yield* startNode(network, loss.a, settings)
          const b = yield* startNode(network, loss.b, settings)
          const scope = yield* Effect.scope
          const consumer = new ReliableClient(channel, network)
          const onA = yield* Scope.fork(scope, ExecutionStrategy.sequential)
          yield* consumer.join(a, onA)
          const source = yield* publisher(b, scope)
          yield* publishEvents(source, channel, 1, 3, true)
          yield* consumer.until(3)

          yield* loss.loseData(a)
          yield* recordBack(scenario, b, consumer.session)

          // Right after, the client's connection to A goes, events come meanwhile, and it resumes on B.
          yield* Scope.close(onA, Exit.void)
          yield* publishEvents(source, channel, 4, 3, true)
          expect(yield* consumer.join(b, scope)).toEqual({ recovered: true, replayed: 3 })
          yield* publishEvents(source, channel, 7, 1, true)
          yield* consumer.until(7)
          consumer.check(7)
          yield* ok(consumer.client!, "system", "ping")
          expect(yield* nodeMetric(b, "switchboard_hydrogen_acks_pending")).toBe(0)
        }),
      60_000
    )
  }
})
