import { Cause, Duration, Effect, Exit, FiberSet, Mailbox, Schedule, type Scope } from "effect"
import { CloseCodes, closeReason } from "../../src/transport/CloseCodes.ts"
import type { SocketLimits } from "../../src/transport/SocketLimits.ts"
import { Metrics } from "../Observability/Metrics.ts"
import type { Connection, SendStatus, WebSocketProtocol, WireMessage } from "./Transport.ts"

/** The socket operations a transport must offer; Bun's ServerWebSocket has exactly these. */
export interface RawSocket {
  readonly remoteAddress: string
  send(data: string | Uint8Array): number
  publish(topic: string, data: string | Uint8Array): number
  subscribe(topic: string): unknown
  unsubscribe(topic: string): unknown
  isSubscribed(topic: string): boolean
  close(code?: number, reason?: string): void
  ping(): number
  pause(): void
  resume(): void
  getBufferedAmount(): number
}

let nextConnectionId = 1

/** Bun's send result: -1 queued behind backpressure, 0 dropped, otherwise bytes written. */
const sendStatus = (result: number): SendStatus => (result > 0 ? "sent" : result === -1 ? "queued" : "dropped")

export class LiveConnection<D> implements Connection<D> {
  readonly id = nextConnectionId++
  readonly remoteAddress: string
  /** A ping is out and neither a pong nor a message has come back since. */
  awaitingPong = false
  /** Heartbeat sweeps in a row that saw no inbound message (drives the idle timeout). */
  quietSweeps = 0
  /** Messages in the inbox not yet taken by the connection's fiber. */
  queued = 0
  paused = false
  private open = true

  constructor(
    readonly data: D,
    readonly raw: RawSocket,
    readonly inbox: Mailbox.Mailbox<WireMessage>,
    private readonly registry: ConnectionRegistry<D>
  ) {
    this.remoteAddress = raw.remoteAddress
  }

  send = (message: WireMessage): SendStatus => {
    if (!this.open) return "closed"
    const status = sendStatus(this.raw.send(message))
    this.registry.afterSend(this, status)
    return status
  }
  publish = (topic: string, message: WireMessage): void => {
    if (this.open) this.raw.publish(topic, message)
  }
  subscribe = (topic: string): void => {
    if (this.open) this.raw.subscribe(topic)
  }
  unsubscribe = (topic: string): void => {
    if (this.open) this.raw.unsubscribe(topic)
  }
  isSubscribed = (topic: string): boolean => this.open && this.raw.isSubscribed(topic)
  close = (code: number, reason?: string): void => {
    if (!this.open) return
    this.open = false
    this.raw.close(code, reason ?? closeReason[code as keyof typeof closeReason] ?? "")
  }
  isOpen = (): boolean => this.open
  /** Called by the transport once the socket is gone, whoever closed it. */
  markClosed(): void {
    this.open = false
  }
}

/**
 * Transport-independent connection lifecycle: one scoped fiber per connection draining a
 * bounded inbox, one server-wide heartbeat sweep, slow-consumer and idle policies, metrics.
 */
export interface ConnectionRegistry<D> {
  readonly opened: (raw: RawSocket, data: D) => LiveConnection<D>
  readonly received: (connection: LiveConnection<D>, message: WireMessage) => void
  readonly ponged: (connection: LiveConnection<D>) => void
  readonly closed: (connection: LiveConnection<D>, code: number) => void
  readonly afterSend: (connection: LiveConnection<D>, status: SendStatus) => void
  readonly size: () => number
  /** Closes every connection with 1001 and waits for their scopes to finish. */
  readonly closeAll: Effect.Effect<void>
}

export const makeConnectionRegistry = <D, R>(
  serverName: string,
  limits: SocketLimits,
  protocol: WebSocketProtocol<D, R>
): Effect.Effect<ConnectionRegistry<D>, never, R | Scope.Scope | Metrics> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const label = { server: serverName }
    const connectionsGauge = metrics.gauge("switchboard_ws_connections", "Open WebSocket connections", ["server"]).labels(label)
    const messagesIn = metrics.counter("switchboard_ws_messages_in_total", "WebSocket messages received", ["server"]).labels(label)
    const messagesOut = metrics.counter("switchboard_ws_messages_out_total", "WebSocket messages sent to one connection", ["server"]).labels(label)
    const drops = metrics.counter("switchboard_ws_drops_total", "Outbound messages dropped because a socket buffer was full", ["server"]).labels(label)
    const closes = metrics.counter("switchboard_ws_closes_total", "Closed WebSocket connections by close code", ["server", "code"])

    const connections = new Set<LiveConnection<D>>()
    const run = yield* FiberSet.makeRuntime<R>()
    const highWater = limits.inboxCapacity
    // Pausing bounds memory to one socket read (uWS reads up to 512 KB) beyond highWater; this is a last guard.
    const hardLimit = limits.inboxCapacity + 65_536

    const serve = (connection: LiveConnection<D>) =>
      Effect.gen(function* () {
        const handler = yield* protocol.open(connection)
        while (true) {
          const [messages, done] = yield* connection.inbox.takeAll
          connection.queued -= messages.length
          for (const message of messages) {
            yield* handler.onMessage(message).pipe(
              Effect.catchAllCause((cause) =>
                Effect.logError("message handler failed; closing this connection only", Cause.pretty(cause)).pipe(
                  Effect.annotateLogs({ server: serverName, connection: connection.id }),
                  Effect.zipRight(Effect.sync(() => connection.close(CloseCodes.internalError)))
                )
              )
            )
          }
          if (connection.paused && connection.queued < highWater / 2) {
            connection.paused = false
            connection.raw.resume()
          }
          if (done) return
        }
      }).pipe(
        Effect.scoped,
        Effect.ensuring(Effect.sync(() => connections.delete(connection)))
      )

    const afterSend = (connection: LiveConnection<D>, status: SendStatus) => {
      if (status === "sent") messagesOut.inc()
      else if (status === "dropped") {
        drops.inc()
        connection.close(CloseCodes.slowConsumer)
      } else if (status === "queued") {
        messagesOut.inc()
        if (connection.raw.getBufferedAmount() > limits.slowConsumerBytes) connection.close(CloseCodes.slowConsumer)
      }
    }

    const heartbeat = Effect.gen(function* () {
      const idleSweepLimit = Duration.toMillis(limits.idleTimeout) > 0
        ? Math.max(1, Math.ceil(Duration.toMillis(limits.idleTimeout) / Duration.toMillis(limits.pingInterval)))
        : Infinity
      yield* Effect.sleep(limits.pingInterval)
      for (const connection of connections) {
        if (!connection.isOpen()) continue
        connection.quietSweeps += 1
        if (connection.quietSweeps >= idleSweepLimit) {
          connection.close(CloseCodes.idleTimeout)
          continue
        }
        connection.awaitingPong = true
        connection.raw.ping()
      }
      yield* Effect.sleep(limits.pongTimeout)
      for (const connection of connections) {
        if (connection.awaitingPong && connection.isOpen()) connection.close(CloseCodes.heartbeatTimeout)
      }
    }).pipe(Effect.forever)
    yield* Effect.forkScoped(Effect.interruptible(heartbeat))

    // Topic publishes don't report per-subscriber backpressure, so buffered bytes are polled (one native call each).
    const slowConsumerSweep = Effect.sync(() => {
      for (const connection of connections) {
        if (connection.isOpen() && connection.raw.getBufferedAmount() > limits.slowConsumerBytes) {
          connection.close(CloseCodes.slowConsumer)
        }
      }
    }).pipe(Effect.repeat(Schedule.spaced(limits.slowConsumerCheck)))
    yield* Effect.forkScoped(Effect.interruptible(slowConsumerSweep))

    const registry: ConnectionRegistry<D> = {
      opened: (raw, data) => {
        const inbox = Effect.runSync(Mailbox.make<WireMessage>())
        const connection = new LiveConnection(data, raw, inbox, registry)
        connections.add(connection)
        connectionsGauge.inc()
        run(serve(connection))
        return connection
      },
      received: (connection, message) => {
        messagesIn.inc()
        connection.awaitingPong = false
        connection.quietSweeps = 0
        connection.inbox.unsafeOffer(message)
        const queued = ++connection.queued
        if (queued >= hardLimit) connection.close(CloseCodes.inboxOverflow)
        else if (queued >= highWater && !connection.paused) {
          connection.paused = true
          connection.raw.pause()
        }
      },
      ponged: (connection) => {
        connection.awaitingPong = false
      },
      closed: (connection, code) => {
        connection.markClosed()
        connectionsGauge.dec()
        closes.labels({ server: serverName, code: String(code) }).inc()
        connection.inbox.unsafeDone(Exit.void)
      },
      afterSend,
      size: () => connections.size,
      closeAll: Effect.suspend(() => {
        const open = [...connections]
        for (const connection of open) connection.close(CloseCodes.goingAway)
        return Effect.forEach(open, (connection) => connection.inbox.await.pipe(Effect.ignore), { discard: true }).pipe(
          Effect.timeout(limits.pongTimeout),
          Effect.ignore
        )
      })
    }
    return registry
  })
