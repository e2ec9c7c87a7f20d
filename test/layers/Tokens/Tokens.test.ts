import { describe, expect } from "bun:test"
import { Effect, FastCheck, Option, TestClock } from "effect"
import { makeLoginKeys } from "../../../src/droneengage/LoginKeys.ts"
import { makeSessions } from "../../../src/droneengage/Sessions.ts"
import { TokenTable } from "../../../layers/Tokens/TokenTable.ts"
import { it } from "../../support/effect.ts"

describe("LoginKeys", () => {
  it.effect("a key is 32 hex chars, works once, and carries its grant", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys<{ account: string }>({ ttl: "10 seconds" })
      const key = yield* keys.issue({ account: "a" })
      expect(key).toMatch(/^[0-9a-f]{32}$/)
      expect(yield* keys.consume(key)).toEqual(Option.some({ account: "a" }))
      expect(yield* keys.consume(key)).toEqual(Option.none())
    }))

  it.effect("keys are unique and unknown or near-miss keys are refused", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys<number>({ ttl: "10 seconds" })
      const issued = new Set<string>()
      for (let i = 0; i < 200; i++) issued.add(yield* keys.issue(i))
      expect(issued.size).toBe(200)
      const key = [...issued][0]!
      const nearMiss = key.slice(0, 31) + (key[31] === "0" ? "1" : "0")
      expect(yield* keys.consume(nearMiss)).toEqual(Option.none())
      expect(yield* keys.consume(key.toUpperCase())).toEqual(Option.none())
      expect(yield* keys.consume("")).toEqual(Option.none())
      expect(Option.isSome(yield* keys.consume(key))).toBe(true)
    }))

  it.effect("a key expires after its ttl and the sweeper drops expired keys", () =>
    Effect.gen(function* () {
      const keys = yield* makeLoginKeys<string>({ ttl: "10 seconds" })
      const late = yield* keys.issue("late")
      const inTime = yield* keys.issue("in time")
      yield* TestClock.adjust("9 seconds")
      expect(yield* keys.consume(inTime)).toEqual(Option.some("in time"))
      yield* TestClock.adjust("1 second")
      expect(yield* keys.consume(late)).toEqual(Option.none())
      yield* keys.issue("swept")
      expect(keys.size()).toBe(1)
      yield* TestClock.adjust("20 seconds")
      expect(keys.size()).toBe(0)
    }))
})

describe("Sessions", () => {
  it.effect("fixed sessions end ttl after creation however often they are used", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions<string>({ ttl: "1 hour", sliding: false })
      const sid = yield* sessions.create("alice")
      expect(sid).toMatch(/^[0-9a-f]{32}$/)
      yield* TestClock.adjust("59 minutes")
      expect(yield* sessions.get(sid)).toEqual(Option.some("alice"))
      yield* TestClock.adjust("1 minute")
      expect(yield* sessions.get(sid)).toEqual(Option.none())
    }))

  it.effect("sliding sessions live while they are used", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions<string>({ ttl: "10 minutes", sliding: true })
      const sid = yield* sessions.create("bob")
      for (let i = 0; i < 6; i++) {
        yield* TestClock.adjust("9 minutes")
        expect(yield* sessions.get(sid)).toEqual(Option.some("bob"))
      }
      yield* TestClock.adjust("10 minutes")
      expect(yield* sessions.get(sid)).toEqual(Option.none())
    }))

  it.effect("end and endWhere remove sessions; the sweeper drops expired ones", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions<{ request: string }>({ ttl: "5 minutes", sliding: false, sweepInterval: "1 minute" })
      const a = yield* sessions.create({ request: "r1" })
      const b = yield* sessions.create({ request: "r2" })
      expect(yield* sessions.end(a)).toBe(true)
      expect(yield* sessions.end(a)).toBe(false)
      expect(yield* sessions.endWhere((s) => s.request === "r2")).toBe(1)
      expect(yield* sessions.get(b)).toEqual(Option.none())
      yield* sessions.create({ request: "r3" })
      yield* TestClock.adjust("6 minutes")
      expect(sessions.size()).toBe(0)
    }))

  it.effect("endIndexed ends exactly the session of one login request among many", () =>
    Effect.gen(function* () {
      const sessions = yield* makeSessions<{ account: string; request: string }>({
        ttl: "5 minutes",
        sliding: false,
        index: (s) => `${s.account}/${s.request}`
      })
      const sids: Array<string> = []
      for (let i = 0; i < 5000; i++) sids.push(yield* sessions.create({ account: `a${i % 7}`, request: `r${i}` }))
      expect(yield* sessions.endIndexed("a3/r1234")).toBe(false) // r1234 belongs to a2
      expect(yield* sessions.endIndexed("a2/r1234")).toBe(true)
      expect(yield* sessions.endIndexed("a2/r1234")).toBe(false)
      expect(sessions.size()).toBe(4999)
      expect(yield* sessions.get(sids[1234]!)).toEqual(Option.none())
      expect(yield* sessions.get(sids[1233]!)).toEqual(Option.some({ account: "a1", request: "r1233" }))
      // A session ended by sid or swept on expiry leaves no index entry behind.
      expect(yield* sessions.end(sids[0]!)).toBe(true)
      expect(yield* sessions.endIndexed("a0/r0")).toBe(false)
      yield* TestClock.adjust("6 minutes")
      expect(sessions.size()).toBe(0)
      expect(yield* sessions.endIndexed("a1/r1")).toBe(false)
    }))
})

describe("TokenTable index", () => {
  it.effect("after any sequence of inserts and deletes, deleteByIndex agrees with a scan (property)", () =>
    Effect.sync(() => {
      const step = FastCheck.oneof(
        FastCheck.record({ op: FastCheck.constant("insert" as const), token: FastCheck.integer({ min: 0, max: 9 }), tag: FastCheck.integer({ min: 0, max: 9 }) }),
        FastCheck.record({ op: FastCheck.constant("delete" as const), token: FastCheck.integer({ min: 0, max: 9 }) }),
        FastCheck.record({ op: FastCheck.constant("deleteByIndex" as const), tag: FastCheck.integer({ min: 0, max: 9 }) })
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
    }))
})
