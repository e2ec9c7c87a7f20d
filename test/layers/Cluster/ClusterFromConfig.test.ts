import { describe, expect } from "bun:test"
import { ConfigProvider, Duration, Effect, Either, Layer, Option, Queue } from "effect"
import { ClusterConfig } from "../../../layers/Cluster/ClusterConfig.ts"
import { ClusterFromConfig } from "../../../layers/Cluster/ClusterFromConfig.ts"
import { Federation } from "../../../layers/Federation/Federation.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { Tokens } from "../../../layers/Tokens/Tokens.ts"
import { it } from "../../support/effect.ts"
import { buildNode, cleanRedisAfterAll, natsAvailable, redisAvailable } from "./backends.ts"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { destroyNatsBuckets } from "../../../layers/Cluster/NatsBroker.ts"
import { natsTokensBucket } from "../../../layers/Tokens/NatsTokens.ts"

const runId = crypto.randomUUID().slice(0, 8)
const redisPrefix = `sbtest-config-${runId}`
cleanRedisAfterAll(`${redisPrefix}:`)

const fromJson = (json: object) => Layer.setConfigProvider(ConfigProvider.fromJson(json))
const settings = (json: object) => ClusterConfig.pipe(Effect.provide(fromJson(json)), Effect.either)

/** A node built from `cluster.*` config, with its own metrics. */
const node = (cluster: object) =>
  buildNode(
    ClusterFromConfig.pipe(Layer.provideMerge(Metrics.Default), Layer.provide(fromJson({ cluster })), Layer.orDie)
  )

/** A token issued on one node is taken on the other once; a bus payload from one reaches the other. */
const sharedAcrossNodes = (cluster: object) =>
  Effect.gen(function* () {
    const a = yield* node({ ...cluster, nodeId: "config-a" })
    const b = yield* node({ ...cluster, nodeId: "config-b" })
    const key = yield* a.get(Tokens).issue("relay/login-key", "unit", Duration.seconds(30))
    expect(yield* b.get(Tokens).take("relay/login-key", key)).toEqual(Option.some("unit"))
    expect(yield* a.get(Tokens).take("relay/login-key", key)).toEqual(Option.none())
    const onB = yield* b.get(Federation).subscribe("config-test")
    yield* a.get(Federation).publish("config-test", "hello")
    expect(yield* Queue.take(onB)).toBe("hello")
  })

describe("ClusterFromConfig", () => {
  it.effect("one process is the default; a node id is made up when none is set; bad values name their key", () =>
    Effect.gen(function* () {
      const defaults = yield* settings({})
      expect(Either.getOrThrow(defaults).broker).toBe("memory")
      expect(Either.getOrThrow(defaults).nodeId).toMatch(/^[0-9a-f]{12}$/)
      const badBroker = yield* settings({ cluster: { broker: "kafka" } })
      expect(Either.isLeft(badBroker) && String(badBroker.left)).toContain("cluster.broker")
      const badPrefix = yield* settings({ cluster: { prefix: "a b" } })
      expect(Either.isLeft(badPrefix) && String(badPrefix.left)).toContain("cluster.prefix")
      const slowHeartbeat = yield* settings({ cluster: { heartbeatMs: 6000, nodeTtlMs: 5000 } })
      expect(Either.isLeft(slowHeartbeat) && String(slowHeartbeat.left)).toContain("heartbeatMs must be below")
      // memory: the single-process layers, which still share nothing with another "node".
      const alone = yield* node({})
      const key = yield* alone.get(Tokens).issue("k", "v", Duration.seconds(5))
      expect(yield* alone.get(Tokens).take("k", key)).toEqual(Option.some("v"))
    })
  )

  it.effect(
    "cluster.redis.*: a 5 s command timeout and automatic replica WAITs by default; bad values name their key",
    () =>
      Effect.gen(function* () {
        const redisOf = (redis: object) =>
          Effect.map(
            settings({ cluster: { redis } }),
            Either.map((c) => c.redis)
          )
        expect(yield* redisOf({})).toEqual(
          Either.right({ commandTimeoutMs: 5000, waitReplicas: "auto", waitTimeoutMs: 500 })
        )
        const set = { commandTimeoutMs: 2000, waitReplicas: 0, waitTimeoutMs: 100 }
        expect(yield* redisOf(set)).toEqual(Either.right(set))
        expect(Either.getOrThrow(yield* redisOf({ waitReplicas: 2 })).waitReplicas).toBe(2)
        for (const [bad, named] of [
          [{ commandTimeoutMs: 0 }, "cluster.redis.commandTimeoutMs"],
          [{ waitReplicas: "some" }, "cluster.redis.waitReplicas"],
          [{ waitReplicas: -1 }, "cluster.redis.waitReplicas"],
          [{ waitTimeoutMs: 5000 }, "waitTimeoutMs must be below cluster.redis.commandTimeoutMs"]
        ] as const) {
          const result = yield* redisOf(bad)
          expect(Either.isLeft(result) && String(result.left)).toContain(named)
        }
      })
  )

  it.skipIf(!redisAvailable).live("cluster.broker = redis: tokens and the bus are shared between nodes", () =>
    sharedAcrossNodes({ broker: "redis", redisUrl: "redis://127.0.0.1:6379", prefix: redisPrefix })
  )

  it.skipIf(!natsAvailable).live("cluster.broker = nats: tokens and the bus are shared between nodes", () =>
    Effect.gen(function* () {
      const prefix = `sbtest-config-${runId}`
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const admin = await connect({ servers: "127.0.0.1:4222" })
          await Effect.runPromise(destroyNatsBuckets(admin, prefix))
          await (await new Kvm(admin).open(natsTokensBucket(prefix))).destroy()
          await admin.close()
        })
      )
      yield* sharedAcrossNodes({ broker: "nats", natsUrl: "nats://127.0.0.1:4222", prefix })
    })
  )
})
