import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { it } from "../support/effect.ts"
import {
  adminKey,
  type Client,
  command,
  connectHydrogen,
  metric,
  ok,
  post,
  readerKey,
  startTestHydrogen
} from "./support.ts"

const events = (client: Client, n: number) => Effect.forEach(Array.from({ length: n }), () => client.nextJson())

describe("hydrogen delivery", () => {
  it.effect("unfiltered subscribers share the native topic; filtered ones get only matching events", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const all = yield* connectHydrogen(hydrogen, readerKey)
      const errorsOnly = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(all, "subscriptions", "subscribe", { channel: "logs" })
      yield* ok(errorsOnly, "subscriptions", "subscribe", {
        channel: "logs",
        filter: { level: { in: ["error", "fatal"] }, "src.app": "api" }
      })
      expect(hydrogen.server.subscriberCount("hydrogen/logs")).toBe(1)
      expect(hydrogen.rooms.localCount("hydrogen/logs")).toBe(1)
      for (const [level, app] of [
        ["info", "api"],
        ["error", "api"],
        ["error", "web"],
        ["fatal", "api"]
      ]) {
        yield* post(hydrogen, "/api/publish", { channel: "logs", action: "line", data: { level, src: { app } } })
      }
      expect((yield* events(all, 4)).map((e) => e.data.level)).toEqual(["info", "error", "error", "fatal"])
      expect((yield* events(errorsOnly, 2)).map((e) => e.data.level)).toEqual(["error", "fatal"])
      // the next frame is the pong: nothing else was queued for the filtered client
      expect((yield* command(errorsOnly, "system", "ping")).events).toEqual([])
      // unsubscribe stops delivery; list shows what is left
      yield* ok(all, "subscriptions", "unsubscribe", { channel: "logs" })
      expect(yield* ok(all, "subscriptions", "list")).toEqual([])
      yield* post(hydrogen, "/api/publish", {
        channel: "logs",
        action: "line",
        data: { level: "error", src: { app: "api" } }
      })
      expect((yield* events(errorsOnly, 1))[0].data.level).toBe("error")
      expect((yield* command(all, "system", "ping")).events).toEqual([])
      expect(yield* ok(errorsOnly, "subscriptions", "list")).toMatchObject([
        { channel: "logs", priority: "normal", reliable: false, filter: {} }
      ])
    })
  )

  it.effect("within a flush high-priority events go first, and high-priority subscriptions are served first", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(client, "subscriptions", "subscribe", { channel: "feed" })
      yield* ok(client, "subscriptions", "subscribe", { channel: "alerts", priority: "high" })
      const batch = yield* post(hydrogen, "/api/batch", {
        publications: [
          { channel: "feed", action: "n1" },
          { channel: "feed", action: "n2" },
          { channel: "alerts", action: "a1" },
          { channel: "feed", action: "h1", priority: "high" }
        ]
      })
      expect(batch.status).toBe(200)
      expect(batch.body.results).toHaveLength(4)
      const received = yield* events(client, 4)
      expect(received.map((e) => e.action)).toEqual(["h1", "a1", "n1", "n2"])
      expect(received[0].priority).toBe("high")
    })
  )

  it.effect("clients with permission publish to channels; the publisher's response comes with the event id", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const listener = yield* connectHydrogen(hydrogen, readerKey)
      const publisher = yield* connectHydrogen(hydrogen, adminKey)
      yield* ok(listener, "subscriptions", "subscribe", { channel: "chat.room1" })
      const published = yield* ok(publisher, "events", "publish", {
        channel: "chat.room1",
        action: "said",
        data: { text: "hi" }
      })
      const event = yield* listener.nextJson()
      expect(event).toMatchObject({
        type: "event",
        id: published.id,
        channel: "chat.room1",
        action: "said",
        data: { text: "hi" }
      })
      expect(new Date(event.timestamp).toISOString()).toBe(event.timestamp)
      expect(event.seq).toBeUndefined()
    })
  )

  it.effect("HTTP server API: key-authenticated, validated, 4xx with reasons, idempotency keys", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(client, "subscriptions", "subscribe", { channel: "orders" })
      expect((yield* post(hydrogen, "/api/publish", { channel: "orders", action: "x" }, null)).status).toBe(401)
      const forbidden = yield* post(hydrogen, "/api/publish", { channel: "orders", action: "x" }, readerKey)
      expect(forbidden.status).toBe(403)
      expect(forbidden.body.error.message).toContain("api")
      const invalid = yield* post(hydrogen, "/api/publish", { channel: "no spaces", action: "" })
      expect(invalid.status).toBe(400)
      expect(invalid.body.error.issues.map((i: any) => i.path[0]).sort()).toEqual(["action", "channel"])
      expect((yield* post(hydrogen, "/api/publish", "{oops")).body.error.code).toBe("invalid_json")
      const huge = yield* post(hydrogen, "/api/publish", {
        channel: "orders",
        action: "x",
        data: "y".repeat(1024 * 1024)
      })
      expect(huge.status).toBe(413)
      expect(huge.body.error.code).toBe("message_too_large")
      const first = yield* post(hydrogen, "/api/publish", {
        channel: "orders",
        action: "created",
        data: { n: 1 },
        idempotencyKey: "k1"
      })
      const retry = yield* post(hydrogen, "/api/publish", {
        channel: "orders",
        action: "created",
        data: { n: 1 },
        idempotencyKey: "k1"
      })
      expect(first.status).toBe(200)
      expect(retry.body).toEqual(first.body)
      expect(typeof first.body.epoch).toBe("string")
      expect(first.body).toMatchObject({ channel: "orders", seq: 1 })
      expect((yield* client.nextJson()).seq).toBe(1)
      expect((yield* command(client, "system", "ping")).events).toEqual([])
      const other = yield* post(hydrogen, "/api/publish", {
        channel: "orders",
        action: "created",
        idempotencyKey: "k2"
      })
      expect(other.body.seq).toBe(2)
    })
  )

  it.effect("session tokens minted over HTTP carry a subset of the issuer's permissions", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const minted = yield* post(hydrogen, "/api/tokens", {
        subject: "user-7",
        permissions: ["subscribe", "publish:chat", "host"],
        ttlSeconds: 60
      })
      expect(minted.status).toBe(200)
      expect(minted.body.permissions).toEqual(["publish:chat"])
      expect((yield* post(hydrogen, "/api/tokens", { subject: "x", permissions: [] }, readerKey)).status).toBe(403)
      const admin = yield* post(
        hydrogen,
        "/api/tokens",
        { subject: "user-8", permissions: ["subscribe", "publish:chat"] },
        adminKey
      )
      const client = yield* connectHydrogen(hydrogen, admin.body.token)
      expect(yield* ok(client, "system", "whoami")).toMatchObject({
        name: "user-8",
        kind: "session",
        permissions: ["subscribe", "publish:chat"]
      })
      yield* ok(client, "events", "publish", { channel: "chat", action: "m" })
      expect((yield* command(client, "events", "publish", { channel: "news", action: "m" })).response.error.code).toBe(
        "forbidden"
      )
    })
  )

  it.effect("events sent with ack required are marked, and an ack stops redelivery", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const client = yield* connectHydrogen(hydrogen, readerKey)
      yield* ok(client, "subscriptions", "subscribe", { channel: "jobs" })
      yield* post(hydrogen, "/api/publish", { channel: "jobs", action: "run", ack: true })
      const event = yield* client.nextJson()
      expect(event.ack).toBe(true)
      yield* client.send(JSON.stringify({ type: "ack", id: event.id }))
      // messages are handled in order: the next frame answers the ping, so the ack got no response
      expect((yield* command(client, "system", "ping")).events).toEqual([])
      expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_total")).toBe(1)
      expect(yield* metric(hydrogen, "switchboard_hydrogen_acks_pending")).toBe(0)
    })
  )
})
