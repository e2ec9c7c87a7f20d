import { describe, expect } from "bun:test"
import type { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { HardwareStore, MemoryHardwareStore } from "../../../layers/Storage/HardwareStore.ts"
import { SqlHardwareStore } from "../../../layers/Storage/SqlHardwareStore.ts"
import { it } from "../../support/effect.ts"
import { mysqlAvailable, sqliteFile, sqliteMemory, tempDirectory, throwawayMysql } from "./backends.ts"

const unique = (base: string) => `${base}-${crypto.randomUUID().slice(0, 8)}`

/** The HardwareStore contract, run against every backend. */
const hardwareStoreContract = (
  name: string,
  layer: Layer.Layer<HardwareStore, unknown>,
  persistent: boolean,
  skip = false
) =>
  describe(`HardwareStore contract: ${name}`, () => {
    const test = <E>(title: string, body: () => Effect.Effect<void, E, HardwareStore>) =>
      it.skipIf(skip).live(title, () => Effect.provide(Effect.suspend(body), layer))

    test("register, isRegistered and listFor, per account", () =>
      Effect.gen(function* () {
        const store = yield* HardwareStore
        const [alice, bob] = [unique("acc"), unique("acc")]
        const drone = { accountId: alice, hardwareId: "hw-1", hardwareType: "1" }
        expect(yield* store.isRegistered(drone)).toBe(false)
        yield* store.register(drone)
        yield* store.register(drone) // idempotent
        yield* store.register({ accountId: alice, hardwareId: "hw-2", hardwareType: "1" })
        yield* store.register({ accountId: bob, hardwareId: "hw-1", hardwareType: "1" })
        expect(yield* store.isRegistered(drone)).toBe(true)
        expect(yield* store.isRegistered({ ...drone, hardwareType: "2" })).toBe(false)
        expect(yield* store.isRegistered({ ...drone, hardwareId: "HW-1" })).toBe(false)
        expect(yield* store.isRegistered({ ...drone, accountId: unique("acc") })).toBe(false)
        expect((yield* store.listFor(alice)).map((r) => r.hardwareId).sort()).toEqual(["hw-1", "hw-2"])
        expect(yield* store.listFor(bob)).toEqual([{ accountId: bob, hardwareId: "hw-1", hardwareType: "1" }])
        expect(yield* store.listFor(unique("acc"))).toEqual([])
      }))

    if (persistent) {
      const record = { accountId: unique("acc"), hardwareId: "durable", hardwareType: "3" }
      test("persists across re-open (write)", () => Effect.flatMap(HardwareStore, (store) => store.register(record)))
      test("persists across re-open (read back)", () =>
        Effect.flatMap(HardwareStore, (store) => store.isRegistered(record)).pipe(
          Effect.map((found) => expect(found).toBe(true))
        ))
    }
  })

const dir = tempDirectory("hardware")
const mysql = throwawayMysql("hardware")
const sqlHardware = <E>(database: Layer.Layer<SqlClient.SqlClient, E>) => SqlHardwareStore.pipe(Layer.provide(database))

hardwareStoreContract("memory", MemoryHardwareStore, false)
hardwareStoreContract("sqlite :memory:", sqlHardware(sqliteMemory()), false)
hardwareStoreContract("sqlite file", sqlHardware(sqliteFile(dir, "hardware")), true)
hardwareStoreContract("mysql", sqlHardware(mysql.layer), true, !mysqlAvailable)
