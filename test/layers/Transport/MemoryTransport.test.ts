import { describe, expect } from "bun:test"
import { Effect, TestClock } from "effect"
import { CloseCodes } from "../../../src/shared/CloseCodes.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, reject, Transport, type WebSocketProtocol } from "../../../layers/Transport/Transport.ts"
import { it } from "../../support/effect.ts"

const rooms: WebSocketProtocol<{ room: string }> = {
  upgrade: (_request, info) =>
    Effect.succeed(
      info.url.searchParams.get("deny")
        ? reject(403, "nope")
        : accept({ room: info.url.searchParams.get("room") ?? "lobby" })
    ),
  open: (connection) =>
    Effect.sync(() => {
      connection.subscribe(connection.data.room)
      return {
        onMessage: (message) =>
          Effect.sync(() => {
            if (message === "quit") connection.close(CloseCodes.normal, "bye")
            else connection.publish(connection.data.room, message)
          })
      }
    })
}

const start = Effect.gen(function* () {
  const transport = yield* Transport
  return yield* transport.serve({
    name: "rooms",
    port: 0,
    limits: { ...defaultSocketLimits, maxPayloadBytes: 16 },
    websocket: rooms
  })
})

describe("MemoryTransport (test double)", () => {
  it.effect("routes topics like the real transport: others get it, the sender does not", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const server = yield* start
      const a = yield* network.connect(server.port, "/?room=x")
      const b = yield* network.connect(server.port, "/?room=x")
      const c = yield* network.connect(server.port, "/?room=y")
      yield* a.send("hello")
      expect(yield* b.next()).toBe("hello")
      yield* a.expectSilence()
      yield* c.expectSilence()
      expect(server.subscriberCount("x")).toBe(2)
    }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.effect("refusals, oversize and closes behave like the wire", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const server = yield* start
      const refused = yield* network.connect(server.port, "/?deny=1").pipe(Effect.flip)
      expect(refused.code).toBe(403)
      const big = yield* network.connect(server.port)
      yield* big.send("x".repeat(17))
      expect((yield* big.closed).code).toBe(CloseCodes.messageTooBig)
      const quitter = yield* network.connect(server.port)
      yield* quitter.send("quit")
      expect(yield* quitter.closed).toEqual({ code: CloseCodes.normal, reason: "bye" })
    }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.effect("heartbeat under TestClock closes a client that stopped answering pings", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const server = yield* start
      const frozen = yield* network.connect(server.port)
      const alive = yield* network.connect(server.port)
      frozen.answerPings = false
      yield* TestClock.adjust("25 seconds")
      yield* TestClock.adjust("10 seconds")
      expect((yield* frozen.closed).code).toBe(CloseCodes.heartbeatTimeout)
      expect(server.connectionCount()).toBe(1)
      yield* alive.expectSilence()
    }).pipe(Effect.provide(MemoryTransportTest))
  )
})
