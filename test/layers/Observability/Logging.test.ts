import { describe, expect, spyOn } from "bun:test"
import { Effect, Redacted } from "effect"
import { LoggingLive } from "../../../layers/Observability/Logging.ts"
import { it } from "../../support/effect.ts"

const captureStderr = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const lines: Array<string> = []
      const spy = spyOn(console, "error").mockImplementation(
        (...args: Array<unknown>) => void lines.push(args.join(" "))
      )
      return { lines, spy }
    }),
    ({ lines }) => Effect.as(self, lines),
    ({ spy }) => Effect.sync(() => spy.mockRestore())
  )

describe("LoggingLive", () => {
  it.live("writes logfmt lines to stderr at info and above by default, secrets redacted", () =>
    Effect.gen(function* () {
      const lines = yield* captureStderr(
        Effect.gen(function* () {
          yield* Effect.logDebug("hidden")
          yield* Effect.logInfo("visible").pipe(Effect.annotateLogs({ secret: Redacted.make("hunter2") }))
        }).pipe(Effect.provide(LoggingLive({})))
      )
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain("level=INFO")
      expect(lines[0]).toContain("message=visible")
      expect(lines[0]).not.toContain("hunter2")
    })
  )

  it.live("LOG_FORMAT=json writes JSON lines; LOG_LEVEL=debug lowers the bar", () =>
    Effect.gen(function* () {
      const lines = yield* captureStderr(
        Effect.logDebug("shown").pipe(Effect.provide(LoggingLive({ LOG_FORMAT: "json", LOG_LEVEL: "debug" })))
      )
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({ message: "shown", logLevel: "DEBUG" })
    })
  )
})
