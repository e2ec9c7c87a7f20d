import { afterAll, beforeAll } from "bun:test"
import { SqlClient } from "@effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, Redacted } from "effect"
import { MysqlDatabase, type MysqlOptions, SqliteDatabase } from "../../../layers/Storage/SqlDatabase.ts"
import { requireService } from "../../support/services.ts"

/** A temp directory for this test file, removed when the file's tests end. */
export const tempDirectory = (label: string) => {
  const dir = mkdtempSync(join(tmpdir(), `sb-${label}-`))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export const mysqlAvailable = await requireService("MariaDB", "127.0.0.1", 3306)

const mysqlOptions = (database: string): MysqlOptions => ({
  host: "127.0.0.1",
  port: 3306,
  database,
  username: "root",
  password: Redacted.make(""),
  maxConnections: 4
})

const onServer = (statement: string) =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
      Effect.provide(MysqlDatabase(mysqlOptions("test")))
    )
  )

/**
 * A throwaway MariaDB database for this test file (sb_test_<random>), dropped at the end, so
 * parallel runs never share tables. The layer is built once per test; its pool closes with it.
 */
export const throwawayMysql = (label: string) => {
  const database = `sb_test_${label}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
  if (mysqlAvailable) {
    beforeAll(() => onServer(`CREATE DATABASE ${database}`))
    afterAll(() => onServer(`DROP DATABASE IF EXISTS ${database}`))
  }
  return { database, layer: MysqlDatabase(mysqlOptions(database)) }
}

/** Every stored row of `tables`, as JSON text. */
export const dumpTables = (...tables: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(tables, (table) => sql.unsafe(`SELECT * FROM ${table}`)).pipe(
      Effect.map((rows) =>
        JSON.stringify(rows, (_key, value) =>
          value?.type === "Buffer" ? Buffer.from(value.data).toString("utf8") : value
        )
      )
    )
  )

export const sqliteMemory = () => SqliteDatabase(":memory:")
export const sqliteFile = (dir: string, name: string) => SqliteDatabase(join(dir, `${name}.sqlite`))
export { Layer }
