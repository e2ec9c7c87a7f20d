import { Cause, Deferred, Duration, Effect, Exit, FiberId, FiberSet, Schedule, Scope } from "effect"
import { closeCodeLabel, CloseCodes } from "../../src/shared/CloseCodes.ts"
import { hardBackpressureLimit, type SocketLimits } from "../../src/shared/SocketLimits.ts"
import { type Cell, Metrics } from "../Observability/Metrics.ts"
import { LiveConnection, noMessages, type RawSocket } from "./LiveConnection.ts"
import type { OpenedNow, SendStatus, WebSocketProtocol, WireMessage } from "./Transport.ts"

/**
 * Transport-independent connection lifecycle: a Scope per connection, a bounded inbox drained by
 * a fiber that exists only while the connection has traffic (it waits for more messages, and the
 * heartbeat sweep ends it after a quiet interval), so an idle connection holds no fiber (~10 KB
 * less each); one server-wide heartbeat sweep, slow-consumer and idle policies, metrics.
 */
export interface ConnectionRegistry<D> {
  readonly opened: (raw: RawSocket, data: D) => LiveConnection<D>
  readonly received: (connection: LiveConnection<D>, message: WireMessage) => void
  readonly ponged: (connection: LiveConnection<D>) => void
  readonly closed: (connection: LiveConnection<D>, code: number) => void
  readonly afterSend: (connection: LiveConnection<D>, status: SendStatus) => void
  /**
   * Counts what a native topic publish may have added to a subscriber's buffer (`result` is Bun's: bytes, 0, or -1
   * when some subscriber is backpressured); enough since the last check runs the slow-consumer check now.
   */
  readonly afterPublish: (result: number, message: WireMessage) => void
  /** Sends to every subscriber of `topic` on this server (native server-wide publish); returns Bun's result. */
  readonly publishToAll: (topic: string, message: WireMessage) => number
  readonly size: () => number
  /** Closes every connection with 1001 and waits for their scopes to finish. */
  readonly closeAll: Effect.Effect<void>
}

export const makeConnectionRegistry = <D, R>(
  serverName: string,
  limits: SocketLimits,
  protocol: WebSocketProtocol<D, R>,
  /** The server's own publish to every subscriber of a topic (Bun's server.publish). */
  publishOnServer: (topic: string, message: WireMessage) => number
): Effect.Effect<ConnectionRegistry<D>, never, R | Scope.Scope | Metrics> =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    const label = { server: serverName }
    const connectionsGauge = metrics
      .gauge("switchboard_ws_connections", "Open WebSocket connections", ["server"])
      .labels(label)
    const messagesIn = metrics
      .counter("switchboard_ws_messages_in_total", "WebSocket messages received", ["server"])
      .labels(label)
    const messagesOut = metrics
      .counter("switchboard_ws_messages_out_total", "WebSocket messages sent to one connection", ["server"])
      .labels(label)
    const drops = metrics
      .counter("switchboard_ws_drops_total", "Outbound messages dropped because a socket buffer was full", ["server"])
      .labels(label)
    const closes = metrics.counter("switchboard_ws_closes_total", "Closed WebSocket connections by close code", [
      "server",
      "code"
    ])
    /** One cell per label value (a small fixed set, see closeCodeLabel), looked up without building a key per close. */
    const closesByLabel = new Map<string, Cell>()
    const countClose = (code: number) => {
      const label = closeCodeLabel(code)
      let cell = closesByLabel.get(label)
      if (!cell) closesByLabel.set(label, (cell = closes.labels({ server: serverName, code: label })))
      cell.inc()
    }

    const connections = new Set<LiveConnection<D>>()
    const run = yield* FiberSet.makeRuntime<R>()
    const highWater = limits.inboxCapacity
    // Pausing bounds memory to one socket read (uWS reads up to 512 KB) beyond highWater; this is a last guard.
    const hardLimit = limits.inboxCapacity + 65_536

    /** Resolved when the last connection's scope has closed, while closeAll waits for it. */
    let allClosed: Deferred.Deferred<void> | undefined

    const failed = (what: string, connection: LiveConnection<D>) => (cause: Cause.Cause<unknown>) =>
      Effect.logError(`${what} failed; closing this connection only`, Cause.pretty(cause)).pipe(
        Effect.annotateLogs({ server: serverName, connection: connection.id }),
        Effect.zipRight(Effect.sync(() => connection.close(CloseCodes.internalError)))
      )

    /** Closes the connection's scope (its finalizers and scoped fibers) once, after the socket is gone and the inbox drained. */
    const forget = (connection: LiveConnection<D>) => {
      connections.delete(connection)
      if (connections.size === 0 && allClosed) Deferred.unsafeDone(allClosed, Exit.void)
    }
    const finish = (connection: LiveConnection<D>) => {
      const cleanup = connection.onClose === undefined ? undefined : runCleanup(connection, connection.onClose)
      // A scope nothing was added to closes on the spot: no fiber per close.
      if (cleanup === undefined && connection.closeScopeIfEmpty()) return forget(connection)
      const closing = Scope.close(connection.scope, Exit.void).pipe(
        Effect.ensuring(Effect.sync(() => forget(connection)))
      )
      run(cleanup === undefined ? closing : Effect.zipRight(cleanup, closing))
    }

    /** Runs openNow's cleanup; the Effect still to run when it has asynchronous work left (guarded like a handler's). */
    const runCleanup = (
      connection: LiveConnection<D>,
      onClose: NonNullable<OpenedNow<R>["onClose"]>
    ): Effect.Effect<void, never, R> | undefined => {
      connection.onClose = undefined
      let pending: Effect.Effect<void, never, R> | void
      try {
        pending = onClose(connection)
      } catch (defect) {
        return logFailure("closing the connection", connection, Cause.die(defect))
      }
      return pending === undefined
        ? undefined
        : Effect.catchAllCause(pending, (cause) => logFailure("closing the connection", connection, cause))
    }

    const logFailure = (what: string, connection: LiveConnection<D>, cause: Cause.Cause<unknown>) =>
      Effect.logError(`${what} failed`, Cause.pretty(cause)).pipe(
        Effect.annotateLogs({ server: serverName, connection: connection.id })
      )

    /** openNow, when the protocol has it and the work is synchronous: true when the connection is open and handled. */
    const openNow = (connection: LiveConnection<D>): boolean => {
      if (protocol.openNow === undefined) return false
      let opened: OpenedNow<R> | undefined
      try {
        opened = protocol.openNow(connection)
      } catch (defect) {
        run(failed("opening the connection", connection)(Cause.die(defect)))
        connection.handler = { onMessage: () => {} }
        return true
      }
      if (opened === undefined) return false
      connection.handler = opened
      connection.onClose = opened.onClose
      return true
    }

    /**
     * Runs the handler on one message. Synchronous work is done when this returns (undefined);
     * otherwise the Effect still to run, guarded so a failure closes only this connection.
     */
    const dispatch = (
      connection: LiveConnection<D>,
      message: WireMessage
    ): Effect.Effect<void, never, R> | undefined => {
      let pending: Effect.Effect<void, never, R> | void
      try {
        pending = connection.handler!.onMessage(message, connection)
      } catch (defect) {
        return failed("message handler", connection)(Cause.die(defect))
      }
      return pending === undefined ? undefined : Effect.catchAllCause(pending, failed("message handler", connection))
    }

    /** Parks the fiber until a message arrives, the socket closes or the sweep retires it. */
    const nextWork = (connection: LiveConnection<D>) =>
      Effect.async<void>((resume) => {
        if (connection.inbox.length > 0 || connection.ended || connection.retiring) return resume(Effect.void)
        connection.wake = () => {
          connection.wake = undefined
          resume(Effect.void)
        }
      })

    /** Opens the connection if needed, then hands every queued message to the handler in order while traffic lasts. */
    const work = (connection: LiveConnection<D>): Effect.Effect<void, never, R> =>
      Effect.gen(function* () {
        if (!connection.handler) {
          const opened = yield* Scope.extend(protocol.open(connection), connection.scope).pipe(
            Effect.catchAllCause((cause) => Effect.as(failed("opening the connection", connection)(cause), undefined))
          )
          if (!opened) {
            connection.inbox = noMessages
            return
          }
          connection.handler = opened
          // A connection that has said nothing yet holds no fiber.
          if (connection.inbox.length === 0) return
        }
        while (true) {
          // Only a handler doing asynchronous work keeps a fiber waiting; synchronous ones use the fast path.
          let asynchronous = false
          while (connection.inbox.length > 0) {
            const messages = connection.inbox
            connection.inbox = noMessages
            for (const message of messages) {
              // A handler that closed its connection (rate limit, protocol error) sees nothing after that.
              if (!connection.isOpen()) break
              const pending = dispatch(connection, message)
              if (pending) {
                asynchronous = true
                yield* pending
              }
            }
            if (connection.paused && connection.inbox.length < highWater / 2) {
              connection.paused = false
              connection.raw.resume()
            }
          }
          if (connection.ended || connection.retiring || !asynchronous) return
          yield* nextWork(connection)
        }
      }).pipe(Effect.ensuring(Effect.sync(() => settle(connection))))

    /** After a fiber's work: go on if more arrived meanwhile, else close the scope if the socket is gone. */
    const settle = (connection: LiveConnection<D>) => {
      connection.busy = false
      connection.retiring = false
      connection.wake = undefined
      if (connection.handler && connection.inbox.length > 0) start(connection)
      else if (connection.ended) finish(connection)
    }

    const start = (connection: LiveConnection<D>) => {
      connection.busy = true
      run(work(connection))
    }

    // Scopes of connections still open when the server stops are closed with it.
    yield* Effect.addFinalizer(() =>
      Effect.forEach(
        [...connections],
        (connection) => {
          const cleanup = connection.onClose === undefined ? undefined : runCleanup(connection, connection.onClose)
          return Effect.zipRight(cleanup ?? Effect.void, Scope.close(connection.scope, Exit.void))
        },
        { discard: true }
      )
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
      const idleSweepLimit =
        Duration.toMillis(limits.idleTimeout) > 0
          ? Math.max(1, Math.ceil(Duration.toMillis(limits.idleTimeout) / Duration.toMillis(limits.pingInterval)))
          : Infinity
      yield* Effect.sleep(limits.pingInterval)
      for (const connection of connections) {
        if (!connection.isOpen()) continue
        connection.quietSweeps += 1
        if (connection.wake && connection.quietSweeps >= 2) {
          connection.retiring = true
          connection.wake()
        }
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

    // Topic publishes don't report per-subscriber backpressure, so buffered bytes are polled (one native call each):
    // every slowConsumerCheck, and as soon as enough bytes were published since the last poll that a subscriber
    // could otherwise pass Bun's hard cap (where Bun drops the socket with 1006, and no close frame fits any more).
    const publishedBytesBeforeCheck = Math.max(
      1,
      Math.floor((hardBackpressureLimit(limits) - limits.slowConsumerBytes) / 2)
    )
    let publishedSinceCheck = 0
    const closeSlowConsumers = () => {
      publishedSinceCheck = 0
      for (const connection of connections) {
        if (connection.isOpen() && connection.raw.getBufferedAmount() > limits.slowConsumerBytes) {
          connection.close(CloseCodes.slowConsumer)
        }
      }
    }
    const afterPublish = (result: number, message: WireMessage) => {
      // -1 tells no size: count the most the message can take in UTF-8 (3 bytes per UTF-16 unit).
      const bytes = result >= 0 ? result : typeof message === "string" ? message.length * 3 : message.byteLength
      if ((publishedSinceCheck += bytes) >= publishedBytesBeforeCheck) closeSlowConsumers()
    }
    const slowConsumerSweep = Effect.sync(closeSlowConsumers).pipe(
      Effect.repeat(Schedule.spaced(limits.slowConsumerCheck))
    )
    yield* Effect.forkScoped(Effect.interruptible(slowConsumerSweep))

    const registry: ConnectionRegistry<D> = {
      opened: (raw, data) => {
        const connection = new LiveConnection(data, raw, registry)
        connections.add(connection)
        connectionsGauge.inc()
        if (!openNow(connection)) start(connection)
        return connection
      },
      received: (connection, message) => {
        messagesIn.inc()
        connection.awaitingPong = false
        connection.quietSweeps = 0
        // Once the server has closed it (or the socket is gone), late frames are not handled.
        if (connection.ended || !connection.isOpen()) return
        // Fast path: opened, nothing queued, no fiber at work: handle it right here, in order.
        if (!connection.busy && connection.handler && connection.inbox.length === 0) {
          const pending = dispatch(connection, message)
          if (pending) {
            connection.busy = true
            run(Effect.zipRight(pending, work(connection)))
          }
          return
        }
        if (connection.inbox === noMessages) connection.inbox = []
        const queued = connection.inbox.push(message)
        if (queued >= hardLimit) connection.close(CloseCodes.inboxOverflow)
        else if (queued >= highWater && !connection.paused) {
          connection.paused = true
          connection.raw.pause()
        }
        if (!connection.busy) start(connection)
        else connection.wake?.()
      },
      ponged: (connection) => {
        connection.awaitingPong = false
      },
      closed: (connection, code) => {
        connection.markClosed()
        connectionsGauge.dec()
        countClose(code)
        if (connection.ended) return
        connection.ended = true
        if (!connection.busy) finish(connection)
        else connection.wake?.()
      },
      afterSend,
      afterPublish,
      publishToAll: (topic, message) => {
        const result = publishOnServer(topic, message)
        afterPublish(result, message)
        return result
      },
      size: () => connections.size,
      closeAll: Effect.suspend(() => {
        for (const connection of [...connections]) connection.close(CloseCodes.goingAway)
        if (connections.size === 0) return Effect.void
        const closed = Deferred.unsafeMake<void>(FiberId.none)
        allClosed = closed
        return Deferred.await(closed).pipe(Effect.timeout(limits.pongTimeout), Effect.ignore)
      })
    }
    return registry
  })
