import { describe, expect } from "bun:test"
import { type HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { ConfigProvider, Effect } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { limitRequestBody } from "../../../layers/Transport/RequestBody.ts"
import { Transport } from "../../../layers/Transport/Transport.ts"
import {
  defaultSocketLimits,
  requestBodyLimit,
  type SocketLimits,
  SocketLimitsConfig
} from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"

const limit = 1024

/** An HTTP app that reads the whole body and answers with its length. */
const bodyLength: HttpApp.Default = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const text = yield* request.text.pipe(Effect.orDie)
  return HttpServerResponse.unsafeJson({ length: text.length })
})

const serveBodies = Effect.flatMap(Transport, (transport) =>
  transport.serve({
    name: "bodies",
    port: 0,
    hostname: "127.0.0.1",
    limits: { ...defaultSocketLimits, maxRequestBodyBytes: limit },
    http: bodyLength
  })
)

/** A streamed body (no Content-Length: sent chunked over a real socket). */
const streamOf = (chunks: number, size: number) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < chunks; i++) controller.enqueue(new Uint8Array(size).fill(120))
      controller.close()
    }
  })

const expectRefusal = (response: Response) =>
  Effect.gen(function* () {
    expect(response.status).toBe(413)
    const text = yield* Effect.promise(() => response.text())
    expect(text.length).toBeLessThan(100)
    expect(JSON.parse(text)).toEqual({ error: `request body too large: the limit is ${limit} bytes` })
  })

describe("request body limit", () => {
  it.live(
    "over real sockets: a declared or streamed body over the limit gets 413 with a reason; the server keeps serving",
    () =>
      Effect.gen(function* () {
        const server = yield* serveBodies.pipe(Effect.provide(BunTransportLive), Effect.provide(Metrics.Default))
        const post = (body: BodyInit) =>
          Effect.promise(() => fetch(`${server.url}/`, { method: "POST", body, duplex: "half" } as RequestInit))
        yield* expectRefusal(yield* post("x".repeat(limit + 1)))
        yield* expectRefusal(yield* post("x".repeat(4 * 1024 * 1024)))
        yield* expectRefusal(yield* post(streamOf(8, 512)))
        const fits = yield* post("x".repeat(limit))
        expect(yield* Effect.promise(() => fits.json())).toEqual({ length: limit })
        const streamed = yield* post(streamOf(2, 512))
        expect(yield* Effect.promise(() => streamed.json())).toEqual({ length: limit })
      })
  )

  it.effect("in memory: the same limit and the same answer", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const server = yield* serveBodies
      const post = (body: BodyInit) =>
        network.fetch(
          server.port,
          new Request(`http://memory:${server.port}/`, { method: "POST", body, duplex: "half" } as RequestInit)
        )
      yield* expectRefusal(yield* post(streamOf(3, 512)))
      const fits = yield* post(streamOf(2, 512))
      expect(yield* Effect.promise(() => fits.json())).toEqual({ length: limit })
      const declared = new Request(`http://memory:${server.port}/`, {
        method: "POST",
        body: "x",
        headers: { "content-length": String(limit + 1) }
      })
      yield* expectRefusal(yield* network.fetch(server.port, declared))
    }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.effect("a bodiless or declared-size request passes through without a Promise", () =>
    Effect.sync(() => {
      const get = new Request("http://x/")
      expect(limitRequestBody(get, limit)).toBe(get)
      const small = new Request("http://x/", { method: "POST", body: "abc", headers: { "content-length": "3" } })
      expect(limitRequestBody(small, limit)).toBe(small)
    })
  )

  it.effect("the limit is configurable; unset, it follows the largest WebSocket message plus 64 KiB", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>, defaults: Partial<SocketLimits> = {}) =>
        Effect.withConfigProvider(SocketLimitsConfig(defaults), ConfigProvider.fromJson(env))
      const unset = yield* read({ maxPayloadBytes: "4096" })
      expect(unset.maxRequestBodyBytes).toBeUndefined()
      expect(requestBodyLimit(unset)).toBe(4096 + 64 * 1024)
      expect(requestBodyLimit(yield* read({ maxRequestBodyBytes: "2048" }))).toBe(2048)
      expect(requestBodyLimit(yield* read({}, { maxRequestBodyBytes: 65_536 }))).toBe(65_536)
      const invalid = yield* read({ maxRequestBodyBytes: "0" }).pipe(Effect.flip)
      expect(String(invalid)).toContain("maxRequestBodyBytes")
    })
  )
})
