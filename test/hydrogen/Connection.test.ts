import { describe, expect } from "bun:test"
import { Duration, Effect, Layer, Logger, LogLevel, Option, Redacted, TestClock } from "effect"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import {
  adminKey,
  command,
  connectHydrogen,
  disconnect,
  metric,
  ok,
  post,
  readerKey,
  startTestHydrogen,
  tryUpgrade
} from "./support.ts"

/** Every log line (debug and up) of what runs inside, formatted as logfmt. */
const captureLogs = () => {
  const lines: Array<string> = []
  const layer = Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make((options) => void lines.push(Logger.logfmtLogger.log(options)))
    ),
    Logger.minimumLogLevel(LogLevel.All)
  )
  return { lines, layer }
}

describe("hydrogen connections", () => {
  it.effect("authenticates by header and by ?key=, and never logs the key", () =>
    Effect.gen(function* () {
      const logs = captureLogs()
      const hydrogen = yield* startTestHydrogen().pipe(Effect.provide(logs.layer))
      const byHeader = yield* connectHydrogen(hydrogen, readerKey)
      expect((yield* ok(byHeader, "system", "whoami")).name).toBe("reader")
      const byQuery = yield* connectHydrogen(hydrogen, null, `?key=${adminKey}`)
      expect((yield* ok(byQuery, "system", "whoami")).name).toBe("admin")
      const refused = yield* tryUpgrade(hydrogen, {}, `?key=wrong-${adminKey}`)
      expect(refused.status).toBe(401)
      const { session } = yield* ok(byQuery, "subscriptions", "subscribe", { channel: "news" })
      yield* disconnect(hydrogen, byQuery, session)
      expect(logs.lines.some((l) => l.includes("Closing -> Closed"))).toBe(true)
      expect(logs.lines.some((l) => l.includes("Verifying -> Established"))).toBe(true)
      expect(logs.lines.some((l) => l.includes("key=redacted"))).toBe(true)
      for (const line of logs.lines) {
        expect(line).not.toContain(adminKey)
        expect(line).not.toContain(readerKey)
      }
    })
  )

  it.effect("refused upgrades get 401/403/400 with a reason", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const none = yield* tryUpgrade(hydrogen)
      expect(none.status).toBe(401)
      expect(none.body.error).toContain("credentials required")
      expect((yield* tryUpgrade(hydrogen, { authorization: "Key not-a-key" })).body.error).toBe("unknown API key")
      expect((yield* tryUpgrade(hydrogen, { authorization: "Key hst1.abc.def" })).body.error).toBe(
        "invalid session token"
      )
      const wrongProtocol = yield* tryUpgrade(hydrogen, {
        authorization: `Key ${adminKey}`,
        "sec-websocket-protocol": "chat"
      })
      expect(wrongProtocol.status).toBe(400)
      expect(wrongProtocol.body.error).toContain("hydrogen-protocol")
    })
  )

  it.effect("a key meant only for the HTTP API may not open a WebSocket (403)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({
        apiKeys: [
          {
            name: "server-only",
            key: Option.some(Redacted.make("srv-0123456789")),
            hash: Option.none(),
            permissions: ["api"]
          }
        ]
      })
      const refused = yield* tryUpgrade(hydrogen, { authorization: "Key srv-0123456789" })
      expect(refused.status).toBe(403)
      expect(refused.body.error).toContain("may not open WebSocket")
    })
  )

  it.effect("AuthRequired=false admits anonymous read-only clients", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ authRequired: false })
      const anon = yield* connectHydrogen(hydrogen, null)
      expect((yield* ok(anon, "system", "whoami")).kind).toBe("anonymous")
      yield* ok(anon, "subscriptions", "subscribe", { channel: "news" })
      const { response } = yield* command(anon, "events", "publish", { channel: "news", action: "a", data: {} })
      expect(response.error).toMatchObject({ category: "authentication", code: "forbidden" })
      // a wrong key is still refused rather than downgraded to anonymous
      expect((yield* tryUpgrade(hydrogen, { authorization: "Key wrong" })).status).toBe(401)
    })
  )

  it.effect("MaxConnections refuses extra upgrades with 503 and leaves the others alone", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ maxConnections: 2 })
      const a = yield* connectHydrogen(hydrogen)
      const b = yield* connectHydrogen(hydrogen)
      const third = yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` })
      expect(third.status).toBe(503)
      const { session } = yield* ok(a, "subscriptions", "subscribe", { channel: "news" })
      yield* ok(b, "system", "ping")
      yield* disconnect(hydrogen, a, session)
      expect(hydrogen.server.connectionCount()).toBe(1)
      yield* ok(yield* connectHydrogen(hydrogen), "system", "ping")
    })
  )

  it.effect("an IP that opens connections too fast gets 429 and stays blocked for BlockSeconds (TestClock)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ connectionRatePerSecond: 1, connectionBurst: 2 })
      yield* connectHydrogen(hydrogen)
      yield* connectHydrogen(hydrogen)
      const limited = yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` })
      expect(limited.status).toBe(429)
      expect(limited.headers.get("retry-after")).toBe("60")
      const blocked = yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` })
      expect(blocked.status).toBe(429)
      expect(blocked.body.error).toContain("blocked")
      expect(yield* metric(hydrogen, "switchboard_hydrogen_ip_blocks_total")).toBe(1)
      // another address is not affected; the block ends after BlockSeconds
      expect((yield* tryUpgrade(hydrogen, { authorization: "Key wrong" }, "", "10.0.0.2")).status).toBe(401)
      yield* TestClock.adjust(Duration.seconds(59))
      expect((yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` })).status).toBe(429)
      yield* TestClock.adjust(Duration.seconds(1))
      yield* ok(yield* connectHydrogen(hydrogen), "system", "ping")
    })
  )

  it.effect("a flooding connection gets rate_limited errors, then close 4006, and its IP is blocked", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen({ messageRatePerSecond: 0.001, messageBurst: 2, rateLimitStrikes: 3 })
      const client = yield* connectHydrogen(hydrogen)
      yield* ok(client, "system", "ping")
      yield* ok(client, "system", "ping")
      const { response } = yield* command(client, "system", "ping")
      expect(response.error).toMatchObject({ category: "protocol", code: "rate_limited" })
      expect(response.id).toBeDefined()
      yield* client.send(JSON.stringify({ type: "command", id: "x", channel: "system", action: "ping" }))
      yield* client.send(JSON.stringify({ type: "command", id: "y", channel: "system", action: "ping" }))
      expect((yield* client.closed).code).toBe(CloseCodes.rateLimited)
      expect((yield* tryUpgrade(hydrogen, { authorization: `Key ${adminKey}` })).status).toBe(429)
    })
  )

  it.effect(
    "oversized messages: an error reply when readable, close 1009 when not; binary frames are refused politely",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen({ maxMessageSize: 1024 })
        const client = yield* connectHydrogen(hydrogen)
        yield* client.send(
          JSON.stringify({ type: "command", id: "big", channel: "system", action: "ping", data: "x".repeat(2000) })
        )
        const reply = yield* client.nextJson()
        expect(reply).toMatchObject({
          type: "response",
          id: "big",
          error: { category: "protocol", code: "message_too_large" }
        })
        yield* client.send(new Uint8Array([1, 2, 3]))
        expect((yield* client.nextJson()).error.code).toBe("binary_not_supported")
        yield* ok(client, "system", "ping")
        yield* client.send("z".repeat(3000))
        expect((yield* client.closed).code).toBe(CloseCodes.messageTooBig)
        // past the transport's frame limit the socket closes with 1009 before anything is parsed
        const other = yield* connectHydrogen(hydrogen)
        yield* other.send(`{"id":"huge","data":"${"x".repeat(1024 * 1024 + 10)}"}`)
        expect((yield* other.closed).code).toBe(CloseCodes.messageTooBig)
        yield* ok(yield* connectHydrogen(hydrogen), "system", "ping")
      })
  )

  it.effect(
    "the seed's state machine is visible in metrics: Connected → Heartbeat → Inactive → closed by IdleTimeout (4001)",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen({ idleTimeout: Duration.seconds(100) })
        const client = yield* connectHydrogen(hydrogen)
        yield* ok(client, "system", "ping")
        const gauge = (state: string) => metric(hydrogen, `switchboard_hydrogen_connection_state{state="${state}"}`)
        expect(yield* gauge("Connected")).toBe(1)
        yield* TestClock.adjust(Duration.seconds(25))
        expect(yield* gauge("Heartbeat")).toBe(1)
        yield* ok(client, "system", "ping")
        expect(yield* gauge("Connected")).toBe(1)
        for (let i = 0; i < 3; i++) yield* TestClock.adjust(Duration.seconds(25))
        expect(yield* gauge("Inactive")).toBe(1)
        for (let i = 0; i < 3; i++) yield* TestClock.adjust(Duration.seconds(25))
        expect((yield* client.closed).code).toBe(CloseCodes.idleTimeout)
        // A new connection's first command is answered after the closed one's scope has ended.
        yield* ok(yield* connectHydrogen(hydrogen), "system", "ping")
        expect(yield* gauge("Inactive")).toBe(0)
        for (const [from, to] of [
          ["Connecting", "Verifying"],
          ["Verifying", "Established"],
          ["Established", "Connected"],
          ["Connected", "Heartbeat"],
          ["Heartbeat", "Connected"],
          ["Heartbeat", "Inactive"],
          ["Inactive", "Closing"],
          ["Closing", "Closed"]
        ]) {
          expect(
            yield* metric(hydrogen, `switchboard_hydrogen_state_transitions_total{from="${from}",to="${to}"}`)
          ).toBeGreaterThan(0)
        }
      })
  )

  it.effect(
    "a session token's connection closes with 4401 when the token expires, unless refreshed in place (TestClock)",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen()
        const mint = (subject: string, ttlSeconds: number) =>
          Effect.map(
            post(hydrogen, "/api/tokens", { subject, permissions: ["subscribe"], ttlSeconds }, adminKey),
            (r) => r.body.token as string
          )
        const first = yield* mint("user-1", 60)
        const stays = yield* connectHydrogen(hydrogen, first)
        const expires = yield* connectHydrogen(hydrogen, first)
        const keyClient = yield* connectHydrogen(hydrogen, readerKey)
        yield* ok(stays, "subscriptions", "subscribe", { channel: "news" })
        yield* ok(expires, "system", "ping")
        yield* TestClock.adjust(Duration.seconds(30))
        const refreshed = yield* ok(stays, "system", "refresh", { token: yield* mint("user-1", 60) })
        expect(refreshed).toMatchObject({ name: "user-1", expiresAt: new Date(90_000).toISOString() })
        const foreign = yield* command(stays, "system", "refresh", { token: yield* mint("user-2", 600) })
        expect(foreign.response.error).toMatchObject({ category: "authentication", code: "forbidden" })
        expect(
          (yield* command(keyClient, "system", "refresh", { token: yield* mint("user-1", 600) })).response.error.code
        ).toBe("forbidden")
        yield* TestClock.adjust(Duration.seconds(31))
        expect(yield* expires.closed).toEqual({ code: CloseCodes.unauthorized, reason: "session token expired" })
        yield* ok(stays, "system", "ping")
        yield* TestClock.adjust(Duration.seconds(30))
        expect((yield* stays.closed).code).toBe(CloseCodes.unauthorized)
        yield* ok(keyClient, "system", "ping")
      })
  )
})
