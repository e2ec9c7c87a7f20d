import { describe, expect } from "bun:test"
import { Duration, Effect, Ref, Schedule, TestClock } from "effect"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, type OpenedNow, Transport, type WebSocketProtocol } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"

/**
 * A connection's fiber exists only while it has traffic: it is not started for a connection that
 * has said nothing, and the heartbeat sweep ends it after a quiet interval. The connection's Scope
 * (and what `open` forked into it) must outlive those fibers, and messages keep their order.
 */
const limits = { ...defaultSocketLimits, pingInterval: Duration.seconds(5), pongTimeout: Duration.seconds(2) }

const echoWithTicker = (finalized: Ref.Ref<number>): WebSocketProtocol<null> => ({
  upgrade: () => Effect.succeed(accept(null)),
  open: (connection) =>
    Effect.gen(function* () {
      yield* Effect.addFinalizer(() => Ref.update(finalized, (n) => n + 1))
      // Forked into the connection's scope: it must keep running while no fiber serves messages.
      yield* Effect.sync(() => connection.send("tick")).pipe(
        Effect.repeat(Schedule.spaced("7 seconds")),
        Effect.delay("7 seconds"),
        Effect.forkScoped
      )
      return { onMessage: (message) => Effect.sync(() => connection.send(`echo:${String(message)}`)) }
    })
})

/** A server with the echo protocol and one connected client; `finalized` counts closed connection scopes. */
const startEcho = Effect.gen(function* () {
  const finalized = yield* Ref.make(0)
  const transport = yield* Transport
  const network = yield* MemoryNetwork
  const server = yield* transport.serve({ name: "registry", port: 0, limits, websocket: echoWithTicker(finalized) })
  const client = yield* network.connect(server.port)
  return { finalized, server, client }
})

describe("ConnectionRegistry: fibers only while there is traffic", () => {
  it.effect(
    "messages before and after a quiet spell arrive in order; scoped work and finalizers follow the socket, not the fiber",
    () =>
      Effect.gen(function* () {
        const { finalized, server, client } = yield* startEcho
        for (const n of [1, 2, 3]) yield* client.send(String(n))
        for (const n of [1, 2, 3]) expect(yield* client.next()).toBe(`echo:${n}`)
        // Two quiet heartbeat sweeps retire the serving fiber; the ticker forked in open keeps going.
        yield* TestClock.adjust("12 seconds")
        expect(yield* client.next()).toBe("tick")
        for (const n of [4, 5]) yield* client.send(String(n))
        for (const n of [4, 5]) expect(yield* client.next()).toBe(`echo:${n}`)
        expect(yield* Ref.get(finalized)).toBe(0)
        yield* client.close()
        yield* TestClock.adjust("1 second")
        expect(yield* Ref.get(finalized)).toBe(1)
        expect(server.connectionCount()).toBe(0)
        yield* TestClock.adjust("20 seconds")
        expect(yield* Ref.get(finalized)).toBe(1)
      }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.effect("a connection that never sends still has its scope closed once when it goes", () =>
    Effect.gen(function* () {
      const { finalized, server, client: silent } = yield* startEcho
      yield* TestClock.adjust("7 seconds")
      expect(yield* silent.next()).toBe("tick")
      yield* silent.close()
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(finalized)).toBe(1)
      expect(server.connectionCount()).toBe(0)
    }).pipe(Effect.provide(MemoryTransportTest))
  )
})

/** openNow opens on the spot unless the log says "refuse now"; the log tells which path ran. */
const openNowOrLater = (log: Array<string>): WebSocketProtocol<null> => ({
  upgrade: () => Effect.succeed(accept(null)),
  open: (connection) =>
    Effect.gen(function* () {
      log.push("open")
      yield* Effect.addFinalizer(() => Effect.sync(() => log.push("finalizer")))
      return { onMessage: (message) => void connection.send(`later:${String(message)}`) }
    }),
  openNow: (connection) => {
    if (log.includes("refuse now")) return undefined
    log.push("openNow")
    return {
      onMessage: (message) => void connection.send(`now:${String(message)}`),
      // An Effect returned by the cleanup is run (the asynchronous fallback).
      onClose: () =>
        log.includes("async cleanup") ? Effect.sync(() => log.push("onClose effect")) : void log.push("onClose")
    }
  }
})

describe("ConnectionRegistry: openNow", () => {
  it.effect(
    "a synchronous open needs no fiber; its cleanup runs once after the close, as an Effect when it returns one",
    () =>
      Effect.gen(function* () {
        const log: Array<string> = []
        const transport = yield* Transport
        const network = yield* MemoryNetwork
        const server = yield* transport.serve({ name: "now", port: 0, limits, websocket: openNowOrLater(log) })
        const client = yield* network.connect(server.port)
        yield* client.send("1")
        expect(yield* client.next()).toBe("now:1")
        yield* client.close()
        yield* TestClock.adjust("1 second")
        expect(log).toEqual(["openNow", "onClose"])
        expect(server.connectionCount()).toBe(0)
        log.push("async cleanup")
        const second = yield* network.connect(server.port)
        yield* second.send("2")
        expect(yield* second.next()).toBe("now:2")
        yield* second.close()
        yield* TestClock.adjust("1 second")
        expect(log.slice(3)).toEqual(["openNow", "onClose effect"])
        expect(server.connectionCount()).toBe(0)
      }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.effect("undefined from openNow falls back to open, with its scope and finalizers", () =>
    Effect.gen(function* () {
      const log: Array<string> = ["refuse now"]
      const transport = yield* Transport
      const network = yield* MemoryNetwork
      const server = yield* transport.serve({ name: "later", port: 0, limits, websocket: openNowOrLater(log) })
      const client = yield* network.connect(server.port)
      yield* client.send("1")
      expect(yield* client.next()).toBe("later:1")
      yield* client.close()
      yield* TestClock.adjust("1 second")
      expect(log).toEqual(["refuse now", "open", "finalizer"])
      expect(server.connectionCount()).toBe(0)
    }).pipe(Effect.provide(MemoryTransportTest))
  )
})

describe("ConnectionRegistry: a handler shared by every connection", () => {
  it.effect("gets each message and the close with the connection it came on, synchronously and as an Effect", () =>
    Effect.gen(function* () {
      const closed: Array<string> = []
      const shared: OpenedNow<never, string> = {
        onClose: (connection) => void closed.push(connection.data),
        onMessage: (message, connection) =>
          String(message).startsWith("later")
            ? Effect.sync(() => connection.send(`${connection.data} ${String(message)}`))
            : void connection.send(`${connection.data} ${String(message)}`)
      }
      let next = 0
      const protocol: WebSocketProtocol<string> = {
        upgrade: () => Effect.succeed(accept(`c${++next}`)),
        open: () => Effect.succeed(shared),
        openNow: () => shared
      }
      const transport = yield* Transport
      const network = yield* MemoryNetwork
      const server = yield* transport.serve({ name: "shared", port: 0, limits, websocket: protocol })
      const [first, second] = [yield* network.connect(server.port), yield* network.connect(server.port)]
      yield* second.send("hello")
      yield* first.send("later hello")
      yield* first.send("again")
      expect(yield* second.next()).toBe("c2 hello")
      expect(yield* first.next()).toBe("c1 later hello")
      expect(yield* first.next()).toBe("c1 again")
      yield* first.close()
      yield* TestClock.adjust("1 second")
      expect(closed).toEqual(["c1"])
    }).pipe(Effect.provide(MemoryTransportTest))
  )
})
