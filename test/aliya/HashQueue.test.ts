import { describe, expect } from "bun:test"
import { Deferred, Effect, Fiber, Option, TestClock } from "effect"
import { MemoryNetwork } from "../../layers/Transport/MemoryTransport.ts"
import { saveAccount } from "../../src/aliya/Admin.ts"
import { budgetOfHeader, makeHashQueue, WAIT_HEADER } from "../../src/aliya/HashQueue.ts"
import { SERVICE_HEADER } from "../../src/aliya/ServiceHttp.ts"
import { it } from "../support/effect.ts"
import { aliyaTestLayer, serviceToken, startStack, testPasswordCost } from "./support.ts"
import { Redacted } from "effect"

/** A queue with one permit held by a check that finishes only when `release` is called; `hashes` counts checks run. */
const blockedQueue = Effect.gen(function* () {
  const queue = makeHashQueue(1, 1000)
  let hashes = 0
  const hash = Effect.sync(() => ++hashes)
  const gate = yield* Deferred.make<void>()
  const blocker = yield* Effect.fork(queue.run(Effect.zipRight(Deferred.await(gate), hash)))
  // Let the queued fibers reach the semaphore: a state we can observe, not a sleep.
  const queuedReaches = (n: number) =>
    Effect.gen(function* () {
      for (let i = 0; i < 1000 && queue.queued() !== n; i++) yield* Effect.yieldNow()
      expect(queue.queued()).toBe(n)
    })
  return {
    queue,
    hash,
    hashes: () => hashes,
    queuedReaches,
    release: Effect.zipRight(Deferred.succeed(gate, undefined), Fiber.join(blocker))
  }
})

describe("aliya AccountManager hash queue", () => {
  it.effect("checks that waited past their caller's wait are refused without hashing; the others hash", () =>
    Effect.gen(function* () {
      const q = yield* blockedQueue
      yield* q.queuedReaches(0)
      const late = yield* Effect.forkAll(Array.from({ length: 5 }, () => q.queue.run(q.hash, { waitMillis: 5000 })))
      const patient = yield* Effect.fork(q.queue.run(q.hash, { waitMillis: 60_000 }))
      const inProcess = yield* Effect.fork(q.queue.run(q.hash))
      yield* q.queuedReaches(7)
      // 4.001 s waited: a 5 s caller has under the 1 s hash allowance left.
      yield* TestClock.adjust("4001 millis")
      yield* q.release
      expect(yield* Fiber.join(late)).toEqual(Array.from({ length: 5 }, () => Option.none()))
      expect(Option.isSome(yield* Fiber.join(patient))).toBe(true)
      expect(Option.isSome(yield* Fiber.join(inProcess))).toBe(true)
      expect(q.hashes()).toBe(3) // the blocker, the patient caller, the in-process caller
      expect(q.queue.queued()).toBe(0)
    })
  )

  it.effect("a check still inside its caller's wait is admitted", () =>
    Effect.gen(function* () {
      const q = yield* blockedQueue
      const check = yield* Effect.fork(q.queue.run(q.hash, { waitMillis: 5000 }))
      yield* q.queuedReaches(1)
      yield* TestClock.adjust("4000 millis")
      yield* q.release
      expect(Option.isSome(yield* Fiber.join(check))).toBe(true)
      expect(q.hashes()).toBe(2)
    })
  )

  it.effect("an aborted check (its fiber interrupted while queued) leaves the queue and never hashes", () =>
    Effect.gen(function* () {
      const q = yield* blockedQueue
      const aborted = yield* Effect.fork(q.queue.run(q.hash))
      const next = yield* Effect.fork(q.queue.run(q.hash))
      yield* q.queuedReaches(2)
      yield* Fiber.interrupt(aborted)
      expect(q.queue.queued()).toBe(1)
      yield* q.release
      expect(Option.isSome(yield* Fiber.join(next))).toBe(true)
      expect(q.hashes()).toBe(2) // the blocker and `next`, not the aborted one
    })
  )

  it.effect("the wait header is read only as a plain number of milliseconds", () =>
    Effect.sync(() => {
      expect(budgetOfHeader("10000")).toEqual({ waitMillis: 10_000 })
      expect(budgetOfHeader("0")).toEqual({ waitMillis: 0 })
      for (const bad of [null, "", "-5", "1e9", "12.5", "99999999", " 10"]) expect(budgetOfHeader(bad)).toBeUndefined()
    })
  )

  it.effect("the AccountManager answers 503 / status 13 to a credential check its caller will not wait for", () =>
    Effect.gen(function* () {
      const stack = yield* startStack()
      yield* saveAccount(
        { uniqueId: "queued-player", bound: true, account: "queued", password: "pw-123456" },
        testPasswordCost
      )
      const network = yield* MemoryNetwork
      const port = stack.managerPorts.account
      const verify = (headers: Record<string, string>) =>
        Effect.flatMap(
          network.fetch(
            port,
            new Request(`http://memory:${port}/verify_credentials`, {
              method: "POST",
              headers: {
                [SERVICE_HEADER]: Redacted.value(serviceToken),
                "content-type": "application/json",
                ...headers
              },
              body: JSON.stringify({ identifier: "account", value: "queued", password: "pw-123456" })
            })
          ),
          (r) => Effect.promise(async () => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }))
        )
      // 500 ms is less than one hash's allowance: refused at once, the documented "try again".
      expect(yield* verify({ [WAIT_HEADER]: "500" })).toMatchObject({ status: 503, body: { status: 13 } })
      expect(yield* verify({ [WAIT_HEADER]: "10000" })).toMatchObject({
        status: 200,
        body: { status: 0, data: { unique_id: "queued-player" } }
      })
      expect(yield* verify({})).toMatchObject({ status: 200, body: { status: 0 } })
    }).pipe(Effect.provide(aliyaTestLayer()))
  )
})
