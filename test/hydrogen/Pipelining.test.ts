import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import { adminKey, connectHydrogen, ok, readerKey, startTestHydrogen } from "./support.ts"

const publish = (id: string, channel: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "command",
    id,
    channel: "events",
    action: "publish",
    data: { channel, action: "a", data: { id }, ...extra }
  })

/** Publishes run without a fiber and are answered from the flush; every reply must still leave in the order sent. */
describe("hydrogen pipelined commands", () => {
  it.effect("publishes, slower commands and errors sent back to back are answered in the order they came", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen)
      yield* ok(client, "subscriptions", "subscribe", { channel: "orders" })
      yield* client.send(publish("p1", "orders", { ack: true }))
      yield* client.send(publish("p2", "orders", { priority: "high" }))
      yield* client.send(JSON.stringify({ type: "command", id: "w", channel: "system", action: "whoami" }))
      yield* client.send("{not json")
      yield* client.send(JSON.stringify({ type: "command", id: "u", channel: "nowhere", action: "x" }))
      yield* client.send(publish("p3", "orders"))
      yield* client.send(publish("p4", "bad channel!"))
      yield* client.send(publish("p5", "orders"))
      const answers: Array<string> = []
      const events: Array<string> = []
      while (answers.length < 8) {
        const message = yield* client.nextJson()
        if (message.type === "event") events.push(message.data.id)
        else answers.push(message.id ?? (message.error?.code as string))
      }
      expect(answers).toEqual(["p1", "p2", "w", "invalid_json", "u", "p3", "p4", "p5"])
      expect([...events].sort()).toEqual(["p1", "p2", "p3", "p5"])
    })
  )

  it.effect("a subscribe sent right after a publish on the same channel starts after that publish", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen)
      yield* client.send(publish("before", "late"))
      yield* client.send(
        JSON.stringify({
          type: "command",
          id: "s",
          channel: "subscriptions",
          action: "subscribe",
          data: { channel: "late" }
        })
      )
      yield* client.send(publish("after", "late"))
      const seen: Array<string> = []
      while (!seen.includes("after")) {
        const message = yield* client.nextJson()
        seen.push(message.type === "event" ? `event ${message.data.id}` : message.id)
      }
      // The event goes out before its publisher hears the outcome.
      expect(seen).toEqual(["before", "s", "event after", "after"])
    })
  )

  it.effect("a publish refused (permission, invalid data) is answered in order without reaching the channel", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const reader = yield* connectHydrogen(hydrogen, readerKey)
      const admin = yield* connectHydrogen(hydrogen, adminKey)
      yield* ok(admin, "subscriptions", "subscribe", { channel: "news" })
      yield* reader.send(publish("r1", "news"))
      yield* reader.send(
        JSON.stringify({ type: "command", id: "r2", channel: "events", action: "publish", data: { channel: "news" } })
      )
      const first = yield* reader.nextJson()
      const second = yield* reader.nextJson()
      expect(first).toMatchObject({ id: "r1", error: { category: "authentication", code: "forbidden" } })
      expect(second).toMatchObject({ id: "r2", error: { code: "invalid_data" } })
      yield* admin.send(publish("a1", "news"))
      const next = yield* admin.nextJson()
      expect(next).toMatchObject({ type: "event", data: { id: "a1" } })
    })
  )
})
