import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { SqliteDirect } from "../../layers/Storage/SqliteDirect.ts"
import { retryOnDeadlock, type StoreSchema } from "../../layers/Storage/SqlDatabase.ts"

const id = { sqlite: "TEXT NOT NULL", mysql: "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL" }
const name = { sqlite: "TEXT", mysql: "VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" }
const count = "BIGINT NOT NULL DEFAULT 0"

const both = (build: (d: "sqlite" | "mysql") => ReadonlyArray<string>) => ({
  sqlite: build("sqlite"),
  mysql: build("mysql")
})
const engine = (d: "sqlite" | "mysql") => (d === "mysql" ? " ENGINE=InnoDB" : "")

const weaponsTable = (d: "sqlite" | "mysql", table: string, tail: string) =>
  `CREATE TABLE ${table} (
    unique_id ${id[d]},
    weapon ${d === "mysql" ? "VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin" : "TEXT"} NOT NULL,
    star ${count}, level ${count},
    passive_skill_1_level ${count}, passive_skill_2_level ${count}, passive_skill_3_level ${count}, passive_skill_4_level ${count},
    skill_point ${count}, segment ${count},
    PRIMARY KEY (unique_id, weapon))${tail}`

/**
 * The managers' tables, one per owner: accounts (AccountManager), bag, weapons, skills, player
 * state. Counts are BIGINT; names compare exactly (binary collation).
 */
export const AliyaSchema: StoreSchema = {
  migrationsTable: "aliya_migrations",
  migrations: {
    1: {
      name: "aliya",
      ...both((d) => [
        `CREATE TABLE aliya_accounts (
          unique_id ${id[d]} PRIMARY KEY,
          account ${name[d]} NULL UNIQUE,
          email ${name[d]} NULL UNIQUE,
          phone_number ${name[d]} NULL UNIQUE,
          password_hash ${name[d]} NULL,
          device_secret_hash ${name[d]} NULL,
          created_at BIGINT NOT NULL)${engine(d)}`,
        `CREATE TABLE aliya_bag (
          unique_id ${id[d]} PRIMARY KEY,
          coin ${count}, iron ${count}, diamonds ${count}, experience_potion ${count}, small_energy_potion ${count},
          scroll_skill_10 ${count}, scroll_skill_30 ${count}, scroll_skill_100 ${count})${engine(d)}`,
        weaponsTable(d, "aliya_weapons", engine(d)),
        `CREATE TABLE aliya_skills (
          unique_id ${id[d]},
          skill ${d === "mysql" ? "VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin" : "TEXT"} NOT NULL,
          level ${count},
          PRIMARY KEY (unique_id, skill))${engine(d)}`,
        `CREATE TABLE aliya_player (
          unique_id ${id[d]} PRIMARY KEY,
          stage ${count}, experience ${count}, energy ${count}, energy_since ${count})${engine(d)}`
      ])
    },
    // SQLite: a player's weapons stored in their key's order (WITHOUT ROWID), so get_all_weapon's
    // 40 rows are one range scan instead of 40 index-then-table lookups. InnoDB clusters so already.
    2: {
      name: "weapons_clustered",
      sqlite: [
        weaponsTable("sqlite", "aliya_weapons_clustered", " WITHOUT ROWID"),
        "INSERT INTO aliya_weapons_clustered SELECT * FROM aliya_weapons",
        "DROP TABLE aliya_weapons",
        "ALTER TABLE aliya_weapons_clustered RENAME TO aliya_weapons"
      ],
      mysql: []
    }
  }
}

/** The token server's own table: each player's current token id (its migrations are separate, so it can start first). */
export const SessionSchema: StoreSchema = {
  migrationsTable: "aliya_session_migrations",
  migrations: {
    1: {
      name: "sessions",
      ...both((d) => [
        `CREATE TABLE aliya_sessions (
          unique_id ${id[d]} PRIMARY KEY,
          jti ${name[d]} NOT NULL,
          expires_at BIGINT NOT NULL)${engine(d)}`
      ])
    }
  }
}

/** " FOR UPDATE" on MySQL (row lock inside a transaction); SQLite transactions are exclusive already. */
export const forUpdate = Effect.map(SqlClient.SqlClient, (sql) =>
  sql.literal(sql.onDialectOrElse({ mysql: () => " FOR UPDATE", orElse: () => "" }))
)

/** "INSERT OR IGNORE" / "INSERT IGNORE": create a row unless it exists. */
export const insertIgnore = Effect.map(SqlClient.SqlClient, (sql) =>
  sql.literal(sql.onDialectOrElse({ mysql: () => "INSERT IGNORE INTO", orElse: () => "INSERT OR IGNORE INTO" }))
)

export const num = (value: unknown) => Number(value ?? 0)

/** Runs `effect` as one SQL transaction (nested calls become savepoints), again if MySQL picks it as a deadlock victim. */
export const transactionally = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => retryOnDeadlock(sql.withTransaction(effect)))

/**
 * SQLite in WAL mode with synchronous = NORMAL: a commit no longer waits for fsync (the last
 * transactions may be lost on power failure, the database is never corrupted). MySQL: unchanged.
 */
export const tuneSqlite = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.onDialectOrElse({
    sqlite: () =>
      Effect.zipRight(
        sql`PRAGMA synchronous = NORMAL`,
        // The direct connection (a connection setting, not the file's) too.
        Effect.map(Effect.serviceOption(SqliteDirect), (direct) =>
          Option.map(direct, (d) => d.read((statements) => statements.run("PRAGMA synchronous = NORMAL", [])))
        )
      ),
    orElse: () => Effect.void
  })
)
