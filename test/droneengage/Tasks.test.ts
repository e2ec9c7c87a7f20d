import { describe, expect } from "bun:test"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { TaskStore } from "../../layers/Storage/TaskStore.ts"
import { StorageError } from "../../src/storage/Account.ts"
import { depthWithin, makeTasks, type TaskOutcome } from "../../src/droneengage/Tasks.ts"
import type { Envelope } from "../../src/droneengage/Wire.ts"
import { it } from "../support/effect.ts"

const web = { accountId: "acc-7", accountName: "pilot@example.com", unitName: "web-1" }
const drone = { accountId: "acc-7", accountName: "pilot@example.com", unitName: "drone-1" }
const options = { maxBodyBytes: 256, maxTasksPerAccount: 3, maxLoadBytes: 1 << 20 }

const fence = {
  ai: "pilot@example.com",
  ps: "_any_",
  gn: "1",
  s: "web-1",
  r: "_drone_",
  mt: 1027,
  ip: true,
  t: { fn: "home", pts: [[1, 2]] }
}
const envelope = (mt: number, ms: unknown, extra: Record<string, unknown> = {}): Envelope =>
  ({ ty: "s", mt, ms, ...extra }) as Envelope

const frames = (outcome: TaskOutcome) => {
  if (outcome._tag !== "Replies") throw new Error(`refused: ${outcome.reason} ${outcome.text}`)
  return outcome.frames.map((frame) => JSON.parse(frame))
}
const refusal = (outcome: TaskOutcome) => (outcome._tag === "Refused" ? outcome.reason : "replied")

const withTasks = <A, E>(
  body: (tasks: Effect.Effect.Success<ReturnType<typeof makeTasks>>) => Effect.Effect<A, E>,
  store = MemoryTaskStore
) => Effect.flatMap(makeTasks(options), body).pipe(Effect.provide(store))

describe("stored tasks (9001-9004)", () => {
  it.effect(
    "save answers Done (9002); load replays each task as an individual message with sid, the body and the stored type",
    () =>
      withTasks((tasks) =>
        Effect.gen(function* () {
          const saved = frames(yield* tasks.handle(web, envelope(9002, fence, { sd: "spoof", p: 99, extra: "kept" })))
          expect(saved).toEqual([{ ty: "i", tg: "web-1", sd: "_SYS_", mt: 9002, ms: "Done", extra: "kept" }])
          yield* tasks.handle(web, envelope(9002, { ...fence, mt: 1031, t: { a: [1] } }))
          const loaded = frames(
            yield* tasks.handle(
              drone,
              envelope(9001, { ai: "pilot@example.com", ps: "_any_", gn: "1", r: "_drone_", ip: 1 })
            )
          )
          expect(loaded.map((m) => [m.ty, m.tg, m.sd, m.mt, m.ms])).toEqual([
            ["i", "drone-1", "_SYS_", 1027, fence.t],
            ["i", "drone-1", "_SYS_", 1031, { a: [1] }]
          ])
          expect(loaded[0].sid).toBeLessThan(loaded[1].sid)
          const after = frames(yield* tasks.handle(drone, envelope(9001, { lts: String(loaded[0].sid) })))
          expect(after.map((m) => m.sid)).toEqual([loaded[1].sid])
          expect(frames(yield* tasks.handle(drone, envelope(9001, { mt: 1031 }))).map((m) => m.mt)).toEqual([1031])
          // An older client sends ms as JSON text.
          expect(frames(yield* tasks.handle(drone, envelope(9001, JSON.stringify({ mt: 1027 })))).length).toBe(1)
        })
      )
  )

  it.effect("delete (9003) and disable (9004) answer Done with their types and act on the matching tasks only", () =>
    withTasks((tasks) =>
      Effect.gen(function* () {
        yield* tasks.handle(web, envelope(9002, fence))
        yield* tasks.handle(web, envelope(9002, { ...fence, mt: 1031 }))
        yield* tasks.handle(web, envelope(9002, { ...fence, mt: 1040 }))
        expect(frames(yield* tasks.handle(web, envelope(9004, { ai: fence.ai, mt: 1031 })))[0]).toMatchObject({
          mt: 9004,
          ms: "Done",
          tg: "web-1"
        })
        expect(frames(yield* tasks.handle(web, envelope(9001, {}))).map((m) => m.mt)).toEqual([1027, 1040])
        expect(frames(yield* tasks.handle(web, envelope(9003, { t: fence.t, mt: 1027 })))[0]).toMatchObject({
          mt: 9003,
          ms: "Done"
        })
        expect(frames(yield* tasks.handle(web, envelope(9001, {}))).map((m) => m.mt)).toEqual([1040])
        // Nothing matched: still answered (the original stays silent).
        expect(frames(yield* tasks.handle(web, envelope(9003, { mt: 5 })))[0]).toMatchObject({ mt: 9003, ms: "Done" })
      })
    )
  )

  it.effect("a foreign ai is refused; the account's name or id and no ai at all are the unit's own account", () =>
    withTasks((tasks) =>
      Effect.gen(function* () {
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, ai: "victim@example.com" })))).toBe(
          "foreign-account"
        )
        expect(refusal(yield* tasks.handle(web, envelope(9001, { ai: "acc-8" })))).toBe("foreign-account")
        expect(refusal(yield* tasks.handle(web, envelope(9003, { ai: "other" })))).toBe("foreign-account")
        expect(refusal(yield* tasks.handle(web, envelope(9004, { ai: "other" })))).toBe("foreign-account")
        yield* tasks.handle(web, envelope(9002, { ...fence, ai: "acc-7" }))
        yield* tasks.handle(web, envelope(9002, { ...fence, ai: undefined }))
        expect(frames(yield* tasks.handle(drone, envelope(9001, { ai: "pilot@example.com" }))).length).toBe(2)
        // Another account's unit sees none of them, whatever it writes.
        const stranger = { accountId: "acc-8", accountName: "other@example.com", unitName: "web-1" }
        expect(frames(yield* tasks.handle(stranger, envelope(9001, { ai: "other@example.com" })))).toEqual([])
      })
    )
  )

  it.effect("bodies are schema-checked and size-limited; the account's quota holds", () =>
    withTasks((tasks) =>
      Effect.gen(function* () {
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, mt: undefined })))).toBe("task-invalid")
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, t: undefined })))).toBe("task-invalid")
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, mt: "1027" })))).toBe("task-invalid")
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, ps: 5 })))).toBe("task-invalid")
        // Error texts name the field and the rule, never the value.
        const long = yield* tasks.handle(web, envelope(9002, { ...fence, ps: "p".repeat(5000) }))
        expect(long).toEqual({ _tag: "Refused", reason: "task-invalid", text: expect.stringMatching(/^ps: /) })
        expect(long._tag === "Refused" && long.text.includes("ppp")).toBe(false)
        let nested = "1"
        for (let i = 0; i < 100; i++) nested = `[${nested}]`
        expect(yield* tasks.handle(web, envelope(9001, `{"t":${nested}}`))).toMatchObject({
          reason: "task-invalid",
          text: "ms nests deeper than 64 levels"
        })
        expect(refusal(yield* tasks.handle(web, envelope(9001, { lts: "1; DROP" })))).toBe("task-invalid")
        expect(refusal(yield* tasks.handle(web, envelope(9001, "{not json")))).toBe("task-invalid")
        expect(refusal(yield* tasks.handle(web, envelope(9001, [1])))).toBe("task-invalid")
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, t: "x".repeat(300) })))).toBe(
          "task-too-large"
        )
        let deep: unknown = 1
        for (let i = 0; i < 40; i++) deep = [deep]
        expect(refusal(yield* tasks.handle(web, envelope(9002, { ...fence, t: deep })))).toBe("task-invalid")
        for (let i = 0; i < 3; i++) yield* tasks.handle(web, envelope(9002, fence))
        expect(refusal(yield* tasks.handle(web, envelope(9002, fence)))).toBe("task-quota")
        yield* tasks.handle(web, envelope(9003, {}))
        expect(refusal(yield* tasks.handle(web, envelope(9002, fence)))).toBe("replied")
      })
    )
  )

  it.effect("concurrent saves never exceed the account's quota", () => {
    // A store whose count yields, as a database round trip does: saves of other fibers run in between.
    const slowCount = Layer.effect(
      TaskStore,
      Effect.map(TaskStore, (store) => ({
        ...store,
        count: (id: string) => Effect.zipLeft(store.count(id), Effect.yieldNow())
      }))
    ).pipe(Layer.provide(MemoryTaskStore))
    return withTasks(
      (tasks) =>
        Effect.gen(function* () {
          const outcomes = yield* Effect.all(
            Array.from({ length: 10 }, () => tasks.handle(web, envelope(9002, fence))),
            { concurrency: "unbounded" }
          )
          expect(outcomes.map(refusal).filter((r) => r === "replied").length).toBe(options.maxTasksPerAccount)
          expect(outcomes.map(refusal).filter((r) => r === "task-quota").length).toBe(10 - options.maxTasksPerAccount)
        }),
      slowCount
    )
  })

  it.effect("a load replays at most maxLoadBytes (at least one task); the rest follows with lts = the last sid", () =>
    Effect.gen(function* () {
      const tasks = yield* makeTasks({ maxBodyBytes: 4096, maxTasksPerAccount: 100, maxLoadBytes: 2500 })
      for (let i = 0; i < 5; i++)
        yield* tasks.handle(web, envelope(9002, { ...fence, t: { i, pad: "x".repeat(1000) } }))
      const pages: Array<Array<number>> = []
      let lts: number | undefined
      for (;;) {
        const page = frames(yield* tasks.handle(drone, envelope(9001, lts === undefined ? {} : { lts })))
        if (page.length === 0) break
        pages.push(page.map((m) => m.ms.i))
        lts = page[page.length - 1].sid
      }
      expect(pages).toEqual([[0, 1], [2, 3], [4]])
      // A single task over the budget still comes, alone.
      const small = yield* makeTasks({ maxBodyBytes: 4096, maxTasksPerAccount: 100, maxLoadBytes: 10 })
      expect(frames(yield* small.handle(drone, envelope(9001, {}))).length).toBe(1)
    }).pipe(Effect.provide(MemoryTaskStore))
  )

  it.effect("a storage failure is answered with task-storage, not a crash", () => {
    const failing = Layer.succeed(TaskStore, {
      save: () => Effect.fail(new StorageError({ message: "disk full" })),
      load: () => Effect.fail(new StorageError({ message: "disk full" })),
      remove: () => Effect.fail(new StorageError({ message: "disk full" })),
      disable: () => Effect.fail(new StorageError({ message: "disk full" })),
      count: () => Effect.succeed(0)
    })
    return withTasks(
      (tasks) =>
        Effect.gen(function* () {
          for (const mt of [9001, 9002, 9003, 9004])
            expect(refusal(yield* tasks.handle(web, envelope(mt, fence)))).toBe("task-storage")
        }),
      failing
    ).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.None)))
  })

  it.effect("depthWithin bounds nesting without recursion", () =>
    Effect.sync(() => {
      expect(depthWithin({ a: [1, { b: 2 }] }, 3)).toBe(true)
      expect(depthWithin({ a: [1, { b: 2 }] }, 2)).toBe(false)
      expect(depthWithin("flat", 0)).toBe(true)
    })
  )
})
