import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import { command, connectHydrogen, ok, startTestHydrogen } from "./support.ts"

describe("hydrogen smoke", () => {
  it.live("connects, pings, subscribes and receives an event", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const a = yield* connectHydrogen(hydrogen)
      expect(a.socket.protocol).toBe("hydrogen-protocol")
      const pong = yield* ok(a, "system", "ping")
      expect(typeof pong.pong).toBe("string")
      const sub = yield* ok(a, "subscriptions", "subscribe", { channel: "news" })
      expect(sub.reliable).toBe(false)
      const pub = yield* command(a, "events", "publish", { channel: "news", action: "headline", data: { x: 1 } })
      console.log(JSON.stringify(pub))
    }))
})
