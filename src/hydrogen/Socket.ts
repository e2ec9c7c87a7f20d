import { Cause, Clock, Duration, Effect, Either, Scope } from "effect"
import { type HydrogenSettings } from "./Config.ts"
import { quietState } from "./ConnectionState.ts"
import { type Ack, type Command, decodeInbound, peekId, plainAckId } from "./Envelope.ts"
import { errorText, type ReplyTo, successText } from "./Encode.ts"
import { applicationError, authenticationError, ErrorCodes, HydrogenError, protocolError } from "./Errors.ts"
import { anonymous, type Identity, mayConnect } from "./Permissions.ts"
import { CloseCodes } from "../shared/CloseCodes.ts"
import type { Cell, Metrics } from "../../layers/Observability/Metrics.ts"
import { credentialOf, redactUrl } from "./Auth.ts"
import { accept, reject, type WebSocketProtocol, type WireMessage } from "../../layers/Transport/Transport.ts"
import type { AckTracker } from "./Acks.ts"
import type { ConnectionStatesTracker, StateTracker } from "./ConnectionStates.ts"
import type { CommandContext, HandlerTable } from "./Handlers.ts"
import type { HydrogenConnection, HydrogenConnectionData, Session } from "./Session.ts"
import type { Status } from "./Status.ts"
import { sweepEvery } from "../shared/Sweeps.ts"
import { type MessageLimiter, type RateLimits, tooManyFailures } from "./RateLimits.ts"
import type { Sessions } from "./Sessions.ts"

const iso = (now: number) => new Date(now).toISOString()

/**
 * The hydrogen-protocol WebSocket: authentication and rate limits at upgrade, the seed's state
 * machine per connection, and the message loop (legacy status, acks, commands). Timers are two
 * server-wide sweeps for the life of the server's Scope (quiet states every PingInterval, session
 * token expiry every second), so an idle connection holds no fiber. A bad message
 * is answered with a structured error; only persistent flooding (4006), an unreadable oversized
 * frame (1009) or an expired session token (4401) closes a connection.
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
    const { settings, rateLimits, sessions, acks, handlers, status, states } = deps
    const errors = deps.metrics.counter("switchboard_hydrogen_errors_total", "Error responses by category and code", [
      "category",
      "code"
    ])
    const commands = deps.metrics.counter("switchboard_hydrogen_commands_total", "Commands handled", [
      "channel",
      "action",
      "outcome"
    ])
    // Label sets are few (registered handlers × outcome): keep their cells, as counting is per command.
    const commandCells = new Map<string, Cell>()
    const countCommand = (channel: string, action: string, outcome: "ok" | "error") => {
      const key = `${channel}\u0000${action}\u0000${outcome}`
      let cell = commandCells.get(key)
      if (!cell) commandCells.set(key, (cell = commands.labels({ channel, action, outcome })))
      cell.inc()
    }
    const refused = deps.metrics.counter(
      "switchboard_hydrogen_upgrades_refused_total",
      "Refused upgrades by HTTP status",
      ["status"]
    )
    const pingMillis = Duration.toMillis(settings.limits.pingInterval)
    const idleMillis = Duration.toMillis(settings.idleTimeout)
    const blockSeconds = String(Math.ceil(Duration.toSeconds(settings.blockDuration)))
    // Read synchronously per message (the TestClock in tests), so acks and errors need no Effect.
    const clock = yield* Effect.clock

    const refuse = (
      label: Record<string, unknown>,
      last: "Failed" | "Rejected",
      statusCode: number,
      reason: string,
      headers?: Record<string, string>
    ) => {
      refused.inc({ status: String(statusCode) })
      const path =
        last === "Failed" ? (["Connecting", "Failed"] as const) : (["Connecting", "Verifying", "Rejected"] as const)
      return states
        .upgradePath(label, path)
        .pipe(
          Effect.zipRight(Effect.logDebug(`upgrade refused: ${statusCode} ${reason}`).pipe(Effect.annotateLogs(label))),
          Effect.as(reject(statusCode, reason, headers))
        )
    }

    const upgrade: WebSocketProtocol<HydrogenConnectionData>["upgrade"] = (request, info) =>
      Effect.gen(function* () {
        // The URL may carry ?key=: logs get it masked.
        const label = { remote: info.remoteAddress, path: redactUrl(info.url) }
        const now = yield* Clock.currentTimeMillis
        const admission = rateLimits.admitConnection(info.remoteAddress, now)
        if (admission !== "ok") {
          return yield* refuse(
            label,
            "Failed",
            429,
            admission === "blocked"
              ? "this address is temporarily blocked"
              : "too many connections from this address; blocked for a while",
            { "retry-after": blockSeconds }
          )
        }
        const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
        if (!offered.includes(settings.protocol)) {
          return yield* refuse(label, "Failed", 400, `the WebSocket subprotocol must be "${settings.protocol}"`)
        }
        const credential = credentialOf(request.headers, info.url)
        let identity: Identity = anonymous
        if (credential === undefined) {
          if (settings.authRequired)
            return yield* refuse(
              label,
              "Rejected",
              401,
              "credentials required: Authorization: Key <token> or ?key=<token>"
            )
        } else {
          const blockedFor = rateLimits.credentialsBlocked(info.remoteAddress, now)
          if (blockedFor > 0)
            return yield* refuse(label, "Rejected", 429, tooManyFailures, { "retry-after": String(blockedFor) })
          const result = yield* Effect.either(deps.authenticate(credential))
          if (Either.isLeft(result)) {
            const wait = rateLimits.credentialFailed(info.remoteAddress, now)
            if (wait > 0) return yield* refuse(label, "Rejected", 429, tooManyFailures, { "retry-after": String(wait) })
            return yield* refuse(label, "Rejected", 401, result.left.message)
          }
          identity = result.right
        }
        if (!mayConnect(identity))
          return yield* refuse(label, "Rejected", 403, "this credential may not open WebSocket connections")
        yield* states.upgradePath(label, ["Connecting", "Verifying", "Established"])
        return accept({ identity, remoteAddress: info.remoteAddress }, { "Sec-WebSocket-Protocol": settings.protocol })
      })

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

    const replyError = (live: LiveConnection, to: ReplyTo, error: HydrogenError, now: number) => {
      errors.inc({ category: error.category, code: error.code })
      live.connection.send(errorText(to, iso(now), error))
    }

    /** A command's own `auth.token`: a wrong one counts toward the address's failed credentials, like one at upgrade. */
    const messageCredential = (live: LiveConnection, credential: string) =>
      Effect.suspend(() => {
        const remote = live.connection.remoteAddress
        const now = clock.unsafeCurrentTimeMillis()
        if (rateLimits.credentialsBlocked(remote, now) > 0)
          return Effect.fail(protocolError(ErrorCodes.rateLimited, tooManyFailures))
        return deps
          .authenticate(credential)
          .pipe(
            Effect.mapError((error) =>
              rateLimits.credentialFailed(remote, now) > 0
                ? protocolError(ErrorCodes.rateLimited, tooManyFailures)
                : error
            )
          )
      })

    const runCommand = (live: LiveConnection, command: Command) =>
      Effect.gen(function* () {
        const to = { id: command.id, channel: command.channel, action: command.action }
        const actions = handlers.get(command.channel)
        const handler = actions?.get(command.action)
        if (!handler) {
          countCommand("unknown", "unknown", "error")
          return replyError(
            live,
            to,
            actions
              ? protocolError(ErrorCodes.unknownAction, `channel ${command.channel} has no action ${command.action}`)
              : protocolError(ErrorCodes.unknownChannel, `no handler for channel ${command.channel}`),
            clock.unsafeCurrentTimeMillis()
          )
        }
        const result = yield* Effect.gen(function* () {
          if (command.auth?.signature) {
            return yield* authenticationError(
              ErrorCodes.signatureNotSupported,
              'message signatures are not supported; use TLS (SecureMode "tls")'
            )
          }
          const caller: CommandContext = command.auth?.token
            ? {
                session: live.session,
                identity: yield* messageCredential(live, command.auth.token),
                adoptSession: (session) => live.adoptSession(session),
                refreshIdentity: () => {}
              }
            : live
          return yield* handler.run(caller, command.data)
        }).pipe(
          Effect.catchAllCause((cause) =>
            Cause.isFailType(cause) && cause.error instanceof HydrogenError
              ? Effect.fail(cause.error)
              : Effect.logError("command handler failed", Cause.pretty(cause)).pipe(
                  Effect.annotateLogs({
                    channel: command.channel,
                    action: command.action,
                    connection: live.connection.id
                  }),
                  Effect.zipRight(
                    Effect.fail(
                      applicationError(ErrorCodes.handlerFailed, `${command.channel}/${command.action} failed`)
                    )
                  )
                )
          ),
          Effect.either
        )
        const done = yield* Clock.currentTimeMillis
        countCommand(command.channel, command.action, Either.isRight(result) ? "ok" : "error")
        if (Either.isRight(result)) live.connection.send(successText(to, iso(done), result.right))
        else replyError(live, to, result.left, done)
      })

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

    /** One inbound message: synchronous (acks, errors) unless it needs a log, a command handler or a status snapshot. */
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
      if (acks.ackPlain(live.session, message)) return
      const ackId = plainAckId(message)
      if (ackId !== undefined) {
        if (acks.ack(live.session, ackId)) return
        const refusal = charge(live, message, now)
        if (refusal !== admitted) return refusal
        return
      }
      // Decoded before charging, so that acks in any form (batch, extra fields) stay free.
      const decoded = decodeInbound(message)
      if (Either.isRight(decoded) && decoded.right.type === "ack") return ackAll(live, message, decoded.right, now)
      const refusal = charge(live, message, now)
      if (refusal !== admitted) return refusal
      if (Either.isLeft(decoded)) return replyError(live, { id: decoded.left.id }, decoded.left.error, now)
      const inbound = decoded.right
      switch (inbound.type) {
        case "status":
          return Effect.map(
            status.snapshot(live.identity),
            (snapshot) => void live.connection.send(JSON.stringify(snapshot))
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
        const session = yield* sessions.create(connection.data.identity, connection)
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

/**
 * What the protocol keeps per open connection: one object (its methods on the prototype), no
 * fiber. It is also the command context of the connection's own commands.
 */
class LiveConnection implements CommandContext {
  constructor(
    readonly connection: HydrogenConnection,
    readonly state: StateTracker,
    readonly limiter: MessageLimiter,
    public session: Session,
    public identity: Identity,
    /** When the last inbound message arrived (drives Connected ⇄ Heartbeat → Inactive). */
    public lastInbound: number
  ) {}

  /** Switches the connection to a resumed session. */
  adoptSession(session: Session) {
    this.session = session
  }

  /** Replaces the identity after a token refresh (same subject); the expiry sweep reads the new expiresAt. */
  refreshIdentity(identity: Identity) {
    this.identity = identity
  }
}
