import { test } from "bun:test"
import { Cause, Effect, Exit, Layer, Logger, LogLevel, type Scope, TestContext, type TestServices } from "effect"

/** Tests log only warnings and errors unless TEST_LOG_LEVEL asks for more. */
const testLogLevel = LogLevel.fromLiteral((process.env.TEST_LOG_LEVEL as LogLevel.Literal | undefined) ?? "Warning")
const quietLogs = Logger.minimumLogLevel(testLogLevel)

const run = async <E>(self: Effect.Effect<void, E, never>) => {
  const exit = await Effect.runPromiseExit(self)
  if (Exit.isFailure(exit)) throw new Error(Cause.pretty(exit.cause))
}

type Body<E> = Effect.Effect<void, E, Scope.Scope | TestServices.TestServices>
type LiveBody<E> = Effect.Effect<void, E, Scope.Scope>

/**
 * bun:test adapter for Effect (instead of @effect/vitest):
 * - `it.effect`: TestClock and other test services; time moves only with TestClock.adjust.
 * - `it.live`: the real clock, for tests that wait on real sockets.
 * Both run in a Scope that closes when the test ends, so servers and sockets are released.
 */
export const it = {
  effect: <E>(name: string, body: () => Body<E>, timeout?: number) =>
    test(
      name,
      () =>
        run(Effect.scoped(Effect.suspend(body)).pipe(Effect.provide(Layer.merge(TestContext.TestContext, quietLogs)))),
      timeout
    ),
  live: <E>(name: string, body: () => LiveBody<E>, timeout?: number) =>
    test(name, () => run(Effect.scoped(Effect.suspend(body)).pipe(Effect.provide(quietLogs))), timeout),
  skipIf: (condition: boolean) => ({
    effect: <E>(name: string, body: () => Body<E>, timeout?: number) =>
      condition ? test.skip(name, () => {}) : it.effect(name, body, timeout),
    live: <E>(name: string, body: () => LiveBody<E>, timeout?: number) =>
      condition ? test.skip(name, () => {}) : it.live(name, body, timeout)
  })
}

/** Lets real I/O (socket callbacks) run between TestClock steps. */
export const settle = (ms = 20) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Polls a condition on the real event loop until it holds (bounded), for state that sockets change. */
export const eventually = <A>(probe: () => A | undefined | false, label: string, attempts = 200) =>
  Effect.gen(function* () {
    for (let i = 0; i < attempts; i++) {
      const value = probe()
      if (value !== undefined && value !== false) return value as A
      yield* settle(10)
    }
    return yield* Effect.dieMessage(`timed out waiting for: ${label}`)
  })
