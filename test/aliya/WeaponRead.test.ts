import { describe, expect, test } from "bun:test"
import { SqlClient } from "@effect/sql"
import { Effect, FastCheck as fc } from "effect"
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { migrateSchema, SqliteDatabase } from "../../layers/Storage/SqlDatabase.ts"
import { AliyaSchema } from "../../src/aliya/Tables.ts"
import { allWeaponsReply, inWeaponOrder } from "../../src/aliya/WeaponManager.ts"
import { encodeReply, type Reply } from "../../src/aliya/Wire.ts"

/** What a SQL driver may hand back in a weapon row's cells (names, counts, and odder things). */
const cell = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.string(),
  fc.constantFrom("weapon1", "weapon12", "weapon40", "weapon", "7", null, undefined, true, false)
)
const rows = fc.array(
  fc.tuple(
    fc.oneof(
      fc.integer({ min: 1, max: 40 }).map((n) => `weapon${n}`),
      fc.string()
    ),
    fc.array(cell, { maxLength: 9 })
  ),
  { maxLength: 45 }
)

describe("get_all_weapon's reply", () => {
  test("vouched eval-safe data encodes exactly as the generic walk would (any rows, any random)", () => {
    fc.assert(
      fc.property(rows, fc.option(fc.oneof(fc.string(), fc.double()), { nil: undefined }), (generated, random) => {
        const built = allWeaponsReply(inWeaponOrder(generated.map(([name, cells]) => [name, ...cells])))
        const fast: Reply = random === undefined ? built : { ...built, random }
        // The rows hold nothing eval() lacks, so the vouch is true; the copy is walked as any reply is.
        for (const row of Object.values(fast.data) as Array<Array<unknown>>)
          for (const value of row) expect(["string", "number"]).toContain(typeof value)
        expect(encodeReply(fast)).toBe(encodeReply({ ...fast, data: { ...fast.data } }))
      }),
      { numRuns: 500 }
    )
  })

  test("a vouched reply still has its own fields made eval-safe", () => {
    const r = { ...allWeaponsReply([["weapon1", 1, 2, 0, 0, 0, 0, 0, 0]]), random: null as never }
    expect(encodeReply(r)).toBe(
      '{"status":0,"message":"success","data":{"weapon_bag1":["weapon1",1,2,0,0,0,0,0,0]},"random":""}'
    )
  })
})

describe("aliya_weapons on SQLite", () => {
  test("migration 2 keeps every weapon row and stores them in key order (WITHOUT ROWID)", async () => {
    const file = join(tmpdir(), `aliya-weapons-migration-${process.pid}-${Date.now()}.db`)
    const first = { ...AliyaSchema, migrations: { 1: AliyaSchema.migrations[1]! } }
    const program = Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* migrateSchema(first)
      yield* sql`INSERT INTO aliya_weapons (unique_id, weapon, star, level, segment) VALUES ('p1', 'weapon3', 2, 7, 11)`
      yield* sql`INSERT INTO aliya_weapons (unique_id, weapon, skill_point) VALUES ('p2', 'weapon1', 4)`
      const before = yield* sql`SELECT * FROM aliya_weapons ORDER BY unique_id, weapon`
      yield* migrateSchema(AliyaSchema)
      const after = yield* sql`SELECT * FROM aliya_weapons ORDER BY unique_id, weapon`
      const ddl = yield* sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE name = 'aliya_weapons'`
      return { before, after, ddl: ddl[0]!.sql }
    })
    try {
      const { before, after, ddl } = await Effect.runPromise(Effect.provide(program, SqliteDatabase(file)))
      expect(after).toEqual(before)
      expect(after).toHaveLength(2)
      expect(ddl).toContain("WITHOUT ROWID")
    } finally {
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true })
    }
  })
})
