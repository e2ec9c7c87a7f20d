import { describe, expect } from "bun:test"
import { connect } from "node:net"
import { Effect } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive, sentCloseCode } from "../../../layers/Transport/BunTransport.ts"
import { accept, Transport } from "../../../layers/Transport/Transport.ts"
import { closeCodeLabel, CloseCodes } from "../../../src/shared/CloseCodes.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { eventually, it } from "../../support/effect.ts"
import { connectWs } from "../../support/WsClient.ts"

/** /metrics must count the close code the peer was sent, with a bounded set of label values. */
const serveQuiet = Effect.gen(function* () {
  const metrics = yield* Metrics
  const server = yield* Effect.flatMap(Transport, (transport) =>
    transport.serve({
      name: "closes",
      port: 0,
      hostname: "127.0.0.1",
      limits: { ...defaultSocketLimits, maxPayloadBytes: 64 },
      websocket: { upgrade: () => Effect.succeed(accept(null)), open: () => Effect.succeed({ onMessage: () => {} }) }
    })
  ).pipe(Effect.provide(BunTransportLive))
  const closes = (code: string) =>
    metrics.render.pipe(
      Effect.map((text) =>
        Number(
          new RegExp(`switchboard_ws_closes_total\\{server="closes",code="${code}"\\} (\\d+)`).exec(text)?.[1] ?? 0
        )
      )
    )
  return { server, closes }
}).pipe(Effect.provide(Metrics.Default))

/** Sends one masked frame with the given first byte and payload from a raw client, right after the handshake. */
const rawFrame = (port: number, first: number, payload: Buffer) =>
  Effect.async<void>((resume) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.on("error", () => {})
    socket.once("data", () =>
      socket.write(Buffer.concat([Buffer.from([first, 0x80 | payload.length, 0, 0, 0, 0]), payload]))
    )
    socket.on("close", () => resume(Effect.void))
    socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
  })

describe("close codes in /metrics", () => {
  it.live(
    "an oversized message counts as 1009, invalid UTF-8 as 1007, a bad frame as 1002, a vanished peer as 1006",
    () =>
      Effect.gen(function* () {
        const { server, closes } = yield* serveQuiet
        const big = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
        yield* big.send("x".repeat(65))
        expect((yield* big.closed).code).toBe(CloseCodes.messageTooBig)
        yield* rawFrame(server.port, 0x81, Buffer.from([0xff, 0xfe]))
        yield* rawFrame(server.port, 0x83, Buffer.alloc(0))
        const vanished = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
        ;(vanished.socket as unknown as { terminate: () => void }).terminate()
        yield* eventually(() => server.connectionCount() === 0, "every connection gone")
        expect(yield* closes("1009")).toBe(1)
        expect(yield* closes("1007")).toBe(1)
        expect(yield* closes("1002")).toBe(1)
        expect(yield* closes("1006")).toBe(1)
      })
  )

  it.live("codes a client picks outside the RFC and documented sets share one label", () =>
    Effect.gen(function* () {
      const { server, closes } = yield* serveQuiet
      for (const code of [3000, 4321, 4999]) {
        const client = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
        yield* client.close(code)
      }
      const normal = yield* connectWs(`ws://127.0.0.1:${server.port}/`)
      yield* normal.close(1000)
      yield* eventually(() => server.connectionCount() === 0, "every connection gone")
      expect(yield* closes("other")).toBe(3)
      expect(yield* closes("1000")).toBe(1)
    })
  )

  it.effect("uWS's own closes map to the code it sent; everything else passes through", () =>
    Effect.sync(() => {
      expect(sentCloseCode(1006, "Received too big message")).toBe(1009)
      expect(sentCloseCode(1006, "Received too big message, or other inflation error")).toBe(1009)
      expect(sentCloseCode(1006, "Received invalid UTF-8")).toBe(1007)
      expect(sentCloseCode(1006, "Received an incorrectly masked frame")).toBe(1002)
      expect(sentCloseCode(1006, "")).toBe(1006)
      expect(sentCloseCode(4003, "slow consumer")).toBe(4003)
      expect([1000, 1005, 1006, 4003, 4401].map(closeCodeLabel)).toEqual(["1000", "1005", "1006", "4003", "4401"])
      expect([0, 999, 1004, 2000, 3000, 4999, 65535].map(closeCodeLabel).every((label) => label === "other")).toBe(true)
    })
  )
})
