import { describe, expect } from "bun:test"
import { HttpServerResponse } from "@effect/platform"
import { Effect, Option } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { accept, ClientAddress, plainAddress, Transport } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"
import { connectWs } from "../../support/WsClient.ts"

/** Whether this machine has an IPv6 loopback to test on (some containers have none). */
const hasIpv6Loopback = (() => {
  try {
    Bun.listen({ hostname: "::1", port: 0, socket: { data() {} } }).stop(true)
    return true
  } catch {
    return false
  }
})()
if (!hasIpv6Loopback) console.warn("skipping dual-stack tests: this machine has no IPv6 loopback (::1)")

/** Answers HTTP with the peer address it was given, and WebSocket with the upgrade's and the connection's. */
const serveAddresses = Effect.flatMap(Transport, (transport) =>
  transport.serve({
    name: "dual",
    port: 0,
    hostname: "::",
    limits: defaultSocketLimits,
    http: Effect.map(Effect.serviceOption(ClientAddress), (address) =>
      HttpServerResponse.text(Option.getOrElse(address, () => "unknown"))
    ),
    websocket: {
      upgrade: (_request, info) => Effect.succeed(accept(info.remoteAddress)),
      open: (connection) =>
        Effect.sync(() => {
          connection.send(`${connection.data} ${connection.remoteAddress}`)
          return { onMessage: () => {} }
        })
    }
  })
).pipe(Effect.provide(BunTransportLive), Effect.provide(Metrics.Default))

describe("dual-stack listening", () => {
  it.skipIf(!hasIpv6Loopback).live(
    'a server bound on "::" answers HTTP and WebSocket over [::1] and 127.0.0.1, with plain peer addresses',
    () =>
      Effect.gen(function* () {
        const server = yield* serveAddresses
        expect(server.url).toBe(`http://[::1]:${server.port}`)
        for (const [host, address] of [
          ["127.0.0.1", "127.0.0.1"],
          ["[::1]", "::1"]
        ] as const) {
          const response = yield* Effect.promise(() => fetch(`http://${host}:${server.port}/`))
          expect(yield* Effect.promise(() => response.text())).toBe(address)
          const client = yield* connectWs(`ws://${host}:${server.port}/`)
          expect(yield* client.next()).toBe(`${address} ${address}`)
        }
      })
  )

  it.effect("IPv4-mapped addresses read as IPv4; others are left alone", () =>
    Effect.sync(() => {
      expect(plainAddress("::ffff:10.1.2.3")).toBe("10.1.2.3")
      expect(plainAddress("::1")).toBe("::1")
      expect(plainAddress("::ffff:abcd")).toBe("::ffff:abcd")
      expect(plainAddress("192.168.0.1")).toBe("192.168.0.1")
    })
  )
})
