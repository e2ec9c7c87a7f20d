import { describe, expect } from "bun:test"
import { Clock, Effect, Layer, TestClock } from "effect"
import type { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { type SharedLimiter, SharedLimits } from "../../../layers/Cluster/Counters.ts"
import { startAuthenticator } from "../../../src/droneengage/Authenticator.ts"
import { authenticatorConfig, post, seedAccounts, TestServices } from "../../droneengage/harness.ts"
import { it, settle } from "../../support/effect.ts"
import {
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  redisBackend,
  runPrefix,
  sharedLimitsOn
} from "./backends.ts"

const prefix = runPrefix("auth-limits")
cleanRedisAfterAll(prefix)

/** A shared limiter as the authenticator made it, with the keys it was asked about (to wait for its syncs). */
interface Watched {
  readonly name: string
  readonly limiter: SharedLimiter
  readonly keys: Set<string>
}

/** One authenticator node: its login limits on the cluster's SharedLimits (as `withSharedLimitsFromConfig` gives it). */
const authenticatorNode = (brokers: { readonly broker: (nodeId: string) => Layer.Layer<ClusterBroker> }, id: string) =>
  Effect.gen(function* () {
    const shared = yield* sharedLimitsOn(brokers.broker(id))
    const watched: Array<Watched> = []
    const watching = Layer.succeed(SharedLimits, {
      make: (name, options) =>
        Effect.map(shared.make(name, options), (limiter) => {
          const entry: Watched = { name, limiter, keys: new Set() }
          watched.push(entry)
          return { ...limiter, admit: (key: string, now: number) => (entry.keys.add(key), limiter.admit(key, now)) }
        })
    })
    const auth = yield* startAuthenticator(authenticatorConfig({ loginRateLimit: 3 })).pipe(Effect.provide(watching))
    const attempts = () => watched.find((w) => w.name === "limit/login attempts")!
    return { auth, attempts }
  })

const guestLogin = (url: string) =>
  post(`${url}/w/wl`, { acc: "alpha", pwd: "alpha-code", gr: "1", app: "test", ver: "1", ex: "x" })

const scenarios = (backend: ClusterBackend) =>
  describe(`DroneEngage login limits across authenticators (${backend.name})`, () => {
    it.skipIf(backend.skip).effect("logins spread over two authenticators get the one-node 429 after the limit", () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const brokers = yield* backend.cluster()
        const a = yield* authenticatorNode(brokers, "auth-a")
        const b = yield* authenticatorNode(brokers, "auth-b")
        // No relay linked: an admitted login is answered e 5 with 200; the limit answers 429 first.
        for (const url of [a.auth.http.url, a.auth.http.url, b.auth.http.url])
          expect((yield* guestLogin(url)).status).toBe(200)
        const synced = (now: number) =>
          [a, b].every((node) => [...node.attempts().keys].every((key) => node.attempts().limiter.known(key, now) >= 3))
        for (let round = 0; round < 40 && !synced(yield* Clock.currentTimeMillis); round++) {
          yield* TestClock.adjust("1 second")
          yield* settle(5)
        }
        expect(synced(yield* Clock.currentTimeMillis)).toBe(true)
        for (const url of [b.auth.http.url, a.auth.http.url]) {
          const limited = yield* guestLogin(url)
          expect({ status: limited.status, body: limited.body }).toEqual({
            status: 429,
            body: { e: 999, em: "Too many requests. Please try again later.", cm: "/wl" }
          })
          // Until the cluster's window (the bucket's refill time, 60 s) ends.
          expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0)
        }
      }).pipe(Effect.provide(TestServices))
    )
  })

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(natsBackend(natsPrefix("auth-limits")))
