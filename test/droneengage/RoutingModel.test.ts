import { describe, expect } from "bun:test"
import { Effect, Exit, FastCheck, Scope } from "effect"
import { it } from "../support/effect.ts"
import { connectUnit, seedAccounts, startStack, TestServices, type Unit } from "./harness.ts"

interface Member {
  readonly account: "alpha" | "beta"
  readonly group: "1" | "2"
  readonly actor: "g" | "d"
  readonly name: string
}

interface Message {
  readonly from: number
  readonly ty: "g" | "i"
  /** undefined: no tg; a number: the name of that member; else a reserved target. */
  readonly tg: undefined | "_GCS_" | "_GD_" | "_AGN_" | number
}

/** The original's routing rules as a model: who receives a message (never the sender, never outside its account and group). */
const receivers = (members: ReadonlyArray<Member>, message: Message): ReadonlyArray<number> => {
  const sender = members[message.from]!
  const broadcast = (m: Member) => (sender.actor === "g" ? true : m.actor === "g")
  const target = typeof message.tg === "number" ? members[message.tg]!.name : message.tg
  const hears = (m: Member): boolean => {
    if (message.ty === "g" || target === undefined) return broadcast(m)
    if (target === "_GCS_") return m.actor === "g"
    if (target === "_GD_") return true
    if (target === "_AGN_") return m.actor === "d"
    return m.name === target
  }
  return members.flatMap((m, i) =>
    i !== message.from && m.account === sender.account && m.group === sender.group && hears(m) ? [i] : []
  )
}

const scenario = FastCheck.uniqueArray(
  FastCheck.record({
    account: FastCheck.constantFrom("alpha" as const, "beta" as const),
    group: FastCheck.constantFrom("1" as const, "2" as const),
    actor: FastCheck.constantFrom("g" as const, "d" as const),
    name: FastCheck.constantFrom("u1", "u2", "u3", "u4", "u5", "u6")
  }),
  { minLength: 2, maxLength: 8, selector: (m) => `${m.account}/${m.name}` }
).chain((members) =>
  FastCheck.record({
    members: FastCheck.constant(members),
    messages: FastCheck.array(
      FastCheck.record({
        from: FastCheck.nat(members.length - 1),
        ty: FastCheck.constantFrom("g" as const, "i" as const),
        tg: FastCheck.oneof(
          FastCheck.constant(undefined),
          FastCheck.constantFrom("_GCS_" as const, "_GD_" as const, "_AGN_" as const),
          FastCheck.nat(members.length - 1)
        )
      }),
      { minLength: 10, maxLength: 60 }
    )
  })
)

describe("DroneEngage routing against a model (generated, memory transport)", () => {
  it.effect(
    "for generated units and messages, each unit receives exactly what the model says, in order",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        let checked = 0
        for (const { members, messages } of FastCheck.sample(scenario, 15)) {
          const scope = yield* Scope.make()
          yield* Effect.gen(function* () {
            const stack = yield* startStack()
            const units: Array<Unit> = []
            for (const m of members) units.push(yield* connectUnit(stack, m.account, m.actor, m.name, m.group))
            const expected: Array<Array<number>> = members.map(() => [])
            for (const [n, message] of messages.entries()) {
              const target = typeof message.tg === "number" ? members[message.tg]!.name : message.tg
              const sender = members[message.from]!
              const inGroup = members.some(
                (m) => m.account === sender.account && m.group === sender.group && m.name === target
              )
              const envelope =
                target === undefined ? { ty: message.ty, mt: n, ms: {} } : { ty: message.ty, tg: target, mt: n, ms: {} }
              yield* units[message.from]!.send(JSON.stringify(envelope))
              // A unit target outside the sender's group is answered with target-not-found.
              if (message.ty === "i" && typeof message.tg === "number" && !inGroup) expected[message.from]!.push(-n - 1)
              for (const r of receivers(members, message)) expected[r]!.push(n)
            }
            for (const [i, unit] of units.entries()) {
              yield* unit.send(JSON.stringify({ ty: "s", mt: 9005, ms: {} }))
              const got: Array<number> = []
              while (true) {
                const frame = yield* unit.nextJson()
                if (frame.mt === 9005) break
                got.push(frame.mt === 9100 ? -frame.ms.mt - 1 : frame.mt)
              }
              expect({ unit: i, got }).toEqual({ unit: i, got: expected[i]! })
            }
            checked += messages.length
          }).pipe(Scope.extend(scope))
          yield* Scope.close(scope, Exit.void)
        }
        expect(checked).toBeGreaterThan(300)
      }).pipe(Effect.provide(TestServices)),
    30_000
  )
})
