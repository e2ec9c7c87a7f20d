import { describe, expect } from "bun:test"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import { connectWs } from "../support/WsClient.ts"
import { adminKey, command, connectSocket, ok, readerKey, startSocketHydrogen } from "./support.ts"

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

/** Real Bun sockets: what the memory transport cannot show (subprotocol echo, HTTP over TCP, IPv6, uWS frame limits). */
describe("hydrogen over real sockets (smoke)", () => {
  it.live("subprotocol, key by header and by ?key= (never logged), status, publish/subscribe, HTTP", () =>
    Effect.gen(function* () {
      const logs = captureLogs()
      const hydrogen = yield* startSocketHydrogen().pipe(Effect.provide(logs.layer))
      const reader = yield* connectSocket(hydrogen.wsUrl, readerKey)
      expect(reader.socket.protocol).toBe("hydrogen-protocol")
      expect((yield* ok(reader, "system", "whoami")).name).toBe("reader")
      const admin = yield* connectWs(`${hydrogen.wsUrl}?key=${adminKey}`, { protocols: "hydrogen-protocol" })
      expect((yield* ok(admin, "system", "whoami")).name).toBe("admin")
      yield* reader.send(JSON.stringify({ type: "status" }))
      expect((yield* reader.nextJson()).services.websocket.port).toBe(hydrogen.server.port)
      yield* ok(reader, "subscriptions", "subscribe", { channel: "news" })
      const published = yield* ok(admin, "events", "publish", {
        channel: "news",
        action: "headline",
        data: { title: "hi" }
      })
      expect(yield* reader.nextJson()).toMatchObject({
        type: "event",
        id: published.id,
        channel: "news",
        data: { title: "hi" }
      })
      const viaHttp = yield* Effect.promise(() =>
        fetch(`${hydrogen.httpUrl}/api/publish`, {
          method: "POST",
          headers: { authorization: `Key ${adminKey}`, "content-type": "application/json" },
          body: JSON.stringify({ channel: "news", action: "headline", data: { title: "over http" } })
        }).then((r) => r.json() as Promise<any>)
      )
      expect(yield* reader.nextJson()).toMatchObject({ id: viaHttp.id, data: { title: "over http" } })
      const tooLarge = yield* Effect.promise(() =>
        fetch(`${hydrogen.httpUrl}/api/publish`, {
          method: "POST",
          headers: { authorization: `Key ${adminKey}`, "content-type": "application/json" },
          body: JSON.stringify({ channel: "news", action: "big", data: "y".repeat(2 * 1024 * 1024) })
        })
      )
      expect(tooLarge.status).toBe(413)
      const refused = yield* Effect.promise(() =>
        fetch(`${hydrogen.httpUrl}/?key=wrong-${adminKey}`, {
          headers: {
            upgrade: "websocket",
            connection: "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
            "sec-websocket-protocol": "hydrogen-protocol"
          }
        })
      )
      expect(refused.status).toBe(401)
      const health = yield* Effect.promise(() =>
        fetch(`${hydrogen.httpUrl}/health`).then((r) => r.json() as Promise<any>)
      )
      expect(health).toMatchObject({ status: "ok", connections: 2 })
      expect(logs.lines.some((l) => l.includes("Verifying -> Established"))).toBe(true)
      expect(logs.lines.some((l) => l.includes("key=redacted"))).toBe(true)
      for (const line of logs.lines) {
        expect(line).not.toContain(adminKey)
        expect(line).not.toContain(readerKey)
      }
    })
  )

  it.live("a frame past the transport's limit closes with 1009 before anything is parsed; others carry on", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startSocketHydrogen({ maxMessageSize: 1024 })
      const other = yield* connectSocket(hydrogen.wsUrl)
      yield* other.send(`{"id":"huge","data":"${"x".repeat(1024 * 1024 + 10)}"}`)
      expect((yield* other.closed).code).toBe(CloseCodes.messageTooBig)
      yield* ok(yield* connectSocket(hydrogen.wsUrl), "system", "ping")
    })
  )

  it.live("EnableIPv6 binds the IPv6 wildcard (dual stack)", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startSocketHydrogen({ interface: "0.0.0.0", enableIPv6: true })
      expect(hydrogen.server.hostname).toBe("::")
      const v6 = yield* connectSocket(`ws://[::1]:${hydrogen.server.port}/`)
      yield* ok(v6, "system", "ping")
      expect((yield* command(yield* connectSocket(hydrogen.wsUrl), "system", "ping")).response.data.pong).toBeDefined()
    })
  )
})
