import { describe, expect } from "bun:test"
import { Context, Deferred, Effect, Fiber, Layer } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../layers/Cluster/MemoryBroker.ts"
import { eventually, it } from "../support/effect.ts"
import { countingCalls, stepsWaiting } from "./brokerCalls.ts"
import { step } from "./support.ts"

describe("cluster link tests: the TestClock keeps to a real broker's pace", () => {
  it.effect("a step waits for the answer of a node's broker call under way (a slow broker uses up no steps)", () =>
    Effect.gen(function* () {
      const node = new MemoryBrokerHub().node("a2")
      const answer = yield* Deferred.make<number>()
      // A broker slow to answer, as a loaded NATS server was to a first replay-counter raise: it answers when told.
      const slow = Layer.succeed(ClusterBroker, {
        ...node,
        counters: { ...node.counters, raise: () => Deferred.await(answer) }
      })
      const broker = Context.get(yield* Layer.build(countingCalls(slow)), ClusterBroker)
      const raise = yield* Effect.fork(broker.counters.raise("a2/key", 1))
      const stepping = yield* Effect.fork(step)
      yield* eventually(() => stepsWaiting() === 1, "the step waits for the broker's answer")
      expect(stepping.unsafePoll()).toBeNull()
      yield* Deferred.succeed(answer, -1)
      yield* Fiber.join(stepping)
      expect(yield* Fiber.join(raise)).toBe(-1)
      expect(stepsWaiting()).toBe(0)
    })
  )
})
