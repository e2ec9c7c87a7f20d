import { describe, expect } from "bun:test"
import { Duration, Effect, Layer, Queue, TestClock } from "effect"
import { NatsTokensLive } from "../../../layers/Tokens/NatsTokens.ts"
import { RedisTokensLive } from "../../../layers/Tokens/RedisTokens.ts"
import { Tokens } from "../../../layers/Tokens/Tokens.ts"
import { startAuthenticator } from "../../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../../src/droneengage/Relay.ts"
import {
  authenticatorConfig,
  connect as connectUnit,
  post,
  relayConfig,
  relayLayer,
  relayOnline,
  seedAccounts,
  TestServices
} from "../../droneengage/harness.ts"
import { it } from "../../support/effect.ts"
import {
  cleanNatsTokensAfterAll,
  cleanRedisAfterAll,
  natsAvailable,
  natsPrefix,
  natsUrl,
  redisAvailable,
  redisUrl,
  runPrefix
} from "./backends.ts"

const prefix = runPrefix("auth-sessions")
cleanRedisAfterAll(prefix)
const jetStreamPrefix = natsPrefix("auth-sessions")
cleanNatsTokensAfterAll(jetStreamPrefix)

interface SessionBackend {
  readonly name: string
  readonly skip: boolean
  readonly live: boolean
  /** One authenticator node's Tokens (what `TokensFromConfig` gives it); memory: the test's one shared store. */
  readonly tokens: Layer.Layer<Tokens, never, Tokens>
}

const backends: ReadonlyArray<SessionBackend> = [
  { name: "memory", skip: false, live: false, tokens: Layer.effect(Tokens, Tokens) },
  {
    name: "redis",
    skip: !redisAvailable,
    live: true,
    tokens: RedisTokensLive({ url: redisUrl, prefix }).pipe(Layer.orDie)
  },
  {
    name: "nats",
    skip: !natsAvailable,
    live: true,
    tokens: NatsTokensLive({ url: natsUrl, prefix: jetStreamPrefix }).pipe(Layer.orDie)
  }
]

/** `tokens` whose index revocations (a relay's LOGOUT ending a session) are told on `revoked` once done. */
const watched = (tokens: Layer.Layer<Tokens, never, Tokens>, revoked: Queue.Queue<boolean>) =>
  Layer.effect(
    Tokens,
    Effect.map(Tokens, (service) => ({
      ...service,
      revokeIndexed: (kind: string, key: string) =>
        Effect.tap(service.revokeIndexed(kind, key), (ended) => Queue.offer(revoked, ended)),
      // A store in process memory ends sessions on the spot: told the same way.
      revokeIndexedNow:
        service.revokeIndexedNow &&
        ((kind: string, key: string) => {
          const ended = service.revokeIndexedNow!(kind, key)
          Queue.unsafeOffer(revoked, ended)
          return ended
        })
    }))
  ).pipe(Layer.provide(tokens))

const loginBody = (account: string) => ({
  acc: account,
  pwd: `${account}-code`,
  gr: "1",
  app: "test",
  ver: "1",
  ex: "x"
})

for (const backend of backends) {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  describe(`DroneEngage sessions across authenticators (${backend.name})`, () => {
    test("a sid from authenticator A works on B: hardware check, management, logout, the relay's LOGOUT; one sliding expiry", () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const revoked = yield* Queue.unbounded<boolean>()
        const config = authenticatorConfig({ sessionTtl: Duration.seconds(10) })
        // Each node's Tokens live as long as the test (its own connection on a real broker).
        const tokensOfA = yield* Layer.build(watched(backend.tokens, revoked))
        const tokensOfB = yield* Layer.build(backend.tokens)
        const a = yield* startAuthenticator(config).pipe(Effect.provide(tokensOfA))
        const b = yield* startAuthenticator({ ...config, serverId: "auth-b" }).pipe(Effect.provide(tokensOfB))
        yield* startRelay(relayConfig(a.s2s.port)).pipe(Effect.provide(relayLayer))
        yield* relayOnline(a)

        const alpha = (yield* post(`${a.http.url}/w/wl`, loginBody("alpha"))).body
        expect(alpha.e).toBe(0)
        const check = (url: string, sid: string) =>
          Effect.map(post(`${url}/agent/ah`, { scm: "vh", sid, hi: "hw-1", ht: "px4" }), (reply) => reply.body)
        expect(yield* check(b.http.url, alpha.sid)).toEqual({ e: 0, scm: "vh", cm: "/ah" })

        const admin = (yield* post(`${a.http.url}/w/wl`, loginBody("admin"))).body.sid
        const lookUp = yield* post(`${b.http.url}/w/am`, { sid: admin, scm: "g", acc: "beta" })
        expect({ status: lookUp.status, e: lookUp.body.e, acc: lookUp.body.acc }).toEqual({
          status: 200,
          e: 0,
          acc: "beta"
        })

        // A unit leaving the relay ends the session of its login on A (LOGOUT by index): B no longer accepts it.
        const beta = (yield* post(`${a.http.url}/w/wl`, loginBody("beta"))).body
        expect((yield* check(b.http.url, beta.sid)).e).toBe(8)
        const unit = yield* connectUnit(beta.cs.h, `/?f=${beta.cs.f}&s=beta-gcs`)
        expect((yield* unit.nextJson()).mt).toBe(9007)
        yield* unit.close()
        expect(yield* Queue.take(revoked)).toBe(true)
        expect((yield* check(b.http.url, beta.sid)).e).toBe(7)

        if (!backend.live) {
          // Sliding: each use on either node moves the one shared expiry; unused for a whole TTL, gone on both.
          yield* TestClock.adjust("8 seconds")
          expect((yield* check(b.http.url, alpha.sid)).e).toBe(0)
          yield* TestClock.adjust("8 seconds")
          expect((yield* check(a.http.url, alpha.sid)).e).toBe(0)
          yield* TestClock.adjust("11 seconds")
          expect((yield* check(b.http.url, alpha.sid)).e).toBe(7)
          expect((yield* check(a.http.url, alpha.sid)).e).toBe(7)
        } else {
          expect((yield* post(`${b.http.url}/w/wo`, { sid: alpha.sid })).body).toEqual({ e: 0, cm: "/wo" })
          // Logged out on B: ended on A too, and only once.
          expect((yield* check(a.http.url, alpha.sid)).e).toBe(7)
          expect((yield* post(`${a.http.url}/w/wo`, { sid: alpha.sid })).body).toMatchObject({ e: 7 })
        }
      }).pipe(Effect.provide(TestServices)))
  })
}
