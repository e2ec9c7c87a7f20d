import { SqlClient } from "@effect/sql"
import type { DirectStatements } from "../../layers/Storage/SqliteDirect.ts"
import { Effect } from "effect"
import { type Item, Items } from "./Game.ts"
import { withStatements } from "./DirectSql.ts"
import { forUpdate, insertIgnore, num } from "./Tables.ts"

/**
 * The bag's SQL, owned by the BagManager. Other managers call these only inside their own
 * transaction, so a spend and its effect commit together. Column names come from the fixed
 * Items list, never from input; values are always parameters.
 */

export type Bag = Record<Item, number>

const columns = (sql: SqlClient.SqlClient, item: Item) => {
  if (!Items.includes(item)) throw new Error(`not a bag item: ${item}`)
  return sql.literal(item)
}

export const ensureBag = (uniqueId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const insert = yield* insertIgnore
    yield* sql`${insert} aliya_bag (unique_id) VALUES (${uniqueId})`
  })

/** The whole bag (zeros for a new player); locks the row on MySQL when `lock`. */
export const readBag = (uniqueId: string, lock = false) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const suffix = lock ? yield* forUpdate : sql.literal("")
    const select = sql<Record<string, unknown>>`SELECT * FROM aliya_bag WHERE unique_id = ${uniqueId}${suffix}`
    let rows = yield* select
    // A new player's bag is created on first use (a write only then).
    if (rows.length === 0) rows = yield* Effect.zipRight(ensureBag(uniqueId), select)
    const row = rows[0] ?? {}
    return Object.fromEntries(Items.map((item) => [item, num(row[item])])) as Bag
  })

/** Sets one amount; returns it. */
export const setItem = (uniqueId: string, item: Item, amount: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* ensureBag(uniqueId)
    yield* sql`UPDATE aliya_bag SET ${columns(sql, item)} = ${amount} WHERE unique_id = ${uniqueId}`
    return amount
  })

/** Adds to one amount (relative update, safe under concurrency); returns the new amount. */
export const addItem = (uniqueId: string, item: Item, amount: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* ensureBag(uniqueId)
    const column = columns(sql, item)
    yield* sql`UPDATE aliya_bag SET ${column} = ${column} + ${amount} WHERE unique_id = ${uniqueId}`
    const rows = yield* sql<
      Record<string, unknown>
    >`SELECT ${column} AS amount FROM aliya_bag WHERE unique_id = ${uniqueId}`
    return num(rows[0]?.amount)
  })

/** SQLite's conditional spend: one UPDATE … RETURNING the amount left (no row when short). */
const takeStatement = (item: Item) => {
  if (!Items.includes(item)) throw new Error(`not a bag item: ${item}`)
  return `UPDATE aliya_bag SET ${item} = ${item} - ? WHERE unique_id = ? AND ${item} >= ?`
}

/**
 * Takes `amount` of an item if the bag holds that much: the remaining amount, or undefined when
 * short. Call inside a transaction: the update is conditional (SQLite: one UPDATE … RETURNING;
 * MySQL: the row is read FOR UPDATE, then updated).
 */
export const spendItem = (uniqueId: string, item: Item, amount: number) =>
  withStatements((statements) => {
    const take = takeStatement(item)
    if (statements.dialect === "sqlite")
      return Effect.map(statements.values(`${take} RETURNING ${item}`, [amount, uniqueId, amount]), (rows) =>
        rows[0] ? num(rows[0][0]) : undefined
      )
    return Effect.gen(function* () {
      const rows = yield* statements.values(`SELECT ${item} FROM aliya_bag WHERE unique_id = ? FOR UPDATE`, [uniqueId])
      const held = rows[0] ? num(rows[0][0]) : 0
      if (held < amount) return undefined
      yield* statements.run(take, [amount, uniqueId, amount])
      return held - amount
    })
  })

/** Each item's SQLite spend statement, built once (the direct path runs one per spend). */
const takeReturning = new Map(Items.map((item) => [item, `${takeStatement(item)} RETURNING ${item}`]))

/** spendItem on a direct SQLite connection (inside its transaction): the same statement, synchronously. */
export const spendItemNow = (statements: DirectStatements, uniqueId: string, item: Item, amount: number) => {
  const rows = statements.values(takeReturning.get(item)!, [amount, uniqueId, amount])
  return rows[0] ? num(rows[0][0]) : undefined
}
