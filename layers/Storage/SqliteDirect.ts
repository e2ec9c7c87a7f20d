import { Database } from "bun:sqlite"
import { Context, Effect, Layer } from "effect"

/**
 * Synchronous statements on a SQLite file, for a server's hottest requests: no fiber, no
 * Promise per statement. It is a second bun:sqlite connection to the file the SqlClient uses
 * (WAL: its reads never wait) that never waits for a lock either (busy_timeout 0): when the file
 * is locked (a transaction of the SqlClient or of another process is open) the call answers
 * `undefined` at once and the caller takes its ordinary SqlClient path, which waits. A
 * transaction here runs BEGIN IMMEDIATE … COMMIT without yielding, so it is atomic against every
 * other connection. Unavailable (every call answers `undefined`) on MySQL and on ":memory:"
 * databases, whose second connection would be another database.
 */
export interface SqliteDirectService {
  readonly available: boolean
  /** `work` outside any transaction (reads); undefined when the file is locked. */
  readonly read: <A>(work: (statements: DirectStatements) => A) => A | undefined
  /** `work` in one BEGIN IMMEDIATE transaction (rolled back when it throws); undefined when the file is locked. */
  readonly transaction: <A>(work: (statements: DirectStatements) => A) => A | undefined
  /**
   * `work` in a transaction shared with every other `grouped` work queued in this turn of the
   * event loop (group commit: one BEGIN IMMEDIATE … COMMIT and one WAL write for all of them),
   * each in its own savepoint, so a work that throws is rolled back alone (its promise rejects).
   * Resolves after the COMMIT; undefined when the file was locked or the commit failed: nothing of
   * the work was applied, the caller takes its ordinary path.
   */
  readonly grouped: <A>(work: (statements: DirectStatements) => A) => Promise<A | undefined>
}

/** Parameterized statements (bun:sqlite keeps each one prepared, keyed by its text). */
export interface DirectStatements {
  /** Rows as arrays, in column order. */
  readonly values: (sql: string, params: ReadonlyArray<unknown>) => ReadonlyArray<ReadonlyArray<unknown>>
  readonly run: (sql: string, params: ReadonlyArray<unknown>) => void
}

export class SqliteDirect extends Context.Tag("switchboard/SqliteDirect")<SqliteDirect, SqliteDirectService>() {}

/** Thrown out of `work` by a locked file: the whole call answers undefined. */
class Locked extends Error {}

const isBusy = (error: unknown) => {
  const code = String((error as { code?: unknown }).code ?? "")
  return code === "SQLITE_BUSY" || code.startsWith("SQLITE_BUSY_") || code === "SQLITE_LOCKED"
}

const unavailable: SqliteDirectService = {
  available: false,
  read: () => undefined,
  transaction: () => undefined,
  grouped: () => Promise.resolve(undefined)
}

/** At most this many works share one group transaction (bounds how long it holds the write lock). */
export const MAX_GROUP = 128

interface Queued {
  readonly work: (statements: DirectStatements) => unknown
  readonly resolve: (value: unknown) => void
  readonly reject: (error: unknown) => void
}

/** The service over an open database (exported for tests). */
export const directOn = (db: Database): SqliteDirectService => {
  const guard = <A>(step: () => A): A => {
    try {
      return step()
    } catch (error) {
      throw isBusy(error) ? new Locked() : error
    }
  }
  const statements: DirectStatements = {
    values: (sql, params) => guard(() => db.query(sql).values(...(params as Array<never>))),
    run: (sql, params) => guard(() => void db.query(sql).run(...(params as Array<never>)))
  }
  const attempt = <A>(work: () => A): A | undefined => {
    try {
      return work()
    } catch (error) {
      if (error instanceof Locked) return undefined
      throw error
    }
  }
  const group = groupCommit(db, statements)
  return {
    available: true,
    read: (work) => attempt(() => work(statements)),
    transaction: (work) =>
      attempt(() => {
        guard(() => db.run("BEGIN IMMEDIATE"))
        try {
          const result = work(statements)
          guard(() => db.run("COMMIT"))
          return result
        } catch (error) {
          if (db.inTransaction) db.run("ROLLBACK")
          throw error
        }
      }),
    grouped: group
  }
}

/** The group commit of `grouped`: works queued until the next turn of the event loop, then run together. */
const groupCommit = (db: Database, statements: DirectStatements) => {
  const queue: Array<Queued> = []
  let scheduled = false
  const step = (sql: string) => db.query(sql).run()
  const giveUp = (batch: ReadonlyArray<Queued>) => {
    try {
      if (db.inTransaction) db.run("ROLLBACK")
    } catch {
      // Closed under us: nothing was committed either way.
    }
    for (const item of batch) item.resolve(undefined)
  }
  const run = (batch: ReadonlyArray<Queued>) => {
    try {
      step("BEGIN IMMEDIATE")
    } catch {
      return giveUp(batch) // locked (or closed): every work takes its ordinary path
    }
    const outcomes: Array<{ readonly ok: boolean; readonly value: unknown }> = []
    try {
      for (const item of batch) {
        step("SAVEPOINT grouped")
        try {
          outcomes.push({ ok: true, value: item.work(statements) })
        } catch (error) {
          step("ROLLBACK TO grouped")
          outcomes.push({ ok: false, value: error })
        }
        step("RELEASE grouped")
      }
      step("COMMIT")
    } catch {
      return giveUp(batch)
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!
      if (outcome.ok) item.resolve(outcome.value)
      else if (outcome.value instanceof Locked) item.resolve(undefined)
      else item.reject(outcome.value)
    })
  }
  const flush = () => {
    scheduled = false
    while (queue.length > 0) run(queue.splice(0, MAX_GROUP))
  }
  return <A>(work: (statements: DirectStatements) => A): Promise<A | undefined> =>
    new Promise<A | undefined>((resolve, reject) => {
      queue.push({ work, resolve: resolve as (value: unknown) => void, reject })
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    })
}

const layers = new Map<string, Layer.Layer<SqliteDirect>>()

/** The direct connection to a SQLite file for the lifetime of the layer (one per file and process). */
export const SqliteDirectFile = (filename: string): Layer.Layer<SqliteDirect> => {
  if (filename === ":memory:") return Layer.succeed(SqliteDirect, unavailable)
  let layer = layers.get(filename)
  if (!layer) {
    layer = Layer.scoped(
      SqliteDirect,
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => {
            const db = new Database(filename, { create: true, readwrite: true })
            db.run("PRAGMA busy_timeout = 0")
            return db
          }),
          (db) => Effect.sync(() => db.close())
        ),
        directOn
      )
    )
    layers.set(filename, layer)
  }
  return layer
}

/** No direct connection (MySQL, or when the fast path is not wanted): every call takes the ordinary path. */
export const SqliteDirectNone = Layer.succeed(SqliteDirect, unavailable)
