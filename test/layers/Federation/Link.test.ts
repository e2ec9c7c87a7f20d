import { describe, expect } from "bun:test"
import { Effect, Exit, Queue, Scope } from "effect"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { keepLinkUp } from "../../../layers/Federation/Link.ts"
import { accept, Transport } from "../../../layers/Transport/Transport.ts"
import { it } from "../../support/effect.ts"

/** A peer that greets each connection with its generation number and echoes. */
const startPeer = (port: number, generation: number) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    return yield* transport.serve({
      name: `peer-${generation}`,
      port,
      hostname: "127.0.0.1",
      limits: defaultSocketLimits,
      websocket: {
        upgrade: () => Effect.succeed(accept(null)),
        open: (connection) =>
          Effect.sync(() => {
            connection.send(`hello from ${generation}`)
            return { onMessage: (message) => Effect.sync(() => connection.send(`echo:${String(message)}`)) }
          })
      }
    })
  }).pipe(Effect.provide(BunTransportLive))

const dials = (text: string) => Number(/switchboard_link_dials_total\{link="peer"\} (\d+)/.exec(text)?.[1] ?? 0)

describe("keepLinkUp", () => {
  it.live("dials, announces, and redials with backoff while the peer is down", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const received = yield* Queue.unbounded<string>()
      const firstScope = yield* Scope.make()
      const first = yield* startPeer(0, 1).pipe(Scope.extend(firstScope))
      yield* Effect.forkScoped(
        keepLinkUp({
          name: "peer",
          url: `ws://127.0.0.1:${first.port}/?secret=x`,
          initialDelay: "20 millis",
          maxDelay: "60 millis",
          handler: {
            onOpen: (link) => Effect.sync(() => link.send("announce")),
            onMessage: (message) => Queue.offer(received, String(message))
          }
        })
      )
      expect(yield* Queue.take(received)).toBe("hello from 1")
      expect(yield* Queue.take(received)).toBe("echo:announce")

      yield* Scope.close(firstScope, Exit.void)
      const before = dials(yield* metrics.render)
      yield* Effect.sleep("300 millis")
      expect(dials(yield* metrics.render)).toBeGreaterThan(before + 1)

      yield* startPeer(first.port, 2)
      expect(yield* Queue.take(received)).toBe("hello from 2")
      expect(yield* Queue.take(received)).toBe("echo:announce")
    }).pipe(Effect.provide(Metrics.Default))
  )
})
