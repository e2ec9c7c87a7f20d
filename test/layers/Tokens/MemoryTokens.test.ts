import { describe, expect } from "bun:test"
import { Duration, Effect, FastCheck, Option, TestClock } from "effect"
import { MemoryTokensLive } from "../../../layers/Tokens/MemoryTokens.ts"
import { Tokens } from "../../../layers/Tokens/Tokens.ts"
import { it } from "../../support/effect.ts"

const ttl = Duration.seconds(10)

describe("MemoryTokens", () => {
  it.effect("take is single use; kinds are apart; tokens are 32 hex characters", () =>
    Effect.gen(function* () {
      const tokens = yield* Tokens
      const token = yield* tokens.issue("key", "grant", ttl)
      expect(token).toMatch(/^[0-9a-f]{32}$/)
      expect(yield* tokens.take("other", token)).toEqual(Option.none())
      expect(yield* tokens.take("key", token)).toEqual(Option.some("grant"))
      expect(yield* tokens.take("key", token)).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("expiry follows the clock; a sliding get moves it; the sweep forgets expired tokens", () =>
    Effect.gen(function* () {
      const tokens = yield* Tokens
      const fixed = yield* tokens.issue("session", "a", ttl)
      const sliding = yield* tokens.issue("session", "b", ttl)
      yield* TestClock.adjust("6 seconds")
      expect(yield* tokens.get("session", sliding, ttl)).toEqual(Option.some("b"))
      yield* TestClock.adjust("6 seconds")
      expect(yield* tokens.get("session", fixed)).toEqual(Option.none())
      expect(yield* tokens.get("session", sliding)).toEqual(Option.some("b"))
      yield* TestClock.adjust("20 seconds")
      expect(yield* tokens.count("session")).toBe(0)
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("revoke and revokeIndexed end a token; a wrong guess of the same length finds nothing", () =>
    Effect.gen(function* () {
      const tokens = yield* Tokens
      const one = yield* tokens.issue("session", "1", ttl, "request-1")
      const two = yield* tokens.issue("session", "2", ttl)
      expect(yield* tokens.revokeIndexed("session", "request-1")).toBe(true)
      expect(yield* tokens.get("session", one)).toEqual(Option.none())
      expect(
        yield* tokens.get(
          "session",
          two.replace(/.$/, (c) => (c === "0" ? "1" : "0"))
        )
      ).toEqual(Option.none())
      expect(yield* tokens.revoke("session", two)).toBe(true)
      expect(yield* tokens.revoke("session", two)).toBe(false)
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("takeNow answers as take does: live, used, expired, wrong kind, near misses (two stores, same steps)", () =>
    Effect.gen(function* () {
      const step = FastCheck.oneof(
        FastCheck.record({ op: FastCheck.constant("issue" as const), kind: FastCheck.constantFrom("a", "b") }),
        FastCheck.record({
          op: FastCheck.constant("take" as const),
          kind: FastCheck.constantFrom("a", "b"),
          pick: FastCheck.nat(),
          nearMiss: FastCheck.boolean()
        }),
        FastCheck.record({ op: FastCheck.constant("wait" as const), seconds: FastCheck.integer({ min: 1, max: 6 }) })
      )
      const runs = FastCheck.sample(FastCheck.array(step, { maxLength: 40 }), { numRuns: 60, seed: 4 })
      for (const steps of runs) {
        // The same steps against two fresh stores: one taken through the Effect, one on the spot.
        const answers = yield* Effect.forEach(["effect", "now"] as const, (way) =>
          Effect.scoped(
            Effect.gen(function* () {
              const tokens = yield* Tokens
              expect(tokens.takeNow).toBeDefined()
              const issued: Array<string> = []
              const seen: Array<Option.Option<string>> = []
              for (const [i, s] of steps.entries()) {
                if (s.op === "issue") issued.push(yield* tokens.issue(s.kind, `${s.kind}${i}`, ttl))
                else if (s.op === "wait") yield* TestClock.adjust(Duration.seconds(s.seconds))
                else {
                  const picked = issued.length === 0 ? "0".repeat(32) : issued[s.pick % issued.length]!
                  // Tokens differ between the stores; a near miss flips the last character of the same pick.
                  const token = s.nearMiss ? picked.slice(0, 31) + (picked[31] === "0" ? "1" : "0") : picked
                  seen.push(way === "now" ? tokens.takeNow!(s.kind, token) : yield* tokens.take(s.kind, token))
                }
              }
              return seen
            }).pipe(Effect.provide(MemoryTokensLive))
          )
        )
        expect(answers[1]).toEqual(answers[0]!)
      }
    })
  )
})
