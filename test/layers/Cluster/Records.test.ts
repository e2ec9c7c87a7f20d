import { describe, expect } from "bun:test"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { Effect, Layer, TestClock } from "effect"
import { ClusterBroker, type RecordStore } from "../../../layers/Cluster/Broker.ts"
import { MemoryBrokerHub } from "../../../layers/Cluster/MemoryBroker.ts"
import { destroyNatsBuckets, makeNatsBroker } from "../../../layers/Cluster/NatsBroker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import { it } from "../../support/effect.ts"
import {
  adminRedis,
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

/**
 * The holder rules every backend applies in one atomic step: "keep" only while held by the writer
 * or no one, "take" from anyone, and a closed record is taken, kept and read by no one.
 */
const holderRules = (a: RecordStore, b: RecordStore) =>
  Effect.gen(function* () {
    const key = `held-${crypto.randomUUID().slice(0, 6)}`
    expect(yield* b.get(key)).toBeUndefined()
    expect(yield* a.put(key, "node-a", "x", ttl, "keep")).toBe(true)
    expect(yield* b.get(key)).toEqual({ holder: "node-a", value: "x" })
    // Another node cannot keep (refresh) what it does not hold, nor close it.
    expect(yield* b.put(key, "node-b", "y", ttl, "keep")).toBe(false)
    expect(yield* b.close(key, "node-b", ttl)).toBe(false)
    expect(yield* a.get(key)).toEqual({ holder: "node-a", value: "x" })
    // It takes it over; the old holder learns so at its next keep or close, and changes nothing.
    expect(yield* b.put(key, "node-b", "y", ttl, "take")).toBe(true)
    expect(yield* a.put(key, "node-a", "x2", ttl, "keep")).toBe(false)
    expect(yield* a.close(key, "node-a", ttl)).toBe(false)
    expect(yield* a.get(key)).toEqual({ holder: "node-b", value: "y" })
    expect(yield* b.put(key, "node-b", "y2", ttl, "keep")).toBe(true)
    // Closed by its holder: absent to readers, and no node takes or keeps it.
    expect(yield* b.close(key, "node-b", ttl)).toBe(true)
    expect(yield* a.get(key)).toBeUndefined()
    expect(yield* a.put(key, "node-a", "z", ttl, "take")).toBe(false)
    expect(yield* b.put(key, "node-b", "z", ttl, "keep")).toBe(false)
    expect(yield* a.get(key)).toBeUndefined()
    // A record no one ever wrote can be closed by whoever ends what it would have held.
    const never = `${key}-never`
    expect(yield* a.close(never, "node-a", ttl)).toBe(true)
    expect(yield* b.put(never, "node-b", "v", ttl, "take")).toBe(false)
  })

describe("expiring records on the memory broker (TestClock)", () => {
  it.effect("a record lasts its TTL from its last put, on every node; a closed one too", () =>
    Effect.gen(function* () {
      const hub = new MemoryBrokerHub()
      const [a, b] = [hub.node("a").records, hub.node("b").records]
      yield* a.put("session", "node-a", "x", ttl, "keep")
      yield* TestClock.adjust(ttl - 1000)
      expect(yield* b.get("session")).toEqual({ holder: "node-a", value: "x" })
      // A put again starts the TTL over.
      yield* a.put("session", "node-a", "y", ttl, "keep")
      yield* TestClock.adjust(ttl - 1000)
      expect(yield* b.get("session")).toEqual({ holder: "node-a", value: "y" })
      yield* TestClock.adjust(1000)
      expect(yield* b.get("session")).toBeUndefined()
      // Expired: whoever comes may keep it again.
      expect(yield* b.put("session", "node-b", "z", ttl, "keep")).toBe(true)
      expect(yield* b.close("session", "node-b", ttl)).toBe(true)
      expect(yield* a.put("session", "node-a", "w", ttl, "take")).toBe(false)
      // The closed mark lasts its TTL too.
      yield* TestClock.adjust(ttl)
      expect(yield* a.put("session", "node-a", "w", ttl, "take")).toBe(true)
    })
  )

  it.effect("holder rules", () => {
    const hub = new MemoryBrokerHub()
    return holderRules(hub.node("a").records, hub.node("b").records)
  })
})

describe("expiring records on Redis", () => {
  it.skipIf(!redisAvailable).live("a put sets the TTL and a put again restores it; holder rules across nodes", () =>
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
        Effect.promise(() => adminRedis(redisUrl)),
        (redis) => Effect.sync(() => redis.disconnect())
      )
      const key = `${clusterPrefix}record:session`
      expect(yield* b.get("session")).toBeUndefined()
      yield* a.put("session", "node-a", "x", ttl, "keep")
      expect(yield* b.get("session")).toEqual({ holder: "node-a", value: "x" })
      const first = yield* Effect.promise(() => admin.pttl(key))
      expect(first > 0 && first <= ttl).toBe(true)
      // Nearly run out, then refreshed by a put.
      yield* Effect.promise(() => admin.pexpire(key, 50_000))
      yield* a.put("session", "node-a", "y", ttl, "keep")
      expect(yield* Effect.promise(() => admin.pttl(key))).toBeGreaterThan(50_000)
      // A closed record expires like any other.
      yield* a.close("session", "node-a", ttl)
      const closed = yield* Effect.promise(() => admin.pttl(key))
      expect(closed > 0 && closed <= ttl).toBe(true)
      yield* holderRules(a, b)
    })
  )
})

describe("expiring records on NATS", () => {
  it.skipIf(!natsAvailable).live(
    "the records bucket's max age is the TTL; a node that never put reads; holder rules across nodes",
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
        yield* a.put("session", "node-a", "x", ttl, "keep")
        expect(yield* b.get("session")).toEqual({ holder: "node-a", value: "x" })
        const bucket = yield* Effect.promise(() =>
          new Kvm(admin).open(`${clusterPrefix.replace(/[^A-Za-z0-9_-]/g, "_")}_records`)
        )
        expect((yield* Effect.promise(() => bucket.status())).ttl).toBe(ttl)
        // A put again is a new message: its age starts over.
        const before = (yield* Effect.promise(() => bucket.get(Buffer.from("session").toString("base64url"))))!.revision
        yield* a.put("session", "node-a", "y", ttl, "keep")
        const after = yield* Effect.promise(() => bucket.get(Buffer.from("session").toString("base64url")))
        expect(after!.revision).toBeGreaterThan(before)
        expect(yield* b.get("session")).toEqual({ holder: "node-a", value: "y" })
        yield* holderRules(a, b)
      })
  )
})
