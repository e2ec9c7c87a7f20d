import { describe, expect } from "bun:test"
import { HttpServerResponse } from "@effect/platform"
import { Duration, Effect, TestClock } from "effect"
import { defaultSocketLimits, type SocketLimits } from "../../../src/shared/SocketLimits.ts"
import { CloseCodes } from "../../../src/shared/CloseCodes.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { accept, reject, Transport, type WebSocketProtocol } from "../../../layers/Transport/Transport.ts"
import { eventually, it, settle } from "../../support/effect.ts"
import { connectSilent } from "../../support/SilentClient.ts"
import { connectWs, type WsClient } from "../../support/WsClient.ts"

/** Echoes text, joins the topic named by ?room=, publishes "pub:<x>" to it. */
const echo: WebSocketProtocol<{ room: string }> = {
  upgrade: (request, info) =>
    Effect.succeed(
      info.url.searchParams.get("deny")
        ? reject(401, "denied by test")
        : accept({ room: info.url.searchParams.get("room") ?? "lobby" })
    ),
  open: (connection) =>
    Effect.gen(function* () {
      connection.subscribe(connection.data.room)
      return {
        onMessage: (message) =>
          Effect.sync(() => {
            const text = typeof message === "string" ? message : new TextDecoder().decode(message)
            if (text.startsWith("pub:")) connection.publish(connection.data.room, text.slice(4))
            else if (text.startsWith("all:")) connection.publishToAll(connection.data.room, text.slice(4))
            else if (text === "boom") throw new Error("handler defect")
            else connection.send(`echo:${text}`)
          })
      }
    })
}

const startEcho = (limits: Partial<SocketLimits> = {}) => startEchoWith(limits).pipe(Effect.provide(Metrics.Default))

const startEchoWith = (limits: Partial<SocketLimits> = {}) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    return yield* transport.serve({
      name: "echo",
      port: 0,
      hostname: "127.0.0.1",
      limits: { ...defaultSocketLimits, ...limits },
      http: Effect.succeed(HttpServerResponse.text("plain http")),
      websocket: echo
    })
  }).pipe(Effect.provide(BunTransportLive))

/** A server on a random loopback port whose every upgrade is accepted and handled by `open`. */
const serveAll = (name: string, open: WebSocketProtocol<null>["open"], limits: Partial<SocketLimits> = {}) =>
  Effect.flatMap(Transport, (transport) =>
    transport.serve({
      name,
      port: 0,
      hostname: "127.0.0.1",
      limits: { ...defaultSocketLimits, ...limits },
      websocket: { upgrade: () => Effect.succeed(accept(null)), open }
    })
  ).pipe(Effect.provide(BunTransportLive), Effect.provide(Metrics.Default))

/**
 * Sends a marker and waits for its echo: the server has run `open` (subscribed) and handled what this client sent
 * before, and any frame it published to this client earlier would have arrived first (a check that nothing did).
 */
const roundTrip = (client: WsClient, marker = "marker") =>
  Effect.gen(function* () {
    yield* client.send(marker)
    expect(yield* client.next()).toBe(`echo:${marker}`)
  })

describe("BunTransport", () => {
  it.live("serves HTTP and WebSocket on one port", () =>
    Effect.gen(function* () {
      const server = yield* startEcho()
      const response = yield* Effect.promise(() => fetch(`${server.url}/anything`))
      expect(yield* Effect.promise(() => response.text())).toBe("plain http")
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      yield* client.send("hi")
      expect(yield* client.next()).toBe("echo:hi")
    })
  )

  it.live("a refused upgrade is an HTTP error with a reason", () =>
    Effect.gen(function* () {
      const server = yield* startEcho()
      const response = yield* Effect.promise(() =>
        fetch(`${server.url}/?deny=1`, {
          headers: {
            upgrade: "websocket",
            connection: "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13"
          }
        })
      )
      expect(response.status).toBe(401)
      expect(yield* Effect.promise(() => response.json())).toEqual({ error: "denied by test" })
    })
  )

  it.live("an upgrade decided asynchronously still upgrades; one that dies is an HTTP 500", () =>
    Effect.gen(function* () {
      const server = yield* Effect.flatMap(Transport, (transport) =>
        transport.serve({
          name: "async-upgrade",
          port: 0,
          hostname: "127.0.0.1",
          limits: defaultSocketLimits,
          websocket: {
            upgrade: (_request, { url }) =>
              url.searchParams.has("die")
                ? Effect.dieMessage("upgrade blew up")
                : Effect.sleep("20 millis").pipe(Effect.as(accept(null))),
            open: (connection) => Effect.succeed({ onMessage: (message) => void connection.send(message) })
          }
        })
      ).pipe(Effect.provide(BunTransportLive), Effect.provide(Metrics.Default))
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      yield* client.send("later")
      expect(yield* client.next()).toBe("later")
      const response = yield* Effect.promise(() =>
        fetch(`${server.url}/?die=1`, {
          headers: {
            upgrade: "websocket",
            connection: "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13"
          }
        })
      )
      expect(response.status).toBe(500)
      expect(yield* Effect.promise(() => response.json())).toEqual({ error: "internal error" })
      yield* client.send("still fine")
      expect(yield* client.next()).toBe("still fine")
    })
  )

  it.live("publish reaches the other subscribers, not the sender", () =>
    Effect.gen(function* () {
      const server = yield* startEcho()
      const a = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=r1`)
      const b = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=r1`)
      const c = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=r2`)
      yield* roundTrip(a)
      yield* roundTrip(b)
      yield* a.send("pub:hello")
      expect(yield* b.next()).toBe("hello")
      yield* roundTrip(a)
      yield* roundTrip(c)
      expect(server.publish("r2", "from server")).toBeGreaterThan(0)
      expect(yield* c.next()).toBe("from server")
    })
  )

  it.live("publishToAll reaches every subscriber of the topic once, the publishing connection included", () =>
    Effect.gen(function* () {
      const server = yield* startEcho()
      const a = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=r1`)
      const b = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=r1`)
      const c = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=r2`)
      yield* roundTrip(a)
      yield* roundTrip(b)
      yield* a.send("all:hello")
      expect(yield* a.next()).toBe("hello")
      expect(yield* b.next()).toBe("hello")
      // A second frame proves the first arrived only once.
      yield* b.send("all:again")
      expect(yield* a.next()).toBe("again")
      expect(yield* b.next()).toBe("again")
      yield* roundTrip(c)
    })
  )

  it.live("a handler defect closes only that connection with 1011", () =>
    Effect.gen(function* () {
      const server = yield* startEcho()
      const bad = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      const good = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      yield* bad.send("boom")
      expect((yield* bad.closed).code).toBe(CloseCodes.internalError)
      yield* good.send("still here")
      expect(yield* good.next()).toBe("echo:still here")
    })
  )

  it.live("an oversized message closes with 1009", () =>
    Effect.gen(function* () {
      const server = yield* startEcho({ maxPayloadBytes: 64 })
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      yield* client.send("x".repeat(65))
      expect((yield* client.closed).code).toBe(CloseCodes.messageTooBig)
    })
  )

  it.live("maxConnections refuses extra upgrades with 503 and keeps existing clients", () =>
    Effect.gen(function* () {
      const server = yield* startEcho({ maxConnections: 1 })
      const first = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      const refused = yield* connectWs(`ws://127.0.0.1:${server.port}/`).pipe(Effect.flip)
      expect(refused.code).not.toBe(1000)
      yield* first.send("ok")
      expect(yield* first.next()).toBe("echo:ok")
    })
  )

  it.effect("heartbeat closes a client that never answers pings with 4000, and keeps one that does", () =>
    Effect.gen(function* () {
      const server = yield* startEcho({ pingInterval: Duration.seconds(25), pongTimeout: Duration.seconds(10) })
      const silent = yield* connectSilent(server.port)
      const alive = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      yield* eventually(() => server.connectionCount() === 2, "both connected")
      yield* TestClock.adjust("25 seconds")
      yield* alive.nextPing()
      yield* alive.serverHasRead() // its pong included
      yield* TestClock.adjust("10 seconds")
      yield* eventually(() => silent.closedByServer(), "silent client closed")
      yield* alive.send("still alive")
      expect(yield* alive.next()).toBe("echo:still alive")
    })
  )

  it.effect("idle timeout closes a connection that sends nothing with 4001", () =>
    Effect.gen(function* () {
      const server = yield* startEcho({
        pingInterval: Duration.seconds(10),
        pongTimeout: Duration.seconds(5),
        idleTimeout: Duration.seconds(30)
      })
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      // Two sweeps ping it (it answers; pongs are not activity), the third finds it quiet for 30 s.
      for (let sweep = 1; sweep <= 2; sweep++) {
        yield* TestClock.adjust("10 seconds")
        yield* client.nextPing()
        yield* client.serverHasRead()
        yield* TestClock.adjust("5 seconds")
      }
      yield* TestClock.adjust("10 seconds")
      expect((yield* client.closed).code).toBe(CloseCodes.idleTimeout)
    })
  )

  it.live("a slow consumer is closed with 4003 and others keep receiving", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const server = yield* startEchoWith({ slowConsumerBytes: 64 * 1024, slowConsumerCheck: Duration.millis(20) })
      yield* connectSilent(server.port, { path: "/?room=big", stopReading: true })
      const fast = yield* connectWs(`ws://127.0.0.1:${server.port}/?room=big`)
      yield* eventually(() => server.subscriberCount("big") === 2, "two subscribers")
      // Loopback kernel buffers absorb several MB before the server's own buffer grows.
      const chunk = "y".repeat(64 * 1024)
      let sent = 0
      while (server.subscriberCount("big") === 2 && sent < 1000) {
        server.publish("big", chunk)
        sent++
        yield* fast.next()
      }
      expect(server.subscriberCount("big")).toBe(1)
      yield* eventually(() => server.connectionCount() === 1, "only the fast client remains")
      server.publish("big", "after")
      expect(yield* fast.next()).toBe("after")
      const text = yield* metrics.render
      expect(text).toContain(`switchboard_ws_closes_total{server="echo",code="${CloseCodes.slowConsumer}"} 1`)
    }).pipe(Effect.provide(Metrics.Default))
  )

  it.live("a flood into a slow handler pauses reading and loses nothing, in order", () =>
    Effect.gen(function* () {
      const seen: Array<number> = []
      const server = yield* serveAll(
        "slow-handler",
        (connection) =>
          Effect.succeed({
            onMessage: (message) =>
              message === "done"
                ? Effect.sync(() => connection.send(JSON.stringify(seen)))
                : Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))).pipe(
                    Effect.zipRight(Effect.sync(() => seen.push(Number(message))))
                  )
          }),
        { inboxCapacity: 8 }
      )
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      for (let i = 0; i < 2000; i++) client.socket.send(String(i))
      yield* client.send("done")
      const received: Array<number> = yield* client.nextJson("10 seconds")
      expect(received).toEqual(Array.from({ length: 2000 }, (_, i) => i))
    })
  )

  it.live("synchronous and asynchronous handling interleave in arrival order", () =>
    Effect.gen(function* () {
      const handled: Array<string> = []
      const server = yield* serveAll("mixed", (connection) =>
        Effect.succeed({
          onMessage: (message) => {
            const text = String(message)
            if (text === "done") return void connection.send(JSON.stringify(handled))
            // Every third message takes a detour through the event loop; the rest are done at once.
            if (Number(text) % 3 === 0) {
              return Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))).pipe(
                Effect.zipRight(Effect.sync(() => void handled.push(text)))
              )
            }
            handled.push(text)
          }
        })
      )
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      for (let i = 0; i < 300; i++) {
        client.socket.send(String(i))
        if (i % 50 === 0) yield* settle(5) // some arrive alone (fast path), some in bursts (queued)
      }
      yield* client.send("done")
      expect(yield* client.nextJson("10 seconds")).toEqual(Array.from({ length: 300 }, (_, i) => String(i)))
    })
  )

  it.live("frames queued behind the one that made the handler close are not handled", () =>
    Effect.gen(function* () {
      const handled: Array<string> = []
      // A slow open lets the pipelined frames pile up in the inbox first.
      const server = yield* serveAll("closer", (connection) =>
        Effect.sleep("50 millis").pipe(
          Effect.as({
            onMessage: (message) => {
              handled.push(String(message))
              if (message === "quit") connection.close(CloseCodes.badRequest, "bye")
            }
          })
        )
      )
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      for (const frame of ["a", "quit", "b", "c"]) client.socket.send(frame)
      expect((yield* client.closed).code).toBe(CloseCodes.badRequest)
      expect(handled).toEqual(["a", "quit"])
    })
  )

  it.live("shutdown closes clients with 1001", () =>
    Effect.gen(function* () {
      const { client } = yield* Effect.scoped(
        Effect.gen(function* () {
          const server = yield* startEcho()
          const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
          return { client }
        })
      )
      expect((yield* client.closed).code).toBe(CloseCodes.goingAway)
    })
  )
})
