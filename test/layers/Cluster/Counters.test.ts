import { describe, expect } from "bun:test"
import { Effect, Layer, TestClock } from "effect"
import { BrokerCountersLive, Counters, makeSharedLimiter } from "../../../layers/Cluster/Counters.ts"
import { it } from "../../support/effect.ts"
import {
  buildNode,
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  redisBackend,
  runPrefix
} from "./backends.ts"

const prefix = runPrefix("counters")
cleanRedisAfterAll(prefix)

const scenarios = (backend: ClusterBackend) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  const cluster = Effect.gen(function* () {
    const brokers = yield* backend.cluster()
    return {
      node: (nodeId: string) =>
        Effect.map(buildNode(BrokerCountersLive.pipe(Layer.provide(brokers.broker(nodeId)))), (built) =>
          built.get(Counters)
        )
    }
  })

  describe(`Counters on ${backend.name}`, () => {
    test("adds from several nodes make one total; windowed and lasting counts are separate keys", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        expect(yield* a.add("logins/10.0.0.1", 3, "1 minute")).toBe(3)
        expect(yield* b.add("logins/10.0.0.1", 4, "1 minute")).toBe(7)
        expect(yield* b.add("logins/10.0.0.2", 1, "1 minute")).toBe(1)
        expect(yield* a.add("ids", 64)).toBe(64)
        expect(yield* b.add("ids", 64)).toBe(128)
        // Adding nothing reads the total.
        expect(yield* a.add("logins/10.0.0.1", 0, "1 minute")).toBe(7)
      }))
  })
}

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(redisBackend(prefix, "cluster"))
scenarios(natsBackend(natsPrefix("counters")))

describe("SharedLimiter (two nodes on the memory broker, TestClock)", () => {
  it.effect("a key's limit holds across nodes as of the last sync; the next window starts again", () =>
    Effect.gen(function* () {
      const brokers = yield* memoryBackend.cluster()
      const limiterOn = (nodeId: string) =>
        Effect.flatMap(buildNode(BrokerCountersLive.pipe(Layer.provide(brokers.broker(nodeId)))), (built) =>
          makeSharedLimiter("joins", { limit: 10, window: "1 minute", syncEvery: "1 second" }).pipe(
            Effect.provide(built.context)
          )
        )
      const a = yield* limiterOn("node-a")
      const b = yield* limiterOn("node-b")
      const admitted = (limiter: typeof a, times: number, now: number) =>
        Array.from({ length: times }, () => limiter.admit("10.0.0.1", now)).filter(Boolean).length
      expect(admitted(a, 6, 0)).toBe(6)
      expect(admitted(b, 1, 0)).toBe(1)
      // Two syncs: each node has added its events and read the other's (the order of one sync is the nodes').
      yield* TestClock.adjust("2 seconds")
      // 7 in the cluster, so 3 more anywhere, then refusals.
      expect(admitted(b, 5, 2000)).toBe(3)
      yield* TestClock.adjust("2 seconds")
      expect(admitted(a, 2, 4000)).toBe(0)
      expect(b.admit("10.0.0.2", 4000)).toBe(true)
      yield* TestClock.adjust("1 minute")
      expect(admitted(a, 2, 62_000)).toBe(2)
    })
  )
})
