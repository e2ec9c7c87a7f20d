import { describe, expect } from "bun:test"
import { Effect, Layer, Queue } from "effect"
import { Federation } from "../../../layers/Federation/Federation.ts"
import { makeBrokerFederation } from "../../../layers/Federation/BrokerFederation.ts"
import { webSocketDialer } from "../../../layers/Federation/Link.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
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
} from "../Cluster/backends.ts"

const prefix = runPrefix("bus")
cleanRedisAfterAll(prefix)

const scenarios = (backend: ClusterBackend) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  const cluster = Effect.gen(function* () {
    const brokers = yield* backend.cluster()
    return (nodeId: string) =>
      Effect.gen(function* () {
        const layer = Layer.effect(Federation, makeBrokerFederation(webSocketDialer)).pipe(
          Layer.provideMerge(Layer.merge(brokers.broker(nodeId), Metrics.Default))
        )
        const built = yield* buildNode(layer)
        const metrics = built.get(Metrics)
        const received = () =>
          metrics.counter("switchboard_cluster_broker_messages_total", "", ["direction"]).labels({ direction: "in" })
            .value
        return { federation: built.get(Federation), received }
      })
  })

  describe(`Federation bus on ${backend.name}`, () => {
    test("a payload reaches every subscriber on every node once, in order, the publisher's node included; other subjects stay apart", () =>
      Effect.gen(function* () {
        const node = yield* cluster
        const [a, b, c] = yield* Effect.all([node("node-a"), node("node-b"), node("node-c")])
        const onA = yield* a.federation.subscribe("units")
        const onB1 = yield* b.federation.subscribe("units")
        const onB2 = yield* b.federation.subscribe("units")
        const onC = yield* c.federation.subscribe("other")
        for (let i = 0; i < 50; i++) yield* a.federation.publish("units", `u${i}`)
        const expected = Array.from({ length: 50 }, (_, i) => `u${i}`)
        for (const queue of [onA, onB1, onB2]) {
          const got: Array<string> = []
          for (let i = 0; i < 50; i++) got.push(yield* Queue.take(queue))
          expect(got).toEqual(expected)
        }
        // C hears only its own subject: a probe on it is the first and only message C received.
        yield* a.federation.publish("other", "probe")
        expect(yield* Queue.take(onC)).toBe("probe")
        expect(c.received()).toBe(1)
        expect(b.received()).toBe(50)
        // Nothing extra arrives: the next payload on B is the next one published.
        yield* b.federation.publish("units", "last")
        expect(yield* Queue.take(onB1)).toBe("last")
        expect(yield* Queue.take(onA)).toBe("last")
      }))

    test("a subject is dropped from the broker when its last subscriber on the node goes", () =>
      Effect.gen(function* () {
        const node = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        yield* Effect.scoped(Effect.flatMap(b.federation.subscribe("gone"), () => Effect.void))
        const onB = yield* b.federation.subscribe("kept")
        yield* a.federation.publish("gone", "lost on purpose")
        yield* a.federation.publish("kept", "probe")
        expect(yield* Queue.take(onB)).toBe("probe")
        expect(b.received()).toBe(1)
      }))
  })
}

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(redisBackend(prefix, "cluster"))
scenarios(natsBackend(natsPrefix("bus")))
