import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Config, ConfigProvider, Effect, Layer, Option } from "effect"

const readIfExists = (path: string) => Effect.tryPromise(() => readFile(path, "utf8")).pipe(Effect.option)

/**
 * Aliya's generated secrets for the all-in-one stack (`npm start`), kept in `stack.dataDir`
 * (./data) with mode 0600: the service token between its parts, the JWT secret and the
 * gateway's AES-256-GCM key (64 hex digits; clients need it). Env or the config file win.
 */
export const AliyaSecretsFallback = Layer.unwrapEffect(
  Effect.gen(function* () {
    const dataDir = yield* Config.string("dataDir").pipe(Config.withDefault("./data"), Config.nested("stack"))
    yield* Effect.tryPromise(() => mkdir(dataDir, { recursive: true, mode: 0o700 })).pipe(Effect.orDie)
    const secret = (file: string) =>
      Effect.gen(function* () {
        const path = join(dataDir, file)
        const existing = yield* readIfExists(path)
        if (Option.isSome(existing) && /^[0-9a-f]{64}$/.test(existing.value.trim())) return existing.value.trim()
        const value = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex")
        yield* Effect.tryPromise(async () => {
          await writeFile(path, value, { mode: 0o600 })
          await chmod(path, 0o600)
        }).pipe(Effect.orDie)
        return value
      })
    const fallback = ConfigProvider.fromJson({
      aliya: {
        serviceToken: yield* secret("aliya-service-token"),
        tokens: { secret: yield* secret("aliya-jwt-secret") },
        gateway: { key: yield* secret("aliya-gateway-key") }
      }
    })
    return yield* Effect.configProviderWith((current) =>
      Effect.succeed(Layer.setConfigProvider(current.pipe(ConfigProvider.orElse(() => fallback))))
    )
  })
)
