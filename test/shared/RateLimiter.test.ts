import { describe, expect } from "bun:test"
import { Effect, TestClock } from "effect"
import { ConnectionLimiter, makeKeyedLimiter } from "../../src/shared/RateLimiter.ts"
import { it } from "../support/effect.ts"

describe("KeyedLimiter", () => {
  it.effect("admits a burst per key, refills at the rate, keys do not share tokens", () =>
    Effect.gen(function* () {
      const limiter = yield* makeKeyedLimiter("test", { ratePerSecond: 2, burst: 3 })
      expect([0, 0, 0, 0].map(() => limiter.admit("a", 0))).toEqual([true, true, true, false])
      expect(limiter.admit("b", 0)).toBe(true)
      expect(limiter.retryAfter("a", 0)).toBe(1)
      expect(limiter.admit("a", 500)).toBe(true)
      expect(limiter.admit("a", 500)).toBe(false)
    })
  )

  it.effect("blocks after the configured strikes and says how long; the sweep forgets idle keys", () =>
    Effect.gen(function* () {
      const limiter = yield* makeKeyedLimiter("test", {
        ratePerSecond: 1,
        burst: 1,
        blockFor: "60 seconds",
        strikes: 2
      })
      expect(limiter.admit("ip", 0)).toBe(true)
      expect(limiter.admit("ip", 0)).toBe(false)
      expect(limiter.isBlocked("ip", 0)).toBe(false)
      expect(limiter.admit("ip", 0)).toBe(false)
      expect(limiter.isBlocked("ip", 0)).toBe(true)
      expect(limiter.retryAfter("ip", 0)).toBe(60)
      expect(limiter.admit("ip", 30_000)).toBe(false)
      expect(limiter.isBlocked("ip", 60_000)).toBe(false)
      expect(limiter.admit("ip", 60_000)).toBe(true)
      yield* TestClock.adjust("2 minutes")
      expect(limiter.retryAfter("ip", 120_000)).toBe(0)
    })
  )
})

describe("ConnectionLimiter", () => {
  it.effect("limited, then abusive after strikes in a row; a success resets the strikes", () =>
    Effect.sync(() => {
      const limiter = new ConnectionLimiter({ ratePerSecond: 10, burst: 1, strikes: 2 }, 0)
      expect(limiter.admit(0)).toBe("ok")
      expect(limiter.admit(0)).toBe("limited")
      expect(limiter.admit(100)).toBe("ok")
      expect(limiter.admit(100)).toBe("limited")
      expect(limiter.admit(100)).toBe("abusive")
    })
  )
})
