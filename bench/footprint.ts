/**
 * What an idle Transport connection holds: a BunTransport server with the forwarding protocol of
 * bench/baselines/transport.ts, N idle clients from a child process (handshake only, pings
 * answered by the kernel-level client below), then the JS heap's object counts per connection
 * (bun:jsc heapStats, after a full GC) and RSS per connection. Not part of `npm run bench`: a tool
 * for finding what to cut. `bun run bench/footprint.ts [N]`; SNAPSHOT=file.json also writes a
 * heap snapshot for a heap viewer; NO_OPEN_NOW=1 opens each connection through `open` (a fiber each); SHRINK=1 also
 * reads RSS after Bun.shrink() (the runtime returning the memory it keeps free); LOGIN=1 logs in before each connect
 * (a native route; EFFECT_LOGIN=1 through the Effect HTTP app, as the Transport baseline did before).
 */
import { heapStats } from "bun:jsc"
import { HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Schema } from "effect"
import { Metrics } from "../layers/Observability/Metrics.ts"
import { BunTransportLive } from "../layers/Transport/BunTransport.ts"
import {
  accept,
  type Connection,
  type ConnectionHandler,
  Transport,
  type WireMessage
} from "../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../src/shared/SocketLimits.ts"

/** Client mode: opens `count` WebSockets to `port` (each after an HTTP login with LOGIN=1) and holds them, answering pings. */
const holdClients = async (port: number, count: number) => {
  let open = 0
  const pong = Buffer.from([0x8a, 0x80, 0, 0, 0, 0])
  for (let i = 0; i < count; i++) {
    if (process.env.LOGIN) {
      const body = JSON.stringify({ acc: "bench", pwd: "x", gr: `g${i % 50}` })
      await (
        await fetch(`http://127.0.0.1:${port}/w/wl`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body
        })
      ).text()
    }
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(socket, chunk) {
          if (chunk.includes("HTTP/1.1 101") && ++open === count) console.log("ready")
          // Any server ping (opcode 9) gets a pong; the handshake and the greeting do not start with 0x89.
          else if (chunk[0] === 0x89) socket.write(pong)
        }
      }
    })
    socket.write(
      `GET /?f=g${i % 50}&s=u${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
    if (i % 200 === 0) await Bun.sleep(1)
  }
  await new Promise(() => {})
}

const greeting = (address: string) => `{"ty":"s","mt":9007,"ms":{"s":"OK:connected:tcp:${address}"}}`

/** One handler for every connection (CLOSURES=1: a closure per connection, as protocols with per-connection state have). */
const forwarding: ConnectionHandler<never, { topic: string }> = {
  onMessage: (message, connection) => connection.publish(connection.data.topic, message)
}

const openForwarding = (connection: Connection<{ topic: string }>) => {
  connection.subscribe(connection.data.topic)
  connection.send(greeting(connection.remoteAddress))
  if (!process.env.CLOSURES) return forwarding
  return { onMessage: (message: WireMessage) => connection.publish(connection.data.topic, message) }
}

/** The login the Transport baseline used to serve (EFFECT_LOGIN=1), without the router: reads a JSON body, answers JSON. */
const effectLogin = Effect.gen(function* () {
  const body = (yield* HttpServerRequest.schemaBodyJson(Schema.Unknown).pipe(Effect.orElseSucceed(() => ({})))) as {
    gr?: unknown
  }
  return HttpServerResponse.unsafeJson({ e: 0, cs: { f: String(body.gr ?? "1"), g: "127.0.0.1" } })
})

/** The same login through the Transport's native routes (ServeOptions.routes), as the baseline and the authenticator serve theirs. */
const nativeLogin = (request: Request) =>
  Effect.promise(() => request.json().catch(() => ({}))).pipe(
    Effect.map((body: { gr?: unknown }) => Response.json({ e: 0, cs: { f: String(body?.gr ?? "1"), g: "127.0.0.1" } }))
  )

/** The same server on layers/Transport (EFFECT_LOGIN=1: its login through the Effect HTTP app instead of a native route). */
const transportServer = Effect.gen(function* () {
  const transport = yield* Transport
  const server = yield* transport.serve<{ topic: string }, never>({
    name: "footprint",
    port: 0,
    hostname: "127.0.0.1",
    limits: { ...defaultSocketLimits, pingInterval: Duration.seconds(2), pongTimeout: Duration.seconds(1) },
    ...(process.env.EFFECT_LOGIN
      ? { http: effectLogin }
      : { routes: [{ method: "POST" as const, path: "/w/wl", handle: nativeLogin }] }),
    websocket: {
      upgrade: (_request, { url }) => Effect.succeed(accept({ topic: `g:${url.searchParams.get("f")}` })),
      open: (connection) => Effect.sync(() => openForwarding(connection)),
      ...(process.env.NO_OPEN_NOW ? {} : { openNow: openForwarding })
    }
  })
  return { port: server.port, connectionCount: server.connectionCount }
})

/**
 * The same server on raw Bun.serve (RAW=1), for the floor. EFFECT_LOGIN=1 answers the login through the Effect HTTP
 * app the Transport runs (the rest stays raw): what that login leaves behind, apart from the Transport.
 */
const rawServer = () => {
  let open = 0
  const login = process.env.EFFECT_LOGIN ? HttpApp.toWebHandler(effectLogin) : undefined
  const server = Bun.serve<{ topic: string }, never>({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (request, server) => {
      if (request.method === "POST") {
        if (login) return login(request)
        return request
          .json()
          .catch(() => ({}))
          .then((body: { gr?: unknown }) => Response.json({ e: 0, cs: { f: String(body.gr ?? "1"), g: "127.0.0.1" } }))
      }
      return server.upgrade(request, { data: { topic: `g:${new URL(request.url).searchParams.get("f")}` } })
        ? undefined
        : new Response("no", { status: 400 })
    },
    websocket: {
      open(ws) {
        open++
        ws.subscribe(ws.data.topic)
        ws.send(greeting(ws.remoteAddress))
      },
      message(ws, message) {
        ws.publish(ws.data.topic, message)
      },
      close() {
        open--
      }
    }
  })
  return { port: server.port!, connectionCount: () => open }
}

const measure = (count: number) =>
  Effect.gen(function* () {
    const snapshot = () => {
      Bun.gc(true)
      Bun.gc(true)
      const heap = heapStats()
      return {
        rss: process.memoryUsage().rss,
        heap: heap.heapSize,
        capacity: heap.heapCapacity,
        extra: heap.extraMemorySize,
        counts: heap.objectTypeCounts as Record<string, number>
      }
    }
    const server = process.env.RAW ? rawServer() : yield* transportServer
    yield* Effect.sleep("500 millis")
    const before = snapshot()
    const child = Bun.spawn(
      [process.execPath, "run", import.meta.path, "clients", String(server.port), String(count)],
      { stdout: "pipe" }
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill()))
    yield* Effect.promise(async () => {
      const reader = child.stdout.getReader()
      while (true) {
        const { value, done } = await reader.read()
        if (done || new TextDecoder().decode(value).includes("ready")) return
      }
    })
    // A few heartbeat sweeps, so what the first messages and pings allocate is counted too.
    yield* Effect.sleep("7 seconds")
    const after = snapshot()
    const connected = server.connectionCount()
    const perConnection = (bytes: number) => (bytes / connected / 1024).toFixed(2)
    console.log(
      `${connected} idle connections: RSS ${perConnection(after.rss - before.rss)} KB and JS heap ${perConnection(after.heap - before.heap)} KB per connection`
    )
    const grown = Object.entries(after.counts)
      .map(([type, n]) => [type, n - (before.counts[type] ?? 0)] as const)
      .filter(([, n]) => n >= connected / 4)
      .sort((a, b) => b[1] - a[1])
    if (process.env.VERBOSE)
      console.log(
        `  heap capacity ${perConnection(after.capacity - before.capacity)} KB, extra memory ${perConnection(after.extra - before.extra)} KB per connection`
      )
    for (const [type, n] of grown) console.log(`  ${type}: ${(n / connected).toFixed(2)} per connection`)
    if (process.env.SHRINK) {
      // Asks the runtime to hand back what it keeps free (JSC heap blocks and the malloc's free pages): what RSS is left
      // is what the connections hold, the rest was retention.
      Bun.shrink()
      yield* Effect.sleep("1 second")
      console.log(
        `  after Bun.shrink(): RSS ${perConnection(process.memoryUsage().rss - before.rss)} KB per connection`
      )
    }
    const file = process.env.SNAPSHOT
    if (file) yield* Effect.promise(() => Bun.write(file, JSON.stringify(Bun.generateHeapSnapshot())))
  })

if (import.meta.main) {
  const [mode, port, count] = process.argv.slice(2)
  if (mode === "clients") await holdClients(Number(port), Number(count))
  else {
    await Effect.runPromise(
      Effect.scoped(measure(Number(mode ?? 5000))).pipe(
        Effect.provide(BunTransportLive),
        Effect.provide(Metrics.Default)
      )
    )
    process.exit(0)
  }
}
