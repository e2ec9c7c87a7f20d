import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { maxAckIds } from "../../src/hydrogen/Envelope.ts"
import { it } from "../support/effect.ts"
import {
  type Client,
  command,
  connectHydrogen,
  disconnect,
  metric,
  ok,
  post,
  readerKey,
  startTestHydrogen
} from "./support.ts"

/** The shipped message limits (100 messages/s, burst 200, closed after 5 refusals in a row); the TestClock never refills them. */
const shippedLimits = { messageRatePerSecond: 100, messageBurst: 200, rateLimitStrikes: 5 }

const publishAcked = (hydrogen: Parameters<typeof post>[0], count: number) =>
  post(hydrogen, "/api/batch", {
    publications: Array.from({ length: count }, (_, n) => ({ channel: "jobs", action: "run", data: { n }, ack: true }))
  })

const nextEvent = (client: Client) =>
  Effect.gen(function* () {
    const message = yield* client.nextJson()
    if (message.type !== "event") return yield* Effect.dieMessage(`expected an event, got ${JSON.stringify(message)}`)
    return message
  })

/** Issue 12 #1: a client doing what the protocol asks (ack every `ack: true` event) is never rate limited for it. */
describe("hydrogen acks and the message rate limit", () => {
  it.effect("1,000 acked events acked one by one do not touch the message budget", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen(shippedLimits)
      const client = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(client, "subscriptions", "subscribe", { channel: "jobs" })
      expect((yield* publishAcked(hydrogen, 1000)).status).toBe(200)
      for (let i = 0; i < 1000; i++) {
        const event = yield* nextEvent(client)
        expect(event.ack).toBe(true)
        yield* client.send(JSON.stringify({ type: "ack", id: event.id }))
      }
      expect((yield* command(client, "system", "ping")).events).toEqual([])
      expect(yield* metric(hydrogen, `switchboard_hydrogen_rate_limited_total{kind="message"}`)).toBe(0)
      expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_total")).toBe(1000)
      expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_pending")).toBe(0)
    })
  )

  it.effect("after a resume, the resent backlog is acked one by one and in batches without tripping the limiter", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen(shippedLimits)
      const first = yield* connectHydrogen(hydrogen, readerKey)
      const { session } = yield* ok(first, "subscriptions", "subscribe", { channel: "jobs" })
      yield* disconnect(hydrogen, first, session)
      yield* publishAcked(hydrogen, 1000)
      const back = yield* connectHydrogen(hydrogen, readerKey)
      const resumed = yield* command(back, "system", "resume", { session })
      expect(resumed.response.error).toBeUndefined()
      const ids: Array<string> = resumed.events.map((event) => event.id)
      while (ids.length < 1000) ids.push((yield* nextEvent(back)).id)
      for (const id of ids.slice(0, 300)) yield* back.send(JSON.stringify({ type: "ack", id }))
      for (let from = 300; from < 1000; from += maxAckIds) {
        yield* back.send(JSON.stringify({ type: "ack", ids: ids.slice(from, from + maxAckIds) }))
      }
      expect((yield* command(back, "system", "ping")).events).toEqual([])
      expect(yield* metric(hydrogen, `switchboard_hydrogen_rate_limited_total{kind="message"}`)).toBe(0)
      expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_pending")).toBe(0)
    })
  )

  it.effect("a batch ack is bounded and decoded; acks naming nothing pending still cost a message", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ messageRatePerSecond: 0.001, messageBurst: 3, rateLimitStrikes: 10 })
      const client = yield* connectHydrogen(hydrogen, readerKey)
      yield* client.send(JSON.stringify({ type: "ack", ids: Array.from({ length: maxAckIds + 1 }, (_, i) => `e${i}`) }))
      const tooMany = yield* client.nextJson()
      expect(tooMany.error).toMatchObject({ category: "protocol", code: "invalid_envelope" })
      expect(tooMany.error.issues[0].path).toEqual(["ids"])
      yield* client.send(JSON.stringify({ type: "ack" }))
      expect((yield* client.nextJson()).error.issues).toEqual([
        { path: ["id"], message: "an ack names an id (or ids)" }
      ])
      // two refused messages took two tokens; a guessed ack takes the last one, the next is refused
      yield* client.send(JSON.stringify({ type: "ack", id: "never-sent" }))
      yield* client.send(JSON.stringify({ type: "ack", ids: ["never-sent-either"] }))
      expect((yield* client.nextJson()).error.code).toBe("rate_limited")
    })
  )
})
