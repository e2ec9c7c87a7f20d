import { describe, expect } from "bun:test"
import { Deferred, Duration, Effect, TestClock } from "effect"
import {
  BunTcpTransportLive,
  MemoryTcpNetwork,
  MemoryTcpTest,
  type TcpLimits,
  TcpTransport
} from "../../../layers/Transport/TcpTransport.ts"
import { it } from "../../support/effect.ts"

const limits = (overrides: Partial<TcpLimits> = {}): TcpLimits => ({
  maxConnections: 0,
  idleTimeout: Duration.seconds(10),
  maxBufferedBytes: 1024,
  ...overrides
})

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const bytes = (s: string) => new TextEncoder().encode(s)

/** An echo server; `closedCount` counts connection Scopes released. */
const echo = (l: TcpLimits) =>
  Effect.gen(function* () {
    const tcp = yield* TcpTransport
    const released = yield* Deferred.make<void>()
    const handle = yield* tcp.serve({
      name: "echo",
      port: 0,
      limits: l,
      open: (connection) =>
        Effect.as(
          Effect.addFinalizer(() => Deferred.succeed(released, undefined)),
          { onData: (data: Uint8Array) => void connection.write(data) }
        )
    })
    return { handle, released }
  })

describe("TcpTransport (memory)", () => {
  it.effect("echoes bytes; the connection's Scope closes with it", () =>
    Effect.gen(function* () {
      const { handle, released } = yield* echo(limits())
      const network = yield* MemoryTcpNetwork
      const client = yield* network.connect(handle.port)
      yield* client.write(bytes("hello"))
      expect(text(yield* client.read)).toBe("hello")
      expect(handle.connectionCount()).toBe(1)
      yield* client.close
      yield* Deferred.await(released)
      expect(handle.connectionCount()).toBe(0)
    }).pipe(Effect.provide(MemoryTcpTest))
  )

  it.effect("closes connections idle for the idle timeout (TestClock)", () =>
    Effect.gen(function* () {
      const { handle } = yield* echo(limits({ idleTimeout: Duration.seconds(10) }))
      const network = yield* MemoryTcpNetwork
      const client = yield* network.connect(handle.port)
      yield* TestClock.adjust("8 seconds")
      yield* client.write(bytes("still here"))
      expect(text(yield* client.read)).toBe("still here")
      yield* TestClock.adjust("8 seconds")
      expect(handle.connectionCount()).toBe(1)
      yield* TestClock.adjust("5 seconds")
      yield* client.closed
      expect(handle.connectionCount()).toBe(0)
    }).pipe(Effect.provide(MemoryTcpTest))
  )

  it.effect("refuses connections beyond maxConnections", () =>
    Effect.gen(function* () {
      const { handle } = yield* echo(limits({ maxConnections: 1 }))
      const network = yield* MemoryTcpNetwork
      yield* network.connect(handle.port)
      const second = yield* network.connect(handle.port)
      yield* second.closed
      expect(handle.connectionCount()).toBe(1)
    }).pipe(Effect.provide(MemoryTcpTest))
  )

  it.effect("backpressure: unsent bytes wait for drain, in order; past maxBufferedBytes the connection closes", () =>
    Effect.gen(function* () {
      const { handle } = yield* echo(limits({ maxBufferedBytes: 10 }))
      const network = yield* MemoryTcpNetwork
      const client = yield* network.connect(handle.port)
      client.writeWindow = 3
      yield* client.write(bytes("abcdef"))
      expect(text(yield* client.read)).toBe("abc")
      client.writeWindow = 100
      yield* client.drain
      expect(text(yield* client.read)).toBe("def")
      client.writeWindow = 0
      yield* client.write(bytes("0123456789"))
      yield* client.write(bytes("x"))
      yield* client.closed
    }).pipe(Effect.provide(MemoryTcpTest))
  )

  it.effect("input arriving while a handler is busy waits its turn, bounded by maxBufferedBytes", () =>
    Effect.gen(function* () {
      const tcp = yield* TcpTransport
      const gate = yield* Deferred.make<void>()
      const allSeen = yield* Deferred.make<void>()
      const seen: Array<string> = []
      const handle = yield* tcp.serve({
        name: "slow",
        port: 0,
        limits: limits({ maxBufferedBytes: 8 }),
        open: () =>
          Effect.succeed({
            onData: (data: Uint8Array) =>
              Effect.zipRight(
                Deferred.await(gate),
                Effect.suspend(() => (seen.push(text(data)) === 3 ? Deferred.succeed(allSeen, undefined) : Effect.void))
              )
          })
      })
      const network = yield* MemoryTcpNetwork
      const client = yield* network.connect(handle.port)
      yield* client.write(bytes("one"))
      yield* client.write(bytes("two"))
      yield* client.write(bytes("three"))
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(allSeen)
      expect(seen).toEqual(["one", "two", "three"])
      // While its first 9-byte chunk is handled, a second one waits: 9 waiting bytes exceed the 8-byte bound.
      yield* Effect.sync(() => void seen.splice(0))
      const slow = yield* network.connect(handle.port)
      yield* slow.write(bytes("123456789"))
      yield* slow.write(bytes("123456789"))
      yield* slow.closed
    }).pipe(Effect.provide(MemoryTcpTest))
  )
})

describe("TcpTransport (Bun)", () => {
  it.live("echoes over a real socket", () =>
    Effect.gen(function* () {
      const { handle } = yield* echo(limits())
      const received = yield* Deferred.make<string>()
      const socket = yield* Effect.promise(() =>
        Bun.connect({
          hostname: "127.0.0.1",
          port: handle.port,
          socket: { data: (_s, data) => void Deferred.unsafeDone(received, Effect.succeed(text(data))) }
        })
      )
      socket.write("ping")
      expect(yield* Deferred.await(received)).toBe("ping")
      socket.end()
    }).pipe(Effect.provide(BunTcpTransportLive))
  )
})
