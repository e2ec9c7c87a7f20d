import { describe, expect } from "bun:test"
import type { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { MemoryTaskStore } from "../../../layers/Storage/MemoryTaskStore.ts"
import { SqlTaskStore } from "../../../layers/Storage/SqlTaskStore.ts"
import { TaskStore } from "../../../layers/Storage/TaskStore.ts"
import type { NewTask } from "../../../src/storage/Task.ts"
import { it } from "../../support/effect.ts"
import { mysqlAvailable, sqliteFile, sqliteMemory, tempDirectory, throwawayMysql } from "./backends.ts"

interface TaskBackend {
  readonly name: string
  readonly layer: Layer.Layer<TaskStore, unknown>
  readonly skip?: boolean
}

const dir = tempDirectory("tasks")
const mysql = throwawayMysql("tasks")
const sqlTasks = <E>(database: Layer.Layer<SqlClient.SqlClient, E>) => SqlTaskStore.pipe(Layer.provide(database))

const task = (accountId: string, overrides: Partial<NewTask> = {}): NewTask => ({
  accountId,
  party: "_any_",
  group: "1",
  sender: "web-1",
  receiver: "_drone_",
  messageType: 1027,
  permanent: true,
  body: JSON.stringify({ a: [1, 2] }),
  ...overrides
})

const contract = (backend: TaskBackend) =>
  describe(`TaskStore contract: ${backend.name}`, () => {
    const test = (name: string, body: () => Effect.Effect<void, unknown, TaskStore>) =>
      it.skipIf(backend.skip === true).live(name, () => Effect.provide(Effect.suspend(body), backend.layer))
    const account = () => `acc-${crypto.randomUUID().slice(0, 8)}`

    test("save numbers tasks in increasing order; load returns the enabled matches oldest first, after lts, up to the limit", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const acc = account()
        const a = yield* store.save(task(acc))
        const b = yield* store.save(task(acc, { messageType: 6001, body: '{"x":1}' }))
        const c = yield* store.save(
          task(acc, { party: undefined, group: undefined, sender: undefined, receiver: undefined, permanent: false })
        )
        expect(a.id < b.id && b.id < c.id).toBe(true)
        expect(a.enabled).toBe(true)
        expect((yield* store.load({ accountId: acc }, 100)).map((t) => t.id)).toEqual([a.id, b.id, c.id])
        expect((yield* store.load({ accountId: acc, afterId: a.id }, 100)).map((t) => t.id)).toEqual([b.id, c.id])
        expect((yield* store.load({ accountId: acc }, 2)).map((t) => t.id)).toEqual([a.id, b.id])
        const [loaded] = yield* store.load({ accountId: acc, messageType: 6001 }, 10)
        expect(loaded).toEqual({ ...b, createdAt: loaded!.createdAt })
        const bare = (yield* store.load({ accountId: acc, permanent: false }, 10))[0]!
        expect([bare.id, bare.party, bare.group, bare.sender, bare.receiver]).toEqual([
          c.id,
          undefined,
          undefined,
          undefined,
          undefined
        ])
        expect(yield* store.count(acc)).toBe(3)
      }))

    test("every field filters; an absent field matches any value", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const acc = account()
        const base = yield* store.save(task(acc))
        const ids = (query: Omit<Parameters<TaskStore["Type"]["load"]>[0], "accountId">) =>
          Effect.map(store.load({ accountId: acc, ...query }, 10), (tasks) => tasks.map((t) => t.id))
        expect(
          yield* ids({
            party: "_any_",
            group: "1",
            sender: "web-1",
            receiver: "_drone_",
            messageType: 1027,
            permanent: true
          })
        ).toEqual([base.id])
        expect(yield* ids({ body: base.body })).toEqual([base.id])
        for (const miss of [
          { party: "p" },
          { group: "2" },
          { sender: "s" },
          { receiver: "r" },
          { messageType: 1 },
          { permanent: false },
          { body: "{}" }
        ]) {
          expect(yield* ids(miss)).toEqual([])
        }
      }))

    test("accounts never see or change each other's tasks", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const mine = account()
        const theirs = account()
        const kept = yield* store.save(task(theirs))
        yield* store.save(task(mine))
        expect(yield* store.remove({ accountId: mine })).toBe(1)
        expect(yield* store.disable({ accountId: mine })).toBe(0)
        expect((yield* store.load({ accountId: theirs }, 10)).map((t) => t.id)).toEqual([kept.id])
        expect(yield* store.load({ accountId: mine }, 10)).toEqual([])
      }))

    test("disable hides tasks from loads but keeps them stored; remove deletes enabled and disabled ones", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const acc = account()
        yield* store.save(task(acc, { messageType: 1 }))
        const other = yield* store.save(task(acc, { messageType: 2 }))
        expect(yield* store.disable({ accountId: acc, messageType: 1 })).toBe(1)
        expect(yield* store.disable({ accountId: acc, messageType: 1 })).toBe(0)
        expect((yield* store.load({ accountId: acc }, 10)).map((t) => t.id)).toEqual([other.id])
        expect(yield* store.count(acc)).toBe(2)
        expect(yield* store.remove({ accountId: acc, messageType: 1 })).toBe(1)
        expect(yield* store.remove({ accountId: acc })).toBe(1)
        expect(yield* store.count(acc)).toBe(0)
      }))

    test("values are stored verbatim, quotes and SQL included (parameterized)", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const acc = `${account()}'; DROP TABLE de_task; --`
        const hostile = "x' OR '1'='1"
        const saved = yield* store.save(task(acc, { party: hostile, body: JSON.stringify({ s: "ü'\"\\ 🚁" }) }))
        expect((yield* store.load({ accountId: acc, party: hostile }, 10)).map((t) => t.body)).toEqual([saved.body])
        expect(yield* store.load({ accountId: acc, party: "x" }, 10)).toEqual([])
      }))
  })

contract({ name: "memory", layer: MemoryTaskStore })
contract({ name: "sqlite :memory:", layer: sqlTasks(sqliteMemory()) })
contract({ name: "sqlite file", layer: sqlTasks(sqliteFile(dir, "tasks")) })
contract({ name: "mysql", layer: sqlTasks(mysql.layer), skip: !mysqlAvailable })

describe("SqlTaskStore persistence", () => {
  it.live("tasks survive a new client on the same SQLite file, ids keep increasing", () =>
    Effect.gen(function* () {
      const first = yield* Effect.provide(
        Effect.flatMap(TaskStore, (s) => s.save(task("acc"))),
        sqlTasks(sqliteFile(dir, "reopen"))
      )
      const again = yield* Effect.provide(
        Effect.flatMap(TaskStore, (s) => Effect.zip(s.load({ accountId: "acc" }, 10), s.save(task("acc")))),
        sqlTasks(sqliteFile(dir, "reopen"))
      )
      expect(again[0].map((t) => t.id)).toEqual([first.id])
      expect(again[1].id).toBeGreaterThan(first.id)
    })
  )
})
