import { ConfigProvider, Effect, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"

/**
 * A program's server layer built from a JSON config in a scope closed with the test's, with its log
 * lines captured (Info and up): tests read the bound port from the "listening on" line.
 */
export const launchProgram = <E>(program: Layer.Layer<never, E, Metrics>, json: object) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const logger = Layer.merge(
      Logger.replace(
        Logger.defaultLogger,
        Logger.make((options) => void lines.push(String(options.message)))
      ),
      Logger.minimumLogLevel(LogLevel.Info)
    )
    yield* Layer.buildWithScope(
      program.pipe(
        Layer.provide(Metrics.Default),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson(json))),
        Layer.provide(logger)
      ),
      scope
    )
    return lines
  })

/** The port of the first "<what> listening on <url>" line. */
export const listeningPort = (lines: ReadonlyArray<string>, what: string) =>
  Number(/:(\d+)\/?$/.exec(lines.find((line) => line.includes(`${what} listening on`))!)![1])
