import { afterAll, describe, expect } from "bun:test"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Option, Schedule, TestClock } from "effect"
import { Permission, StorageError } from "../../../src/storage/Account.ts"
import { AccessCodeHasher } from "../../../layers/Storage/AccessCodeHasher.ts"
import { AccountStore } from "../../../layers/Storage/AccountStore.ts"
import { makeStoreCall, SqlQueryTimeout } from "../../../layers/Storage/SqlDatabase.ts"
import { StorageFromConfig, TaskStoreFromConfig } from "../../../layers/Storage/StorageFromConfig.ts"
import { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { TaskStore } from "../../../layers/Storage/TaskStore.ts"
import { it } from "../../support/effect.ts"
import { tcpProxy } from "../Cluster/TcpProxy.ts"
import { mysqlAvailable, throwawayMysql } from "./backends.ts"

const mysql = throwawayMysql("timeouts")
const proxy = mysqlAvailable ? await tcpProxy(3306) : undefined
afterAll(() => proxy?.cut())

/** Every SQL store from JSON config, as a program builds them. */
const stores = (storage: object) =>
  Layer.mergeAll(StorageFromConfig({ name: "timeouts" }), TaskStoreFromConfig({ name: "timeouts" })).pipe(
    Layer.provide(AccessCodeHasher.Fast),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({ storage })))
  )

const timedOut = (error: { readonly message: string }) => {
  expect(error).toBeInstanceOf(StorageError)
  expect(error.message).toContain("the database did not answer within 300 ms")
}

describe("SQL query timeout: the store call wrapper", () => {
  for (const [name, neverAnswers] of [
    ["a call", Effect.never],
    // A transaction waiting for a pooled connection cannot be interrupted: the wrapper must not wait for it.
    ["an uninterruptible call", Effect.uninterruptible(Effect.never)]
  ] as const)
    it.effect(`${name} with no answer fails exactly when the clock passes the timeout`, () =>
      Effect.gen(function* () {
        const storeCall = yield* Effect.provideService(makeStoreCall, SqlQueryTimeout, Duration.millis(300))
        const call = yield* Effect.fork(Effect.flip(storeCall("reading a stream")(neverAnswers)))
        yield* TestClock.adjust(Duration.millis(299))
        expect(Option.isNone(yield* Fiber.poll(call))).toBe(true)
        yield* TestClock.adjust(Duration.millis(1))
        const error = yield* Fiber.join(call)
        timedOut(error)
        expect(error.message).toBe("reading a stream failed: the database did not answer within 300 ms")
      })
    )

  it.live("a timeout that is not a positive number of ms fails naming its key", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Effect.provide(AccountStore, stores({ backend: "sqlite", queryTimeoutMs: 0 })))
      expect(String(error)).toContain("storage.queryTimeoutMs")
    })
  )
})

describe("SQL query timeout: MariaDB that stops answering", () => {
  it.skipIf(!mysqlAvailable).live(
    "appends, reads and lookups fail in time during a stall (pool waits included) and work once it ends",
    () =>
      Effect.gen(function* () {
        const storage = {
          backend: "mysql",
          queryTimeoutMs: 300,
          authCacheTtlMs: 0,
          // One connection: once a stalled call holds it, the next calls wait for the pool, which must time out too.
          mysql: { host: "127.0.0.1", port: proxy!.port, database: mysql.database, username: "root", maxConnections: 1 }
        }
        yield* Effect.gen(function* () {
          const accounts = yield* AccountStore
          const streams = yield* StreamStore
          const tasks = yield* TaskStore
          yield* accounts.create({ name: "stalled", permission: Permission.all })
          yield* streams.append("room", "before", {})

          proxy!.stall()
          // Each call returns (with the error) while the stall lasts: the stall is lifted only afterwards.
          timedOut(yield* Effect.flip(streams.append("room", "during", {})))
          const batch = yield* Effect.flip(streams.appendMany("room", ["a", "b"], {}))
          expect(batch).toMatchObject({ _tag: "PartialAppend", stored: [], unsure: 2 })
          expect(batch.message).toContain("the database did not answer within 300 ms")
          timedOut(yield* Effect.flip(streams.readAfter("room", 0)))
          timedOut(yield* Effect.flip(accounts.findByName("stalled")))
          timedOut(yield* Effect.flip(tasks.count("some-account")))
          proxy!.unstall()

          // The stalled calls' leftovers drain first: poll until a call answers, then every store works again.
          const entries = yield* streams
            .readAfter("room", 0)
            .pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }))
          expect(entries[0]?.payload).toBe("before")
          expect(Option.isSome(yield* accounts.findByName("stalled"))).toBe(true)
          yield* streams.append("room", "after", {})
          expect(yield* tasks.count("some-account")).toBe(0)
        }).pipe(
          // A failed check must not leave the stall on: closing the pool waits for its connections.
          Effect.ensuring(Effect.sync(() => proxy!.unstall())),
          Effect.provide(stores(storage))
        )
      }),
    20_000
  )
})
