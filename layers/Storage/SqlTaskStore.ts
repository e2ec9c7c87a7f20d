import { SqlClient, type Statement } from "@effect/sql"
import { Clock, Effect, Layer } from "effect"
import type { StoredTask, TaskQuery } from "../../src/storage/Task.ts"
import { makeStoreCall, migrateSchema, type StoreSchema } from "./SqlDatabase.ts"
import { TaskStore } from "./TaskStore.ts"

/** One row per task; ids come from the database and are never reused (AUTOINCREMENT / AUTO_INCREMENT). */
export const TaskSchema: StoreSchema = {
  migrationsTable: "de_task_migrations",
  migrations: {
    1: {
      name: "tasks",
      sqlite: [
        `CREATE TABLE de_task (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          account_id TEXT NOT NULL,
          party TEXT,
          group_name TEXT,
          sender TEXT,
          receiver TEXT,
          message_type INTEGER NOT NULL,
          permanent INTEGER NOT NULL,
          body TEXT NOT NULL,
          enabled INTEGER NOT NULL DEFAULT 1,
          created_at INTEGER NOT NULL)`,
        `CREATE INDEX de_task_account ON de_task (account_id, id)`
      ],
      mysql: [
        `CREATE TABLE de_task (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
          account_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
          party VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
          group_name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
          sender VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
          receiver VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
          message_type BIGINT NOT NULL,
          permanent TINYINT NOT NULL,
          body MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
          enabled TINYINT NOT NULL DEFAULT 1,
          created_at BIGINT NOT NULL,
          KEY de_task_account (account_id, id)) ENGINE=InnoDB`
      ]
    }
  }
}

interface TaskRow {
  readonly id: unknown
  readonly account_id: string
  readonly party: string | null
  readonly group_name: string | null
  readonly sender: string | null
  readonly receiver: string | null
  readonly message_type: unknown
  readonly permanent: unknown
  readonly body: string
  readonly enabled: unknown
  readonly created_at: unknown
}

const optional = (value: string | null) => value ?? undefined

const toTask = (row: TaskRow): StoredTask => ({
  id: Number(row.id),
  accountId: row.account_id,
  party: optional(row.party),
  group: optional(row.group_name),
  sender: optional(row.sender),
  receiver: optional(row.receiver),
  messageType: Number(row.message_type),
  permanent: Number(row.permanent) === 1,
  body: row.body,
  enabled: Number(row.enabled) === 1,
  createdAt: Number(row.created_at)
})

const columns =
  "id, account_id, party, group_name, sender, receiver, message_type, permanent, body, enabled, created_at"

/** TaskStore over any @effect/sql client (SQLite or MySQL); every value is a bound parameter. */
export const makeSqlTaskStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const storeCall = yield* makeStoreCall
  yield* migrateSchema(TaskSchema)

  const where = (query: TaskQuery) => {
    const clauses = [sql`account_id = ${query.accountId}`]
    if (query.afterId !== undefined) clauses.push(sql`id > ${query.afterId}`)
    if (query.party !== undefined) clauses.push(sql`party = ${query.party}`)
    if (query.group !== undefined) clauses.push(sql`group_name = ${query.group}`)
    if (query.sender !== undefined) clauses.push(sql`sender = ${query.sender}`)
    if (query.receiver !== undefined) clauses.push(sql`receiver = ${query.receiver}`)
    if (query.messageType !== undefined) clauses.push(sql`message_type = ${query.messageType}`)
    if (query.permanent !== undefined) clauses.push(sql`permanent = ${query.permanent ? 1 : 0}`)
    if (query.body !== undefined) clauses.push(sql`body = ${query.body}`)
    return sql.and(clauses)
  }
  // LIMIT as a literal integer: MySQL refuses a bound LIMIT parameter that mysql2 sends as a double.
  const limitClause = (limit: number) => sql.literal(`LIMIT ${Math.min(Math.max(0, Math.floor(limit)), 1_000_000)}`)

  /** Rows a DELETE/UPDATE changed: mysql2 reports affectedRows; bun:sqlite reports nothing, so SQLite returns the ids. */
  const changed = (statement: Statement.Statement<unknown>) =>
    sql.onDialectOrElse({
      mysql: () =>
        Effect.map(statement.raw, (result) =>
          Number((result as { readonly affectedRows?: unknown }).affectedRows ?? 0)
        ),
      orElse: () => Effect.map(sql`${statement} RETURNING id`, (rows) => rows.length)
    })

  const insertedId = (row: Record<string, unknown>) =>
    sql.onDialectOrElse({
      // The id of the insert on the same connection: the transaction pins one pooled connection.
      mysql: () =>
        sql`INSERT INTO de_task ${sql.insert(row)}`.pipe(
          Effect.zipRight(sql<{ readonly id: unknown }>`SELECT LAST_INSERT_ID() AS id`),
          sql.withTransaction
        ),
      orElse: () => sql<{ readonly id: unknown }>`INSERT INTO de_task ${sql.insert(row)} RETURNING id`
    })

  const store: TaskStore["Type"] = {
    save: (task) =>
      Effect.gen(function* () {
        const createdAt = yield* Clock.currentTimeMillis
        const row = {
          account_id: task.accountId,
          party: task.party ?? null,
          group_name: task.group ?? null,
          sender: task.sender ?? null,
          receiver: task.receiver ?? null,
          message_type: task.messageType,
          permanent: task.permanent ? 1 : 0,
          body: task.body,
          enabled: 1,
          created_at: createdAt
        }
        const rows = yield* insertedId(row)
        return { ...task, id: Number(rows[0]?.id), enabled: true, createdAt } satisfies StoredTask
      }).pipe(storeCall("saving a task")),
    load: (query, limit) =>
      sql<TaskRow>`SELECT ${sql.literal(columns)} FROM de_task WHERE ${where(query)} AND enabled = 1 ORDER BY id ${limitClause(limit)}`.pipe(
        Effect.map((rows) => rows.map(toTask)),
        storeCall("loading tasks")
      ),
    remove: (query) => changed(sql`DELETE FROM de_task WHERE ${where(query)}`).pipe(storeCall("deleting tasks")),
    disable: (query) =>
      changed(sql`UPDATE de_task SET enabled = 0 WHERE ${where(query)} AND enabled = 1`).pipe(
        storeCall("disabling tasks")
      ),
    count: (accountId) =>
      sql<{ readonly n: unknown }>`SELECT COUNT(*) AS n FROM de_task WHERE account_id = ${accountId}`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0)),
        storeCall("counting tasks")
      )
  }
  return store
})

/** Needs a SqlClient (SqliteDatabase / MysqlDatabase). */
export const SqlTaskStore = Layer.effect(TaskStore, makeSqlTaskStore)
