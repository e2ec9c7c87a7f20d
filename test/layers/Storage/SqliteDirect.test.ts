import { Database } from "bun:sqlite"
import { afterEach, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { directOn, SqliteDirect, SqliteDirectFile } from "../../../layers/Storage/SqliteDirect.ts"

const dirs: Array<string> = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A WAL database file with one table, and a second connection to it (another client or process). */
const twoConnections = () => {
  const dir = mkdtempSync(join(tmpdir(), "sqlite-direct-"))
  dirs.push(dir)
  const file = join(dir, "db.sqlite")
  const other = new Database(file, { create: true })
  other.run("PRAGMA journal_mode = WAL")
  other.run("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
  other.run("INSERT INTO t VALUES ('a', 10)")
  return { file, other, direct: directOn(new Database(file)) }
}

describe("SqliteDirect", () => {
  test("reads and commits synchronously; another connection sees the commit", () => {
    const { other, direct } = twoConnections()
    expect(direct.read((s) => s.values("SELECT n FROM t WHERE k = ?", ["a"]))).toEqual([[10]])
    const left = direct.transaction((s) =>
      s.values("UPDATE t SET n = n - ? WHERE k = ? AND n >= ? RETURNING n", [4, "a", 4])
    )
    expect(left).toEqual([[6]])
    expect(other.query("SELECT n FROM t").values()).toEqual([[6]])
  })

  test("a transaction that throws is rolled back and the error goes to the caller", () => {
    const { other, direct } = twoConnections()
    expect(() =>
      direct.transaction((s) => {
        s.run("UPDATE t SET n = 0 WHERE k = ?", ["a"])
        throw new Error("boom")
      })
    ).toThrow("boom")
    expect(other.query("SELECT n FROM t").values()).toEqual([[10]])
    // Not left inside a transaction: the next one runs.
    expect(direct.transaction((s) => s.values("SELECT n FROM t", []))).toEqual([[10]])
  })

  test("a file locked by another writer answers undefined at once (the caller takes its waiting path), and changes nothing", () => {
    const { other, direct } = twoConnections()
    other.run("BEGIN IMMEDIATE")
    other.run("UPDATE t SET n = 1")
    let ran = false
    const outcome = direct.transaction((s) => {
      ran = true
      s.run("UPDATE t SET n = 99", [])
    })
    expect(outcome).toBeUndefined()
    expect(ran).toBe(false)
    // WAL: a read does not wait for the writer and sees the last commit.
    expect(direct.read((s) => s.values("SELECT n FROM t", []))).toEqual([[10]])
    other.run("COMMIT")
    expect(direct.transaction((s) => s.values("SELECT n FROM t", []))).toEqual([[1]])
  })

  test("an in-memory database has no second connection: unavailable, every call answers undefined", async () => {
    const direct = await Effect.runPromise(Effect.scoped(Effect.provide(SqliteDirect, SqliteDirectFile(":memory:"))))
    expect(direct.available).toBe(false)
    expect(direct.read(() => 1)).toBeUndefined()
    expect(direct.transaction(() => 1)).toBeUndefined()
  })
})
