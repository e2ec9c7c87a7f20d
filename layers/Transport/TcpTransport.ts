import type { Socket, TCPSocketListener } from "bun"
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Layer,
  Queue,
  Runtime,
  Schedule,
  Scope
} from "effect"
import { ServeError } from "./Transport.ts"

/** Per-server limits of a raw TCP listener. */
export interface TcpLimits {
  /** Connections beyond this many are closed on accept; zero means unlimited. */
  readonly maxConnections: number
  /** Close a connection that sends nothing for this long; zero disables. */
  readonly idleTimeout: Duration.Duration
  /** Bytes queued in either direction (unprocessed input, unsent output) before the connection is closed. */
  readonly maxBufferedBytes: number
}

export const defaultTcpLimits: TcpLimits = {
  maxConnections: 0,
  idleTimeout: Duration.seconds(60),
  maxBufferedBytes: 1024 * 1024
}

/** Result of a write: written now, queued until the socket drains, or refused (closed / over the buffer limit). */
export type TcpWriteStatus = "sent" | "queued" | "closed"

/** One accepted TCP connection as protocol code sees it. */
export interface TcpConnection {
  readonly id: number
  readonly remoteAddress: string
  readonly write: (bytes: Uint8Array) => TcpWriteStatus
  /** Flushes what is queued, then closes. */
  readonly close: () => void
  readonly isOpen: () => boolean
}

export interface TcpHandler<R = never> {
  /**
   * Bytes as they arrived (any split). Return nothing when done synchronously; a Promise or an
   * Effect for asynchronous work: later bytes wait for it, so order always holds.
   */
  readonly onData: (bytes: Uint8Array) => Effect.Effect<void, never, R> | Promise<void> | void
}

export interface TcpServeOptions<R> {
  readonly name: string
  readonly port: number
  readonly hostname?: string
  readonly limits: TcpLimits
  /** Runs once per connection in the connection's Scope (closed when the socket closes). */
  readonly open: (connection: TcpConnection) => Effect.Effect<TcpHandler<R>, never, R | Scope.Scope>
}

export interface TcpServerHandle {
  readonly name: string
  readonly port: number
  readonly hostname: string
  readonly connectionCount: () => number
}

/** Raw TCP listeners for the lifetime of the surrounding Scope; closing it closes every connection. */
export class TcpTransport extends Context.Tag("switchboard/TcpTransport")<
  TcpTransport,
  { readonly serve: <R>(options: TcpServeOptions<R>) => Effect.Effect<TcpServerHandle, ServeError, R | Scope.Scope> }
>() {}

/** What the transport needs from a socket (Bun's, or the in-memory double's). */
interface RawSocket {
  /** Bytes accepted now (the rest must be queued until drain). */
  readonly write: (bytes: Uint8Array) => number
  readonly end: () => void
  readonly remoteAddress: string
}

/**
 * The per-connection machinery both implementations share: a Scope, the ordered input queue
 * (bounded by bytes), the output queue with backpressure, and the idle watch.
 */
class LiveConnection<R> implements TcpConnection {
  open = true
  private pending: Array<Uint8Array> = []
  private pendingBytes = 0
  private inputBytes = 0
  private readonly inputs: Array<Uint8Array> = []
  private busy = false
  lastActivity = 0
  handler: TcpHandler<R> | undefined
  constructor(
    readonly id: number,
    private readonly socket: RawSocket,
    private readonly limits: TcpLimits,
    readonly scope: Scope.CloseableScope,
    private readonly runtime: Runtime.Runtime<R>,
    private readonly onClosed: (connection: LiveConnection<R>) => void
  ) {}
  get remoteAddress() {
    return this.socket.remoteAddress
  }
  isOpen = () => this.open
  write = (bytes: Uint8Array): TcpWriteStatus => {
    if (!this.open) return "closed"
    if (this.pending.length === 0) {
      const written = this.socket.write(bytes)
      if (written === bytes.byteLength) return "sent"
      bytes = bytes.subarray(Math.max(0, written))
    }
    if (this.pendingBytes + bytes.byteLength > this.limits.maxBufferedBytes) {
      this.abort()
      return "closed"
    }
    this.pending.push(bytes)
    this.pendingBytes += bytes.byteLength
    return "queued"
  }
  /** The socket can take more: write what is queued, in order. */
  drain = () => {
    while (this.pending.length > 0) {
      const head = this.pending[0]!
      const written = this.socket.write(head)
      this.pendingBytes -= Math.max(0, written)
      if (written < head.byteLength) {
        this.pending[0] = head.subarray(Math.max(0, written))
        return
      }
      this.pending.shift()
    }
    if (this.closing) this.abort()
  }
  private closing = false
  close = () => {
    if (!this.open) return
    if (this.pending.length > 0) this.closing = true
    else this.abort()
  }
  /** Closes now, dropping anything unsent. */
  abort = () => {
    if (!this.open) return
    this.open = false
    this.socket.end()
    this.closed()
  }
  /** The peer went away (or we closed): release the Scope once. */
  closed = () => {
    this.open = false
    this.onClosed(this)
  }
  received = (bytes: Uint8Array, now: number) => {
    if (!this.open) return
    this.lastActivity = now
    if (this.busy || !this.handler) {
      this.inputBytes += bytes.byteLength
      if (this.inputBytes > this.limits.maxBufferedBytes) return this.abort()
      this.inputs.push(bytes)
      return
    }
    this.dispatch(bytes)
  }
  private dispatch(bytes: Uint8Array) {
    const result = this.handler!.onData(bytes)
    if (result === undefined) return this.next()
    this.busy = true
    const done = () => {
      this.busy = false
      this.next()
    }
    if (result instanceof Promise) result.then(done, done)
    else Runtime.runCallback(this.runtime)(result, { onExit: done })
  }
  next = () => {
    while (!this.busy && this.open && this.handler && this.inputs.length > 0) {
      const bytes = this.inputs.shift()!
      this.inputBytes -= bytes.byteLength
      this.dispatch(bytes)
    }
  }
}

/** Opens connections for one server: shared by the Bun and memory implementations. */
const makeServerCore = <R>(options: TcpServeOptions<R>) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<R>()
    const serverScope = yield* Effect.scope
    const connections = new Set<LiveConnection<R>>()
    let nextId = 1
    const released = (connection: LiveConnection<R>) => {
      if (!connections.delete(connection)) return
      Runtime.runFork(runtime)(Scope.close(connection.scope, Exit.void))
    }
    const accept = (socket: RawSocket): LiveConnection<R> | undefined => {
      if (options.limits.maxConnections > 0 && connections.size >= options.limits.maxConnections) {
        socket.end()
        return undefined
      }
      const scope = Effect.runSync(Scope.fork(serverScope, ExecutionStrategy.sequential))
      const connection = new LiveConnection(nextId++, socket, options.limits, scope, runtime, released)
      connections.add(connection)
      connection.lastActivity = Date.now()
      Runtime.runCallback(runtime)(
        options.open(connection).pipe(
          Scope.extend(scope),
          Effect.tap((handler) =>
            Effect.gen(function* () {
              connection.lastActivity = yield* Clock.currentTimeMillis
              connection.handler = handler
              connection.next()
              if (Duration.toMillis(options.limits.idleTimeout) > 0)
                yield* Effect.forkIn(idleWatch(connection, options.limits), scope)
            })
          )
        ),
        {}
      )
      return connection
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const connection of [...connections]) connection.abort()
      })
    )
    return { accept, connections }
  })

/** Closes a connection once it has been silent for the idle timeout (checked on the Clock, so TestClock drives it). */
const idleWatch = <R>(connection: LiveConnection<R>, limits: TcpLimits) => {
  const idle = Duration.toMillis(limits.idleTimeout)
  return Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    if (now - connection.lastActivity >= idle) connection.abort()
  }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, Math.floor(idle / 4))))), Effect.asVoid)
}

/** Bun.listen: backpressure from socket.write's return value and the drain callback. */
export const BunTcpTransportLive = Layer.succeed(TcpTransport, {
  serve: <R>(options: TcpServeOptions<R>) =>
    Effect.gen(function* () {
      const core = yield* makeServerCore(options)
      type Data = { connection?: LiveConnection<R> | undefined }
      const listener = yield* Effect.acquireRelease(
        Effect.try({
          try: () =>
            Bun.listen<Data>({
              hostname: options.hostname ?? "::",
              port: options.port,
              socket: {
                open: (socket: Socket<Data>) => {
                  socket.data = {
                    connection: core.accept({
                      write: (bytes) => socket.write(bytes),
                      end: () => socket.end(),
                      remoteAddress: socket.remoteAddress
                    })
                  }
                },
                data: (socket, bytes) => socket.data.connection?.received(bytes, Date.now()),
                drain: (socket) => socket.data.connection?.drain(),
                close: (socket) => socket.data.connection?.closed(),
                error: (socket) => socket.data.connection?.closed()
              }
            }),
          catch: (cause) =>
            new ServeError({ server: options.name, message: `cannot listen on port ${options.port}: ${String(cause)}` })
        }),
        (listener: TCPSocketListener<Data>) => Effect.sync(() => listener.stop(true))
      )
      yield* Effect.logInfo(`${options.name}: listening on tcp://${listener.hostname}:${listener.port}`)
      const handle: TcpServerHandle = {
        name: options.name,
        port: listener.port,
        hostname: listener.hostname,
        connectionCount: () => core.connections.size
      }
      return handle
    })
})

/** The client side of an in-memory TCP connection. */
export interface MemoryTcpClient {
  readonly write: (bytes: Uint8Array) => Effect.Effect<void>
  /** The next chunk of bytes the server wrote (fails when the connection closes first). */
  readonly read: Effect.Effect<Uint8Array, MemoryTcpClosed>
  /** Completes when the server closes the connection. */
  readonly closed: Effect.Effect<void>
  readonly close: Effect.Effect<void>
  /** Server-side writes accept at most this many bytes per call (simulates a full socket); Infinity by default. */
  writeWindow: number
  /** Hands the server a drain (the simulated socket emptied). */
  readonly drain: Effect.Effect<void>
}

export class MemoryTcpClosed {
  readonly _tag = "MemoryTcpClosed"
}

interface MemoryTcpServer {
  readonly accept: (socket: RawSocket) => LiveConnection<unknown> | undefined
}

/** In-process TCP network for tests: connect to a port without sockets; time is the Effect Clock. */
export class MemoryTcpNetwork extends Effect.Service<MemoryTcpNetwork>()("switchboard/MemoryTcpNetwork", {
  sync: () => {
    const servers = new Map<number, MemoryTcpServer>()
    let nextPort = 40_000
    const connect = (port: number): Effect.Effect<MemoryTcpClient, MemoryTcpClosed, Scope.Scope> =>
      Effect.gen(function* () {
        const server = servers.get(port)
        if (!server) return yield* Effect.fail(new MemoryTcpClosed())
        const chunks = yield* Queue.unbounded<Uint8Array>()
        const closed = yield* Deferred.make<void>()
        const ended = () => {
          Deferred.unsafeDone(closed, Exit.void)
        }
        const client: MemoryTcpClient = {
          writeWindow: Number.POSITIVE_INFINITY,
          write: (bytes) =>
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.sync(() => connection?.received(Uint8Array.from(bytes), now))
            ),
          read: Effect.raceFirst(
            Queue.take(chunks),
            Effect.zipRight(Deferred.await(closed), Effect.fail(new MemoryTcpClosed()))
          ).pipe(
            // Bytes written before the close are still read first.
            (read) =>
              Effect.flatMap(Queue.poll(chunks), (head) => (head._tag === "Some" ? Effect.succeed(head.value) : read))
          ),
          closed: Deferred.await(closed),
          close: Effect.sync(() => {
            ended()
            connection?.closed()
          }),
          drain: Effect.sync(() => connection?.drain())
        }
        const connection = server.accept({
          write: (bytes) => {
            const accepted = Math.min(bytes.byteLength, client.writeWindow)
            if (accepted > 0) Queue.unsafeOffer(chunks, Uint8Array.from(bytes.subarray(0, accepted)))
            return accepted
          },
          end: ended,
          remoteAddress: "127.0.0.1"
        })
        if (!connection) ended()
        yield* Effect.addFinalizer(() => client.close)
        return client
      })
    const register = (port: number, server: MemoryTcpServer) => {
      const assigned = port === 0 ? nextPort++ : port
      if (servers.has(assigned)) return undefined
      servers.set(assigned, server)
      return assigned
    }
    const unregister = (port: number) => void servers.delete(port)
    return { connect, register, unregister } as const
  }
}) {}

/** TcpTransport over a MemoryTcpNetwork. */
export const MemoryTcpLive = Layer.effect(
  TcpTransport,
  Effect.gen(function* () {
    const network = yield* MemoryTcpNetwork
    return {
      serve: <R>(options: TcpServeOptions<R>) =>
        Effect.gen(function* () {
          const core = yield* makeServerCore(options)
          const port = yield* Effect.acquireRelease(
            Effect.suspend(() => {
              const assigned = network.register(options.port, { accept: core.accept as MemoryTcpServer["accept"] })
              return assigned === undefined
                ? Effect.fail(
                    new ServeError({ server: options.name, message: `memory tcp port ${options.port} is taken` })
                  )
                : Effect.succeed(assigned)
            }),
            (port) => Effect.sync(() => network.unregister(port))
          )
          const handle: TcpServerHandle = {
            name: options.name,
            port,
            hostname: "memory",
            connectionCount: () => core.connections.size
          }
          return handle
        })
    }
  })
)

/** MemoryTcpLive with its network, for tests. */
export const MemoryTcpTest = MemoryTcpLive.pipe(Layer.provideMerge(MemoryTcpNetwork.Default))
