import { SqlClient, type SqlConnection, type SqlError } from "@effect/sql"
import { Effect, Exit, Option } from "effect"
import { retryOnDeadlock } from "../../layers/Storage/SqlDatabase.ts"

/**
 * The hottest requests' SQL (get_all_weapon, level_up_weapon): fixed parameterized statements
 * run straight on one connection of the SqlClient, without the template API's per-statement
 * compile, span and pool acquire (bun:sqlite keeps each statement prepared, keyed by its text).
 * Values are always parameters; statement texts are constants of the calling module.
 */
export interface Statements {
  readonly dialect: "sqlite" | "mysql"
  /** Rows as arrays, in column order. */
  readonly values: (
    sql: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError.SqlError>
  readonly run: (sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<void, SqlError.SqlError>
}

const statementsOn = (dialect: Statements["dialect"], connection: SqlConnection.Connection): Statements => ({
  dialect,
  values: (sql, params) => connection.executeValues(sql, params),
  run: (sql, params) => Effect.asVoid(connection.executeRaw(sql, params))
})

const dialectOf = (sql: SqlClient.SqlClient): Statements["dialect"] =>
  sql.onDialectOrElse({ mysql: () => "mysql" as const, orElse: () => "sqlite" as const })

/**
 * Runs `work` on one connection: the enclosing transaction's when there is one, else a reserved
 * connection (on SQLite that waits for any open transaction, as every statement does).
 */
export const withStatements = <A, E, R>(work: (statements: Statements) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (open) =>
      Option.isSome(open)
        ? work(statementsOn(dialectOf(sql), open.value[0]))
        : Effect.scoped(Effect.flatMap(sql.reserve, (connection) => work(statementsOn(dialectOf(sql), connection))))
    )
  )

/** Template-API statements (and nested withTransaction) inside `work` use this transaction's connection too. */
const joinable = <A, E, R>(work: Effect.Effect<A, E, R>, connection: SqlConnection.Connection) =>
  Effect.provideService(work, SqlClient.TransactionConnection, [connection, 0] as const)

/**
 * Runs `work` as one transaction on one connection (it joins the enclosing transaction when
 * there is one): committed when it succeeds, rolled back when it fails; run again if MySQL picks
 * it as a deadlock victim. On SQLite it begins IMMEDIATE, so it takes the write lock first and
 * never has to upgrade a read lock (the deadlock two processes on one file could otherwise meet).
 */
export const inTransaction = <A, E, R>(
  work: (statements: Statements) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError.SqlError, R | SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (open): Effect.Effect<A, E | SqlError.SqlError, R> => {
        const dialect = dialectOf(sql)
        if (Option.isSome(open)) return work(statementsOn(dialect, open.value[0]))
        const begin = dialect === "sqlite" ? "BEGIN IMMEDIATE" : "BEGIN"
        const once = (connection: SqlConnection.Connection) => {
          const execute = (statement: string) => connection.executeUnprepared(statement, [], undefined)
          const rollback = Effect.ignore(execute("ROLLBACK"))
          return Effect.uninterruptibleMask((restore) =>
            Effect.zipRight(
              execute(begin),
              Effect.flatMap(
                Effect.exit(restore(joinable(work(statementsOn(dialect, connection)), connection))),
                (exit): Effect.Effect<A, E | SqlError.SqlError, R> =>
                  Exit.isSuccess(exit)
                    ? Effect.as(
                        Effect.tapError(execute("COMMIT"), () => rollback),
                        exit.value
                      )
                    : Effect.zipRight(rollback, exit)
              )
            )
          )
        }
        return retryOnDeadlock(Effect.scoped(Effect.flatMap(sql.reserve, once)))
      }
    )
  )
