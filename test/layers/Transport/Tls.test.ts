import { describe, expect } from "bun:test"
import { HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { accept, Transport } from "../../../layers/Transport/Transport.ts"
import { it } from "../../support/effect.ts"
import { hasOpenssl, selfSigned } from "../../support/tls.ts"

if (!hasOpenssl) console.warn("skipping TLS tests: openssl is not installed")

const serveTls = (tls: { certPath: string; keyPath: string }) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    return yield* transport.serve({
      name: "tls",
      port: 0,
      hostname: "127.0.0.1",
      tls,
      limits: defaultSocketLimits,
      http: Effect.succeed(HttpServerResponse.text("secure hello")),
      websocket: {
        upgrade: () => Effect.succeed(accept(null)),
        open: (connection) => Effect.succeed({ onMessage: (message) => Effect.sync(() => connection.send(message)) })
      }
    })
  }).pipe(Effect.provide(BunTransportLive), Effect.provide(Metrics.Default))

describe("BunTransport with TLS", () => {
  it.skipIf(!hasOpenssl).live("serves https and wss from cert/key files", () =>
    Effect.gen(function* () {
      const server = yield* serveTls(selfSigned())
      expect(server.url.startsWith("https://")).toBe(true)
      const response = yield* Effect.promise(() => fetch(server.url, { tls: { rejectUnauthorized: false } } as any))
      expect(yield* Effect.promise(() => response.text())).toBe("secure hello")
      const echoed = yield* Effect.promise(
        () =>
          new Promise<string>((resolve, reject) => {
            const ws = new WebSocket(`wss://127.0.0.1:${server.port}/`, { tls: { rejectUnauthorized: false } } as any)
            ws.onopen = () => ws.send("over tls")
            ws.onmessage = (event) => {
              resolve(String(event.data))
              ws.close()
            }
            ws.onerror = () => reject(new Error("wss failed"))
          })
      )
      expect(echoed).toBe("over tls")
    })
  )

  it.live("a missing certificate file is a clear startup error", () =>
    Effect.gen(function* () {
      const error = yield* serveTls({ certPath: "/nonexistent/cert.pem", keyPath: "/nonexistent/key.pem" }).pipe(
        Effect.flip
      )
      expect(error.message).toBe("TLS file not found: /nonexistent/cert.pem")
    })
  )
})
