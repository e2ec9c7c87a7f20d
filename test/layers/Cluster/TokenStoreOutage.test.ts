import { describe, expect } from "bun:test"
import { Chunk, Context, Duration, Effect, Layer, Queue, Schedule } from "effect"
import { MemoryStreamStore } from "../../../layers/Storage/MemoryStreamStore.ts"
import { NatsTokensLive } from "../../../layers/Tokens/NatsTokens.ts"
import { RedisTokensLive } from "../../../layers/Tokens/RedisTokens.ts"
import { Tokens } from "../../../layers/Tokens/Tokens.ts"
import { login, post, seedAccounts, startStack, TestServices } from "../../droneengage/harness.ts"
import { command, connectHydrogen, ok, readerKey, startTestHydrogen } from "../../hydrogen/support.ts"
import { it } from "../../support/effect.ts"
import {
  cleanNatsTokensAfterAll,
  cleanRedisAfterAll,
  natsAvailable,
  natsPrefix,
  redisAvailable,
  runPrefix
} from "./backends.ts"
import { tcpProxy } from "./TcpProxy.ts"

const prefix = runPrefix("token-outage")
cleanRedisAfterAll(prefix)
const jetStreamPrefix = natsPrefix("token-outage")
cleanNatsTokensAfterAll(jetStreamPrefix)

const stores = [
  {
    name: "Redis",
    skip: !redisAvailable,
    port: 6379,
    layer: (port: number) => RedisTokensLive({ url: `redis://127.0.0.1:${port}`, prefix })
  },
  {
    name: "NATS",
    skip: !natsAvailable,
    port: 4222,
    layer: (port: number) => NatsTokensLive({ url: `127.0.0.1:${port}`, prefix: jetStreamPrefix })
  }
]

/** A token store reached through a proxy the test cuts (released after what was built on it). */
const proxiedStore = (store: (typeof stores)[number]) =>
  Effect.gen(function* () {
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => tcpProxy(store.port)),
      (proxy) => Effect.promise(() => proxy.cut())
    )
    const context = yield* Layer.build(store.layer(proxy.port).pipe(Layer.orDie))
    return { proxy, context, tokens: Context.get(context, Tokens) }
  })

// A bound well below the clients' 5 s request timeout, which a call during a cut used to wait out (NATS).
const atOnce = <A, E, R>(call: Effect.Effect<A, E, R>) =>
  call.pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("the call waited for the broker") }))

/** Polls `probe` (in this test's context) until it gives a value: at most 15 s. */
const eventually = <A, R>(what: string, probe: Effect.Effect<A | undefined, never, R>) =>
  probe.pipe(
    Effect.flatMap((value) => (value === undefined ? Effect.fail("not yet") : Effect.succeed(value))),
    Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 300 }),
    Effect.orElse(() => Effect.dieMessage(`timed out waiting for ${what}`))
  )

const cut = (proxy: { cut: () => Promise<void> }) => Effect.promise(() => proxy.cut())
const restore = (proxy: { restore: () => Promise<void> }) => Effect.promise(() => proxy.restore())

describe("token store outages (real Redis and NATS through a cut connection)", () => {
  for (const store of stores) {
    it.skipIf(store.skip).live(
      `${store.name}: a token call during a cut fails at once, typed; calls work once back`,
      () =>
        Effect.gen(function* () {
          const { proxy, tokens } = yield* proxiedStore(store)
          const held = yield* tokens.issue("test/outage", "value", Duration.seconds(30))
          yield* cut(proxy)
          const unavailable = { _tag: "TokenStoreUnavailable" }
          expect(yield* Effect.flip(atOnce(tokens.issue("test/outage", "v", Duration.seconds(30))))).toMatchObject(
            unavailable
          )
          expect(yield* Effect.flip(atOnce(tokens.take("test/outage", held)))).toMatchObject(unavailable)
          yield* restore(proxy)
          const taken = yield* eventually(
            "the store answering again",
            Effect.orElseSucceed(tokens.take("test/outage", held), () => undefined)
          )
          expect(taken._tag).toBe("Some")
        })
    )

    it.skipIf(store.skip).live(
      `${store.name}: DroneEngage login during a cut is answered No available Server, a session call 503; the relay link stays up`,
      () =>
        Effect.gen(function* () {
          yield* seedAccounts
          const { proxy, context } = yield* proxiedStore(store)
          // Authenticator and relay on the one store (what cluster config gives both).
          const stack = yield* startStack().pipe(Effect.provide(context))
          const events = yield* stack.authenticator.commServers.events
          const alpha = (yield* login(stack, "alpha", "g")).body
          expect(alpha.e).toBe(0)
          const hardwareCheck = post(`${stack.authUrl}/agent/ah`, { scm: "vh", sid: alpha.sid, hi: "hw", ht: "px4" })

          yield* cut(proxy)
          const during = yield* atOnce(login(stack, "beta", "g"))
          expect({ e: during.body.e, em: during.body.em }).toEqual({ e: 5, em: "No available Server" })
          const check = yield* atOnce(hardwareCheck)
          expect({ status: check.status, e: check.body.e }).toEqual({ status: 503, e: 3 })

          yield* restore(proxy)
          yield* eventually(
            "the session store answering again",
            Effect.map(hardwareCheck, (reply) => (reply.status === 503 ? undefined : reply))
          )
          expect((yield* login(stack, "beta", "g")).body.e).toBe(0)
          // One link all along: the authenticator saw the relay neither leave nor link again.
          const seen = Chunk.toArray(yield* Queue.takeAll(events)).map((event) => event._tag)
          expect(seen.filter((tag) => tag === "Left" || tag === "Linked")).toEqual([])
        }).pipe(Effect.provide(TestServices))
    )

    it.skipIf(store.skip).live(`${store.name}: a Hydrogen resume during a cut is answered storage_unavailable`, () =>
      Effect.gen(function* () {
        const { proxy, context } = yield* proxiedStore(store)
        const hydrogen = yield* startTestHydrogen({}, MemoryStreamStore, {}, Layer.succeedContext(context))
        const client = yield* connectHydrogen(hydrogen, readerKey)
        const { session } = yield* ok(client, "subscriptions", "subscribe", { channel: "jobs" })
        const other = yield* connectHydrogen(hydrogen, readerKey)
        yield* ok(other, "system", "whoami")

        yield* cut(proxy)
        expect(yield* atOnce(command(other, "system", "resume", { session }))).toMatchObject({
          response: { error: { code: "storage_unavailable" } }
        })
        yield* restore(proxy)
        const resumed = yield* eventually(
          "the resume answered",
          Effect.map(command(other, "system", "resume", { session }), ({ response }): any =>
            response.error?.code === "storage_unavailable" ? undefined : response
          )
        )
        expect(resumed.error).toBeUndefined()
      })
    )
  }
})
