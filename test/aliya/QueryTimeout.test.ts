import { afterAll, describe, expect } from "bun:test"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Logger, LogLevel, Option, Redacted, Schedule } from "effect"
import { TestClock } from "effect"
import { MysqlDatabase, SqlQueryTimeout } from "../../layers/Storage/SqlDatabase.ts"
import { grantWeapon, setBagAmounts } from "../../src/aliya/Admin.ts"
import { readBag } from "../../src/aliya/BagStore.ts"
import { AliyaDatabaseFromConfig } from "../../src/aliya/Parts.ts"
import { makeRequestBound } from "../../src/aliya/RequestTimeout.ts"
import { ColocatedServices, type LocalService, type ServiceName } from "../../src/aliya/ServiceCalls.ts"
import type { Answer } from "../../src/aliya/ServiceHttp.ts"
import { tcpProxy } from "../layers/Cluster/TcpProxy.ts"
import { mysqlAvailable, throwawayMysql } from "../layers/Storage/backends.ts"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, startStack } from "./support.ts"

const mysql = throwawayMysql("aliya_timeouts")
const proxy = mysqlAvailable ? await tcpProxy(3306) : undefined
afterAll(() => proxy?.cut())

const unavailable = { httpStatus: 503, body: { status: 13, message: "Service unavailable, try again", data: {} } }

describe("Aliya request timeout: the bound", () => {
  for (const [name, neverAnswers] of [
    ["a request", Effect.never],
    // A transaction waiting for a pooled connection (or its BEGIN) cannot be interrupted.
    ["an uninterruptible request", Effect.uninterruptible(Effect.never)]
  ] as const)
    it.effect(`${name} with no answer answers 13 exactly at the timeout, logging an unknown outcome`, () =>
      Effect.gen(function* () {
        const logs: Array<string> = []
        const bounded = yield* Effect.provideService(makeRequestBound, SqlQueryTimeout, Duration.millis(300))
        const route = bounded.routes("weapon", { "/level_up_weapon": () => neverAnswers })["/level_up_weapon"]!
        const request = yield* Effect.fork(
          route({}).pipe(
            Effect.provide(
              Logger.replace(
                Logger.defaultLogger,
                Logger.make((l) => logs.push(String(l.message)))
              )
            )
          )
        )
        yield* TestClock.adjust(Duration.millis(299))
        expect(Option.isNone(yield* Fiber.poll(request))).toBe(true)
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* Fiber.join(request)).toEqual(unavailable)
        expect(logs.join("\n")).toContain(
          "aliya weapon /level_up_weapon failed: the database did not answer within 300 ms (outcome unknown"
        )
      })
    )

  it.live("aliya.storage.queryTimeoutMs must be a positive number of ms: the error names the key", () =>
    Effect.gen(function* () {
      const config = ConfigProvider.fromJson({
        aliya: { storage: { backend: "sqlite", sqlite: { filename: ":memory:" }, queryTimeoutMs: 0 } }
      })
      const error = yield* Effect.flip(
        Layer.build(AliyaDatabaseFromConfig).pipe(Effect.scoped, Effect.withConfigProvider(config))
      )
      expect(String(error)).toContain("aliya.storage.queryTimeoutMs")
    })
  )
})

describe("Aliya request timeout: MariaDB that stops answering", () => {
  it.skipIf(!mysqlAvailable).live(
    "a bag read, a weapon spend and a token check answer 13 during a stall and work once it ends",
    () => {
      const registry = new Map<ServiceName, LocalService>()
      // One connection: once a stalled request holds it, the next ones wait for the pool, which must time out too.
      const database = MysqlDatabase({
        host: "127.0.0.1",
        port: proxy!.port,
        database: mysql.database,
        username: "root",
        password: Redacted.make(""),
        maxConnections: 1
      })
      return Effect.gen(function* () {
        // The parts register in `registry`: the test asks each one in-process, as co-located parts do.
        yield* startStack()
        const [bag, weapon, tokens] = [registry.get("bag")!, registry.get("weapon")!, registry.get("tokens")!]
        const post = (service: LocalService, path: string, body: object) =>
          Effect.promise((): Promise<Answer> => Promise.resolve(service.post(path, body)!))
        const validate = (token: string) => Effect.promise(() => Promise.resolve(tokens.validate!(token)))
        const token = ((yield* post(tokens, "/login_unique", { unique_id: "p1" })).body as { data: { token: string } })
          .data.token
        yield* setBagAmounts("p1", { coin: 500 })
        yield* grantWeapon("p1", "weapon1", { star: 1, level: 0 })
        const reset = { unique_id: "p1", weapon: "weapon1" }

        proxy!.stall()
        // Each request answers (13) while the stall lasts: the stall is lifted only afterwards.
        expect(yield* post(bag, "/get_all_supplies", { unique_id: "p1" })).toEqual(unavailable)
        expect(yield* post(weapon, "/reset_weapon_skill_point", reset)).toEqual(unavailable)
        expect(yield* validate(token)).toEqual(unavailable)
        // A first login: the token server asks the AccountManager, which creates the account.
        expect(yield* post(tokens, "/login_unique", { unique_id: "p2" })).toEqual(unavailable)
        proxy!.unstall()

        // The stalled requests' leftovers drain first: poll until a read answers, then all work again.
        const supplies = yield* post(bag, "/get_all_supplies", { unique_id: "p1" }).pipe(
          Effect.filterOrFail((answered) => answered.httpStatus === 200),
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 })
        )
        expect(supplies.body).toMatchObject({ status: 0 })
        // The timed-out spend's outcome was unknown: it committed or rolled back, never half of it.
        const before = (yield* readBag("p1")).coin
        expect([400, 500]).toContain(before)
        expect(yield* post(weapon, "/reset_weapon_skill_point", reset)).toMatchObject({
          body: { status: 0, data: { item1: ["coin", before - 100] } }
        })
        expect(yield* validate(token)).toEqual({ httpStatus: 200, body: { unique_id: "p1" } })
        // Not idempotent: if the timed-out first login created p2, its device secret was never sent (3).
        const retried = yield* post(tokens, "/login_unique", { unique_id: "p2" })
        expect([1, 3]).toContain((retried.body as { status: number }).status)
      }).pipe(
        // A failed check must not leave the stall on: closing the pool waits for its connections.
        Effect.ensuring(Effect.sync(() => proxy!.unstall())),
        Effect.provideService(ColocatedServices, registry),
        Effect.provideService(SqlQueryTimeout, Duration.millis(300)),
        Logger.withMinimumLogLevel(LogLevel.None),
        Effect.provide(aliyaTestLayer(database))
      )
    },
    20_000
  )
})
