import { describe, expect } from "bun:test"
import { Effect, type Layer } from "effect"
import type { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { startAuthenticator } from "../../../src/droneengage/Authenticator.ts"
import { authenticatorConfig, post, seedAccounts, TestServices } from "../../droneengage/harness.ts"
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

const prefix = runPrefix("auth-limits")
cleanRedisAfterAll(prefix)

/** One authenticator node: its login limits on the cluster's SharedLimits (as `withSharedLimitsFromConfig` gives it). */
const authenticatorNode = (brokers: { readonly broker: (nodeId: string) => Layer.Layer<ClusterBroker> }, id: string) =>
  Effect.gen(function* () {
    const { layer, knows, limiters } = yield* watchedSharedLimits(brokers.broker(id))
    const auth = yield* startAuthenticator(authenticatorConfig({ loginRateLimit: 3 })).pipe(Effect.provide(layer))
    return { auth, limiters, knows: (count: number, now: number) => knows("limit/login attempts", count, now) }
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
        const synced = (now: number) => [a, b].every((node) => node.knows(3, now))
        expect(yield* syncUntil(synced, a, b)).toBe(true)
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
