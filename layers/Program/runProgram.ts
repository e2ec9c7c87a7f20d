import { BunRuntime } from "@effect/platform-bun"
import { Cause, ConfigError, Effect, Layer, Option } from "effect"
import { ConfigFromArgs } from "../Config/ConfigFile.ts"
import { LoggingLive } from "../Observability/Logging.ts"
import { Metrics } from "../Observability/Metrics.ts"

/** One line for a startup failure: the config key and its problem, or the error's own message. */
export const describeStartupFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (ConfigError.isConfigError(error)) return `invalid configuration: ${String(error)}`
    if (error && typeof error === "object" && "message" in error) return String((error as { message: unknown }).message)
    return String(error)
  }
  return Cause.pretty(cause).split("\n")[0] ?? "startup failed"
}

/**
 * Runs a program made of layers until SIGINT/SIGTERM, then releases them in reverse order
 * (clients see close code 1001). A startup failure prints one line and exits with status 1.
 */
export const runProgram = <E>(program: Layer.Layer<never, E, Metrics>) =>
  Layer.launch(program).pipe(
    Effect.provide(Metrics.Default),
    Effect.provide(ConfigFromArgs()),
    Effect.provide(LoggingLive()),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.sync(() => {
            console.error(`startup failed: ${describeStartupFailure(cause)}`)
            process.exitCode = 1
          })
    ),
    // Our LoggingLive chooses the format; runMain's pretty logger would override it.
    (program) => BunRuntime.runMain(program, { disablePrettyLogger: true })
  )
