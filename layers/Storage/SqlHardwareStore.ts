import { SqlClient } from "@effect/sql"
import { Clock, Effect, Layer } from "effect"
import { type HardwareRecord, HardwareStore } from "./HardwareStore.ts"
import { makeStoreCall, migrateSchema, type StoreSchema } from "./SqlDatabase.ts"
import { asText } from "./SqlValues.ts"

/** The original's account_hw_info. No foreign key to account: accounts may live in another backend. */
export const HardwareSchema: StoreSchema = {
  migrationsTable: "hardware_migrations",
  migrations: {
    1: {
      name: "hardware",
      sqlite: [
        `CREATE TABLE account_hw_info (
          account_id TEXT NOT NULL,
          hw_id TEXT NOT NULL,
          hw_type TEXT NOT NULL,
          register_time INTEGER NOT NULL,
          PRIMARY KEY (account_id, hw_id, hw_type))`
      ],
      mysql: [
        `CREATE TABLE account_hw_info (
          account_id VARBINARY(64) NOT NULL,
          hw_id VARBINARY(255) NOT NULL,
          hw_type VARBINARY(64) NOT NULL,
          register_time BIGINT NOT NULL,
          PRIMARY KEY (account_id, hw_id, hw_type)) ENGINE=InnoDB`
      ]
    }
  }
}

/** HardwareStore over any @effect/sql client (SQLite or MySQL); registering twice is a no-op. */
export const makeSqlHardwareStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const storeCall = yield* makeStoreCall
  yield* migrateSchema(HardwareSchema)
  const store: HardwareStore["Type"] = {
    register: (record) =>
      Effect.gen(function* () {
        const row = {
          account_id: record.accountId,
          hw_id: record.hardwareId,
          hw_type: record.hardwareType,
          register_time: yield* Clock.currentTimeMillis
        }
        yield* sql.onDialectOrElse({
          mysql: () =>
            sql`INSERT INTO account_hw_info ${sql.insert(row)} ON DUPLICATE KEY UPDATE account_id = account_id`,
          orElse: () => sql`INSERT INTO account_hw_info ${sql.insert(row)} ON CONFLICT DO NOTHING`
        })
      }).pipe(storeCall("registering hardware")),
    isRegistered: (record) =>
      sql`SELECT 1 AS found FROM account_hw_info
        WHERE account_id = ${record.accountId} AND hw_id = ${record.hardwareId} AND hw_type = ${record.hardwareType}`.pipe(
        Effect.map((rows) => rows.length > 0),
        storeCall("checking hardware")
      ),
    listFor: (accountId) =>
      sql<{
        account_id: unknown
        hw_id: unknown
        hw_type: unknown
      }>`SELECT account_id, hw_id, hw_type FROM account_hw_info
        WHERE account_id = ${accountId} ORDER BY register_time, hw_id, hw_type`.pipe(
        Effect.map((rows) =>
          rows.map(
            (row): HardwareRecord => ({
              accountId: asText(row.account_id),
              hardwareId: asText(row.hw_id),
              hardwareType: asText(row.hw_type)
            })
          )
        ),
        storeCall("listing hardware")
      )
  }
  return store
})

/** Needs a SqlClient (SqliteDatabase / MysqlDatabase). */
export const SqlHardwareStore = Layer.effect(HardwareStore, makeSqlHardwareStore)
