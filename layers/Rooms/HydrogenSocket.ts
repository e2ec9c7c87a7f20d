import { Cause, Clock, Duration, Effect, Either, Schedule } from "effect"
import { type HydrogenSettings } from "../../src/hydrogen/Config.ts"
import { quietState } from "../../src/hydrogen/ConnectionState.ts"
import { type Command, decodeInbound, peekId, plainAckId } from "../../src/hydrogen/Envelope.ts"
import { errorText, type ReplyTo, successText } from "../../src/hydrogen/Encode.ts"
import { applicationError, authenticationError, ErrorCodes, HydrogenError, protocolError } from "../../src/hydrogen/Errors.ts"
import { anonymous, type Identity, mayConnect } from "../../src/hydrogen/Permissions.ts"
import { CloseCodes } from "../../src/transport/CloseCodes.ts"
import type { Cell, Metrics } from "../Observability/Metrics.ts"
import { credentialOf, redactUrl } from "../Tokens/HydrogenAuth.ts"
import { accept, reject, type WebSocketProtocol, type WireMessage } from "../Transport/Transport.ts"
import type { AckTracker } from "./AckTracker.ts"
import type { ConnectionStatesTracker } from "./ConnectionStates.ts"
import type { CommandContext, HandlerTable } from "./HydrogenHandlers.ts"
import type { HydrogenConnectionData } from "./HydrogenSession.ts"
import type { Status } from "./HydrogenStatus.ts"
import type { RateLimits } from "./RateLimits.ts"
import type { Sessions } from "./SessionRecovery.ts"

const iso = (now: number) => new Date(now).toISOString()

/**
 * The hydrogen-protocol WebSocket: authentication and rate limits at upgrade, the seed's state
 * machine per connection, and the message loop (legacy status, acks, commands). A bad message
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
}): WebSocketProtocol<HydrogenConnectionData> => {
  const { settings, rateLimits, sessions, acks, handlers, status, states } = deps
  const errors = deps.metrics.counter("switchboard_hydrogen_errors_total", "Error responses by category and code", ["category", "code"])
  const commands = deps.metrics.counter("switchboard_hydrogen_commands_total", "Commands handled", ["channel", "action", "outcome"])
  // Label sets are few (registered handlers × outcome): keep their cells, as counting is per command.
  const commandCells = new Map<string, Cell>()
  const countCommand = (channel: string, action: string, outcome: "ok" | "error") => {
    const key = `${channel}\u0000${action}\u0000${outcome}`
    let cell = commandCells.get(key)
    if (!cell) commandCells.set(key, (cell = commands.labels({ channel, action, outcome })))
    cell.inc()
  }
  const refused = deps.metrics.counter("switchboard_hydrogen_upgrades_refused_total", "Refused upgrades by HTTP status", ["status"])
  const pingMillis = Duration.toMillis(settings.limits.pingInterval)
  const idleMillis = Duration.toMillis(settings.idleTimeout)
  const blockSeconds = String(Math.ceil(Duration.toSeconds(settings.blockDuration)))

  const refuse = (label: Record<string, unknown>, last: "Failed" | "Rejected", statusCode: number, reason: string, headers?: Record<string, string>) => {
    refused.inc({ status: String(statusCode) })
    const path = last === "Failed" ? (["Connecting", "Failed"] as const) : (["Connecting", "Verifying", "Rejected"] as const)
    return states.upgradePath(label, path).pipe(
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
        return yield* refuse(label, "Failed", 429,
          admission === "blocked" ? "this address is temporarily blocked" : "too many connections from this address; blocked for a while",
          { "retry-after": blockSeconds })
      }
      const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
      if (!offered.includes(settings.protocol)) {
        return yield* refuse(label, "Failed", 400, `the WebSocket subprotocol must be "${settings.protocol}"`)
      }
      const credential = credentialOf(request.headers, info.url)
      let identity: Identity = anonymous
      if (credential === undefined) {
        if (settings.authRequired) return yield* refuse(label, "Rejected", 401, "credentials required: Authorization: Key <token> or ?key=<token>")
      } else {
        const result = yield* Effect.either(deps.authenticate(credential))
        if (Either.isLeft(result)) return yield* refuse(label, "Rejected", 401, result.left.message)
        identity = result.right
      }
      if (!mayConnect(identity)) return yield* refuse(label, "Rejected", 403, "this credential may not open WebSocket connections")
      yield* states.upgradePath(label, ["Connecting", "Verifying", "Established"])
      return accept({ identity, remoteAddress: info.remoteAddress }, { "Sec-WebSocket-Protocol": settings.protocol })
    })

  const open: WebSocketProtocol<HydrogenConnectionData>["open"] = (connection) =>
    Effect.gen(function* () {
      let identity = connection.data.identity
      const state = states.track({ connection: connection.id, remote: connection.remoteAddress }, "Established")
      let session = yield* sessions.create(identity, connection)
      yield* state.moveTo("Connected")
      status.counters.activeConnections++
      status.counters.totalConnections++
      let lastInbound = yield* Clock.currentTimeMillis
      const limiter = rateLimits.messageLimiter(lastInbound)

      // Connected ⇄ Heartbeat → Inactive from the time since the last inbound message; the transport pings and closes (4001).
      const watch = Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        yield* state.moveTo(quietState(now - lastInbound, pingMillis, idleMillis))
      })
      yield* Effect.forkScoped(Effect.repeat(watch, Schedule.spaced(settings.limits.pingInterval)).pipe(Effect.delay(settings.limits.pingInterval)))
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* state.moveTo("Closing")
          status.counters.activeConnections--
          yield* sessions.detach(session, connection)
          yield* state.moveTo("Closed")
        })
      )

      // A session token's connection lives until the token expires, unless system/refresh extends it.
      if (identity.expiresAt !== undefined) {
        const expiry = Effect.gen(function* () {
          while (true) {
            const now = yield* Clock.currentTimeMillis
            const left = (identity.expiresAt ?? Infinity) - now
            if (left <= 0) break
            yield* Effect.sleep(Duration.millis(left))
          }
          yield* state.moveTo("Closing")
          connection.close(CloseCodes.unauthorized, "session token expired")
        })
        yield* Effect.forkScoped(expiry)
      }

      const context: CommandContext = {
        get session() {
          return session
        },
        get identity() {
          return identity
        },
        adoptSession: (resumed) => {
          session = resumed
        },
        refreshIdentity: (fresh) => {
          identity = fresh
        }
      }

      const send = (text: string) => void connection.send(text)
      const replyError = (to: ReplyTo, error: HydrogenError, now: number) => {
        errors.inc({ category: error.category, code: error.code })
        send(errorText(to, iso(now), error))
      }

      const runCommand = (command: Command, now: number) =>
        Effect.gen(function* () {
          const to = { id: command.id, channel: command.channel, action: command.action }
          const actions = handlers.get(command.channel)
          const handler = actions?.get(command.action)
          if (!handler) {
            countCommand("unknown", "unknown", "error")
            return replyError(to, actions
              ? protocolError(ErrorCodes.unknownAction, `channel ${command.channel} has no action ${command.action}`)
              : protocolError(ErrorCodes.unknownChannel, `no handler for channel ${command.channel}`), now)
          }
          const result = yield* Effect.gen(function* () {
            if (command.auth?.signature) {
              return yield* authenticationError(ErrorCodes.signatureNotSupported, "message signatures are not supported; use TLS (SecureMode \"tls\")")
            }
            const caller: CommandContext = command.auth?.token
              ? { session, identity: yield* deps.authenticate(command.auth.token), adoptSession: context.adoptSession, refreshIdentity: () => {} }
              : context
            return yield* handler.run(caller, command.data)
          }).pipe(
            Effect.catchAllCause((cause) =>
              Cause.isFailType(cause) && cause.error instanceof HydrogenError
                ? Effect.fail(cause.error)
                : Effect.logError("command handler failed", Cause.pretty(cause)).pipe(
                    Effect.annotateLogs({ channel: command.channel, action: command.action, connection: connection.id }),
                    Effect.zipRight(Effect.fail(applicationError(ErrorCodes.handlerFailed, `${command.channel}/${command.action} failed`)))
                  )
            ),
            Effect.either
          )
          const done = yield* Clock.currentTimeMillis
          countCommand(command.channel, command.action, Either.isRight(result) ? "ok" : "error")
          if (Either.isRight(result)) send(successText(to, iso(done), result.right))
          else replyError(to, result.left, done)
        })

      const onMessage = (message: WireMessage) =>
        Effect.gen(function* () {
          status.counters.totalRequests++
          const now = yield* Clock.currentTimeMillis
          lastInbound = now
          if (state.current() !== "Connected") yield* state.moveTo("Connected")
          const admission = limiter.admit(now)
          if (admission !== "ok") {
            if (admission === "abusive") {
              rateLimits.block(connection.remoteAddress, now)
              yield* Effect.logWarning("connection keeps exceeding the message rate: closing and blocking its address").pipe(
                Effect.annotateLogs({ connection: connection.id, remote: connection.remoteAddress })
              )
              yield* state.moveTo("Closing")
              return connection.close(CloseCodes.rateLimited)
            }
            const id = typeof message === "string" ? peekId(message).id : undefined
            return replyError({ id }, protocolError(ErrorCodes.rateLimited, `more than ${settings.messageRatePerSecond} messages per second; slow down or be disconnected (4006)`), now)
          }
          if (typeof message !== "string") {
            return replyError({}, protocolError(ErrorCodes.binaryNotSupported, "hydrogen-protocol messages are JSON text frames"), now)
          }
          if (message.length > settings.maxMessageSize / 3 && Buffer.byteLength(message) > settings.maxMessageSize) {
            const peek = peekId(message)
            if (!peek.looksLikeObject) {
              yield* state.moveTo("Closing")
              return connection.close(CloseCodes.messageTooBig)
            }
            return replyError({ id: peek.id }, protocolError(ErrorCodes.messageTooLarge, `messages are limited to ${settings.maxMessageSize} bytes`), now)
          }
          const ackId = plainAckId(message)
          if (ackId !== undefined) return acks.ack(session, ackId)
          const decoded = decodeInbound(message)
          if (Either.isLeft(decoded)) return replyError({ id: decoded.left.id }, decoded.left.error, now)
          const inbound = decoded.right
          switch (inbound.type) {
            case "status":
              return send(JSON.stringify(yield* status.snapshot(identity)))
            case "ack":
              return acks.ack(session, inbound.id)
            case "command":
              return yield* runCommand(inbound, now)
          }
        })

      return { onMessage }
    })

  return { upgrade, open }
}
