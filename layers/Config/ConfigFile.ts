import { FileSystem } from "@effect/platform"
import { BunFileSystem } from "@effect/platform-bun"
import { ConfigProvider, Data, Effect, Layer } from "effect"

export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{ readonly message: string }> {}

/** The value of `--config <path>` or `--config=<path>` in argv, if given. */
export const configPathFromArgs = (argv: ReadonlyArray<string>): string | undefined => {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--config") return argv[i + 1]
    if (arg.startsWith("--config=")) return arg.slice("--config=".length)
  }
  return undefined
}

/**
 * Environment variables over an optional JSON file. Keys are camelCase paths in the file
 * ({"relay": {"port": 9966}}) and CONSTANT_CASE in the environment (RELAY_PORT=9966).
 */
export const providerFrom = (json: unknown, env: ConfigProvider.ConfigProvider = ConfigProvider.fromEnv()) =>
  env.pipe(
    ConfigProvider.constantCase,
    ConfigProvider.orElse(() => ConfigProvider.fromJson(json))
  )

/** The JSON of the `--config` file ({} without one), read through the platform FileSystem. */
export const readConfigFile = (path: string | undefined) =>
  Effect.gen(function* () {
    if (path === undefined) return {}
    const fs = yield* FileSystem.FileSystem
    const missing = () => new ConfigFileError({ message: `config file not found: ${path}` })
    if (!(yield* fs.exists(path).pipe(Effect.mapError(missing)))) return yield* missing()
    const text = yield* fs
      .readFileString(path)
      .pipe(
        Effect.mapError(
          (error) => new ConfigFileError({ message: `config file ${path} cannot be read: ${error.message}` })
        )
      )
    return yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (error) =>
        new ConfigFileError({ message: `config file ${path} is not valid JSON: ${(error as Error).message}` })
    })
  }).pipe(Effect.provide(BunFileSystem.layer))

/** Installs env + `--config` file as the ConfigProvider for everything below it. */
export const ConfigFromArgs = (argv: ReadonlyArray<string> = process.argv) =>
  Layer.unwrapEffect(
    readConfigFile(configPathFromArgs(argv)).pipe(Effect.map((json) => Layer.setConfigProvider(providerFrom(json))))
  )
