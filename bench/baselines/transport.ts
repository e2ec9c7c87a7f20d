/**
 * Baseline 3, our own floor: the same forwarding server as bun-raw.ts (DroneEngage URL shapes,
 * a login whose key is the group, subscribe to the group topic, forward with native publish), but
 * built on layers/Transport (per-connection scope, bounded inbox, synchronous handler, heartbeat sweep,
 * metrics). Its distance to raw Bun is the transport's cost; the relay's distance to it is the
 * protocol's. Prints {"port":N} on stdout once listening. Env: PORT, HOST, PING_INTERVAL_MS.
 */
import { Duration, Effect, Layer } from "effect"
import { runProgram } from "../../layers/Program/runProgram.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { accept, type Connection, type ConnectionHandler, reject, Transport } from "../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"

interface Unit {
  readonly topic: string
}

const hostname = process.env.HOST ?? "127.0.0.1"

/** Forwards synchronously like the relay's handler (no fiber per burst); one handler for every connection, no closure each. */
const forwarding: ConnectionHandler<never, Unit> = {
  onMessage: (message, connection) => connection.publish(connection.data.topic, message)
}

/** Subscribes the unit to its group and greets it. */
const openForwarding = (connection: Connection<Unit>) => {
  connection.subscribe(connection.data.topic)
  connection.send(`{"ty":"s","mt":9007,"ms":{"s":"OK:connected:tcp:${connection.remoteAddress}"}}`)
  return forwarding
}

const ForwardingServer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const transport = yield* Transport
    let port = 0
    // Answered by the Transport's native routes, as the relay's authenticator answers its logins: with the Effect HTTP
    // app, each login's garbage (fiber, request/response wrappers, router) stayed in the allocator, ~5 KB per connection.
    const login = (request: Request) =>
      Effect.promise(() => request.json().catch(() => ({}))).pipe(
        Effect.map((body: { gr?: unknown }) =>
          Response.json({
            e: 0,
            sid: crypto.randomUUID(),
            per: "D1G1T3R4V5C6",
            prm: 0xffffffff,
            cs: { f: String(body?.gr ?? "1"), g: hostname, h: port },
            cm: "/wl"
          })
        )
      )
    const server = yield* transport.serve<Unit, never>({
      name: "transport-baseline",
      port: Number(process.env.PORT ?? 0),
      hostname,
      limits: { ...defaultSocketLimits, pingInterval: Duration.millis(Number(process.env.PING_INTERVAL_MS ?? 25_000)) },
      routes: [
        { method: "POST", path: "/w/wl", handle: login },
        { method: "POST", path: "/agent/al", handle: login }
      ],
      websocket: {
        upgrade: (_request, { url }) => {
          const group = url.searchParams.get("f")
          const unit = url.searchParams.get("s")
          return Effect.succeed(group && unit ? accept({ topic: `g:${group}` }) : reject(400, "f and s are required"))
        },
        open: (connection) => Effect.sync(() => openForwarding(connection)),
        // Opened on the spot like the relay's units: through `open` every connection ran a fiber, and its garbage
        // left ~2 KB more JS heap kept per idle connection (bench/footprint.ts).
        openNow: openForwarding
      }
    })
    port = server.port
    console.log(JSON.stringify({ port }))
  })
).pipe(Layer.provide(BunTransportLive))

if (import.meta.main) runProgram(ForwardingServer)
