import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import { connectUnit, login, post, seedAccounts, startStack, TestServices } from "./harness.ts"

describe("DroneEngage login → key → connect", () => {
  it.live("a GCS and an agent log in, connect with their keys, and talk", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const { body } = yield* login(stack, "alpha", "g")
      expect(body).toMatchObject({ e: 0, per: "D1G1T3R4V5C6", prm: 0xffffffff, cm: "/wl" })
      expect(body.sid).toMatch(/^[0-9a-f]{32}$/)
      expect(body.cs.f).toMatch(/^[0-9a-f]{32}$/)
      expect(body.cs).toMatchObject({ g: "127.0.0.1", h: stack.relay.server.port })
      const gcs = yield* connectUnit(stack, "alpha", "g", "web-1")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
      yield* drone.send(JSON.stringify({ ty: "g", mt: 1002, ms: { hello: 1 } }))
      expect(yield* gcs.nextJson()).toEqual({ ty: "g", mt: 1002, ms: { hello: 1 }, sd: "drone-1", p: 0xffffffff })
    }).pipe(Effect.provide(TestServices)))
})
