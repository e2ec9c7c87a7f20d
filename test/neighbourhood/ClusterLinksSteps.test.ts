import { describe, expect } from "bun:test"
import { Context, Deferred, Effect, Fiber, Layer } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { it } from "../support/effect.ts"
import { countingCalls } from "./brokerCalls.ts"
import { step } from "./support.ts"

describe("cluster link tests: the TestClock keeps to a real broker's pace", () => {
  it.effect("a step returns once the nodes' broker calls answered; meanwhile the clock follows real time", () =>
    Effect.gen(function* () {
      const node = new MemoryBrokerHub().node("a2")
      const answer = yield* Deferred.make<number>()
      // A broker slow to answer, as a loaded NATS server was to a replay-counter raise: it answers once the
      // node's clock moved 500 ms, which it does during a step only if the step moves it with real time.
      yield* Effect.sleep("500 millis").pipe(Effect.zipRight(Deferred.succeed(answer, -1)), Effect.fork)
      const slow = Layer.succeed(ClusterBroker, {
        ...node,
        counters: { ...node.counters, raise: () => Deferred.await(answer) }
      })
      const broker = Context.get(yield* Layer.build(countingCalls(slow)), ClusterBroker)
      const raise = yield* Effect.fork(broker.counters.raise("a2/key", 1))
      yield* step
      expect(raise.unsafePoll()).not.toBeNull()
      expect(yield* Fiber.join(raise)).toBe(-1)
    })
  )
})
