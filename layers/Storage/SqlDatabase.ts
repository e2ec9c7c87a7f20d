import { Reactivity } from "@effect/experimental"
import { Migrator, SqlClient, type SqlError } from "@effect/sql"
import { MysqlClient } from "@effect/sql-mysql2"
import { SqliteClient } from "@effect/sql-sqlite-bun"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { Context, Duration, Effect, Layer, type Redacted } from "effect"
import { StorageError } from "../../src/storage/Account.ts"

/** Turns a driver error into the StorageError every store fails with, naming what was being done. */
export const storageFailure =
  (what: string) =>
  <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.catchIf(
      effect,
      (error): error is Extract<E, SqlError.SqlError> => error._tag === "SqlError",
      (error) => Effect.fail(new StorageError({ message: `${what} failed: ${describe(error)}`, cause: error }))
    ) as Effect.Effect<A, Exclude<E, SqlError.SqlError> | StorageError, R>

/** How long one store call may wait for the database, a pooled connection included (`<path>.queryTimeoutMs`). */
export class SqlQueryTimeout extends Context.Reference<SqlQueryTimeout>()("switchboard/SqlQueryTimeout", {
  defaultValue: (): Duration.Duration => Duration.millis(5000)
}) {}

/** The cause of a StorageError whose call got no answer in time: it may still run (and commit) later. */
export class QueryTimedOut extends Error {}

/**
 * The wrapper of every store call: storageFailure plus the store's SqlQueryTimeout. The call is disconnected so a
 * timeout returns at once even where the driver cannot be interrupted (a transaction waiting for a connection).
 */
export const makeStoreCall = Effect.map(SqlQueryTimeout, (timeout) => {
  const message = `the database did not answer within ${Duration.toMillis(timeout)} ms`
  return (what: string) =>
    <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
      storageFailure(what)(effect).pipe(
        Effect.disconnect,
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new StorageError({ message: `${what} failed: ${message}`, cause: new QueryTimedOut(message) })
        })
      )
})

const describe = (error: { message: string; cause?: unknown }) =>
  error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message

const deadlockCodes = new Set(["ER_LOCK_DEADLOCK", "SQLITE_BUSY"])
const isDeadlock = (error: unknown) => {
  const failure = error as { readonly _tag?: string; readonly cause?: { readonly code?: unknown } }
  return failure._tag === "SqlError" && deadlockCodes.has(String(failure.cause?.code))
}

/** Runs a transaction again (a few times) when the database chose it as a deadlock victim: the standard remedy. */
export const retryOnDeadlock = <A, E, R>(transaction: Effect.Effect<A, E, R>) =>
  Effect.retry(transaction, { times: 5, while: isDeadlock })

/** One schema per store, each with its own migrations table, so stores can share a database or not. */
export interface StoreSchema {
  readonly migrationsTable: string
  /** Migration id → DDL statements for each dialect (one statement per string). */
  readonly migrations: Record<
    number,
    { readonly name: string; readonly sqlite: ReadonlyArray<string>; readonly mysql: ReadonlyArray<string> }
  >
}

// The dialect-neutral migrator: SqliteMigrator/MysqlMigrator only add schema dumps (sqlite3 CLI), which we don't use.
const migrate = Migrator.make({})

/** Applies a store's pending migrations (constant DDL strings, no user input). */
export const migrateSchema = (schema: StoreSchema) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const record = Object.fromEntries(
      Object.entries(schema.migrations).map(([id, migration]) => [
        `${id}_${migration.name}`,
        Effect.forEach(
          sql.onDialectOrElse({ mysql: () => migration.mysql, orElse: () => migration.sqlite }),
          (ddl) => sql.unsafe(ddl),
          {
            discard: true
          }
        )
      ])
    )
    yield* migrate({ loader: Migrator.fromRecord(record), table: schema.migrationsTable })
  }).pipe(
    Effect.catchAll((error) =>
      Effect.fail(
        new StorageError({ message: `migrating ${schema.migrationsTable} failed: ${describe(error)}`, cause: error })
      )
    )
  )

type Database = Layer.Layer<SqlClient.SqlClient, StorageError>
// Same options → same Layer value, so a program composing several stores on one database builds one client.
const databases = new Map<string, Database>()
const memoized = (key: string, make: () => Database): Database => {
  let layer = databases.get(key)
  if (!layer) databases.set(key, (layer = make()))
  return layer
}

/** bun:sqlite database file (its directory is created); ":memory:" for a private in-memory one. */
export const SqliteDatabase = (filename: string): Database =>
  memoized(`sqlite:${filename}`, () =>
    Layer.scoped(
      SqlClient.SqlClient,
      Effect.gen(function* () {
        if (filename !== ":memory:") {
          yield* Effect.try({
            try: () => mkdirSync(dirname(filename), { recursive: true }),
            catch: (cause) =>
              new StorageError({ message: `cannot create the directory of ${filename}: ${String(cause)}`, cause })
          })
        }
        const client = yield* SqliteClient.make({ filename }).pipe(
          Effect.catchAllDefect(
            (cause) => new StorageError({ message: `cannot open SQLite database ${filename}: ${String(cause)}`, cause })
          )
        )
        // Another process (or another client in this one) may hold the write lock briefly: wait instead of failing.
        yield* client`PRAGMA busy_timeout = 5000`.pipe(storageFailure(`configuring SQLite database ${filename}`))
        yield* client`PRAGMA foreign_keys = ON`.pipe(storageFailure(`configuring SQLite database ${filename}`))
        return client
      })
    ).pipe(Layer.provide(Reactivity.layer))
  )

export interface MysqlOptions {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly username: string
  readonly password: Redacted.Redacted
  readonly maxConnections: number
}

/** MySQL / MariaDB connection pool; checked with SELECT 1 at start. */
export const MysqlDatabase = (options: MysqlOptions): Database =>
  memoized(
    `mysql:${options.username}@${options.host}:${options.port}/${options.database}?max=${options.maxConnections}`,
    () =>
      Layer.scoped(
        SqlClient.SqlClient,
        // maxIdle = pool size: mysql2 then starts no idle-sweep timer, which (as the pool is never
        // ended when the startup check fails) would keep a failed process from exiting.
        MysqlClient.make({ ...options, poolConfig: { maxIdle: options.maxConnections } }).pipe(
          Effect.catchAll(
            (error) =>
              new StorageError({
                message: `cannot connect to MySQL ${options.username}@${options.host}:${options.port}/${options.database}: ${describe(error)}`,
                cause: error
              })
          )
        )
      ).pipe(Layer.provide(Reactivity.layer))
  )
