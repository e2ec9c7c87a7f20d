import { describe, expect } from "bun:test"
import { Deferred, Effect, Layer, Queue, TestClock } from "effect"
import { Federation } from "../../../layers/Federation/Federation.ts"
import { MemoryFederationLive } from "../../../layers/Federation/InProcessFederation.ts"
import { MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, Transport } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"

/** A peer that greets each link with "hello <generation>" and echoes. */
const peer = (port: number, generation: number) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    return yield* transport.serve({
      name: `peer-${generation}`,
      port,
      limits: defaultSocketLimits,
      websocket: {
        upgrade: (request) => Effect.succeed(accept(request.headers.get("x-node") ?? "")),
        open: (connection) =>
          Effect.sync(() => {
            connection.send(`hello ${generation} ${connection.data}`)
            return { onMessage: (message) => void connection.send(`echo:${String(message)}`) }
          })
      }
    })
  })

const TestLayers = MemoryFederationLive.pipe(Layer.provideMerge(MemoryTransportTest))

describe("Federation (in-memory)", () => {
  it.effect("a link dials with its headers, runs onOpen, then hands over every frame in order", () =>
    Effect.gen(function* () {
      const federation = yield* Federation
      const received = yield* Queue.unbounded<string>()
      const server = yield* peer(0, 1)
      const status = yield* federation.link({
        name: "test",
        url: `ws://memory:${server.port}/s2s`,
        headers: { "x-node": "n1" },
        handler: {
          onOpen: (link) => Effect.sync(() => link.send("ping")),
          onMessage: (message) => Queue.offer(received, String(message))
        }
      })
      expect(yield* Queue.take(received)).toBe("hello 1 n1")
      expect(yield* Queue.take(received)).toBe("echo:ping")
      expect(status.isUp()).toBe(true)
    }).pipe(Effect.provide(TestLayers))
  )

  it.effect("the link outlives a peer restart: down while it is away, up again after backoff", () =>
    Effect.gen(function* () {
      const federation = yield* Federation
      const received = yield* Queue.unbounded<string>()
      const stop = yield* Deferred.make<void>()
      const peerFiber = yield* Effect.forkScoped(Effect.scoped(Effect.zipRight(peer(40_001, 1), Deferred.await(stop))))
      yield* Effect.yieldNow()
      const status = yield* federation.link({
        name: "test",
        url: "ws://memory:40001/",
        handler: { onOpen: () => Effect.void, onMessage: (message) => Queue.offer(received, String(message)) }
      })
      expect(yield* Queue.take(received)).toBe("hello 1 ")
      yield* Deferred.succeed(stop, undefined)
      yield* peerFiber.await
      yield* TestClock.adjust("50 millis")
      expect(status.isUp()).toBe(false)
      yield* Effect.forkScoped(Effect.scoped(Effect.zipRight(peer(40_001, 2), Effect.never)))
      yield* TestClock.adjust("5 seconds")
      expect(yield* Queue.take(received)).toBe("hello 2 ")
      expect(status.isUp()).toBe(true)
    }).pipe(Effect.provide(TestLayers))
  )

  it.effect("a peer that opens and closes with 1013 (try again later) is re-dialled with backoff", () =>
    Effect.gen(function* () {
      const federation = yield* Federation
      const transport = yield* Transport
      /** Ten seconds of a link to a peer that closes every connection at once with `code`: how often it was dialled. */
      const dialsIn10Seconds = (port: number, code: number) =>
        Effect.gen(function* () {
          let opened = 0
          yield* transport.serve({
            name: `closer-${code}`,
            port,
            limits: defaultSocketLimits,
            websocket: {
              upgrade: () => Effect.succeed(accept(undefined)),
              open: (connection) =>
                Effect.sync(() => {
                  opened++
                  connection.close(code, "not now")
                  return { onMessage: () => {} }
                })
            }
          })
          yield* federation.link({
            name: `to-closer-${code}`,
            url: `ws://memory:${port}/`,
            handler: { onOpen: () => Effect.void, onMessage: () => Effect.void }
          })
          for (let i = 0; i < 100; i++) {
            yield* TestClock.adjust("100 millis")
            yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
          }
          return opened
        })
      // A link that served and dropped is re-dialled at once (backoff reset); one refused with 1013 backs off.
      expect(yield* dialsIn10Seconds(40_002, 1000)).toBeGreaterThan(30)
      expect(yield* dialsIn10Seconds(40_003, 1013)).toBeLessThan(15)
    }).pipe(Effect.provide(TestLayers))
  )

  it.effect("the bus delivers a subject's payloads to its subscribers only", () =>
    Effect.gen(function* () {
      const federation = yield* Federation
      const a = yield* federation.subscribe("a")
      const b = yield* federation.subscribe("b")
      yield* federation.publish("a", "1")
      expect(yield* Queue.take(a)).toBe("1")
      expect(yield* Queue.size(b)).toBe(0)
    }).pipe(Effect.provide(TestLayers))
  )
})
