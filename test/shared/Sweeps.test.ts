import { describe, expect } from "bun:test"
import { Duration, Effect, Exit, Scope, TestClock } from "effect"
import { sweepEvery } from "../../src/shared/Sweeps.ts"
import { it } from "../support/effect.ts"
describe("server-wide sweeps", () => {
  it.effect(
    "one sweep per interval visits the current members; a failing visit does not stop it; it ends with its scope (TestClock)",
    () =>
      Effect.gen(function* () {
        const members = new Set(["a", "b"])
        const visits: Array<string> = []
        const scope = yield* Scope.make()
        yield* sweepEvery("test", Duration.seconds(5), members, (member, now) => {
          visits.push(`${member}@${now}`)
          if (member === "b") return Effect.die("broken visit")
          members.delete(member)
        }).pipe(Scope.extend(scope))
        yield* TestClock.adjust(Duration.seconds(4))
        expect(visits).toEqual([])
        yield* TestClock.adjust(Duration.seconds(1))
        expect(visits).toEqual(["a@5000", "b@5000"])
        members.add("c")
        yield* TestClock.adjust(Duration.seconds(5))
        expect(visits).toEqual(["a@5000", "b@5000", "b@10000", "c@10000"])
        yield* Scope.close(scope, Exit.void)
        const before = visits.length
        yield* TestClock.adjust(Duration.seconds(30))
        expect(visits.length).toBe(before)
      })
  )
})
