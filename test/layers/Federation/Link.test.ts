import { describe, expect } from "bun:test"
import { Deferred, Effect, Exit, FastCheck, Layer, Queue, Scope } from "effect"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { memoryDialer } from "../../../layers/Federation/InProcessFederation.ts"
import { type Dialer, keepLinkUp, type Link, webSocketDialer } from "../../../layers/Federation/Link.ts"
import { MemoryNetwork, MemoryTransportLive } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, type Connection, type ConnectionHandler, Transport } from "../../../layers/Transport/Transport.ts"
import { it } from "../../support/effect.ts"

/** A WebSocket peer on the Transport in context whose connections `open` as given. */
const servePeer = (name: string, port: number, open: (connection: Connection<null>) => ConnectionHandler) =>
  Effect.flatMap(Transport, (transport) =>
    transport.serve({
      name,
      port,
      hostname: "127.0.0.1",
      limits: defaultSocketLimits,
      websocket: {
        upgrade: () => Effect.succeed(accept(null)),
        open: (connection) => Effect.sync(() => open(connection))
      }
    })
  )

/** A peer that greets each connection with its generation number and echoes. */
const startPeer = (port: number, generation: number) =>
  servePeer(`peer-${generation}`, port, (connection) => {
    connection.send(`hello from ${generation}`)
    return { onMessage: (message) => Effect.sync(() => connection.send(`echo:${String(message)}`)) }
  }).pipe(Effect.provide(BunTransportLive))

const dials = (text: string) => Number(/switchboard_link_dials_total\{link="peer"\} (\d+)/.exec(text)?.[1] ?? 0)

describe("keepLinkUp", () => {
  it.live("dials, announces, and redials with backoff while the peer is down", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const received = yield* Queue.unbounded<string>()
      const attempts = yield* Queue.unbounded<void>()
      // Counts each dial as it starts, so the test waits for redials instead of for time.
      const countingDialer: Dialer = (url, headers, openTimeout) =>
        Effect.zipRight(Queue.offer(attempts, undefined), webSocketDialer(url, headers, openTimeout))
      const firstScope = yield* Scope.make()
      const first = yield* startPeer(0, 1).pipe(Scope.extend(firstScope))
      yield* Effect.forkScoped(
        keepLinkUp(
          {
            name: "peer",
            url: `ws://127.0.0.1:${first.port}/?secret=x`,
            initialDelay: "20 millis",
            maxDelay: "60 millis",
            handler: {
              onOpen: (link) => Effect.sync(() => link.send("announce")),
              onMessage: (message) => Queue.offer(received, String(message))
            }
          },
          countingDialer
        )
      )
      yield* Queue.take(attempts)
      expect(yield* Queue.take(received)).toBe("hello from 1")
      expect(yield* Queue.take(received)).toBe("echo:announce")

      yield* Scope.close(firstScope, Exit.void)
      const before = dials(yield* metrics.render)
      // Three dials after the drop (at least two of them after `before`) prove it keeps redialling.
      yield* Queue.take(attempts)
      yield* Queue.take(attempts)
      yield* Queue.take(attempts)
      expect(dials(yield* metrics.render)).toBeGreaterThan(before + 1)

      yield* startPeer(first.port, 2)
      expect(yield* Queue.take(received)).toBe("hello from 2")
      expect(yield* Queue.take(received)).toBe("echo:announce")
    }).pipe(Effect.provide(Metrics.Default))
  )
})

/** A peer that sends `chunks` one after another: the first as the link opens, each next one when asked ("next"). */
const startChunkPeer = (chunks: ReadonlyArray<ReadonlyArray<string>>) =>
  servePeer("chunks", 0, (connection) => {
    let next = 0
    const sendChunk = () => {
      for (const frame of chunks[next++] ?? []) connection.send(frame)
    }
    sendChunk()
    return { onMessage: () => Effect.sync(sendChunk) }
  })

const dialers: ReadonlyArray<{
  readonly name: string
  readonly transport: Layer.Layer<Transport | MemoryNetwork | Metrics>
  readonly dialer: Effect.Effect<Dialer, never, MemoryNetwork>
}> = [
  {
    name: "WebSocket",
    transport: BunTransportLive.pipe(Layer.provideMerge(Layer.merge(MemoryNetwork.Default, Metrics.Default))),
    dialer: Effect.succeed(webSocketDialer)
  },
  {
    name: "memory",
    transport: MemoryTransportLive.pipe(Layer.provideMerge(Layer.merge(MemoryNetwork.Default, Metrics.Default))),
    dialer: Effect.map(MemoryNetwork, memoryDialer)
  }
]

describe("keepLinkUp: frames handled on the spot", () => {
  for (const { name, transport, dialer } of dialers)
    it.live(`${name}: frames handled on the spot and through the fiber come in the order sent`, () =>
      Effect.gen(function* () {
        // Chunks of 1-4 frames; some frames need the fiber (and take a while there), and the ones after
        // them must wait their turn. The last frame of a chunk asks for the next chunk once it is handled.
        const shapes = FastCheck.sample(FastCheck.array(FastCheck.boolean(), { minLength: 1, maxLength: 4 }), {
          numRuns: 120,
          seed: 13
        })
        let n = 0
        const chunks = shapes.map((chunk) =>
          chunk.map((isSlow, i) => `${isSlow ? "slow" : "now"}:${n++}${i === chunk.length - 1 ? ":last" : ""}`)
        )
        const frames = chunks.flat()
        const peer = yield* startChunkPeer(chunks)
        const seen: Array<string> = []
        let onTheSpot = 0
        const all = yield* Deferred.make<void>()
        const record = (message: string, link: Link) => {
          seen.push(message)
          if (message.endsWith(":last")) link.send("next")
          if (seen.length === frames.length) Deferred.unsafeDone(all, Exit.void)
        }
        yield* Effect.forkScoped(
          keepLinkUp(
            {
              name: "burst",
              url: `ws://127.0.0.1:${peer.port}/`,
              handler: {
                onOpen: () => Effect.void,
                onMessage: (message, link) =>
                  Effect.sleep("1 millis").pipe(Effect.andThen(() => record(String(message), link))),
                onMessageNow: (message, link) => {
                  if (String(message).startsWith("slow")) return false
                  onTheSpot++
                  record(String(message), link)
                  return true
                }
              }
            },
            yield* dialer
          )
        )
        yield* Deferred.await(all)
        expect(seen).toEqual(frames)
        expect(onTheSpot).toBeGreaterThan(0)
      }).pipe(Effect.provide(transport))
    )
})
