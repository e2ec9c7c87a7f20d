import { SqlClient, type SqlError } from "@effect/sql"
import { Clock, Effect, Layer, Option } from "effect"
import { generateAccessCode } from "../../src/storage/AccessCode.ts"
import { Account, AccountExists, AccountNotFound, accountFromInput, newAccountId } from "../../src/storage/Account.ts"
import { AccessCodeHasher } from "./AccessCodeHasher.ts"
import { AccountStore } from "./AccountStore.ts"
import { makeStoreCall, migrateSchema, type StoreSchema } from "./SqlDatabase.ts"
import { asText } from "./SqlValues.ts"

/**
 * Tables after the original's account / account_details, with the access code kept only as a
 * hash. MySQL names are VARBINARY so lookups are exact (no case folding, no trailing-space padding).
 */
export const AccountSchema: StoreSchema = {
  migrationsTable: "account_migrations",
  migrations: {
    1: {
      name: "accounts",
      sqlite: [
        `CREATE TABLE account (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL UNIQUE,
          enabled INTEGER NOT NULL DEFAULT 1,
          instance_limit INTEGER NOT NULL DEFAULT 0,
          register_time INTEGER NOT NULL)`,
        `CREATE TABLE account_details (
          account_id TEXT PRIMARY KEY REFERENCES account(id),
          code_hash TEXT NOT NULL,
          permission INTEGER NOT NULL,
          is_admin INTEGER NOT NULL DEFAULT 0)`
      ],
      mysql: [
        `CREATE TABLE account (
          id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
          name VARBINARY(512) NOT NULL UNIQUE,
          enabled TINYINT(1) NOT NULL DEFAULT 1,
          instance_limit INT UNSIGNED NOT NULL DEFAULT 0,
          register_time BIGINT NOT NULL) ENGINE=InnoDB`,
        `CREATE TABLE account_details (
          account_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
          code_hash VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
          permission BIGINT UNSIGNED NOT NULL,
          is_admin TINYINT(1) NOT NULL DEFAULT 0,
          FOREIGN KEY (account_id) REFERENCES account(id)) ENGINE=InnoDB`
      ]
    }
  }
}

interface AccountRow {
  readonly id: unknown
  readonly name: unknown
  readonly enabled: unknown
  readonly instance_limit: unknown
  readonly permission: unknown
  readonly is_admin: unknown
  readonly code_hash: unknown
}

const toAccount = (row: AccountRow) =>
  new Account({
    id: asText(row.id),
    name: asText(row.name),
    enabled: Number(row.enabled) !== 0,
    instanceLimit: Number(row.instance_limit),
    permission: Number(row.permission),
    isAdmin: Number(row.is_admin) !== 0
  })

/** AccountStore over any @effect/sql client (SQLite or MySQL); runs its migrations first. */
export const makeSqlAccountStore = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const storeCall = yield* makeStoreCall
  const hasher = yield* AccessCodeHasher
  yield* migrateSchema(AccountSchema)

  const selectAccount = sql`SELECT a.id, a.name, a.enabled, a.instance_limit, d.permission, d.is_admin, d.code_hash
    FROM account a JOIN account_details d ON d.account_id = a.id`
  const rowByName = (name: string) =>
    sql<AccountRow>`${selectAccount} WHERE a.name = ${name}`.pipe(Effect.map((rows) => Option.fromNullable(rows[0])))
  const existing = (name: string) =>
    Effect.flatMap(
      rowByName(name),
      Option.match({ onNone: () => Effect.fail(new AccountNotFound({ name })), onSome: Effect.succeed })
    )

  const store: AccountStore["Type"] = {
    // Only the database part of a call is timed: hashing is CPU work that does not wait on the database.
    authenticate: (name, accessCode) =>
      Effect.gen(function* () {
        const row = yield* rowByName(name).pipe(storeCall("authenticating"))
        const storedHash = Option.getOrUndefined(Option.map(row, (found) => asText(found.code_hash)))
        const ok = yield* hasher.verify(accessCode, storedHash)
        return ok ? Option.map(row, toAccount) : Option.none()
      }),
    findByName: (name) => rowByName(name).pipe(Effect.map(Option.map(toAccount)), storeCall("reading an account")),
    storedCredential: (name) =>
      rowByName(name).pipe(
        Effect.map(Option.map((row) => ({ account: toAccount(row), codeHash: asText(row.code_hash) }))),
        storeCall("reading an account")
      ),
    list: sql<AccountRow>`${selectAccount} ORDER BY a.name`.pipe(
      Effect.map((rows) => rows.map(toAccount)),
      storeCall("listing accounts")
    ),
    create: (input) =>
      Effect.gen(function* () {
        const accessCode = input.accessCode ?? generateAccessCode()
        // Validate before touching the database; the hash is computed outside the transaction (it is slow).
        const account = yield* accountFromInput(input, newAccountId())
        const codeHash = yield* hasher.hash(accessCode)
        const now = yield* Clock.currentTimeMillis
        const insert = Effect.gen(function* () {
          if (Option.isSome(yield* rowByName(account.name))) return yield* new AccountExists({ name: account.name })
          yield* sql`INSERT INTO account ${sql.insert({
            id: account.id,
            name: account.name,
            enabled: 1,
            instance_limit: account.instanceLimit,
            register_time: now
          })}`
          yield* sql`INSERT INTO account_details ${sql.insert({
            account_id: account.id,
            code_hash: codeHash,
            permission: account.permission,
            is_admin: account.isAdmin ? 1 : 0
          })}`
        }).pipe(sql.withTransaction)
        // A concurrent create of the same name loses on the UNIQUE index: report that as AccountExists too.
        yield* insert.pipe(
          Effect.catchTag("SqlError", (error) =>
            Effect.flatMap(rowByName(account.name), (row) =>
              Effect.fail<AccountExists | SqlError.SqlError>(
                Option.isSome(row) ? new AccountExists({ name: account.name }) : error
              )
            )
          ),
          storeCall("creating an account")
        )
        return { account, accessCode }
      }),
    regenerateAccessCode: (name) =>
      Effect.gen(function* () {
        const accessCode = generateAccessCode()
        const codeHash = yield* hasher.hash(accessCode)
        const row = yield* existing(name).pipe(
          Effect.tap(
            (row) => sql`UPDATE account_details SET code_hash = ${codeHash} WHERE account_id = ${asText(row.id)}`
          ),
          sql.withTransaction,
          storeCall("regenerating an access code")
        )
        return { account: toAccount(row), accessCode }
      }),
    setEnabled: (name, enabled) =>
      sql`UPDATE account SET enabled = ${enabled ? 1 : 0} WHERE name = ${name}`.pipe(
        Effect.zipRight(existing(name)),
        Effect.map(toAccount),
        sql.withTransaction,
        storeCall("enabling or disabling an account")
      )
  }
  return store
})

/** Needs a SqlClient (SqliteDatabase / MysqlDatabase) and an AccessCodeHasher. */
export const SqlAccountStore = Layer.effect(AccountStore, makeSqlAccountStore)
