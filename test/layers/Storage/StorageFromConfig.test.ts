import { describe, expect } from "bun:test"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { ConfigProvider, Effect, Either, Layer, Option } from "effect"
import { Permission } from "../../../src/storage/Account.ts"
import { AccessCodeHasher } from "../../../layers/Storage/AccessCodeHasher.ts"
import { AccountStore } from "../../../layers/Storage/AccountStore.ts"
import { HardwareStore } from "../../../layers/Storage/HardwareStore.ts"
import { SqliteDatabase } from "../../../layers/Storage/SqlDatabase.ts"
import { StorageFromConfig, type StorageSettings } from "../../../layers/Storage/StorageFromConfig.ts"
import { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { it } from "../../support/effect.ts"
import { mysqlAvailable, tempDirectory, throwawayMysql } from "./backends.ts"

const dir = tempDirectory("storage-config")
const mysql = throwawayMysql("config")

/** StorageFromConfig over a JSON config object (as the program's --config file would give). */
const storage = (json: object, settings: StorageSettings = { name: "test" }) =>
  StorageFromConfig(settings).pipe(
    Layer.provide(AccessCodeHasher.Fast),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson(json)))
  )

/** Uses every store once: an account, a hardware record and a stream entry. */
const useAll = (name: string) =>
  Effect.gen(function* () {
    const accounts = yield* AccountStore
    const { account, accessCode } = yield* accounts.create({ name, permission: Permission.all })
    yield* (yield* HardwareStore).register({ accountId: account.id, hardwareId: "hw", hardwareType: "1" })
    yield* (yield* StreamStore).append(`s-${name}`, "hello", {})
    return { account, accessCode }
  })

/** Reads back what useAll wrote. */
const readAll = (name: string, accessCode: string) =>
  Effect.gen(function* () {
    const account = Option.getOrThrow(yield* (yield* AccountStore).authenticate(name, accessCode))
    expect(
      yield* (yield* HardwareStore).isRegistered({ accountId: account.id, hardwareId: "hw", hardwareType: "1" })
    ).toBe(true)
    expect((yield* (yield* StreamStore).readAfter(`s-${name}`, 0)).map((e) => e.payload)).toEqual(["hello"])
  })

const startupError = (json: object, settings?: StorageSettings) =>
  Effect.flip(Effect.provide(AccountStore, storage(json, settings))).pipe(Effect.map(String))

describe("StorageFromConfig", () => {
  it.live("sqlite backend: all three stores persist in one file", () =>
    Effect.gen(function* () {
      const filename = join(dir, "nested", "all.sqlite")
      const config = { storage: { backend: "sqlite", sqlite: { filename } } }
      const { accessCode } = yield* Effect.provide(useAll("sq"), storage(config))
      expect(existsSync(filename)).toBe(true)
      yield* Effect.provide(readAll("sq", accessCode), storage(config))
    })
  )

  it.skipIf(!mysqlAvailable).live("mysql backend: all three stores persist in the database", () =>
    Effect.gen(function* () {
      const config = {
        storage: { backend: "mysql", mysql: { host: "127.0.0.1", database: mysql.database, username: "root" } }
      }
      const { accessCode } = yield* Effect.provide(useAll("my"), storage(config))
      yield* Effect.provide(readAll("my", accessCode), storage(config))
    })
  )

  it.live("json backend keeps accounts in the file, hardware and streams in memory", () =>
    Effect.gen(function* () {
      const path = join(dir, "accounts.json")
      const { accessCode } = yield* Effect.provide(
        useAll("js"),
        storage({ storage: { backend: "json", json: { path } } })
      )
      expect(yield* Effect.promise(() => Bun.file(path).json())).toMatchObject({
        users: { js: { prm: Permission.all } }
      })
      const account = yield* Effect.provide(
        Effect.flatMap(AccountStore, (store) => store.authenticate("js", accessCode)),
        storage({ storage: { backend: "json", json: { path } } })
      )
      expect(Option.isSome(account)).toBe(true)
    })
  )

  it.live("memory backend, read from a caller-chosen path", () =>
    Effect.provide(
      useAll("mem"),
      storage(
        { authenticator: { storage: { backend: "memory" } } },
        { name: "auth", path: ["authenticator", "storage"] }
      )
    )
  )

  it.live("single backend: the configured account, read-only", () =>
    Effect.gen(function* () {
      const config = {
        storage: { backend: "single", single: { name: "op", accessCode: "op-code-123", isAdmin: true } }
      }
      yield* Effect.provide(
        Effect.gen(function* () {
          const store = yield* AccountStore
          expect(Option.getOrThrow(yield* store.authenticate("op", "op-code-123"))).toMatchObject({
            isAdmin: true,
            permission: Permission.all
          })
          const created = yield* Effect.either(store.create({ name: "x", permission: 1 }))
          expect(Either.isLeft(created) && created.left._tag).toBe("ReadOnlyStore")
        }),
        storage(config)
      )
    })
  )

  it.live("bad or missing keys fail with one line naming the key", () =>
    Effect.gen(function* () {
      expect(yield* startupError({ storage: { backend: "postgres" } })).toContain("storage.backend")
      expect(yield* startupError({ storage: { backend: "single", single: { name: "op" } } })).toContain(
        "storage.single.accessCode"
      )
      expect(yield* startupError({ storage: { backend: "json" } })).toContain("storage.json.path")
      expect(yield* startupError({ storage: { backend: "mysql", mysql: { username: "root" } } })).toContain(
        "storage.mysql.database"
      )
      expect(
        yield* startupError({ storage: { backend: "mysql", mysql: { database: "d", username: "u", port: 0 } } })
      ).toContain("storage.mysql.port")
      expect(
        yield* startupError({ auth: { storage: { backend: "nope" } } }, { name: "a", path: ["auth", "storage"] })
      ).toContain("auth.storage.backend")
      for (const message of [yield* startupError({ storage: { backend: "postgres" } })])
        expect(message.split("\n").length).toBe(1)
    })
  )

  it.live("an unreachable MySQL server is a StorageError naming it", () =>
    Effect.gen(function* () {
      const config = {
        storage: { backend: "mysql", mysql: { host: "127.0.0.1", port: 1, database: "d", username: "u" } }
      }
      const error = yield* Effect.flip(Effect.provide(AccountStore, storage(config)))
      expect(error._tag).toBe("StorageError")
      expect(String((error as { message: string }).message)).toContain("127.0.0.1:1/d")
    })
  )

  it.live("an SQLite file that cannot be created is a StorageError naming it", () =>
    Effect.gen(function* () {
      const blocker = join(dir, "not-a-directory")
      yield* Effect.promise(() => Bun.write(blocker, "x"))
      const filename = join(blocker, "db.sqlite")
      const error = yield* Effect.flip(Effect.provide(AccountStore, storage({ storage: { sqlite: { filename } } })))
      expect(error._tag).toBe("StorageError")
      expect(String((error as { message: string }).message)).toContain(filename)
    })
  )

  it.live("one database file gives one shared client layer", () =>
    Effect.sync(() => expect(SqliteDatabase(join(dir, "x.sqlite"))).toBe(SqliteDatabase(join(dir, "x.sqlite"))))
  )
})
