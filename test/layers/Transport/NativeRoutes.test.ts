import { describe, expect, test } from "bun:test"
import { type HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, FastCheck, Option } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { pathOf } from "../../../layers/Transport/NativeRoutes.ts"
import { ClientAddress, type NativeRoute, Transport } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"
import { rawHttp } from "../../support/RawHttp.ts"

const limit = 1024

/** The HTTP app answers "app", with the method and path it saw. */
const app: HttpApp.Default = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const address = yield* Effect.serviceOption(ClientAddress)
  return HttpServerResponse.unsafeJson({
    by: "app",
    method: request.method,
    url: request.url,
    address: Option.getOrNull(address)
  })
})

/** A native POST route that echoes its body and the address it was given; GET answers at once (synchronously). */
const routes: ReadonlyArray<NativeRoute> = [
  {
    method: "POST",
    path: "/echo",
    handle: (request, address) =>
      Effect.map(
        Effect.promise(() => request.text()),
        (text) => Response.json({ by: "route", text, address })
      )
  },
  { method: "GET", path: "/now", handle: () => Effect.succeed(Response.json({ by: "route", now: true })) },
  { method: "POST", path: "/broken", handle: () => Effect.dieMessage("handler bug") }
]

const serveBoth = Effect.flatMap(Transport, (transport) =>
  transport.serve<string, never>({
    name: "routes",
    port: 0,
    hostname: "127.0.0.1",
    limits: { ...defaultSocketLimits, maxRequestBodyBytes: limit },
    http: app,
    routes,
    websocket: {
      upgrade: () => Effect.succeed({ _tag: "Accept", data: "ws" }),
      open: (connection) =>
        Effect.sync(() => {
          connection.send("hello")
          return { onMessage: () => {} }
        })
    }
  })
)

type Fetch = (path: string, init?: RequestInit) => Effect.Effect<Response>

/** Which side answered each request, the same over both transports. */
const expectDispatch = (send: Fetch, address: string) =>
  Effect.gen(function* () {
    const json = (path: string, init?: RequestInit) =>
      Effect.flatMap(send(path, init), (response) =>
        Effect.promise(async () => ({ status: response.status, body: (await response.json()) as any }))
      )
    const post = (path: string, body = "hi") => json(path, { method: "POST", body })
    expect(yield* post("/echo")).toEqual({ status: 200, body: { by: "route", text: "hi", address } })
    // The trailing "/" and a query reach the route too, as the HTTP app's router would.
    expect((yield* post("/echo/")).body.by).toBe("route")
    expect((yield* post("/echo?x=1")).body.by).toBe("route")
    expect((yield* json("/now")).body).toEqual({ by: "route", now: true })
    // Another method, another path, or a path the native router would also match ("//echo") go to the app.
    expect((yield* json("/echo")).body).toMatchObject({ by: "app", method: "GET", url: "/echo", address })
    expect((yield* post("//echo")).body).toMatchObject({ by: "app", url: "//echo" })
    expect((yield* post("/echo/more")).body).toMatchObject({ by: "app", url: "/echo/more" })
    expect((yield* post("/Echo")).body).toMatchObject({ by: "app" })
    // The body limit applies before the route, with the transport's usual 413.
    const tooBig = yield* post("/echo", "x".repeat(limit + 1))
    expect(tooBig.status).toBe(413)
    expect(tooBig.body.error).toBe(`request body too large: the limit is ${limit} bytes`)
    // A defect in a handler is an empty 500, as the HTTP app answers one; the server keeps serving.
    const broken = yield* send("/broken", { method: "POST" })
    expect(broken.status).toBe(500)
    expect(yield* Effect.promise(() => broken.text())).toBe("")
    expect((yield* post("/echo")).status).toBe(200)
  })

describe("native routes (ServeOptions.routes)", () => {
  test("pathOf reads the path as the HTTP app does: after the host, before the query", () => {
    expect(pathOf("http://127.0.0.1:80/w/wl?x=1")).toBe("/w/wl")
    expect(pathOf("https://[::1]:443/agent/al/")).toBe("/agent/al/")
    expect(pathOf("http://host:1")).toBe("/")
    expect(pathOf("/already/a/path?q")).toBe("/already/a/path")
    const segment = FastCheck.stringMatching(/^[a-zA-Z0-9._~%-]{0,8}$/)
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(segment, { maxLength: 5 }),
        FastCheck.option(FastCheck.stringMatching(/^[a-z0-9=&/?]{0,12}$/), { nil: undefined }),
        (segments, query) => {
          const path = `/${segments.join("/")}`
          const url = `http://example.test:8080${path}${query === undefined ? "" : `?${query}`}`
          expect(pathOf(url)).toBe(path)
        }
      )
    )
  })

  it.effect("in memory: the route takes its method and exact path, the HTTP app the rest", () =>
    Effect.gen(function* () {
      const server = yield* serveBoth
      const network = yield* MemoryNetwork
      yield* expectDispatch(
        (path, init) => network.fetch(server.port, new Request(`${server.url}${path}`, init), "10.0.0.7"),
        "10.0.0.7"
      )
      // WebSockets still upgrade, on a GET route's path too.
      const client = yield* network.connect(server.port, "/now")
      expect(yield* client.next()).toBe("hello")
    }).pipe(Effect.provide(MemoryTransportTest))
  )

  it.live("over real sockets (Bun.serve routes): the same dispatch, and WebSockets still upgrade", () =>
    Effect.gen(function* () {
      const server = yield* serveBoth.pipe(Effect.provide(BunTransportLive), Effect.provide(Metrics.Default))
      // fetch normalizes "//echo"; a raw request keeps the path as sent.
      const send: Fetch = (path, init) =>
        path.startsWith("//") ? rawPost(server.port, path) : Effect.promise(() => fetch(`${server.url}${path}`, init))
      yield* expectDispatch(send, "127.0.0.1")
      const hello = yield* Effect.promise(
        () =>
          new Promise<string>((resolve, reject) => {
            const socket = new WebSocket(`ws://127.0.0.1:${server.port}/now`)
            socket.onmessage = (event) => {
              resolve(String(event.data))
              socket.close()
            }
            socket.onerror = () => reject(new Error("websocket failed"))
          })
      )
      expect(hello).toBe("hello")
    })
  )
})

/** A POST with the path exactly as given, over a raw TCP socket; the response parsed back. */
const rawPost = (port: number, path: string) =>
  Effect.promise(async () => {
    const received = await rawHttp(port, `POST ${path} HTTP/1.1\r\ncontent-length: 2`, "hi")
    const [head, body] = received.split("\r\n\r\n", 2) as [string, string]
    return new Response(body, { status: Number(head.split(" ")[1]) })
  })
