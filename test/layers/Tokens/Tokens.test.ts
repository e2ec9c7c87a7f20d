import { describe, expect } from "bun:test"
import { Effect, FastCheck } from "effect"
import { TokenTable } from "../../../layers/Tokens/TokenTable.ts"
import { it } from "../../support/effect.ts"

describe("TokenTable index", () => {
  it.effect("after any sequence of inserts and deletes, deleteByIndex agrees with a scan (property)", () =>
    Effect.sync(() => {
      const step = FastCheck.oneof(
        FastCheck.record({
          op: FastCheck.constant("insert" as const),
          token: FastCheck.integer({ min: 0, max: 9 }),
          tag: FastCheck.integer({ min: 0, max: 9 })
        }),
        FastCheck.record({ op: FastCheck.constant("delete" as const), token: FastCheck.integer({ min: 0, max: 9 }) }),
        FastCheck.record({
          op: FastCheck.constant("deleteByIndex" as const),
          tag: FastCheck.integer({ min: 0, max: 9 })
        })
      )
      FastCheck.assert(
        FastCheck.property(FastCheck.array(step, { maxLength: 60 }), (steps) => {
          const table = new TokenTable<number>((tag) => `t${tag}`)
          const model = new Map<number, number>() // token → tag
          for (const s of steps) {
            if (s.op === "insert") {
              // Tags are unique per entry, as login request ids are: drop any holder of this tag first.
              for (const [token, tag] of model) if (tag === s.tag) model.delete(token), table.delete(`k${token}`)
              table.insert(`k${s.token}`, s.tag, Number.MAX_SAFE_INTEGER)
              model.set(s.token, s.tag)
            } else if (s.op === "delete") {
              expect(table.delete(`k${s.token}`)).toBe(model.delete(s.token))
            } else {
              const holder = [...model].find(([, tag]) => tag === s.tag)
              expect(table.deleteByIndex(`t${s.tag}`)).toBe(holder !== undefined)
              if (holder) model.delete(holder[0])
            }
            expect(table.size).toBe(model.size)
          }
        })
      )
    })
  )
})
