import { HttpApp } from "@effect/platform"
import type { Server } from "bun"
import { Cause, Context, Effect, Exit, Layer, Runtime } from "effect"
import { hardBackpressureLimit, requestBodyLimit } from "../../src/shared/SocketLimits.ts"
import { Metrics } from "../Observability/Metrics.ts"
import { type ConnectionRegistry, makeConnectionRegistry } from "./ConnectionRegistry.ts"
import { LiveConnection } from "./LiveConnection.ts"
import { makeRouteRunner, pathOf, routePaths } from "./NativeRoutes.ts"
import { bodyTooLarge, limitRequestBody } from "./RequestBody.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import {
  ClientAddress,
  plainAddress,
  ServeError,
  type ServeOptions,
  type ServerHandle,
  Transport,
  type UpgradeDecision,
  type WireMessage
} from "./Transport.ts"

/** A socket's data: what the upgrade decided until `open`, then the connection itself (no wrapper object per socket). */
type SocketData<D> = D | LiveConnection<D>

const isUpgrade = (request: Request) => request.headers.get("upgrade")?.toLowerCase() === "websocket"

const notFound = () => Response.json({ error: "not found" }, { status: 404 })

/**
 * The code the peer was sent. uWS closes on protocol errors itself, sending the right close frame, but
 * reports them to the close handler as 1006 with its reason ("Received too big message", …).
 */
export const sentCloseCode = (code: number, reason: string): number => {
  if (code !== 1006 || !reason.startsWith("Received ")) return code
  if (reason.startsWith("Received too big message")) return CloseCodes.messageTooBig
  return reason === "Received invalid UTF-8" ? CloseCodes.invalidPayload : CloseCodes.protocolError
}

/** The address to print for a listener: wildcard binds are reachable on loopback. */
export const displayHost = (hostname: string) =>
  hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname === "::"
      ? "[::1]"
      : hostname.includes(":")
        ? `[${hostname}]`
        : hostname

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
    // Bound once Bun.serve returns; no connection (and so no publish through one) exists before that.
    let publishOnServer = (_topic: string, _message: WireMessage): number => 0
    const registry: ConnectionRegistry<D> | undefined = protocol
      ? yield* makeConnectionRegistry(options.name, options.limits, protocol, (topic, message) =>
          publishOnServer(topic, message)
        )
      : undefined
    const httpHandler = options.http ? HttpApp.toWebHandlerRuntime(runtime)(options.http) : notFound
    const runFork = Runtime.runFork(runtime)
    const tls = yield* tlsOption(options as ServeOptions<unknown, unknown>)
    const hostname = options.hostname ?? "::"
    const { limits } = options
    const bodyLimit = requestBodyLimit(limits)

    const fetch = (
      request: Request,
      server: Server<SocketData<D>>
    ): Response | undefined | Promise<Response | undefined> => {
      if (!isUpgrade(request) || !protocol || !registry) {
        const address = Context.make(ClientAddress, plainAddress(server.requestIP(request)?.address ?? "unknown"))
        const bounded = limitRequestBody(request, bodyLimit)
        if (bounded instanceof Request) return httpHandler(bounded, address)
        if (bounded instanceof Response) return bounded
        return bounded.then((checked) => (checked instanceof Response ? checked : httpHandler(checked, address)))
      }
      if (Number(request.headers.get("content-length") ?? 0) > bodyLimit) return bodyTooLarge(bodyLimit)
      if (limits.maxConnections > 0 && registry.size() >= limits.maxConnections) {
        return Response.json({ error: "server is at its connection limit" }, { status: 503 })
      }
      const remoteAddress = plainAddress(server.requestIP(request)?.address ?? "unknown")
      const complete = (exit: Exit.Exit<UpgradeDecision<D>>): Response | undefined => {
        if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
        const decision = exit.value
        if (decision._tag === "Reject") return decision.response
        // Bun's upgrade options type is conditional on the data type, which TypeScript cannot settle for a generic D.
        const upgraded = server.upgrade(request, {
          data: decision.data,
          ...(decision.headers ? { headers: decision.headers } : {})
        } as never)
        return upgraded ? undefined : Response.json({ error: "websocket upgrade failed" }, { status: 400 })
      }
      const upgrade = protocol.upgrade(request, { remoteAddress, url: new URL(request.url) })
      // A decision given as a plain value (Effect.succeed) needs no fiber; what it would allocate stays in the heap per connection.
      if (Exit.isExit(upgrade)) return complete(upgrade as Exit.Exit<UpgradeDecision<D>>)
      // Most other decisions finish synchronously too: then no Promise is made per connection.
      const deciding = runFork(upgrade)
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
    }

    const routes = options.routes ?? []
    const runRoute = makeRouteRunner(runtime, options.name, bodyLimit)
    /** Bun's router takes each route's paths; a handler checks the exact path (Bun's also matches "//w/wl") and the upgrade. */
    const nativeRoutes = () => {
      const table: Record<string, Record<string, (request: Request, server: Server<SocketData<D>>) => unknown>> = {}
      for (const path of routePaths(routes)) {
        const methods: Record<string, (request: Request, server: Server<SocketData<D>>) => unknown> = {}
        for (const route of routes) {
          if (route.path !== path && `${route.path}/` !== path) continue
          methods[route.method] = (request, server) =>
            pathOf(request.url) !== path || (route.method === "GET" && isUpgrade(request))
              ? fetch(request, server)
              : runRoute(route, request, plainAddress(server.requestIP(request)?.address ?? "unknown"))
        }
        table[path] = methods
      }
      // Bun types routes per literal path; these are computed.
      return table as never
    }

    const server = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Bun.serve<SocketData<D>, never>({
            port: options.port,
            hostname,
            ...(options.reusePort ? { reusePort: true } : {}),
            ...(tls ? { tls } : {}),
            // Bun refuses an oversized body with an empty 413, judged from Content-Length before fetch runs;
            // limitRequestBody answers first with a reason (and counts streamed bodies), so Bun's cap stays out of the way.
            maxRequestBodySize: Number.MAX_SAFE_INTEGER,
            fetch,
            ...(routes.length > 0 ? { routes: nativeRoutes() } : {}),
            error(error) {
              Runtime.runFork(runtime)(
                Effect.logError("request failed", error).pipe(Effect.annotateLogs("server", options.name))
              )
              return Response.json({ error: "internal error" }, { status: 500 })
            },
            websocket: {
              maxPayloadLength: limits.maxPayloadBytes,
              // Past this Bun drops the socket (1006); slow-consumer checks at send, after publishes and every slowConsumerCheck close earlier with 4003.
              backpressureLimit: hardBackpressureLimit(limits),
              closeOnBackpressureLimit: true,
              // Heartbeats and idle timeouts are ours (ConnectionRegistry), so they are testable.
              idleTimeout: 0,
              sendPings: false,
              publishToSelf: false,
              open(ws) {
                ws.data = registry!.opened(ws, ws.data as D)
              },
              // Bun calls these only after open, so data is the connection by then.
              message(ws, message) {
                registry!.received(ws.data as LiveConnection<D>, message)
              },
              pong(ws) {
                registry!.ponged(ws.data as LiveConnection<D>)
              },
              close(ws, code, reason) {
                if (ws.data instanceof LiveConnection) registry!.closed(ws.data, sentCloseCode(code, reason))
              }
            }
          }),
        catch: (error) =>
          new ServeError({
            server: options.name,
            message: `cannot listen on ${hostname}:${options.port}: ${String(error)}`
          })
      }),
      (server) =>
        Effect.gen(function* () {
          if (registry) yield* registry.closeAll
          yield* Effect.promise(() => server.stop(true))
        })
    )

    publishOnServer = (topic, message) => server.publish(topic, message)
    const port = server.port ?? options.port
    const handle: ServerHandle = {
      name: options.name,
      port,
      hostname,
      url: `${tls ? "https" : "http"}://${displayHost(hostname)}:${port}`,
      publish: (topic, message) => (registry ? registry.publishToAll(topic, message) : server.publish(topic, message)),
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
          serve({ ...options, reusePort: options.reusePort ?? defaults.reusePort ?? false }).pipe(
            Effect.provideService(Metrics, metrics)
          )
      }
    })
  )

/** Transport over Bun.serve: uWebSockets underneath, native topics for fan-out. */
export const BunTransportLive = BunTransportWith()
