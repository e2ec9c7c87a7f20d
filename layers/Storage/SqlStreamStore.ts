import { SqlClient } from "@effect/sql"
import { Clock, Effect, Layer } from "effect"
import { StorageError } from "../../src/storage/Account.ts"
import { PartialAppend, payloadBytes, type StreamBounds, type StreamEntry, trimStep } from "../../src/storage/Stream.ts"
import { makeStoreCall, migrateSchema, QueryTimedOut, retryOnDeadlock, type StoreSchema } from "./SqlDatabase.ts"
import { StreamStore } from "./StreamStore.ts"

/**
 * stream_head keeps each stream's running totals (last seq, oldest kept seq, count, bytes) so an
 * append touches one head row and the few oldest entries it trims, never the whole stream.
 * Invariant: kept entries are exactly seqs first_seq..last_seq (first_seq = last_seq + 1 when empty).
 * MySQL stream keys are VARBINARY(255): exact byte comparison, at most 255 bytes.
 * stream_batch remembers each batch's id for `batchMemoryMs`, so a resent batch returns its first seqs.
 */
export const StreamSchema: StoreSchema = {
  migrationsTable: "stream_migrations",
  migrations: {
    1: {
      name: "streams",
      sqlite: [
        `CREATE TABLE stream_head (
          stream TEXT PRIMARY KEY,
          epoch TEXT NOT NULL,
          last_seq INTEGER NOT NULL,
          first_seq INTEGER NOT NULL,
          entry_count INTEGER NOT NULL,
          total_bytes INTEGER NOT NULL)`,
        `CREATE TABLE stream_entry (
          stream TEXT NOT NULL,
          seq INTEGER NOT NULL,
          payload TEXT NOT NULL,
          bytes INTEGER NOT NULL,
          at INTEGER NOT NULL,
          PRIMARY KEY (stream, seq)) WITHOUT ROWID`
      ],
      mysql: [
        `CREATE TABLE stream_head (
          stream VARBINARY(255) NOT NULL PRIMARY KEY,
          epoch CHAR(36) CHARACTER SET ascii NOT NULL,
          last_seq BIGINT NOT NULL,
          first_seq BIGINT NOT NULL,
          entry_count BIGINT NOT NULL,
          total_bytes BIGINT NOT NULL) ENGINE=InnoDB`,
        `CREATE TABLE stream_entry (
          stream VARBINARY(255) NOT NULL,
          seq BIGINT NOT NULL,
          payload MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
          bytes INT UNSIGNED NOT NULL,
          at BIGINT NOT NULL,
          PRIMARY KEY (stream, seq)) ENGINE=InnoDB`
      ]
    },
    2: {
      name: "stream batch ids",
      sqlite: [
        `CREATE TABLE stream_batch (
          stream TEXT NOT NULL,
          batch TEXT NOT NULL,
          first_seq INTEGER NOT NULL,
          at INTEGER NOT NULL,
          PRIMARY KEY (stream, batch)) WITHOUT ROWID`,
        // Each append prunes its stream's expired ids: by this index it reads only those, not 30 s of ids.
        `CREATE INDEX stream_batch_age ON stream_batch (stream, at)`
      ],
      mysql: [
        `CREATE TABLE stream_batch (
          stream VARBINARY(255) NOT NULL,
          batch VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
          first_seq BIGINT NOT NULL,
          at BIGINT NOT NULL,
          PRIMARY KEY (stream, batch),
          KEY stream_batch_age (stream, at)) ENGINE=InnoDB`
      ]
    }
  }
}

/** How long a batch's id is remembered (ms): its resend comes within seconds. */
const batchMemoryMs = 30_000
/** A connection lost mid-statement or no answer in time: the transaction may have committed. Other errors stored nothing. */
const connectionLostCodes = new Set(["PROTOCOL_CONNECTION_LOST", "ECONNRESET", "EPIPE", "ETIMEDOUT"])
/** Stands for a lost answer in tests (`dropAnswer`). */
class AnswerDropped extends Error {}
const maybeCommitted = (error: unknown): boolean => {
  for (let cause = error; cause instanceof Object; cause = (cause as { cause?: unknown }).cause)
    if (
      cause instanceof AnswerDropped ||
      cause instanceof QueryTimedOut ||
      connectionLostCodes.has(String((cause as { code?: unknown }).code))
    )
      return true
  return false
}

export interface SqlStreamStoreOptions {
  /** Tests only: called once a batch's transaction has committed; true drops its answer, as a connection cut would. */
  readonly dropAnswer?: () => boolean
}

interface HeadRow {
  readonly epoch: string
  readonly last_seq: unknown
  readonly first_seq: unknown
  readonly entry_count: unknown
  readonly total_bytes: unknown
}

interface Head {
  readonly epoch: string
  readonly last: number
  readonly first: number
  readonly count: number
  readonly bytes: number
}

const toHead = (row: HeadRow): Head => ({
  epoch: row.epoch,
  last: Number(row.last_seq),
  first: Number(row.first_seq),
  count: Number(row.entry_count),
  bytes: Number(row.total_bytes)
})

const toEntry = (row: { readonly seq: unknown; readonly payload: string; readonly at: unknown }): StreamEntry => ({
  seq: Number(row.seq),
  payload: row.payload,
  at: Number(row.at)
})

/** How many of the oldest entries' sizes to fetch at once while trimming by bytes. */
const trimBatch = 64
/** Entries inserted per statement (5 parameters each). */
const insertBatch = 100

/** StreamStore over any @effect/sql client (SQLite or MySQL), same semantics as MemoryStreamStore. */
export const makeSqlStreamStore = (options: SqlStreamStoreOptions = {}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storeCall = yield* makeStoreCall
    yield* migrateSchema(StreamSchema)

    const selectHead = (stream: string, forUpdate: boolean) =>
      sql<HeadRow>`SELECT epoch, last_seq, first_seq, entry_count, total_bytes FROM stream_head WHERE stream = ${stream}${sql.literal(
        forUpdate ? sql.onDialectOrElse({ mysql: () => " FOR UPDATE", orElse: () => "" }) : ""
      )}`
    // Creating a head keeps its epoch stable from the first position() or append() on.
    const insertHeadIfMissing = (stream: string) => {
      const row = { stream, epoch: crypto.randomUUID(), last_seq: 0, first_seq: 1, entry_count: 0, total_bytes: 0 }
      return sql.onDialectOrElse({
        mysql: () => sql`INSERT INTO stream_head ${sql.insert(row)} ON DUPLICATE KEY UPDATE stream = stream`,
        orElse: () => sql`INSERT INTO stream_head ${sql.insert(row)} ON CONFLICT DO NOTHING`
      })
    }
    // Streams whose head row this process has seen: their appends skip the insert-if-missing step.
    const known = new Set<string>()
    /** Creates the head outside the append's transaction, so that transaction only ever locks an existing row. */
    const ensureHead = (stream: string) =>
      known.has(stream) ? Effect.void : Effect.asVoid(insertHeadIfMissing(stream))

    /** The stream's head, created when missing; inside a transaction it is locked (MySQL) until commit. */
    const head = (stream: string, forUpdate: boolean) =>
      Effect.gen(function* () {
        const rows = yield* selectHead(stream, forUpdate)
        if (rows[0]) return toHead(rows[0])
        yield* insertHeadIfMissing(stream)
        return toHead((yield* selectHead(stream, forUpdate))[0]!)
      })

    // LIMIT as a literal integer: MySQL 8 refuses a bound LIMIT parameter that mysql2 sends as a double.
    const limitClause = (limit: number) =>
      sql.literal(
        `LIMIT ${Number.isFinite(limit) ? Math.min(Math.max(0, Math.floor(limit)), Number.MAX_SAFE_INTEGER) : Number.MAX_SAFE_INTEGER}`
      )

    /** Seq of the oldest entry to keep once the newest is counted in `count` / `bytes`. */
    const keepFrom = (stream: string, from: Head, bounds: StreamBounds) =>
      Effect.gen(function* () {
        let { first, count, bytes } = from
        while (trimStep(count, bytes, bounds)) {
          const sizes = yield* sql<{ readonly bytes: unknown }>`SELECT bytes FROM stream_entry
          WHERE stream = ${stream} AND seq >= ${first} ORDER BY seq ${limitClause(trimBatch)}`
          if (sizes.length === 0) break
          for (const size of sizes) {
            if (!trimStep(count, bytes, bounds)) break
            first++
            count--
            bytes -= Number(size.bytes)
          }
        }
        return { first, count, bytes }
      })

    /** The append proper: runs in a transaction holding the head row; trimming once at the end keeps what trimming after each would. */
    const appendLocked = (stream: string, payloads: ReadonlyArray<string>, bounds: StreamBounds, batch: string) =>
      Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        const current = yield* head(stream, true)
        // Under the head's lock: a batch stored before (its answer lost) is answered from its row, not stored again.
        const [earlier] = yield* sql<{ readonly first_seq: unknown; readonly at: unknown }>`SELECT first_seq, at
        FROM stream_batch WHERE stream = ${stream} AND batch = ${batch}`
        if (earlier)
          return payloads.map(
            (payload, i): StreamEntry => ({ seq: Number(earlier.first_seq) + i, payload, at: Number(earlier.at) })
          )
        const rows = payloads.map((payload, i) => ({
          stream,
          seq: current.last + 1 + i,
          payload,
          bytes: payloadBytes(payload),
          at
        }))
        // A few rows per statement: SQLite caps the bound parameters of one statement.
        for (let i = 0; i < rows.length; i += insertBatch)
          yield* sql`INSERT INTO stream_entry ${sql.insert(rows.slice(i, i + insertBatch))}`
        const last = current.last + rows.length
        const added = rows.reduce((sum, row) => sum + row.bytes, 0)
        const kept = yield* keepFrom(
          stream,
          { ...current, last, count: current.count + rows.length, bytes: current.bytes + added },
          bounds
        )
        if (kept.first > current.first)
          yield* sql`DELETE FROM stream_entry WHERE stream = ${stream} AND seq < ${kept.first}`
        yield* sql`UPDATE stream_head SET last_seq = ${last}, first_seq = ${kept.first}, entry_count = ${kept.count},
        total_bytes = ${kept.bytes} WHERE stream = ${stream}`
        yield* sql`DELETE FROM stream_batch WHERE stream = ${stream} AND at < ${at - batchMemoryMs}`
        yield* sql`INSERT INTO stream_batch ${sql.insert({ stream, batch, first_seq: current.last + 1, at })}`
        return rows.map(({ seq, payload }): StreamEntry => ({ seq, payload, at }))
      })

    const appendMany = (stream: string, payloads: ReadonlyArray<string>, bounds: StreamBounds, batch: string) => {
      const what = `appending to stream ${JSON.stringify(stream)}`
      const send = ensureHead(stream).pipe(
        Effect.zipRight(sql.withTransaction(appendLocked(stream, payloads, bounds, batch))),
        retryOnDeadlock,
        Effect.tap(() => Effect.sync(() => known.add(stream))),
        Effect.tap(() =>
          options.dropAnswer?.()
            ? Effect.fail(new StorageError({ message: `${what} failed: no answer`, cause: new AnswerDropped() }))
            : Effect.void
        ),
        storeCall(what)
      )
      // A connection lost mid-transaction may have committed it: the batch is sent once more under its id.
      return send.pipe(
        Effect.catchIf(maybeCommitted, (lost) =>
          Effect.mapError(
            send,
            (error) => new PartialAppend({ message: lost.message, stored: [], unsure: payloads.length, cause: error })
          )
        )
      )
    }

    const store: StreamStore["Type"] = {
      append: (stream, payload, bounds) =>
        Effect.map(appendMany(stream, [payload], bounds, crypto.randomUUID()), (entries) => entries[0]!).pipe(
          Effect.catchTag("PartialAppend", (error) =>
            Effect.fail(new StorageError({ message: error.message, cause: error }))
          )
        ),
      appendMany: (stream, payloads, bounds, batch = crypto.randomUUID()) =>
        payloads.length === 0 ? Effect.succeed([]) : appendMany(stream, payloads, bounds, batch),
      readAfter: (stream, afterSeq, limit = Number.MAX_SAFE_INTEGER) =>
        limit <= 0
          ? Effect.succeed([])
          : sql<{ seq: unknown; payload: string; at: unknown }>`SELECT seq, payload, at FROM stream_entry
            WHERE stream = ${stream} AND seq > ${afterSeq} ORDER BY seq ${limitClause(limit)}`.pipe(
              Effect.map((rows) => rows.map(toEntry)),
              storeCall(`reading stream ${JSON.stringify(stream)}`)
            ),
      position: (stream) =>
        head(stream, false).pipe(
          Effect.map((h) => ({ epoch: h.epoch, first: h.count === 0 ? 0 : h.first, last: h.last })),
          storeCall(`reading the position of stream ${JSON.stringify(stream)}`)
        ),
      remove: (stream) =>
        Effect.all(
          [
            sql`DELETE FROM stream_entry WHERE stream = ${stream}`,
            sql`DELETE FROM stream_batch WHERE stream = ${stream}`,
            sql`DELETE FROM stream_head WHERE stream = ${stream}`
          ],
          {
            discard: true
          }
        ).pipe(
          sql.withTransaction,
          retryOnDeadlock,
          Effect.ensuring(Effect.sync(() => known.delete(stream))),
          storeCall(`removing stream ${JSON.stringify(stream)}`)
        )
    }
    return store
  })

/** Needs a SqlClient (SqliteDatabase / MysqlDatabase). */
export const SqlStreamStore = Layer.effect(StreamStore, makeSqlStreamStore())
