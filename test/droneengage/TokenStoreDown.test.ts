import { describe, expect } from "bun:test"
import { Chunk, Effect, Queue } from "effect"
import { it } from "../support/effect.ts"
import { switchableTokens } from "../support/switchableTokens.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import {
  authenticatorConfig,
  connectQuery,
  login,
  post,
  relayConfig,
  relayLayer,
  relayOnline,
  seedAccounts,
  startStack,
  TestServices,
  upgradeAttempt
} from "./harness.ts"

describe("DroneEngage with its token store down (a failing Tokens double)", () => {
  it.effect(
    "a login is answered No available Server and the relay link stays up; a session call 503 e 3; a unit connect 503",
    () =>
      Effect.gen(function* () {
        yield* seedAccounts
        const tokens = yield* switchableTokens
        const stack = yield* startStack().pipe(Effect.provide(tokens.layer))
        const events = yield* stack.authenticator.commServers.events
        const before = (yield* login(stack, "alpha", "g")).body
        expect(before.e).toBe(0)

        yield* tokens.setDown(true)
        // The relay cannot issue a key: it refuses this login (LOGIN reply e 3), the authenticator answers e 5.
        const during = yield* login(stack, "beta", "g")
        expect({ status: during.status, e: during.body.e, em: during.body.em }).toEqual({
          status: 200,
          e: 5,
          em: "No available Server"
        })
        // The authenticator cannot read the session: 503, e 3, for the client to retry.
        const check = yield* post(`${stack.authUrl}/agent/ah`, { scm: "vh", sid: before.sid, hi: "hw", ht: "px4" })
        expect({ status: check.status, body: check.body }).toEqual({
          status: 503,
          body: { e: 3, em: "Session store unavailable.", cm: "/ah" }
        })
        // The relay cannot redeem the key: the upgrade is refused 503.
        expect(yield* upgradeAttempt(stack.relay.server.port, connectQuery(before, "alpha-gcs"))).toEqual({
          status: 503,
          body: { error: "login key store unavailable, try again later" }
        })

        yield* tokens.setDown(false)
        // Back: the same link answers at once (no redial, no clock moved), and nothing left or linked meanwhile.
        expect((yield* login(stack, "beta", "g")).body.e).toBe(0)
        const seen = Chunk.toArray(yield* Queue.takeAll(events)).map((event) => event._tag)
        expect(seen.filter((tag) => tag === "Left" || tag === "Linked")).toEqual([])
      }).pipe(Effect.provide(TestServices))
  )

  it.effect("the authenticator's session store down: a login the relay gave a key is answered 503 e 3", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const sessions = yield* switchableTokens
      const authenticator = yield* startAuthenticator(authenticatorConfig()).pipe(Effect.provide(sessions.layer))
      yield* startRelay(relayConfig(authenticator.s2s.port)).pipe(Effect.provide(relayLayer))
      yield* relayOnline(authenticator)
      const stack = { authUrl: authenticator.http.url }
      yield* sessions.setDown(true)
      const during = yield* post(`${stack.authUrl}/w/wl`, { acc: "alpha", pwd: "alpha-code", gr: "1" })
      expect({ status: during.status, body: during.body }).toEqual({
        status: 503,
        body: { e: 3, em: "Session store unavailable.", cm: "/wl" }
      })
      yield* sessions.setDown(false)
      expect((yield* post(`${stack.authUrl}/w/wl`, { acc: "alpha", pwd: "alpha-code", gr: "1" })).body.e).toBe(0)
    }).pipe(Effect.provide(TestServices))
  )
})
