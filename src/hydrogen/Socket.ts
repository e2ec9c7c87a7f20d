import { Duration, Effect, Either, Scope } from "effect"
import { type HydrogenSettings } from "./Config.ts"
import { quietState } from "./ConnectionState.ts"
import { type Ack, decodeInbound, peekId, plainAckId, plainBatchAckIds } from "./Envelope.ts"
import { ErrorCodes, type HydrogenError, protocolError } from "./Errors.ts"
import type { Identity } from "./Permissions.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { WebSocketProtocol, WireMessage } from "../../layers/Transport/Transport.ts"
import type { AckTracker } from "./Acks.ts"
import type { ConnectionStatesTracker } from "./ConnectionStates.ts"
import type { HandlerTable } from "./Handlers.ts"
import type { HydrogenConnectionData } from "./Session.ts"
import type { Status } from "./Status.ts"
import { sweepEvery } from "../shared/Sweeps.ts"
import type { RateLimits } from "./RateLimits.ts"
import type { Sessions } from "./Sessions.ts"
import { LiveConnection } from "./LiveConnection.ts"
import { makeUpgrade } from "./Upgrade.ts"
import { makeCommandRunner } from "./CommandRunner.ts"

/**
 * The hydrogen-protocol WebSocket: authentication and rate limits at upgrade (Upgrade.ts), the
 * seed's state machine per connection, and the message loop (legacy status, acks, commands in
 * CommandRunner.ts). Timers are two server-wide sweeps for the life of the server's Scope (quiet
 * states every PingInterval, session token expiry every second), so an idle connection holds no
 * fiber. Acks, publishes and error replies run without a fiber. A bad message is answered with a
 * structured error; only persistent flooding (4006), an unreadable oversized frame (1009) or an
 * expired session token (4401) closes a connection.
 */
export const makeHydrogenProtocol = (deps: {
  readonly settings: HydrogenSettings
  readonly authenticate: (credential: string) => Effect.Effect<Identity, HydrogenError>
  readonly rateLimits: RateLimits
  readonly sessions: Sessions
  readonly acks: AckTracker
  readonly handlers: HandlerTable
  readonly status: Status
  readonly states: ConnectionStatesTracker
  readonly metrics: typeof Metrics.Service
}): Effect.Effect<WebSocketProtocol<HydrogenConnectionData>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { settings, rateLimits, sessions, acks, status, states } = deps
    const pingMillis = Duration.toMillis(settings.limits.pingInterval)
    const idleMillis = Duration.toMillis(settings.idleTimeout)
    // Read synchronously per message (the TestClock in tests), so acks and errors need no Effect.
    const clock = yield* Effect.clock
    const upgrade = makeUpgrade(deps)
    const { runCommand, replyError, inOrder } = makeCommandRunner({ ...deps, clock })

    /** The open connections, for the state sweep; those on a session token also wait in `expiring`. */
    const watched = new Set<LiveConnection>()
    const expiring = new Set<LiveConnection>()

    // Connected ⇄ Heartbeat → Inactive from the time since the last inbound message; the transport pings and closes (4001).
    yield* sweepEvery("connection state", settings.limits.pingInterval, watched, (connection, now) => {
      const quiet = quietState(now - connection.lastInbound, pingMillis, idleMillis)
      return quiet === connection.state.current() ? undefined : connection.state.moveTo(quiet)
    })
    // A session token's connection lives until the token expires (second precision, like the token), unless system/refresh extends it.
    yield* sweepEvery("session token expiry", Duration.seconds(1), expiring, (connection, now) => {
      if ((connection.identity.expiresAt ?? Infinity) > now) return
      expiring.delete(connection)
      return closeWith(connection, CloseCodes.unauthorized, "session token expired")
    })

    const closeWith = (live: LiveConnection, code: number, reason?: string) =>
      Effect.zipRight(
        live.state.moveTo("Closing"),
        Effect.sync(() => live.connection.close(code, reason))
      )

    /** Admitted: nothing to do. */
    const admitted = null

    /** Takes one message from the connection's budget: `admitted`, or the refusal to return (an error reply, or 4006 and a block). */
    const charge = (
      live: LiveConnection,
      message: WireMessage,
      now: number
    ): Effect.Effect<void> | void | typeof admitted => {
      const admission = live.limiter.admit(now)
      if (admission === "ok") return admitted
      const { connection } = live
      if (admission === "abusive") {
        rateLimits.block(connection.remoteAddress, now)
        return Effect.logWarning("connection keeps exceeding the message rate: closing and blocking its address").pipe(
          Effect.annotateLogs({ connection: connection.id, remote: connection.remoteAddress }),
          Effect.zipRight(closeWith(live, CloseCodes.rateLimited))
        )
      }
      const id = typeof message === "string" ? peekId(message).id : undefined
      return replyError(
        live,
        { id },
        protocolError(
          ErrorCodes.rateLimited,
          `more than ${settings.messageRatePerSecond} messages per second; slow down or be disconnected (4006)`
        ),
        now
      )
    }

    /**
     * Acks are what the protocol asks of a client, so an ack that ends the wait for pending events
     * is free; only an ack naming nothing pending (a duplicate, a guess) costs a message.
     */
    const ackAll = (live: LiveConnection, message: string, ack: Ack, now: number): Effect.Effect<void> | void => {
      let allPending = ack.id === undefined || acks.ack(live.session, ack.id)
      if (ack.ids) for (const id of ack.ids) allPending = acks.ack(live.session, id) && allPending
      if (allPending) return
      const refusal = charge(live, message, now)
      if (refusal !== admitted) return refusal
    }

    /** An ack in its plain single or batch form, handled; undefined when the message is not one (or names nothing pending). */
    const plainAck = (
      live: LiveConnection,
      message: string,
      now: number
    ): Effect.Effect<void> | void | typeof admitted => {
      if (acks.ackPlain(live.session, message)) return
      const ackId = plainAckId(message)
      if (ackId !== undefined) {
        if (acks.ack(live.session, ackId)) return
        const refusal = charge(live, message, now)
        if (refusal !== admitted) return refusal
        return
      }
      const ids = plainBatchAckIds(message)
      return ids === undefined ? admitted : ackAll(live, message, { type: "ack", ids }, now)
    }

    /** One inbound message: synchronous (acks, publishes, errors) unless it needs a log, a command handler or a status snapshot. */
    const handle = (live: LiveConnection, message: WireMessage, now: number): Effect.Effect<void> | void => {
      if (typeof message !== "string") {
        const refusal = charge(live, message, now)
        if (refusal !== admitted) return refusal
        return replyError(
          live,
          {},
          protocolError(ErrorCodes.binaryNotSupported, "hydrogen-protocol messages are JSON text frames"),
          now
        )
      }
      if (message.length > settings.maxMessageSize / 3 && Buffer.byteLength(message) > settings.maxMessageSize) {
        const refusal = charge(live, message, now)
        if (refusal !== admitted) return refusal
        const peek = peekId(message)
        if (!peek.looksLikeObject) return closeWith(live, CloseCodes.messageTooBig)
        return replyError(
          live,
          { id: peek.id },
          protocolError(ErrorCodes.messageTooLarge, `messages are limited to ${settings.maxMessageSize} bytes`),
          now
        )
      }
      const acked = plainAck(live, message, now)
      if (acked !== admitted) return acked
      // Decoded before charging, so that acks in any form (extra fields, spaces) stay free.
      const decoded = decodeInbound(message)
      if (Either.isRight(decoded) && decoded.right.type === "ack") return ackAll(live, message, decoded.right, now)
      const refusal = charge(live, message, now)
      if (refusal !== admitted) return refusal
      if (Either.isLeft(decoded)) return replyError(live, { id: decoded.left.id }, decoded.left.error, now)
      const inbound = decoded.right
      switch (inbound.type) {
        case "status":
          return inOrder(live, () =>
            Effect.map(
              status.snapshot(live.identity),
              (snapshot) => void live.connection.send(JSON.stringify(snapshot))
            )
          )
        case "command":
          return runCommand(live, inbound)
      }
    }

    const onMessage = (live: LiveConnection, message: WireMessage): Effect.Effect<void> | void => {
      status.counters.totalRequests++
      const now = clock.unsafeCurrentTimeMillis()
      live.lastInbound = now
      if (live.state.current() === "Connected") return handle(live, message, now)
      const wake = live.state.moveTo("Connected")
      const pending = handle(live, message, now)
      return pending ? Effect.zipRight(wake, pending) : wake
    }

    const open: WebSocketProtocol<HydrogenConnectionData>["open"] = (connection) =>
      Effect.gen(function* () {
        const state = states.track({ connection: connection.id, remote: connection.remoteAddress }, "Established")
        const created = yield* Effect.either(sessions.create(connection.data.identity, connection))
        if (Either.isLeft(created)) {
          // No session id to give: the client reconnects once the store is back.
          yield* Effect.logWarning("connection closed: session store unavailable", created.left.reason)
          connection.close(CloseCodes.tryAgainLater, "session store unavailable")
          yield* Effect.zipRight(state.moveTo("Closing"), state.moveTo("Closed"))
          return { onMessage: () => {} }
        }
        const session = created.right
        yield* state.moveTo("Connected")
        status.counters.activeConnections++
        status.counters.totalConnections++
        const now = clock.unsafeCurrentTimeMillis()
        const self = new LiveConnection(
          connection,
          state,
          rateLimits.messageLimiter(now),
          session,
          connection.data.identity,
          now
        )
        watched.add(self)
        if (self.identity.expiresAt !== undefined) expiring.add(self)
        // Scope.addFinalizer, unlike Effect.addFinalizer, keeps no copy of this fiber's FiberRefs for the connection's life.
        yield* Scope.addFinalizer(
          yield* Effect.scope,
          Effect.suspend(() => {
            watched.delete(self)
            expiring.delete(self)
            status.counters.activeConnections--
            return Effect.zipRight(
              state.moveTo("Closing"),
              Effect.zipRight(sessions.detach(self.session, connection), state.moveTo("Closed"))
            )
          })
        )
        return { onMessage: (message: WireMessage) => onMessage(self, message) }
      })

    return { upgrade, open } satisfies WebSocketProtocol<HydrogenConnectionData>
  })
