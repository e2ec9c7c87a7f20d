import { describe, expect } from "bun:test"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { ConnectionScope } from "../../../layers/Transport/ConnectionScope.ts"
import { it } from "../../support/effect.ts"

describe("ConnectionScope", () => {
  it.effect("finalizers run once, last added first; one added after the close runs at once", () =>
    Effect.gen(function* () {
      const scope = new ConnectionScope()
      const ran: Array<string> = []
      const note = (name: string) => Effect.sync(() => void ran.push(name))
      yield* Effect.addFinalizer(() => note("first")).pipe(Scope.extend(scope))
      yield* Effect.addFinalizer(() => note("second")).pipe(Scope.extend(scope))
      expect(scope.closeIfEmpty(Exit.void)).toBe(false)
      yield* Scope.close(scope, Exit.void)
      yield* Scope.close(scope, Exit.void)
      expect(ran).toEqual(["second", "first"])
      yield* Effect.addFinalizer(() => note("late")).pipe(Scope.extend(scope))
      expect(ran).toEqual(["second", "first", "late"])
    })
  )

  it.effect("a scoped fiber is interrupted by the close; one that ended is forgotten", () =>
    Effect.gen(function* () {
      const scope = new ConnectionScope()
      const started = yield* Deferred.make<void>()
      const ended = yield* Effect.forkScoped(Effect.void).pipe(Scope.extend(scope))
      yield* Fiber.join(ended)
      const waiting = yield* Effect.forkScoped(
        Deferred.succeed(started, undefined).pipe(Effect.zipRight(Effect.never))
      ).pipe(Scope.extend(scope))
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      expect(Exit.isInterrupted(yield* Fiber.await(waiting))).toBe(true)
    })
  )

  it.effect("a failing finalizer fails the close after the others ran", () =>
    Effect.gen(function* () {
      const scope = new ConnectionScope()
      let ran = false
      yield* Effect.addFinalizer(() => Effect.sync(() => (ran = true))).pipe(Scope.extend(scope))
      yield* Effect.addFinalizer(() => Effect.die("boom")).pipe(Scope.extend(scope))
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(ran).toBe(true)
    })
  )

  it.effect("a scope nothing was added to closes on the spot", () =>
    Effect.gen(function* () {
      const scope = new ConnectionScope()
      expect(scope.closeIfEmpty(Exit.void)).toBe(true)
      let ran = false
      yield* Effect.addFinalizer(() => Effect.sync(() => (ran = true))).pipe(Scope.extend(scope))
      expect(ran).toBe(true)
    })
  )
})
