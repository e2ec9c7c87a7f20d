import { describe, expect } from "bun:test"
import { Arbitrary, Effect, FastCheck, Layer, Option, Schema, TestClock } from "effect"
import { makeMemoryTokens, MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { Tokens } from "../../layers/Tokens/Tokens.ts"
import { makeLoginKeys } from "../../src/droneengage/LoginKeys.ts"
import { LoginRequestData } from "../../src/droneengage/S2S.ts"
import { makeSessions } from "../../src/droneengage/Sessions.ts"
import { it } from "../support/effect.ts"

/** DroneEngage's login keys and sessions as typed wrappers over the Tokens Tag (memory implementation). */
describe("LoginKeys (over Tokens)", () => {
  it.effect("a key is 32 hex chars, works once, and carries its grant", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys(Schema.Struct({ account: Schema.String }), {
        kind: "test/key",
        ttl: "10 seconds"
      })
      const key = yield* keys.issue({ account: "a" })
      expect(key).toMatch(/^[0-9a-f]{32}$/)
      expect(yield* keys.consume(key)).toEqual(Option.some({ account: "a" }))
      expect(yield* keys.consume(key)).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("a grant comes back the same from the issuing process's values as decoded from the store", () =>
    Effect.gen(function* () {
      const options = { kind: "test/key", ttl: "10 seconds" as const }
      // Two relays sharing one store: keys issued by one are consumed by the other from JSON.
      const here = yield* makeLoginKeys(LoginRequestData, options)
      const there = yield* makeLoginKeys(LoginRequestData, options)
      const grants = FastCheck.sample(Arbitrary.make(LoginRequestData), { numRuns: 200, seed: 13 })
      for (const grant of grants) {
        const decoded = Schema.decodeSync(Schema.parseJson(LoginRequestData))(JSON.stringify(grant))
        const local = yield* here.consume(yield* here.issue(grant))
        const remote = yield* there.consume(yield* here.issue(grant))
        expect(local).toEqual(Option.some(decoded))
        expect(remote).toEqual(Option.some(decoded))
      }
      const key = yield* here.issue(grants[0]!)
      expect(Option.isSome(yield* there.consume(key))).toBe(true)
      expect(yield* here.consume(key)).toEqual(Option.none())
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("issueNow and consumeNow answer as issue and consume do; a store without them leaves them out", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys(LoginRequestData, { kind: "test/key", ttl: "10 seconds" })
      const grants = FastCheck.sample(Arbitrary.make(LoginRequestData), { numRuns: 50, seed: 7 })
      for (const grant of grants) {
        const [one, two] = [yield* keys.issue(grant), yield* keys.issue(grant)]
        expect(keys.consumeNow!(one)).toEqual(yield* keys.consume(two))
        expect(keys.consumeNow!(one)).toEqual(Option.none())
        expect(yield* keys.consume(two)).toEqual(Option.none())
        const [three, four] = [keys.issueNow!(grant), keys.issueNow!(grant)]
        expect(three).toMatch(/^[0-9a-f]{32}$/)
        expect(yield* keys.consume(three)).toEqual(keys.consumeNow!(four))
        expect(Option.isSome(keys.consumeNow!(four))).toBe(false)
      }
      const tokens = yield* Tokens
      const { takeNow: _, issueNow: __, ...withoutTakeNow } = tokens
      const effectOnly = yield* makeLoginKeys(LoginRequestData, { kind: "test/key", ttl: "10 seconds" }).pipe(
        Effect.provideService(Tokens, withoutTakeNow)
      )
      expect(effectOnly.consumeNow).toBeUndefined()
      expect(effectOnly.issueNow).toBeUndefined()
      expect(Option.isSome(yield* effectOnly.consume(yield* effectOnly.issue(grants[0]!)))).toBe(true)
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("keys are unique and unknown or near-miss keys are refused; kinds do not mix", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys(Schema.Number, { kind: "test/key", ttl: "10 seconds" })
      const others = yield* makeLoginKeys(Schema.Number, { kind: "test/other", ttl: "10 seconds" })
      const issued = new Set<string>()
      for (let i = 0; i < 200; i++) issued.add(yield* keys.issue(i))
      expect(issued.size).toBe(200)
      const key = [...issued][0]!
      const nearMiss = key.slice(0, 31) + (key[31] === "0" ? "1" : "0")
      expect(yield* keys.consume(nearMiss)).toEqual(Option.none())
      expect(yield* keys.consume(key.toUpperCase())).toEqual(Option.none())
      expect(yield* keys.consume("")).toEqual(Option.none())
      expect(yield* others.consume(key)).toEqual(Option.none())
      expect(Option.isSome(yield* keys.consume(key))).toBe(true)
    }).pipe(Effect.provide(MemoryTokensLive))
  )

  it.effect("a key expires after its ttl and the sweeper drops expired keys", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys(Schema.String, { kind: "test/key", ttl: "10 seconds" })
      const late = yield* keys.issue("late")
      const inTime = yield* keys.issue("in time")
      yield* TestClock.adjust("9 seconds")
      expect(yield* keys.consume(inTime)).toEqual(Option.some("in time"))
      yield* TestClock.adjust("1 second")
      expect(yield* keys.consume(late)).toEqual(Option.none())
      yield* keys.issue("swept")
      expect(yield* keys.count).toBe(1)
      yield* TestClock.adjust("20 seconds")
      expect(yield* keys.count).toBe(0)
    }).pipe(Effect.provide(MemoryTokensLive))
  )
})

/** Sessions live for minutes to hours: a sweep a minute keeps TestClock jumps over an hour cheap. */
const SessionTokens = Layer.scoped(Tokens, makeMemoryTokens("1 minute"))

const Login = Schema.Struct({ account: Schema.String, request: Schema.String })
const byRequest = (s: typeof Login.Type) => `${s.account}/${s.request}`

describe("Sessions (over Tokens)", () => {
  it.effect("fixed sessions end ttl after creation however often they are used", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions(Schema.String, {
        kind: "test/session",
        ttl: "1 hour",
        sliding: false,
        index: (s) => s
      })
      const sid = yield* sessions.create("alice")
      expect(sid).toMatch(/^[0-9a-f]{32}$/)
      yield* TestClock.adjust("59 minutes")
      expect(yield* sessions.get(sid)).toEqual(Option.some("alice"))
      yield* TestClock.adjust("1 minute")
      expect(yield* sessions.get(sid)).toEqual(Option.none())
    }).pipe(Effect.provide(SessionTokens))
  )

  it.effect("sliding sessions live while they are used", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions(Schema.String, {
        kind: "test/session",
        ttl: "10 minutes",
        sliding: true,
        index: (s) => s
      })
      const sid = yield* sessions.create("bob")
      for (let i = 0; i < 6; i++) {
        yield* TestClock.adjust("9 minutes")
        expect(yield* sessions.get(sid)).toEqual(Option.some("bob"))
      }
      yield* TestClock.adjust("10 minutes")
      expect(yield* sessions.get(sid)).toEqual(Option.none())
    }).pipe(Effect.provide(SessionTokens))
  )

  it.effect("end removes a session; the sweeper drops expired ones", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions(Login, {
        kind: "test/session",
        ttl: "5 minutes",
        sliding: false,
        index: byRequest
      })
      const a = yield* sessions.create({ account: "a", request: "r1" })
      expect(yield* sessions.end(a)).toBe(true)
      expect(yield* sessions.end(a)).toBe(false)
      expect(yield* sessions.get(a)).toEqual(Option.none())
      yield* sessions.create({ account: "a", request: "r3" })
      yield* TestClock.adjust("6 minutes")
      expect(yield* sessions.count).toBe(0)
    }).pipe(Effect.provide(SessionTokens))
  )

  it.effect("endIndexed (LOGOUT by request id) ends exactly the session of one login request among many", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions(Login, {
        kind: "test/session",
        ttl: "5 minutes",
        sliding: false,
        index: byRequest
      })
      const sids: Array<string> = []
      for (let i = 0; i < 5000; i++) sids.push(yield* sessions.create({ account: `a${i % 7}`, request: `r${i}` }))
      expect(yield* sessions.endIndexed("a3/r1234")).toBe(false) // r1234 belongs to a2
      expect(yield* sessions.endIndexed("a2/r1234")).toBe(true)
      expect(yield* sessions.endIndexed("a2/r1234")).toBe(false)
      expect(yield* sessions.count).toBe(4999)
      expect(yield* sessions.get(sids[1234]!)).toEqual(Option.none())
      expect(yield* sessions.get(sids[1233]!)).toEqual(Option.some({ account: "a1", request: "r1233" }))
      // A session ended by sid or swept on expiry leaves no index entry behind.
      expect(yield* sessions.end(sids[0]!)).toBe(true)
      expect(yield* sessions.endIndexed("a0/r0")).toBe(false)
      yield* TestClock.adjust("6 minutes")
      expect(yield* sessions.count).toBe(0)
      expect(yield* sessions.endIndexed("a1/r1")).toBe(false)
    }).pipe(Effect.provide(SessionTokens))
  )

  it.effect("createNow and endIndexedNow (memory store) act like create and endIndexed, on the TestClock", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions(Login, {
        kind: "test/session",
        ttl: "5 minutes",
        sliding: false,
        index: byRequest
      })
      const { createNow, endIndexedNow } = sessions
      if (!createNow || !endIndexedNow) throw new Error("memory sessions answer on the spot")
      const now = createNow({ account: "a", request: "r1" })
      const later = createNow({ account: "a", request: "r2" })
      expect(yield* sessions.get(now)).toEqual(Option.some({ account: "a", request: "r1" }))
      expect(endIndexedNow("a/r1")).toBe(true)
      expect(endIndexedNow("a/r1")).toBe(false)
      expect(yield* sessions.get(now)).toEqual(Option.none())
      // Issued on the spot, it still expires by the store's clock.
      yield* TestClock.adjust("5 minutes")
      expect(yield* sessions.get(later)).toEqual(Option.none())
      expect(endIndexedNow("a/r2")).toBe(false)
    }).pipe(Effect.provide(SessionTokens))
  )
})
