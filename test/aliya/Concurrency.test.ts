import { describe, expect } from "bun:test"
import type { SqlClient } from "@effect/sql"
import { Effect, type Layer } from "effect"
import type { StorageError } from "../../src/storage/Account.ts"
import { grantWeapon, setBagAmounts } from "../../src/aliya/Admin.ts"
import { readBag } from "../../src/aliya/BagStore.ts"
import { readWeapon } from "../../src/aliya/WeaponManager.ts"
import { it } from "../support/effect.ts"
import { mysqlAvailable, sqliteMemory, throwawayMysql } from "../layers/Storage/backends.ts"
import { aliyaTestLayer, newPlayer, startStack } from "./support.ts"

const mysql = throwawayMysql("aliya")

/** 50 level-ups of 20 iron each race for 200 iron: exactly 10 win, the bag never goes negative. */
const spendRace = (database: Layer.Layer<SqlClient.SqlClient, StorageError>) =>
  Effect.gen(function* () {
    const stack = yield* startStack()
    const first = yield* stack.connect
    const token = yield* newPlayer(first, "racer")
    yield* grantWeapon("racer", "weapon1", { star: 1, level: 0 })
    yield* setBagAmounts("racer", { iron: 200 })
    const clients = yield* Effect.forEach(Array.from({ length: 50 }), () => stack.connect)
    const replies = yield* Effect.forEach(clients, (client) => client.call("level_up_weapon", { token, weapon: "weapon1", iron: "20" }), {
      concurrency: "unbounded"
    })
    const won = replies.filter((r) => r.status === 0)
    expect(won).toHaveLength(10)
    expect(replies.filter((r) => r.status === 2)).toHaveLength(40)
    // Every success reports a distinct remaining amount: 180, 160, ..., 0.
    expect(won.map((r) => (r.data.item1 as [string, number])[1]).sort((a, b) => a - b)).toEqual([0, 20, 40, 60, 80, 100, 120, 140, 160, 180])
    expect((yield* readBag("racer")).iron).toBe(0)
    const weapon = yield* readWeapon("racer", "weapon1")
    expect(weapon._tag === "Some" && [weapon.value.level, weapon.value.skillPoint]).toEqual([10, 10])
  }).pipe(Effect.provide(aliyaTestLayer(database)))

describe("aliya atomic spends", () => {
  it.effect("SQLite: 50 parallel level-ups with 200 iron, exactly 10 succeed", () => spendRace(sqliteMemory()))
  it.skipIf(!mysqlAvailable).live("MariaDB: 50 parallel level-ups with 200 iron, exactly 10 succeed", () => spendRace(mysql.layer), 30_000)
})
