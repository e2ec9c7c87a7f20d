import { describe, expect } from "bun:test"
import { Duration, Effect, Option, TestClock } from "effect"
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
})
