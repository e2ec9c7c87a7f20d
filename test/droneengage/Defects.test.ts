import { describe, expect } from "bun:test"
import { ConfigProvider, Duration, Effect, Either, Option, TestClock } from "effect"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { ensureDevAccount } from "../../src/droneengage/Authenticator.ts"
import { AuthenticatorConfig, RelayConfig } from "../../src/droneengage/Config.ts"
import { it } from "../support/effect.ts"
import { connectUnit, expectNothing, login, post, seedAccounts, startStack, TestServices } from "./harness.ts"

/**
 * One test per defect of the original listed in shared/reference/originals.md §1 that is not
 * already proven elsewhere (docs/droneengage.md maps every defect to its test).
 */
describe("defects of the original DroneEngage servers, closed", () => {
  it.effect("the S2S link is authenticated by default: no secret and no explicit insecure flag is a config error", () =>
    Effect.gen(function* () {
      const empty = ConfigProvider.fromJson({})
      const result = yield* Effect.either(Effect.withConfigProvider(AuthenticatorConfig, empty))
      expect(Either.isLeft(result) && String(result.left)).toContain(
        "s2sSecret or s2sTrustedKeys is required unless allowUnauthenticatedServers is true"
      )
      const strict = yield* Effect.withConfigProvider(
        AuthenticatorConfig,
        ConfigProvider.fromJson({ authenticator: { s2sSecret: "0123456789abcdef-secret" } })
      )
      expect(strict.allowUnauthenticatedServers).toBe(false)
      expect(String(strict.s2sSecret)).not.toContain("0123456789abcdef")
      const short = yield* Effect.either(
        Effect.withConfigProvider(RelayConfig, ConfigProvider.fromJson({ relay: { s2sSecret: "short" } }))
      )
      expect(Either.isLeft(short) && String(short.left)).toContain("at least 16 characters")
    })
  )

  it.effect("TLS verification is never disabled process-wide", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      yield* startStack()
      expect(process.env.NODE_TLS_REJECT_UNAUTHORIZED).not.toBe("0")
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("access codes are never stored or returned in plaintext after they are issued", () =>
    Effect.gen(function* () {
      const issued = yield* ensureDevAccount
      expect(Option.isSome(issued)).toBe(true)
      const code = Option.getOrThrow(issued).accessCode
      const accounts = yield* AccountStore
      expect(JSON.stringify(yield* accounts.list)).not.toContain(code)
      // Only once: a second start finds accounts and creates nothing.
      expect(Option.isNone(yield* ensureDevAccount)).toBe(true)
      const stack = yield* startStack()
      expect((yield* post(`${stack.authUrl}/w/wl`, { acc: "dev", pwd: code })).body.e).toBe(0)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect("login sessions expire (the original kept login records forever)", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack({ auth: { sessionSliding: false, sessionTtl: Duration.seconds(20) } })
      const { body } = yield* login(stack, "alpha", "d")
      const check = () => post(`${stack.authUrl}/agent/ah`, { scm: "vh", sid: body.sid, hi: "hw-1", ht: "px4" })
      expect((yield* check()).body.e).toBe(0)
      yield* TestClock.adjust("20 seconds")
      expect((yield* check()).body.e).toBe(7)
    }).pipe(Effect.provide(TestServices))
  )

  it.effect(
    "relay-tree fields (_aid, _gid, _path) from a client cannot move a message into another account or group",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const stack = yield* startStack()
        const sender = yield* connectUnit(stack, "alpha", "g", "web")
        const sameGroup = yield* connectUnit(stack, "alpha", "d", "drone")
        const otherAccount = yield* connectUnit(stack, "beta", "g", "web")
        const otherGroup = yield* connectUnit(stack, "alpha", "g", "web2", "2")
        yield* sender.send(JSON.stringify({ ty: "g", mt: 1, _aid: "2", _gid: "2", _path: [] }))
        expect((yield* sameGroup.nextJson()).mt).toBe(1)
        yield* expectNothing(otherAccount)
        yield* expectNothing(otherGroup)
      }).pipe(Effect.provide(TestServices))
  )
})
