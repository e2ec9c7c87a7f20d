import { afterAll, beforeAll, describe, expect } from "bun:test"
import { Cause, Duration, Effect, Exit, Fiber, Logger, Option } from "effect"
import { BrokerUnavailable } from "../../../layers/Cluster/Broker.ts"
import { makeRedisBroker } from "../../../layers/Cluster/RedisBroker.ts"
import type { RedisSettings } from "../../../layers/Cluster/RedisConnection.ts"
import { makeRedisStreamStore } from "../../../layers/Storage/RedisStreamStore.ts"
import { makeRedisTokens } from "../../../layers/Tokens/RedisTokens.ts"
import { TokenStoreUnavailable } from "../../../layers/Tokens/Tokens.ts"
import { it } from "../../support/effect.ts"
import { nodeCommand, pollUntil, redisClusterAvailable, startRedisServer } from "../../support/redisCluster.ts"

// A private redis-server: these tests pause it, which the shared one on 6379 (other files use it) must not be.
let server: Awaited<ReturnType<typeof startRedisServer>> | undefined
beforeAll(async () => {
  if (redisClusterAvailable) server = await startRedisServer()
})
afterAll(() => server?.stop())

const redis = (overrides: Partial<RedisSettings>): RedisSettings => ({
  commandTimeoutMs: 300,
  waitReplicas: "auto",
  waitTimeoutMs: 100,
  ...overrides
})

/** Without a command timeout the call would hang while the server is paused: this bound turns that into a failure. */
const answered = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.timeoutFail(Effect.exit(effect), {
    duration: "3 seconds",
    onTimeout: () => new Error("no answer: the command waited for the paused server")
  })

/** The server paused for the rest of the test (continued by a finalizer, also when the test fails). */
const paused = Effect.acquireRelease(
  Effect.sync(() => server!.signal("SIGSTOP")),
  () => Effect.sync(() => server!.signal("SIGCONT"))
)

/** Warnings logged while `effect` runs. */
const warningsOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const warnings: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(String(Array.isArray(message) ? message[0] : message))
    })
    const value = yield* Effect.provide(effect, Logger.replace(Logger.defaultLogger, capture))
    return { value, warnings }
  })

describe("Redis commands to a server that stops answering (a private redis-server, SIGSTOPped)", () => {
  it.skipIf(!redisClusterAvailable).live(
    "a command with no answer within cluster.redis.commandTimeoutMs fails as an outage; the same layers work once the server answers",
    () =>
      Effect.gen(function* () {
        const prefix = `sbtest:timeout:${crypto.randomUUID().slice(0, 8)}:`
        const settings = redis({})
        const broker = yield* makeRedisBroker({ url: server!.url, prefix, nodeId: "a", redis: settings })
        const tokens = yield* makeRedisTokens({ url: server!.url, prefix, redis: settings })
        const streams = yield* makeRedisStreamStore({ url: server!.url, prefix, redis: settings })
        const token = yield* tokens.issue("login", "unit", Duration.minutes(1))

        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* paused
            const claim = yield* answered(broker.claims.take("units", "u1", "a/1", "replace"))
            expect(Exit.isFailure(claim) && Cause.failureOption(claim.cause)).toEqual(
              Option.some(expect.any(BrokerUnavailable))
            )
            const unavailable = Exit.isFailure(claim) ? Cause.failureOption(claim.cause) : Option.none()
            expect(Option.map(unavailable, (error) => error.message)).toEqual(
              Option.some("redis is unavailable: Command timed out")
            )
            // Tokens report an outage as TokenStoreUnavailable; the stream store as a StorageError.
            const take = yield* answered(tokens.take("login", token))
            expect(Exit.isFailure(take) && Cause.failureOption(take.cause)).toEqual(
              Option.some(expect.any(TokenStoreUnavailable))
            )
            const append = yield* answered(streams.append("s", "entry", {}))
            expect(Exit.isFailure(append) && Cause.pretty(append.cause)).toContain("Command timed out")
          })
        )

        // Answering again: the same connections serve the next commands, after the timed-out ones, which ran late
        // (a consumed token stays consumed, a claim taken is re-checked by Claims, an append reported failed is there).
        expect((yield* broker.claims.take("units", "u2", "a/2", "replace")).taken).toBe(true)
        expect(yield* broker.claims.get("units", "u1")).toBe("a/1")
        expect(yield* tokens.take("login", token)).toEqual(Option.none())
        expect((yield* streams.readAfter("s", 0)).map((entry) => entry.payload)).toEqual(["entry"])
      }),
    20_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "waitReplicas: none on a Redis without replicas by default; a set count that is not reached is logged once, the write stands",
    () =>
      Effect.gen(function* () {
        const prefix = `sbtest:wait:${crypto.randomUUID().slice(0, 8)}:`
        const auto = yield* makeRedisTokens({ url: server!.url, prefix, redis: redis({}) })
        const quiet = yield* warningsOf(
          Effect.gen(function* () {
            const token = yield* auto.issue("login", "unit", Duration.minutes(1))
            return yield* auto.take("login", token)
          })
        )
        expect(quiet).toEqual({ value: Option.some("unit"), warnings: [] })

        const strict = yield* makeRedisTokens({ url: server!.url, prefix, redis: redis({ waitReplicas: 1 }) })
        const late = yield* warningsOf(
          Effect.gen(function* () {
            const first = yield* strict.issue("login", "one", Duration.minutes(1))
            const second = yield* strict.issue("login", "two", Duration.minutes(1))
            return [yield* strict.take("login", first), yield* strict.take("login", second)]
          })
        )
        expect(late.value).toEqual([Option.some("one"), Option.some("two")])
        expect(late.warnings).toEqual([
          "tokens: a take of a login token reached 0 of 1 replicas within 100 ms; a failover now can lose such writes"
        ])
        // The take stood on the server although it was not replicated.
        expect(yield* auto.count("login")).toBe(0)
      }),
    20_000
  )

  it.skipIf(!redisClusterAvailable).live(
    "a claim blocked in WAIT holds only the claims' connection: the broker's presence writes go on meanwhile",
    () =>
      Effect.gen(function* () {
        const prefix = `sbtest:wait-lane:${crypto.randomUUID().slice(0, 8)}:`
        // No replica answers: each WAIT blocks for its whole timeout.
        const settings = redis({ commandTimeoutMs: 10_000, waitReplicas: 1, waitTimeoutMs: 5000 })
        const broker = yield* makeRedisBroker({ url: server!.url, prefix, nodeId: "a", redis: settings })
        const claim = yield* Effect.fork(broker.claims.take("units", "u1", "a/1", "replace"))
        yield* Effect.promise(() =>
          pollUntil("the claim's WAIT on the server", async () =>
            /blocked_clients:1/.test(String(await nodeCommand(server!.port, "INFO", "clients"))) ? true : undefined
          )
        )
        yield* broker.presence.put("room", "member", "entry")
        expect(yield* broker.presence.list("room")).toEqual([["member", "entry"]])
        expect(claim.unsafePoll()).toBeNull()
        yield* Fiber.interrupt(claim)
      }),
    20_000
  )
})
