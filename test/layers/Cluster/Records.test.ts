import { describe, expect } from "bun:test"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { Effect, Layer, TestClock } from "effect"
import Redis from "ioredis"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../../layers/Cluster/MemoryBroker.ts"
import { destroyNatsBuckets, makeNatsBroker } from "../../../layers/Cluster/NatsBroker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import { it } from "../../support/effect.ts"
import {
  buildNode,
  cleanRedisAfterAll,
  natsAvailable,
  natsPrefix,
  natsUrl,
  redisAvailable,
  redisUrl,
  runPrefix
} from "./backends.ts"

const ttl = 60_000
const prefix = runPrefix("records")
cleanRedisAfterAll(prefix)

describe("expiring records on the memory broker (TestClock)", () => {
  it.effect("a record lasts its TTL from its last put, on every node, and goes when removed", () =>
    Effect.gen(function* () {
      const hub = new MemoryBrokerHub()
      const [a, b] = [hub.node("a").records, hub.node("b").records]
      yield* a.put("session", "x", ttl)
      yield* TestClock.adjust(ttl - 1000)
      expect(yield* b.get("session")).toBe("x")
      // A put again starts the TTL over.
      yield* a.put("session", "y", ttl)
      yield* TestClock.adjust(ttl - 1000)
      expect(yield* b.get("session")).toBe("y")
      yield* TestClock.adjust(1000)
      expect(yield* b.get("session")).toBeUndefined()
      yield* a.put("session", "z", ttl)
      yield* b.remove("session")
      expect(yield* a.get("session")).toBeUndefined()
    })
  )
})

describe("expiring records on Redis", () => {
  it.skipIf(!redisAvailable).live("a put sets the TTL and a put again restores it; another node reads it", () =>
    Effect.gen(function* () {
      const clusterPrefix = `${prefix}${crypto.randomUUID().slice(0, 6)}:`
      const node = (nodeId: string) =>
        Effect.map(
          buildNode(
            Layer.scoped(ClusterBroker, makeRedisBroker({ url: redisUrl, prefix: clusterPrefix, nodeId })).pipe(
              Layer.orDie
            )
          ),
          (built) => built.get(ClusterBroker).records
        )
      const [a, b] = [yield* node("a"), yield* node("b")]
      const admin = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(redisUrl)),
        (redis) => Effect.sync(() => redis.disconnect())
      )
      const key = `${clusterPrefix}record:session`
      expect(yield* b.get("session")).toBeUndefined()
      yield* a.put("session", "x", ttl)
      expect(yield* b.get("session")).toBe("x")
      const first = yield* Effect.promise(() => admin.pttl(key))
      expect(first > 0 && first <= ttl).toBe(true)
      // Nearly run out, then refreshed by a put.
      yield* Effect.promise(() => admin.pexpire(key, 50_000))
      yield* a.put("session", "y", ttl)
      expect(yield* Effect.promise(() => admin.pttl(key))).toBeGreaterThan(50_000)
      yield* b.remove("session")
      expect(yield* a.get("session")).toBeUndefined()
    })
  )
})

describe("expiring records on NATS", () => {
  it.skipIf(!natsAvailable).live(
    "the records bucket's max age is the TTL; a node that never put reads and removes",
    () =>
      Effect.gen(function* () {
        const clusterPrefix = natsPrefix("records")
        const admin = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: natsUrl })),
          (connection) => Effect.promise(() => connection.close())
        )
        yield* Effect.addFinalizer(() => destroyNatsBuckets(admin, clusterPrefix))
        const node = (nodeId: string) =>
          Effect.map(
            buildNode(
              Layer.scoped(ClusterBroker, makeNatsBroker({ url: natsUrl, prefix: clusterPrefix, nodeId })).pipe(
                Layer.orDie
              )
            ),
            (built) => built.get(ClusterBroker).records
          )
        const [a, b] = [yield* node("a"), yield* node("b")]
        // No bucket yet: nothing to read.
        expect(yield* b.get("session")).toBeUndefined()
        yield* a.put("session", "x", ttl)
        expect(yield* b.get("session")).toBe("x")
        const bucket = yield* Effect.promise(() =>
          new Kvm(admin).open(`${clusterPrefix.replace(/[^A-Za-z0-9_-]/g, "_")}_records`)
        )
        expect((yield* Effect.promise(() => bucket.status())).ttl).toBe(ttl)
        // A put again is a new message: its age starts over.
        const before = (yield* Effect.promise(() => bucket.get(Buffer.from("session").toString("base64url"))))!.revision
        yield* a.put("session", "y", ttl)
        const after = yield* Effect.promise(() => bucket.get(Buffer.from("session").toString("base64url")))
        expect(after!.revision).toBeGreaterThan(before)
        expect(yield* b.get("session")).toBe("y")
        yield* b.remove("session")
        expect(yield* a.get("session")).toBeUndefined()
      })
  )
})
