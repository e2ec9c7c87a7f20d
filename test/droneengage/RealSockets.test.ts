import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import { connectUnit, login, seedAccounts, startStack, TestServices } from "./realSockets.ts"

/** The protocol suites run in memory; this one crosses the kernel end to end (HTTP, S2S WebSocket, client WebSockets). */
describe("DroneEngage over real sockets (smoke)", () => {
  it.live("login → key → connect → message, with the relay linked over a real S2S WebSocket", () =>
    Effect.gen(function* () {
      yield* seedAccounts
      const stack = yield* startStack()
      const { body } = yield* login(stack, "alpha", "g")
      expect(body).toMatchObject({ e: 0, cm: "/wl", cs: { g: "127.0.0.1", h: stack.relay.server.port } })
      const gcs = yield* connectUnit(stack, "alpha", "g", "web-1")
      const drone = yield* connectUnit(stack, "alpha", "d", "drone-1")
      yield* drone.send(JSON.stringify({ ty: "g", mt: 1002, ms: { hello: 1 } }))
      expect(yield* gcs.nextJson()).toEqual({ ty: "g", mt: 1002, ms: { hello: 1 }, sd: "drone-1", p: 0xffffffff })
      expect(stack.relay.link.isUp()).toBe(true)
    }).pipe(Effect.provide(TestServices))
  )
})
