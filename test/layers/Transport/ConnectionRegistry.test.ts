import { describe, expect } from "bun:test"
import { Duration, Effect, Ref, Schedule, TestClock } from "effect"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, Transport, type WebSocketProtocol } from "../../../layers/Transport/Transport.ts"
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
