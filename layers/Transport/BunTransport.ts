import { HttpApp } from "@effect/platform"
import { Cause, Context, Effect, Exit, Layer, Runtime } from "effect"
import { hardBackpressureLimit } from "../../src/shared/SocketLimits.ts"
import { Metrics } from "../Observability/Metrics.ts"
import { type ConnectionRegistry, type LiveConnection, makeConnectionRegistry } from "./ConnectionRegistry.ts"
import { ClientAddress, ServeError, type ServeOptions, type ServerHandle, Transport, type UpgradeDecision } from "./Transport.ts"

interface SocketData<D> {
  readonly init: D
  connection?: LiveConnection<D>
}

const notFound = () => Response.json({ error: "not found" }, { status: 404 })

/** The address to print for a listener: wildcard binds are reachable on loopback. */
export const displayHost = (hostname: string) =>
  hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "[::1]" : hostname.includes(":") ? `[${hostname}]` : hostname

const tlsOption = (options: ServeOptions<unknown, unknown>) =>
  Effect.gen(function* () {
    if (!options.tls) return undefined
    const cert = Bun.file(options.tls.certPath)
    const key = Bun.file(options.tls.keyPath)
    for (const file of [cert, key]) {
      if (!(yield* Effect.promise(() => file.exists()))) {
        return yield* new ServeError({ server: options.name, message: `TLS file not found: ${file.name}` })
      }
    }
    return { cert, key }
  })

const serve = <D, R>(options: ServeOptions<D, R>) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<R>()
    const protocol = options.websocket
    const registry: ConnectionRegistry<D> | undefined = protocol
      ? yield* makeConnectionRegistry(options.name, options.limits, protocol)
      : undefined
    const httpHandler = options.http ? HttpApp.toWebHandlerRuntime(runtime)(options.http) : notFound
    const runFork = Runtime.runFork(runtime)
    const tls = yield* tlsOption(options as ServeOptions<unknown, unknown>)
    const hostname = options.hostname ?? "0.0.0.0"
    const { limits } = options

    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Bun.serve<SocketData<D>, never>({
            port: options.port,
            hostname,
            ...(options.reusePort ? { reusePort: true } : {}),
            ...(tls ? { tls } : {}),
            fetch(request, server) {
              const isUpgrade = request.headers.get("upgrade")?.toLowerCase() === "websocket"
              if (!isUpgrade || !protocol || !registry) {
                return httpHandler(request, Context.make(ClientAddress, server.requestIP(request)?.address ?? "unknown"))
              }
              if (limits.maxConnections > 0 && registry.size() >= limits.maxConnections) {
                return Response.json({ error: "server is at its connection limit" }, { status: 503 })
              }
              const remoteAddress = server.requestIP(request)?.address ?? "unknown"
              const complete = (exit: Exit.Exit<UpgradeDecision<D>>): Response | undefined => {
                if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
                const decision = exit.value
                if (decision._tag === "Reject") return decision.response
                const upgraded = server.upgrade(request, {
                  data: { init: decision.data },
                  ...(decision.headers ? { headers: decision.headers } : {})
                })
                return upgraded ? undefined : Response.json({ error: "websocket upgrade failed" }, { status: 400 })
              }
              // Most upgrade decisions finish synchronously: then no Promise is made per connection.
              const deciding = runFork(protocol.upgrade(request, { remoteAddress, url: new URL(request.url) }))
              const decided = deciding.unsafePoll()
              if (decided) return complete(decided)
              return new Promise<Response | undefined>((resolve, reject) =>
                deciding.addObserver((exit) => {
                  try {
                    resolve(complete(exit))
                  } catch (error) {
                    reject(error)
                  }
                })
              )
            },
            error(error) {
              Runtime.runFork(runtime)(Effect.logError("request failed", error).pipe(Effect.annotateLogs("server", options.name)))
              return Response.json({ error: "internal error" }, { status: 500 })
            },
            websocket: {
              maxPayloadLength: limits.maxPayloadBytes,
              // Past this Bun drops the socket (1006); the slow-consumer sweep closes earlier with 4003.
              backpressureLimit: hardBackpressureLimit(limits),
              closeOnBackpressureLimit: true,
              // Heartbeats and idle timeouts are ours (ConnectionRegistry), so they are testable.
              idleTimeout: 0,
              sendPings: false,
              publishToSelf: false,
              open(ws) {
                ws.data.connection = registry!.opened(ws, ws.data.init)
              },
              message(ws, message) {
                if (ws.data.connection) registry!.received(ws.data.connection, message)
              },
              pong(ws) {
                if (ws.data.connection) registry!.ponged(ws.data.connection)
              },
              close(ws, code) {
                if (ws.data.connection) registry!.closed(ws.data.connection, code)
              }
            }
          }),
        catch: (error) => new ServeError({ server: options.name, message: `cannot listen on ${hostname}:${options.port}: ${String(error)}` })
      }),
      (server) =>
        Effect.gen(function* () {
          if (registry) yield* registry.closeAll
          yield* Effect.promise(() => server.stop(true))
        })
    )

    const port = server.port ?? options.port
    const handle: ServerHandle = {
      name: options.name,
      port,
      hostname,
      url: `${tls ? "https" : "http"}://${displayHost(hostname)}:${port}`,
      publish: (topic, message) => server.publish(topic, message),
      subscriberCount: (topic) => server.subscriberCount(topic),
      connectionCount: () => registry?.size() ?? 0
    }
    yield* Effect.logInfo(`${options.name} listening on ${handle.url}`)
    return handle
  })

/** Transport over Bun.serve with defaults for every server it starts (`reusePort` for N processes on one port). */
export const BunTransportWith = (defaults: { readonly reusePort?: boolean } = {}) =>
  Layer.effect(
    Transport,
    Effect.gen(function* () {
      const metrics = yield* Metrics
      return {
        serve: <D, R>(options: ServeOptions<D, R>) =>
          serve({ ...options, reusePort: options.reusePort ?? defaults.reusePort ?? false }).pipe(Effect.provideService(Metrics, metrics))
      }
    })
  )

/** Transport over Bun.serve: uWebSockets underneath, native topics for fan-out. */
export const BunTransportLive = BunTransportWith()
