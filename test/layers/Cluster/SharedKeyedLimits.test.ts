import { describe, expect } from "bun:test"
import { Clock, Effect, Layer } from "effect"
import type { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { type SharedLimiter, SharedLimits } from "../../../layers/Cluster/Counters.ts"
import { makeKeyedLimiter } from "../../../src/shared/RateLimiter.ts"
import { it } from "../../support/effect.ts"
import {
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  redisBackend,
  runPrefix,
  sharedLimitsOn,
  syncUntil
} from "./backends.ts"

const prefix = runPrefix("limits")
cleanRedisAfterAll(prefix)

// The login limit's shape: 5 attempts at once, 5 a minute after (the cluster side: 5 per 60 s window).
const loginLimit = { ratePerSecond: 5 / 60, burst: 5, blockFor: "5 minutes", strikes: 1 } as const

const scenarios = (backend: ClusterBackend) =>
  describe(`keyed limits across nodes (${backend.name})`, () => {
    /** A node's keyed limiter on the cluster's SharedLimits, with the shared side it made (to see its syncs). */
    const nodeLimiter = (brokers: { readonly broker: (nodeId: string) => Layer.Layer<ClusterBroker> }, id: string) =>
      Effect.gen(function* () {
        const shared = yield* sharedLimitsOn(brokers.broker(id))
        let cluster: SharedLimiter | undefined
        const spying = Layer.succeed(SharedLimits, {
          make: (name, options) => Effect.tap(shared.make(name, options), (made) => void (cluster = made))
        })
        const limiter = yield* makeKeyedLimiter("login attempts", loginLimit).pipe(Effect.provide(spying))
        return { limiter, known: (key: string, now: number) => cluster!.known(key, now), limiters: () => [cluster!] }
      })

    it.skipIf(backend.skip).effect(
      "a client over the limit across two nodes is refused as on one node, then blocked; alone nothing changes",
      () =>
        Effect.gen(function* () {
          const brokers = yield* backend.cluster()
          const a = yield* nodeLimiter(brokers, "limit-a")
          const b = yield* nodeLimiter(brokers, "limit-b")
          const alone = yield* makeKeyedLimiter("login attempts", loginLimit)
          const key = "203.0.113.7"
          let now = 1000
          for (let i = 0; i < 3; i++) expect(a.limiter.admit(key, now)).toBe(true)
          for (let i = 0; i < 2; i++) expect(b.limiter.admit(key, now)).toBe(true)
          // Each node syncs every second: move the clock, a sync at a time, until both know the cluster's 5.
          expect(yield* syncUntil((at) => a.known(key, at) >= 5 && b.known(key, at) >= 5, a, b)).toBe(true)
          now = yield* Clock.currentTimeMillis
          expect([a.known(key, now), b.known(key, now)]).toEqual([5, 5])
          // Both local buckets still hold tokens; the cluster's count refuses, like one node after 5.
          for (let i = 0; i < 5; i++) expect(alone.admit(key, now)).toBe(true)
          expect(alone.admit(key, now)).toBe(false)
          expect(b.limiter.admit(key, now)).toBe(false)
          expect(b.limiter.isBlocked(key, now)).toBe(alone.isBlocked(key, now))
          expect(b.limiter.retryAfter(key, now)).toBe(alone.retryAfter(key, now))
          expect(a.limiter.admit(key, now)).toBe(false)
          // Another client is not affected.
          expect(a.limiter.admit("198.51.100.1", now)).toBe(true)
        })
    )

    it.skipIf(backend.skip).effect(
      "a block on one node holds on the other for the whole block, past the cluster's window",
      () =>
        Effect.gen(function* () {
          const brokers = yield* backend.cluster()
          const a = yield* nodeLimiter(brokers, "block-a")
          const b = yield* nodeLimiter(brokers, "block-b")
          const key = "203.0.113.8"
          // B has seen the client once; A blocks it (the authenticator's failed credentials do this).
          expect(b.limiter.admit(key, 1000)).toBe(true)
          a.limiter.block(key, 1000)
          expect(yield* syncUntil((at) => b.limiter.isBlocked(key, at), a, b)).toBe(true)
          const now = yield* Clock.currentTimeMillis
          expect(b.limiter.admit(key, now)).toBe(false)
          expect(b.limiter.retryAfter(key, now)).toBe(a.limiter.retryAfter(key, now))
          // Four minutes on the cluster's 60 s window is long over; the 5-minute block still holds everywhere.
          const later = 1000 + 4 * 60 * 1000
          expect([a.limiter.isBlocked(key, later), b.limiter.isBlocked(key, later)]).toEqual([true, true])
          expect(b.limiter.admit(key, later)).toBe(false)
          expect(b.limiter.retryAfter(key, later)).toBe(60)
          // Once the block ends, the key passes again.
          expect(b.limiter.isBlocked(key, 1000 + 5 * 60 * 1000)).toBe(false)
          expect(b.limiter.admit("198.51.100.2", now)).toBe(true)
        })
    )
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("limits")))
