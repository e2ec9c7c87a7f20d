import { SqlClient } from "@effect/sql"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Effect, Option } from "effect"
import type { Identifier } from "./Functions.ts"
import { transactionally } from "./Tables.ts"

/**
 * Account SQL and credential rules, owned by the AccountManager (the admin command uses them
 * too). Passwords are argon2id hashes (Bun.password); device secrets are random 256-bit values
 * kept as SHA-256 hashes. The identifier picks one of three constant statements: never a column
 * name taken from input.
 */

export interface PasswordCost {
  /** argon2id memory in KiB and passes: OWASP's 19 MiB / 2 by default; tests use less. */
  readonly memoryCost: number
  readonly timeCost: number
}
export const defaultPasswordCost: PasswordCost = { memoryCost: 19456, timeCost: 2 }

export const hashPassword = (password: string, cost: PasswordCost) =>
  Effect.promise(() => Bun.password.hash(password, { algorithm: "argon2id", ...cost }))

const verifyPassword = (password: string, hash: string) =>
  Effect.promise(() => Bun.password.verify(password, hash).catch(() => false))

export const newDeviceSecret = () => randomBytes(32).toString("hex")
export const hashDeviceSecret = (secret: string) => createHash("sha256").update(secret).digest("hex")
const deviceSecretMatches = (secret: string, hash: string) => {
  const a = Buffer.from(hashDeviceSecret(secret), "hex")
  const b = Buffer.from(hash, "hex")
  return a.length === b.length && timingSafeEqual(a, b)
}

export interface AccountRow {
  readonly unique_id: string
  readonly account: string | null
  readonly email: string | null
  readonly phone_number: string | null
  readonly password_hash: string | null
  readonly device_secret_hash: string | null
}

const columns = "unique_id, account, email, phone_number, password_hash, device_secret_hash"

export const findAccount = (uniqueId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<AccountRow>`SELECT ${sql.literal(columns)} FROM aliya_accounts WHERE unique_id = ${uniqueId}`,
      (rows) => Option.fromNullable(rows[0])
    )
  )

const findBy = (identifier: Identifier, value: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const select = sql.literal(columns)
    const query =
      identifier === "account"
        ? sql<AccountRow>`SELECT ${select} FROM aliya_accounts WHERE account = ${value}`
        : identifier === "email"
          ? sql<AccountRow>`SELECT ${select} FROM aliya_accounts WHERE email = ${value}`
          : sql<AccountRow>`SELECT ${select} FROM aliya_accounts WHERE phone_number = ${value}`
    return Effect.map(query, (rows) => Option.fromNullable(rows[0]))
  })

// Verifying against this when no account matches keeps the answer time the same either way.
let dummyHash: Promise<string> | undefined
const dummy = (cost: PasswordCost) =>
  Effect.promise(() => (dummyHash ??= Bun.password.hash(newDeviceSecret(), { algorithm: "argon2id", ...cost })))

/** The unique_id whose credentials these are; None for unknown identifiers and wrong passwords alike. */
export const verifyCredentials = (identifier: Identifier, value: string, password: string, cost: PasswordCost) =>
  Effect.gen(function* () {
    const row = yield* findBy(identifier, value)
    if (Option.isNone(row) || !row.value.password_hash) {
      yield* verifyPassword(password, yield* dummy(cost))
      return Option.none<string>()
    }
    const ok = yield* verifyPassword(password, row.value.password_hash)
    return ok ? Option.some(row.value.unique_id) : Option.none<string>()
  })

export type LoginUniqueOutcome =
  | { readonly _tag: "Existing" }
  | { readonly _tag: "Created"; readonly deviceSecret: string }
  | { readonly _tag: "Bound" }
  | { readonly _tag: "ProofRequired" }

/**
 * The login_unique rule: an unknown unique_id creates an unbound account and returns a device
 * secret; a bound account must log in another way; an unbound account logs in only with its
 * device secret (or, in the opt-in legacy mode, with its unique_id alone, as the original).
 */
export const loginUnique = (uniqueId: string, deviceSecret: string | undefined, legacy: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const existing = yield* findAccount(uniqueId)
    if (Option.isNone(existing)) {
      const secret = newDeviceSecret()
      const now = yield* Clock.currentTimeMillis
      const insert = sql.literal(
        sql.onDialectOrElse({ mysql: () => "INSERT IGNORE INTO", orElse: () => "INSERT OR IGNORE INTO" })
      )
      yield* sql`${insert} aliya_accounts (unique_id, device_secret_hash, created_at) VALUES (${uniqueId}, ${hashDeviceSecret(secret)}, ${now})`
      const mine = yield* findAccount(uniqueId)
      // Two first logins at once: only the one whose secret was stored created the account.
      if (Option.isSome(mine) && mine.value.device_secret_hash === hashDeviceSecret(secret)) {
        return { _tag: "Created", deviceSecret: secret } as LoginUniqueOutcome
      }
      return { _tag: "ProofRequired" } as LoginUniqueOutcome
    }
    const row = existing.value
    if (row.account || row.email || row.phone_number) return { _tag: "Bound" } as LoginUniqueOutcome
    if (legacy) return { _tag: "Existing" } as LoginUniqueOutcome
    if (deviceSecret && row.device_secret_hash && deviceSecretMatches(deviceSecret, row.device_secret_hash)) {
      return { _tag: "Existing" } as LoginUniqueOutcome
    }
    return { _tag: "ProofRequired" } as LoginUniqueOutcome
  })

export type BindOutcome = "ok" | "nameTaken" | "alreadyBound" | "noAccount"

/** Binds an account name and password to a unique_id, once. */
export const bindAccount = (uniqueId: string, account: string, password: string, cost: PasswordCost) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const row = yield* findAccount(uniqueId)
    if (Option.isNone(row)) return "noAccount" as BindOutcome
    if (row.value.account) return "alreadyBound" as BindOutcome
    const taken = yield* findBy("account", account)
    if (Option.isSome(taken)) return "nameTaken" as BindOutcome
    const hash = yield* hashPassword(password, cost)
    const updated = yield* sql`UPDATE aliya_accounts SET account = ${account}, password_hash = ${hash}
      WHERE unique_id = ${uniqueId} AND account IS NULL`.pipe(
      Effect.as(true),
      // The unique index decides a race for the same name.
      Effect.catchTag("SqlError", () => Effect.succeed(false))
    )
    if (!updated) return "nameTaken" as BindOutcome
    const after = yield* findAccount(uniqueId)
    return Option.isSome(after) && after.value.account === account
      ? ("ok" as BindOutcome)
      : ("alreadyBound" as BindOutcome)
  })

export interface AccountInput {
  readonly uniqueId: string
  readonly account?: string | undefined
  readonly password?: string | undefined
  readonly email?: string | undefined
  readonly phoneNumber?: string | undefined
  readonly deviceSecret?: string | undefined
  /** false: clear account/password/email/phone (an unbound account). */
  readonly bound: boolean
}

/** Creates or replaces an account's identity fields (operators only: the admin command). */
export const upsertAccount = (input: AccountInput, cost: PasswordCost) =>
  Effect.flatMap(
    input.bound && input.password ? hashPassword(input.password, cost) : Effect.succeed(null),
    (passwordHash) => storeAccount(input, passwordHash)
  )

const storeAccount = (input: AccountInput, passwordHash: string | null) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Clock.currentTimeMillis
    const existing = yield* findAccount(input.uniqueId)
    const row = {
      account: input.bound ? (input.account ?? null) : null,
      email: input.bound ? (input.email ?? null) : null,
      phone_number: input.bound ? (input.phoneNumber ?? null) : null,
      password_hash: passwordHash ?? (input.bound && Option.isSome(existing) ? existing.value.password_hash : null),
      device_secret_hash: input.deviceSecret
        ? hashDeviceSecret(input.deviceSecret)
        : Option.isSome(existing)
          ? existing.value.device_secret_hash
          : null
    }
    if (Option.isSome(existing)) {
      yield* sql`UPDATE aliya_accounts SET ${sql.update(row)} WHERE unique_id = ${input.uniqueId}`
    } else {
      yield* sql`INSERT INTO aliya_accounts ${sql.insert({ unique_id: input.uniqueId, ...row, created_at: now })}`
    }
  }).pipe(transactionally)
