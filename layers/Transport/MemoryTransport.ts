import { HttpApp } from "@effect/platform"
import { Context, Deferred, Duration, Effect, Layer, Queue, Runtime, type Scope } from "effect"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { requestBodyLimit } from "../../src/shared/SocketLimits.ts"
import { Metrics } from "../Observability/Metrics.ts"
import { type ConnectionRegistry, makeConnectionRegistry } from "./ConnectionRegistry.ts"
import type { LiveConnection, RawSocket } from "./LiveConnection.ts"
import { makeRouteRunner, routeFor, routeTable } from "./NativeRoutes.ts"
import { bodyTooLarge, limitRequestBody } from "./RequestBody.ts"
import {
  ClientAddress,
  ServeError,
  type ServeOptions,
  type ServerHandle,
  Transport,
  type WireMessage
} from "./Transport.ts"

export interface MemoryClosed {
  readonly code: number
  readonly reason: string
}

/** The client end of an in-memory WebSocket; same shape as the tests' real-socket client. */
export interface MemoryClient {
  readonly send: (message: WireMessage) => Effect.Effect<void>
  readonly next: (within?: Duration.DurationInput) => Effect.Effect<WireMessage>
  readonly nextJson: <A = any>(within?: Duration.DurationInput) => Effect.Effect<A>
  readonly expectSilence: (within?: Duration.DurationInput) => Effect.Effect<void>
  readonly closed: Effect.Effect<MemoryClosed>
  /** Every frame the server sent, in order (what `next` reads from). */
  readonly frames: Queue.Dequeue<WireMessage>
  readonly close: (code?: number) => Effect.Effect<void>
  /** Whether this client answers server pings (a frozen peer does not). */
  answerPings: boolean
  /**
   * Stops reading (a slow consumer: what the server sends piles up in its buffer, which the server sees
   * as buffered bytes), or reads again: the frames held meanwhile arrive first, then a close if one came.
   */
  readonly pauseReading: (paused: boolean) => void
}

interface MemoryServer {
  readonly fetch: (
    request: Request,
    remoteAddress: string
  ) => Promise<Response | { readonly accept: (client: ClientEnd) => ServerEnd }>
}

/** What the client end holds of the server: a way to send it frames and to hang up. */
interface ServerEnd {
  readonly receive: (message: WireMessage) => void
  readonly hangUp: (code: number) => void
  /** The client reads again. */
  readonly resumed: () => void
}

interface ClientEnd {
  readonly deliver: (message: WireMessage) => void
  readonly closedBy: (code: number, reason: string) => void
  readonly answersPings: () => boolean
  readonly reading: () => boolean
}

const byteLength = (message: WireMessage) =>
  typeof message === "string" ? Buffer.byteLength(message) : message.byteLength

/** Topic membership for one in-memory server, mirroring uWS semantics (publish skips the sender). */
class Topics {
  private readonly members = new Map<string, Set<MemorySocket>>()
  add(topic: string, socket: MemorySocket) {
    let set = this.members.get(topic)
    if (!set) this.members.set(topic, (set = new Set()))
    set.add(socket)
  }
  remove(topic: string, socket: MemorySocket) {
    const set = this.members.get(topic)
    if (set?.delete(socket) && set.size === 0) this.members.delete(topic)
  }
  has(topic: string, socket: MemorySocket) {
    return this.members.get(topic)?.has(socket) ?? false
  }
  /** Bytes handed to the sockets, or -1 when a subscriber's buffer held it back (as Bun reports backpressure). */
  publish(topic: string, message: WireMessage, except?: MemorySocket) {
    let bytes = 0
    let queued = false
    for (const socket of this.members.get(topic) ?? []) {
      if (socket === except) continue
      const sent = socket.send(message)
      if (sent < 0) queued = true
      else bytes += sent
    }
    return queued ? -1 : bytes
  }
  count(topic: string) {
    return this.members.get(topic)?.size ?? 0
  }
}

class MemorySocket implements RawSocket {
  connection?: LiveConnection<unknown>
  private readonly subscriptions = new Set<string>()
  private open = true
  /** Frames sent while the client was not reading, oldest first, and their size (the buffered amount). */
  private held: Array<WireMessage> = []
  private heldBytes = 0
  /** A close that waits behind held frames. */
  private heldClose: { readonly code: number; readonly reason: string } | undefined
  constructor(
    readonly remoteAddress: string,
    private readonly topics: Topics,
    private readonly client: ClientEnd,
    private readonly registry: ConnectionRegistry<unknown>
  ) {}
  send(data: string | Uint8Array) {
    if (!this.open) return 0
    if (!this.client.reading()) {
      this.held.push(data)
      this.heldBytes += byteLength(data)
      return -1
    }
    queueMicrotask(() => this.client.deliver(data))
    return Math.max(1, byteLength(data))
  }
  publish(topic: string, data: string | Uint8Array) {
    return this.topics.publish(topic, data, this)
  }
  subscribe(topic: string) {
    this.subscriptions.add(topic)
    this.topics.add(topic, this)
  }
  unsubscribe(topic: string) {
    this.subscriptions.delete(topic)
    this.topics.remove(topic, this)
  }
  isSubscribed(topic: string) {
    return this.topics.has(topic, this)
  }
  close(code: number = CloseCodes.normal, reason = "") {
    if (!this.open) return
    this.open = false
    for (const topic of this.subscriptions) this.topics.remove(topic, this)
    queueMicrotask(() => {
      if (this.connection) this.registry.closed(this.connection, code)
      if (this.heldBytes > 0) this.heldClose = { code, reason }
      else this.client.closedBy(code, reason)
    })
  }
  /** The client reads again: held frames first, in order, then a close that waited behind them. */
  flush() {
    const held = this.held
    this.held = []
    this.heldBytes = 0
    for (const message of held) this.client.deliver(message)
    if (this.heldClose) this.client.closedBy(this.heldClose.code, this.heldClose.reason)
    this.heldClose = undefined
  }
  /** The client side went away. */
  dropped(code: number) {
    if (!this.open) return
    this.open = false
    for (const topic of this.subscriptions) this.topics.remove(topic, this)
    if (this.connection) this.registry.closed(this.connection, code)
  }
  ping() {
    queueMicrotask(() => {
      if (this.open && this.connection && this.client.answersPings()) this.registry.ponged(this.connection)
    })
    return 1
  }
  pause() {}
  resume() {}
  getBufferedAmount() {
    return this.heldBytes
  }
  isOpen() {
    return this.open
  }
}

/**
 * An in-process network for tests: servers register under a port, clients connect without
 * sockets. Protocol code runs exactly as on Bun (same ConnectionRegistry), minus the kernel.
 */
export class MemoryNetwork extends Effect.Service<MemoryNetwork>()("switchboard/MemoryNetwork", {
  sync: () => {
    const servers = new Map<number, MemoryServer>()
    let nextPort = 50_000

    const fetch = (port: number, request: Request, remoteAddress = "127.0.0.1") =>
      Effect.promise(async () => {
        const server = servers.get(port)
        if (!server) return Response.json({ error: "connection refused" }, { status: 502 })
        const result = await server.fetch(request, remoteAddress)
        return result instanceof Response ? result : Response.json({ error: "upgrade required" }, { status: 426 })
      })

    const connect = (
      port: number,
      path = "/",
      headers: Record<string, string> = {}
    ): Effect.Effect<MemoryClient, MemoryClosed, Scope.Scope> =>
      Effect.gen(function* () {
        const server = servers.get(port)
        if (!server) return yield* Effect.fail({ code: 1006, reason: "connection refused" })
        const frames = yield* Queue.unbounded<WireMessage>()
        const closed = yield* Deferred.make<MemoryClosed>()
        const request = new Request(`http://memory:${port}${path}`, { headers: { ...headers, upgrade: "websocket" } })
        const outcome = yield* Effect.promise(() => server.fetch(request, "127.0.0.1"))
        if (outcome instanceof Response) {
          const body = yield* Effect.promise(() => outcome.text())
          return yield* Effect.fail({ code: outcome.status, reason: body })
        }
        let serverEnd: ServerEnd | undefined
        let reading = true
        const client: MemoryClient = {
          answerPings: true,
          pauseReading: (paused) => {
            reading = !paused
            if (reading) serverEnd?.resumed()
          },
          send: (message) => Effect.sync(() => serverEnd?.receive(message)),
          next: (within = "3 seconds") =>
            Queue.take(frames).pipe(
              Effect.timeoutFail({ duration: within, onTimeout: () => new Error("no frame") }),
              Effect.orDie
            ),
          nextJson: (within) =>
            client
              .next(within)
              .pipe(
                Effect.map((frame) => JSON.parse(typeof frame === "string" ? frame : new TextDecoder().decode(frame)))
              ),
          expectSilence: () =>
            Effect.yieldNow().pipe(
              Effect.zipRight(Queue.poll(frames)),
              Effect.flatMap((frame) =>
                frame._tag === "Some" ? Effect.dieMessage(`expected silence, got ${String(frame.value)}`) : Effect.void
              )
            ),
          closed: Deferred.await(closed),
          frames,
          close: (code = CloseCodes.normal) =>
            Effect.sync(() => {
              serverEnd?.hangUp(code)
              Deferred.unsafeDone(closed, Effect.succeed({ code, reason: "closed by client" }))
            })
        }
        const end: ClientEnd = {
          deliver: (message) => Queue.unsafeOffer(frames, message),
          closedBy: (code, reason) => Deferred.unsafeDone(closed, Effect.succeed({ code, reason })),
          answersPings: () => client.answerPings,
          reading: () => reading
        }
        serverEnd = outcome.accept(end)
        yield* Effect.addFinalizer(() => client.close())
        return client
      })

    const register = (port: number, server: MemoryServer) => {
      const assigned = port === 0 ? nextPort++ : port
      if (servers.has(assigned)) return undefined
      servers.set(assigned, server)
      return assigned
    }
    const unregister = (port: number) => servers.delete(port)

    return { fetch, connect, register, unregister } as const
  }
}) {}

const serve = <D, R>(network: MemoryNetwork, options: ServeOptions<D, R>) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<R>()
    const protocol = options.websocket
    const topics = new Topics()
    const registry = protocol
      ? yield* makeConnectionRegistry(options.name, options.limits, protocol, (topic, message) =>
          topics.publish(topic, message)
        )
      : undefined
    const httpHandler = options.http ? HttpApp.toWebHandlerRuntime(runtime)(options.http) : undefined
    const runUpgrade = Runtime.runPromise(runtime)
    const { limits } = options
    const bodyLimit = requestBodyLimit(limits)
    const routes = routeTable(options.routes ?? [])
    const runRoute = makeRouteRunner(runtime, options.name, bodyLimit)

    const server: MemoryServer = {
      fetch: async (request, remoteAddress) => {
        const route = routeFor(routes, request)
        if (route && !(route.method === "GET" && request.headers.get("upgrade") === "websocket")) {
          return runRoute(route, request, remoteAddress)
        }
        if (request.headers.get("upgrade") !== "websocket" || !protocol || !registry) {
          const bounded = await limitRequestBody(request, bodyLimit)
          if (bounded instanceof Response) return bounded
          return httpHandler
            ? httpHandler(bounded, Context.make(ClientAddress, remoteAddress))
            : Response.json({ error: "not found" }, { status: 404 })
        }
        if (Number(request.headers.get("content-length") ?? 0) > bodyLimit) return bodyTooLarge(bodyLimit)
        if (limits.maxConnections > 0 && registry.size() >= limits.maxConnections) {
          return Response.json({ error: "server is at its connection limit" }, { status: 503 })
        }
        const decision = await runUpgrade(protocol.upgrade(request, { remoteAddress, url: new URL(request.url) }))
        if (decision._tag === "Reject") return decision.response
        return {
          accept: (client) => {
            const socket = new MemorySocket(remoteAddress, topics, client, registry as ConnectionRegistry<unknown>)
            const connection = registry.opened(socket, decision.data)
            socket.connection = connection as LiveConnection<unknown>
            return {
              receive: (message) => {
                if (!socket.isOpen()) return
                if (byteLength(message) > limits.maxPayloadBytes)
                  return socket.close(CloseCodes.messageTooBig, "message too big")
                registry.received(connection, message)
              },
              hangUp: (code) => socket.dropped(code),
              resumed: () => socket.flush()
            }
          }
        }
      }
    }

    const port = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const assigned = network.register(options.port, server)
        return assigned === undefined
          ? Effect.fail(new ServeError({ server: options.name, message: `memory port ${options.port} is taken` }))
          : Effect.succeed(assigned)
      }),
      (port) =>
        (registry ? registry.closeAll : Effect.void).pipe(Effect.ensuring(Effect.sync(() => network.unregister(port))))
    )
    const handle: ServerHandle = {
      name: options.name,
      port,
      hostname: "memory",
      url: `http://memory:${port}`,
      publish: (topic, message) => (registry ? registry.publishToAll(topic, message) : topics.publish(topic, message)),
      subscriberCount: (topic) => topics.count(topic),
      connectionCount: () => registry?.size() ?? 0
    }
    return handle
  })

/** Transport test double: servers live in a MemoryNetwork; reach them with MemoryNetwork.connect. */
export const MemoryTransportLive = Layer.effect(
  Transport,
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const metrics = yield* Metrics
    return {
      serve: <D, R>(options: ServeOptions<D, R>) =>
        serve(network, options).pipe(Effect.provideService(Metrics, metrics))
    }
  })
)

/** MemoryTransport with its network and a metrics registry, ready for tests. */
export const MemoryTransportTest = MemoryTransportLive.pipe(
  Layer.provideMerge(Layer.merge(MemoryNetwork.Default, Metrics.Default))
)
