import { describe, expect } from "bun:test"
import type { Socket } from "node:net"
import { Duration, Effect, Queue, TestClock } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, type Connection, Transport } from "../../../layers/Transport/Transport.ts"
import { CloseCodes } from "../../../src/shared/CloseCodes.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"
import { connectSilent } from "../../support/SilentClient.ts"
import { connectWs } from "../../support/WsClient.ts"

/**
 * A reader that stopped reading must see the documented 4003 once it reads again, not a 1006: the
 * server closes it while its buffer is still below Bun's hard cap, where a close frame still fits.
 * The periodic check is set to an hour, so only the checks made while sending can catch it.
 */
const limits = { ...defaultSocketLimits, slowConsumerBytes: 256 * 1024, slowConsumerCheck: Duration.hours(1) }
const frame = "z".repeat(64 * 1024)
/** Far more than kernel buffers plus Bun's hard cap (16 MiB): the loops below end because the connection closed. */
const maxFrames = 2000

/** Resumes reading a paused raw WebSocket client and returns the code of the close frame it finds (1006 if none). */
const readCloseCode = (socket: Socket) =>
  Effect.async<number>((resume) => {
    let pending: Buffer = Buffer.alloc(0)
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      while (pending.length >= 2) {
        const opcode = pending[0]! & 0x0f
        let length = pending[1]! & 0x7f
        let header = 2
        if (length === 126) [length, header] = pending.length >= 4 ? [pending.readUInt16BE(2), 4] : [Infinity, 4]
        else if (length === 127)
          [length, header] = pending.length >= 10 ? [Number(pending.readBigUInt64BE(2)), 10] : [Infinity, 10]
        if (pending.length < header + length) return
        if (opcode === 0x8) return resume(Effect.succeed(length >= 2 ? pending.readUInt16BE(header) : 1005))
        pending = pending.subarray(header + length)
      }
    })
    socket.on("close", () => resume(Effect.succeed(1006)))
    socket.resume()
  })

/** A server whose connections are handed to the test as they open; the first is a raw client that stops reading after the handshake. */
const serveSlow = Effect.gen(function* () {
  const metrics = yield* Metrics
  const opened = yield* Queue.unbounded<Connection<null>>()
  const server = yield* Effect.flatMap(Transport, (transport) =>
    transport.serve({
      name: "slow",
      port: 0,
      hostname: "127.0.0.1",
      limits,
      websocket: {
        upgrade: () => Effect.succeed(accept(null)),
        open: (connection) =>
          Effect.sync(() => {
            connection.subscribe("big")
            Queue.unsafeOffer(opened, connection)
            return { onMessage: () => {} }
          })
      }
    })
  ).pipe(Effect.provide(BunTransportLive))
  const reader = yield* connectSilent(server.port, { stopReading: true })
  const connection = yield* Queue.take(opened)
  return { metrics, server, reader, connection, opened }
}).pipe(Effect.provide(Metrics.Default))

describe("slow consumers over real sockets", () => {
  it.live("a reader that stops reading while sends pile up is closed with 4003", () =>
    Effect.gen(function* () {
      const { metrics, reader, connection } = yield* serveSlow
      for (let i = 0; i < maxFrames && connection.isOpen(); i++) connection.send(frame)
      expect(connection.isOpen()).toBe(false)
      expect(yield* readCloseCode(reader.socket)).toBe(CloseCodes.slowConsumer)
      expect(yield* metrics.render).toContain(`switchboard_ws_closes_total{server="slow",code="4003"} 1`)
    })
  )

  it.live("a reader that stops reading while server publishes pile up is closed with 4003, before Bun's hard cap", () =>
    Effect.gen(function* () {
      const { metrics, server, reader, connection } = yield* serveSlow
      for (let i = 0; i < maxFrames && connection.isOpen(); i++) server.publish("big", frame)
      expect(connection.isOpen()).toBe(false)
      expect(yield* readCloseCode(reader.socket)).toBe(CloseCodes.slowConsumer)
      const text = yield* metrics.render
      expect(text).toContain(`switchboard_ws_closes_total{server="slow",code="4003"} 1`)
      expect(text).not.toContain(`code="1006"`)
    })
  )

  it.live("the same when another connection publishes to the topic (the Rooms path); the publisher stays", () =>
    Effect.gen(function* () {
      const { server, reader, connection, opened } = yield* serveSlow
      const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      const publisher = yield* Queue.take(opened)
      for (let i = 0; i < maxFrames && connection.isOpen(); i++) publisher.publish("big", frame)
      expect(connection.isOpen()).toBe(false)
      expect(yield* readCloseCode(reader.socket)).toBe(CloseCodes.slowConsumer)
      publisher.send("still here")
      expect(yield* client.next()).toBe("still here")
    })
  )
})

/** The memory double holds what a paused client has not read as the socket's buffered bytes, like a kernel would. */
const serveInMemory = Effect.gen(function* () {
  const network = yield* MemoryNetwork
  const opened = yield* Queue.unbounded<Connection<null>>()
  const server = yield* Effect.flatMap(Transport, (transport) =>
    transport.serve({
      name: "slow",
      port: 0,
      limits: { ...defaultSocketLimits, slowConsumerBytes: 1024, slowConsumerCheck: Duration.seconds(1) },
      websocket: {
        upgrade: () => Effect.succeed(accept(null)),
        open: (connection) =>
          Effect.sync(() => {
            connection.subscribe("big")
            Queue.unsafeOffer(opened, connection)
            return { onMessage: () => {} }
          })
      }
    })
  )
  const slow = yield* network.connect(server.port)
  const connection = yield* Queue.take(opened)
  return { network, server, slow, connection }
})

describe("slow consumers in memory", () => {
  it.effect(
    "a paused client's buffer over slowConsumerBytes closes it with 4003 at send time; it reads what was held, then the close",
    () =>
      Effect.gen(function* () {
        const { slow, connection } = yield* serveInMemory
        slow.pauseReading(true)
        expect(connection.send("a".repeat(600))).toBe("queued")
        expect(connection.isOpen()).toBe(true)
        connection.send("b".repeat(600))
        expect(connection.isOpen()).toBe(false)
        slow.pauseReading(false)
        expect(yield* slow.next()).toBe("a".repeat(600))
        expect(yield* slow.next()).toBe("b".repeat(600))
        expect((yield* slow.closed).code).toBe(CloseCodes.slowConsumer)
      }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.effect("topic publishes are caught by the periodic check; other subscribers keep receiving", () =>
    Effect.gen(function* () {
      const { network, server, slow, connection } = yield* serveInMemory
      const fast = yield* network.connect(server.port)
      slow.pauseReading(true)
      expect(server.publish("big", "c".repeat(600))).toBe(-1)
      server.publish("big", "d".repeat(600))
      expect(connection.isOpen()).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(connection.isOpen()).toBe(false)
      server.publish("big", "after")
      for (const expected of ["c".repeat(600), "d".repeat(600), "after"]) expect(yield* fast.next()).toBe(expected)
      slow.pauseReading(false)
      for (const expected of ["c".repeat(600), "d".repeat(600)]) expect(yield* slow.next()).toBe(expected)
      expect((yield* slow.closed).code).toBe(CloseCodes.slowConsumer)
    }).pipe(Effect.provide(MemoryTransportTest))
  )
})
