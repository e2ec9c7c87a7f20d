import { describe, expect } from "bun:test"
import { Effect, Queue } from "effect"
import { type Broker, ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { it } from "../../support/effect.ts"
import * as backends from "./backends.ts"

const prefix = backends.runPrefix("echo")
backends.cleanRedisAfterAll(prefix)

const encode = (text: string) => new TextEncoder().encode(text)

/** What `broker` hears on `channel`, as text, in arrival order. */
const hear = (broker: Broker, channel: string) =>
  Effect.gen(function* () {
    const heard = yield* Queue.unbounded<string>()
    yield* broker.subscribe(channel, (bytes) => Queue.unsafeOffer(heard, new TextDecoder().decode(bytes)))
    return heard
  })

/** Everything in `queue` up to and including `last`. */
const takeThrough = (queue: Queue.Queue<string>, last: string) =>
  Effect.gen(function* () {
    const taken: Array<string> = []
    while (taken.at(-1) !== last) taken.push(yield* Queue.take(queue))
    return taken
  })

const scenarios = (backend: backends.ClusterBackend) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`Broker channels on ${backend.name}`, () => {
    test("a node subscribed to a channel hears its own publish exactly once, like the other nodes", () =>
      Effect.gen(function* () {
        const brokers = yield* backend.cluster()
        const a = (yield* backends.buildNode(brokers.broker("echo-a"))).get(ClusterBroker)
        const b = (yield* backends.buildNode(brokers.broker("echo-b"))).get(ClusterBroker)
        const atA = yield* hear(a, "echo")
        const atB = yield* hear(b, "echo")
        const probeAtA = yield* hear(a, "probe")
        expect(a.publish("echo", encode("a:1"))).toBe(true)
        expect(a.publish("echo", encode("a:2"))).toBe(true)
        expect(yield* takeThrough(atB, "a:2")).toEqual(["a:1", "a:2"])
        // B has both: its own publish reaches A after whatever the broker sent A for them (an echo included).
        expect(b.publish("echo", encode("b:end"))).toBe(true)
        expect(yield* takeThrough(atB, "b:end")).toEqual(["b:end"])
        expect(yield* takeThrough(atA, "b:end")).toEqual(["a:1", "a:2", "b:end"])

        // Unsubscribed, a node no longer hears its own publishes: B's probe on another channel comes after.
        yield* a.unsubscribe("echo")
        expect(a.publish("echo", encode("a:3"))).toBe(true)
        expect(yield* takeThrough(atB, "a:3")).toEqual(["a:3"])
        expect(b.publish("probe", encode("b:probe"))).toBe(true)
        expect(yield* takeThrough(probeAtA, "b:probe")).toEqual(["b:probe"])
        expect(yield* Queue.size(atA)).toBe(0)
      }))
  })
}

scenarios(backends.memoryBackend)
scenarios(backends.redisBackend(prefix))
scenarios(backends.natsBackend(backends.natsPrefix("echo")))
