import { Cause, Clock, Effect, Either } from "effect"
import type { Command } from "./Envelope.ts"
import { errorText, type ReplyTo, successText } from "./Encode.ts"
import { applicationError, authenticationError, ErrorCodes, HydrogenError, protocolError } from "./Errors.ts"
import type { Identity } from "./Permissions.ts"
import type { Cell, Metrics } from "../../layers/Observability/Metrics.ts"
import type { CommandContext, Handler, HandlerTable } from "./Handlers.ts"
import type { LiveConnection } from "./LiveConnection.ts"
import { type RateLimits, tooManyFailures } from "./RateLimits.ts"

const iso = (now: number) => new Date(now).toISOString()

/**
 * Commands and replies of a connection. A handler with `start` (events/publish) runs without a
 * fiber and is answered later; every other reply of the connection waits until those are
 * answered, so responses leave in the order the messages came, as when each command had a fiber.
 */
export const makeCommandRunner = (deps: {
  readonly handlers: HandlerTable
  readonly authenticate: (credential: string) => Effect.Effect<Identity, HydrogenError>
  readonly rateLimits: RateLimits
  readonly metrics: typeof Metrics.Service
  readonly clock: Clock.Clock
}) => {
  const { handlers, rateLimits, clock } = deps
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

  /** Runs `reply` now, or once the connection's started commands are answered. */
  const inOrder = (live: LiveConnection, reply: () => Effect.Effect<void> | void): Effect.Effect<void> | void =>
    live.hasUnanswered()
      ? Effect.zipRight(
          live.allAnswered(),
          Effect.suspend(() => reply() ?? Effect.void)
        )
      : reply()

  const sendError = (live: LiveConnection, to: ReplyTo, error: HydrogenError, now: number) => {
    errors.inc({ category: error.category, code: error.code })
    live.connection.send(errorText(to, iso(now), error))
  }

  /** An error reply, in order with the connection's other replies. */
  const replyError = (live: LiveConnection, to: ReplyTo, error: HydrogenError, now: number) =>
    inOrder(live, () => sendError(live, to, error, now))

  const answer = (live: LiveConnection, command: Command, outcome: Either.Either<unknown, HydrogenError>) => {
    const to = { id: command.id, channel: command.channel, action: command.action }
    const now = clock.unsafeCurrentTimeMillis()
    countCommand(command.channel, command.action, Either.isRight(outcome) ? "ok" : "error")
    if (Either.isRight(outcome)) live.connection.send(successText(to, iso(now), outcome.right))
    else sendError(live, to, outcome.left, now)
  }

  const failed = (command: Command) =>
    applicationError(ErrorCodes.handlerFailed, `${command.channel}/${command.action} failed`)
  const logFailure = (live: LiveConnection, command: Command, cause: Cause.Cause<unknown>) =>
    Effect.logError("command handler failed", Cause.pretty(cause)).pipe(
      Effect.annotateLogs({ channel: command.channel, action: command.action, connection: live.connection.id })
    )

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

  /**
   * Started now, answered when `done` is called (at most once). An outcome known at once (refused
   * data or permission) is answered in order like any other reply; a later one comes from the flush,
   * which answers in the order the commands were started.
   */
  const start = (live: LiveConnection, command: Command, startIt: NonNullable<Handler["start"]>) => {
    let now: Either.Either<unknown, HydrogenError> | undefined
    let pending = true
    let later = false
    const done = (outcome: Either.Either<unknown, HydrogenError>) => {
      if (!pending) return
      pending = false
      if (!later) now = outcome
      else {
        answer(live, command, outcome)
        live.answered()
      }
    }
    let defect: Effect.Effect<void> | undefined
    try {
      startIt(live, command.data, done)
    } catch (error) {
      done(Either.left(failed(command)))
      defect = logFailure(live, command, Cause.die(error))
    }
    if (now === undefined) {
      later = true
      live.starting()
      return defect
    }
    const outcome = now
    const answered = inOrder(live, () => answer(live, command, outcome))
    return defect ? Effect.zipRight(defect, answered ?? Effect.void) : answered
  }

  /** In a fiber: a command with its own `auth.token`, or a handler without `start`. */
  const run = (live: LiveConnection, command: Command, handler: Handler) =>
    Effect.gen(function* () {
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
            : Effect.zipRight(logFailure(live, command, cause), Effect.fail(failed(command)))
        ),
        Effect.either
      )
      answer(live, command, result)
    })

  const runCommand = (live: LiveConnection, command: Command): Effect.Effect<void> | void => {
    const handler = handlers.get(command.channel)?.get(command.action)
    if (handler?.start && command.auth === undefined) return start(live, command, handler.start)
    return inOrder(live, () => {
      if (handler) return run(live, command, handler)
      countCommand("unknown", "unknown", "error")
      const to = { id: command.id, channel: command.channel, action: command.action }
      const now = clock.unsafeCurrentTimeMillis()
      sendError(
        live,
        to,
        handlers.has(command.channel)
          ? protocolError(ErrorCodes.unknownAction, `channel ${command.channel} has no action ${command.action}`)
          : protocolError(ErrorCodes.unknownChannel, `no handler for channel ${command.channel}`),
        now
      )
    })
  }

  return { runCommand, replyError, inOrder }
}
