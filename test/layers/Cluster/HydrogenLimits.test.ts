import { describe, expect } from "bun:test"
import { Effect, type Layer } from "effect"
import type { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { defaultHydrogenSettings } from "../../../src/hydrogen/Config.ts"
import { makeRateLimits } from "../../../src/hydrogen/RateLimits.ts"
import { it } from "../../support/effect.ts"
import {
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  redisBackend,
  runPrefix,
  syncUntil,
  watchedSharedLimits
} from "./backends.ts"

const prefix = runPrefix("hydrogen-limits")
cleanRedisAfterAll(prefix)

// 20 connections at once, one a second after: the cluster's side is 20 per 20 s window.
const settings = { ...defaultHydrogenSettings, connectionRatePerSecond: 1, connectionBurst: 20 }

/** One Hydrogen node's rate limits on the cluster's SharedLimits (as `brokerSharedLimits` gives a node). */
const hydrogenNode = (brokers: { readonly broker: (nodeId: string) => Layer.Layer<ClusterBroker> }, id: string) =>
  Effect.gen(function* () {
    const { layer, knows, limiters } = yield* watchedSharedLimits(brokers.broker(id))
    const limits = yield* Effect.flatMap(Metrics, (metrics) => makeRateLimits(settings, metrics)).pipe(
      Effect.provide(layer)
    )
    return {
      limits,
      limiters,
      knows: (count: number, now: number) => knows("limit/hydrogen connections", count, now)
    }
  })

const scenarios = (backend: ClusterBackend) =>
  describe(`Hydrogen connection limits across nodes (${backend.name})`, () => {
    it.skipIf(backend.skip).effect("an address over its connection rate across two nodes is limited as on one", () =>
      Effect.gen(function* () {
        const brokers = yield* backend.cluster()
        const [a, b] = [yield* hydrogenNode(brokers, "h-a"), yield* hydrogenNode(brokers, "h-b")]
        const alone = yield* Effect.flatMap(Metrics, (metrics) => makeRateLimits(settings, metrics))
        const ip = "192.0.2.9"
        for (let i = 0; i < 12; i++) expect(a.limits.admitConnection(ip, 0)).toBe("ok")
        for (let i = 0; i < 8; i++) expect(b.limits.admitConnection(ip, 0)).toBe("ok")
        expect(yield* syncUntil((now) => a.knows(20, now) && b.knows(20, now), a, b)).toBe(true)
        for (let i = 0; i < 20; i++) expect(alone.admitConnection(ip, 0)).toBe("ok")
        const oneNode = alone.admitConnection(ip, 0)
        expect(oneNode).toBe("limited")
        // Two seconds on, both local buckets hold tokens: the cluster count refuses, with the one-node answer (429).
        const now = 1000 * 2
        expect(b.limits.admitConnection(ip, now)).toBe(oneNode)
        expect(a.limits.admitConnection(ip, now)).toBe(oneNode)
        expect(a.limits.admitConnection("192.0.2.10", now)).toBe("ok")
      }).pipe(Effect.provide(Metrics.Default))
    )
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("hydrogen-limits")))
