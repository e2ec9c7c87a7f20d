import { describe, expect } from "bun:test"
import { SqlClient } from "@effect/sql"
import { join } from "node:path"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { SqliteDatabase } from "../../layers/Storage/SqlDatabase.ts"
import { SqliteDirectFile } from "../../layers/Storage/SqliteDirect.ts"
import type { StorageError } from "../../src/storage/Account.ts"
import { grantWeapon, setBagAmounts } from "../../src/aliya/Admin.ts"
import { readBag } from "../../src/aliya/BagStore.ts"
import { readWeapon } from "../../src/aliya/WeaponManager.ts"
import { it } from "../support/effect.ts"
import { transactionally } from "../../src/aliya/Tables.ts"
import { mysqlAvailable, sqliteMemory, tempDirectory, throwawayMysql } from "../layers/Storage/backends.ts"
import { ColocatedServices, type LocalService, type ServiceName } from "../../src/aliya/ServiceCalls.ts"
import { startManagers } from "../../src/aliya/Services.ts"
import { aliyaTestLayer, newPlayer, serviceToken, type StackCalls, startStack, testPasswordCost } from "./support.ts"

const mysql = throwawayMysql("aliya")
const files = tempDirectory("aliya-direct")

/** A SQLite file with the direct connection, as the programs run it: weapon reads and level-ups take the synchronous path. */
const sqliteFileWithDirect = (name: string) => {
  const file = join(files, `${name}.sqlite`)
  return Layer.merge(SqliteDatabase(file), SqliteDirectFile(file))
}

/** One turn of the event loop (a group commit of the direct connection runs then): no clock involved. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * While an ordinary transaction holds the file's write lock, the weapon manager's level-up finds
 * the file locked on the direct connection (its group commit cannot begin) and takes the
 * SqlClient path, which waits; after the holder commits, both writes are there and the iron was
 * spent exactly once.
 */
const levelUpBehindAnOpenTransaction = Effect.gen(function* () {
  const registry = new Map<ServiceName, LocalService>()
  yield* startManagers({
    host: "127.0.0.1",
    ports: { account: 0, playerState: 0, bag: 0, skill: 0, weapon: 0 },
    serviceToken,
    legacyLoginUnique: false,
    argon2MemoryKiB: testPasswordCost.memoryCost,
    argon2TimeCost: testPasswordCost.timeCost
  }).pipe(Effect.provideService(ColocatedServices, registry))
  const weapon = registry.get("weapon")!
  yield* grantWeapon("holder", "weapon1", { star: 1, level: 0 })
  yield* setBagAmounts("holder", { iron: 100, coin: 0 })
  const levelUp = () =>
    Promise.resolve(weapon.post("/level_up_weapon", { unique_id: "holder", weapon: "weapon1", iron: 20 })!)
  // Unlocked: answered by the direct connection's group commit.
  const first = yield* Effect.promise(levelUp)
  expect(first.body).toMatchObject({ status: 0, data: { item1: ["iron", 80] } })
  const sql = yield* SqlClient.SqlClient
  const locked = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  const holder = yield* Effect.fork(
    transactionally(
      Effect.zipRight(
        sql`UPDATE aliya_bag SET coin = coin + 7 WHERE unique_id = ${"holder"}`,
        Effect.zipRight(Deferred.succeed(locked, undefined), Deferred.await(release))
      )
    )
  )
  yield* Deferred.await(locked)
  let settled = false
  const waiting = levelUp().then((answer) => {
    settled = true
    return answer
  })
  // The group commit has run (and found the file locked); the ordinary path waits for the holder.
  yield* nextTurn
  yield* nextTurn
  expect(settled).toBe(false)
  yield* Deferred.succeed(release, undefined)
  yield* Fiber.join(holder)
  const second = yield* Effect.promise(() => waiting)
  expect(second.body).toMatchObject({ status: 0, data: { item1: ["iron", 60] } })
  const bag = yield* readBag("holder")
  expect([bag.iron, bag.coin]).toEqual([60, 7])
})

/** 50 level-ups of 20 iron each race for 200 iron: exactly 10 win, the bag never goes negative. */
const spendRace = (database: Layer.Layer<SqlClient.SqlClient, StorageError>, calls: StackCalls) =>
  Effect.gen(function* () {
    const stack = yield* startStack({ calls })
    const racer = `racer-${calls}` // one MariaDB database serves every case
    const first = yield* stack.connect
    const token = yield* newPlayer(first, racer)
    yield* grantWeapon(racer, "weapon1", { star: 1, level: 0 })
    yield* setBagAmounts(racer, { iron: 200 })
    const clients = yield* Effect.forEach(Array.from({ length: 50 }), () => stack.connect)
    const replies = yield* Effect.forEach(
      clients,
      (client) => client.call("level_up_weapon", { token, weapon: "weapon1", iron: "20" }),
      {
        concurrency: "unbounded"
      }
    )
    const won = replies.filter((r) => r.status === 0)
    expect(won).toHaveLength(10)
    expect(replies.filter((r) => r.status === 2)).toHaveLength(40)
    // Every success reports a distinct remaining amount: 180, 160, ..., 0.
    expect(won.map((r) => (r.data.item1 as [string, number])[1]).sort((a, b) => a - b)).toEqual([
      0, 20, 40, 60, 80, 100, 120, 140, 160, 180
    ])
    expect((yield* readBag(racer)).iron).toBe(0)
    const weapon = yield* readWeapon(racer, "weapon1")
    expect(weapon._tag === "Some" && [weapon.value.level, weapon.value.skillPoint]).toEqual([10, 10])
  }).pipe(Effect.provide(aliyaTestLayer(database)))

/** A player's way through most functions on one database (MariaDB runs the same SQL as SQLite here). */
const journey = (database: Layer.Layer<SqlClient.SqlClient, StorageError>) =>
  Effect.gen(function* () {
    const stack = yield* startStack()
    const client = yield* stack.connect
    const created = yield* client.call("login_unique", { unique_id: "journey" })
    const token = created.data.token as string
    const call = (fn: string, data: Record<string, unknown> = {}) =>
      Effect.map(client.call(fn, { token, ...data }), (r) => r.status)
    expect(yield* call("bind_account", { account: "journey-account", password: "journey-pw" })).toBe(0)
    expect(yield* call("bind_account", { account: "journey-account", password: "journey-pw" })).toBe(2)
    expect((yield* client.call("login_unique", { unique_id: "journey" })).status).toBe(2)
    expect(
      (yield* client.call("login", { identifier: "account", value: "' OR '1'='1", password: "' OR '1'='1" })).status
    ).toBe(1)
    const login = yield* client.call("login", {
      identifier: "account",
      value: "journey-account",
      password: "journey-pw"
    })
    expect(login.status).toBe(0)
    expect((yield* client.call("get_all_supplies", { token })).status).toBe(11)
    const fresh = login.data.token as string
    const play = (fn: string, data: Record<string, unknown> = {}) => client.call(fn, { token: fresh, ...data })
    expect((yield* play("pass_level", { level_id: 1 })).status).toBe(0)
    expect((yield* play("pass_level", { level_id: 2 })).data.item3).toEqual(["iron", 125])
    expect((yield* play("random_gift_segment")).status).toBe(1)
    const weapon = ((yield* play("get_all_weapon")).data.weapon_bag1 as Array<string>)[0]!
    expect((yield* play("level_up_weapon", { weapon, iron: "100" })).data.item1).toEqual(["iron", 25])
    expect((yield* play("level_up_passive", { weapon, passive: "passive_skill_2_level" })).status).toBe(0)
    expect((yield* play("random_gift_skill")).status).toBe(0)
    expect((yield* play("increase_supplies", { supplies: ["scroll_skill_10"], amount: [3] })).status).toBe(0)
    expect((yield* play("level_up_scroll", { scroll_id: "scroll_skill_10" })).data.item2).toEqual([
      "scroll_skill_30",
      1
    ])
    expect((yield* play("decrease_energy", { energy: 4 })).data).toEqual({ energy: 6 })
  }).pipe(Effect.provide(aliyaTestLayer(database)))

describe("aliya atomic spends", () => {
  it.effect(
    "SQLite file, direct connection: a level-up behind an open transaction waits for it, then spends once",
    () => levelUpBehindAnOpenTransaction.pipe(Effect.provide(aliyaTestLayer(sqliteFileWithDirect("holder"))))
  )
  it.skipIf(!mysqlAvailable).live(
    "MariaDB: a player's journey through the functions",
    () => journey(mysql.layer),
    30_000
  )
  // Both ways the gateway asks the weapon manager: over internal HTTP, and in-process (co-located).
  for (const calls of ["http", "in-process"] as const) {
    it.effect(`SQLite (${calls}): 50 parallel level-ups with 200 iron, exactly 10 succeed`, () =>
      spendRace(sqliteMemory(), calls)
    )
    it.effect(
      `SQLite file, direct connection (${calls}): 50 parallel level-ups with 200 iron, exactly 10 succeed`,
      () => spendRace(sqliteFileWithDirect(`race-${calls}`), calls)
    )
    it.skipIf(!mysqlAvailable).live(
      `MariaDB (${calls}): 50 parallel level-ups with 200 iron, exactly 10 succeed`,
      () => spendRace(mysql.layer, calls),
      30_000
    )
  }
})
