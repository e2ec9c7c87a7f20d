import { Database } from "bun:sqlite"
import { afterEach, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { directOn, MAX_GROUP, SqliteDirect, SqliteDirectFile } from "../../../layers/Storage/SqliteDirect.ts"

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
    expect(await direct.grouped(() => 1)).toBeUndefined()
  })
})

describe("SqliteDirect group commit", () => {
  const take = "UPDATE t SET n = n - ? WHERE k = ? AND n >= ? RETURNING n"

  test("works queued in one turn run in order in one transaction; each resolves after the commit", async () => {
    const { other, direct } = twoConnections()
    let changesBefore = -1
    const spends = [3, 4, 5].map((amount) =>
      direct.grouped((s) => {
        // Inside the shared transaction: another connection still sees the last commit.
        if (changesBefore < 0) changesBefore = Number(other.query("SELECT n FROM t").values()[0]![0])
        return s.values(take, [amount, "a", amount])[0]?.[0]
      })
    )
    // When the first answer arrives, the whole group is committed.
    const seenByFirst = spends[0]!.then(() => other.query("SELECT n FROM t").values())
    // Conditional spends in queue order: 10 - 3 = 7, 7 - 4 = 3, then 5 is refused (no row).
    expect(await Promise.all(spends)).toEqual([7, 3, undefined])
    expect(await seenByFirst).toEqual([[3]])
    expect(changesBefore).toBe(10)
    expect(other.query("SELECT n FROM t").values()).toEqual([[3]])
  })

  test("a work that throws is rolled back alone (its promise rejects); the others of its group commit", async () => {
    const { other, direct } = twoConnections()
    other.run("INSERT INTO t VALUES ('b', 20)")
    const first = direct.grouped((s) => s.run("UPDATE t SET n = n + 1 WHERE k = ?", ["a"]))
    const failing = direct.grouped((s) => {
      s.run("UPDATE t SET n = 0 WHERE k = ?", ["b"])
      throw new Error("boom")
    })
    const last = direct.grouped((s) => s.values("SELECT n FROM t ORDER BY k", []))
    await first
    await expect(failing).rejects.toThrow("boom")
    // The last work saw the first's update and not the failed one's.
    expect(await last).toEqual([[11], [20]])
    expect(other.query("SELECT n FROM t ORDER BY k").values()).toEqual([[11], [20]])
  })

  test("a file locked by another writer: every work of the group answers undefined, none of them ran", async () => {
    const { other, direct } = twoConnections()
    other.run("BEGIN IMMEDIATE")
    let ran = 0
    const outcomes = await Promise.all(
      [1, 2].map(() =>
        direct.grouped((s) => {
          ran++
          s.run("UPDATE t SET n = 99", [])
        })
      )
    )
    expect(outcomes).toEqual([undefined, undefined])
    expect(ran).toBe(0)
    other.run("COMMIT")
    expect(other.query("SELECT n FROM t").values()).toEqual([[10]])
  })

  test("more works than one group holds are split into several groups, all answered", async () => {
    const { other, direct } = twoConnections()
    const count = MAX_GROUP * 2 + 3
    const outcomes = await Promise.all(
      Array.from({ length: count }, () => direct.grouped((s) => s.values(take, [0, "a", 0]).length))
    )
    expect(outcomes).toEqual(Array.from({ length: count }, () => 1))
    expect(other.query("SELECT n FROM t").values()).toEqual([[10]])
  })
})
