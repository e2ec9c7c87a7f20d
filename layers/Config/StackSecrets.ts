import { join } from "node:path"
import { FileSystem } from "@effect/platform"
import { BunFileSystem } from "@effect/platform-bun"
import { Config, ConfigProvider, Effect, Layer, Option, Redacted, Schema } from "effect"

const DevAccount = Schema.parseJson(Schema.Struct({ name: Schema.String, accessCode: Schema.String }))
type DevAccount = typeof DevAccount.Type

const readIfExists = (fs: FileSystem.FileSystem, path: string) => fs.readFileString(path).pipe(Effect.option)

/** Writes a file only its owner can read: these files hold secrets (mode set again for a file that existed). */
const writePrivate = (fs: FileSystem.FileSystem, path: string, text: string) =>
  fs.writeFileString(path, text, { mode: 0o600 }).pipe(Effect.zipRight(fs.chmod(path, 0o600)), Effect.orDie)

/**
 * Secrets of the all-in-one stack (`npm start`), kept in its data directory (`stack.dataDir`,
 * ./data by default, mode 0700): the S2S secret its authenticator and relay share, generated on
 * first start, Hydrogen's dev API key, Aliya's service token, JWT secret and gateway key, and the
 * dev account's credentials so the banner can show them again.
 */
export class StackSecrets extends Effect.Service<StackSecrets>()("switchboard/StackSecrets", {
  dependencies: [BunFileSystem.layer],
  effect: Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const dataDir = yield* Config.string("dataDir").pipe(Config.withDefault("./data"), Config.nested("stack"))
    yield* fs.makeDirectory(dataDir, { recursive: true, mode: 0o700 }).pipe(Effect.orDie)
    /** A random 32-byte hex secret kept in `file`, generated on first start (or when the file holds another shape). */
    const persistentSecret = (file: string) =>
      Effect.gen(function* () {
        const path = join(dataDir, file)
        const existing = yield* readIfExists(fs, path)
        if (Option.isSome(existing) && /^[0-9a-f]{64}$/.test(existing.value.trim())) return existing.value.trim()
        const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex")
        yield* writePrivate(fs, path, secret)
        return secret
      })
    const s2sSecret = yield* persistentSecret("s2s-secret")
    const hydrogenKey = yield* persistentSecret("hydrogen-key")
    // Aliya: the service token between its parts, the JWT secret, the gateway's AES-256-GCM key.
    const aliya = {
      serviceToken: yield* persistentSecret("aliya-service-token"),
      tokens: { secret: yield* persistentSecret("aliya-jwt-secret") },
      gateway: { key: yield* persistentSecret("aliya-gateway-key") }
    }

    const devAccountFile = join(dataDir, "dev-account.json")
    const rememberDevAccount = (account: DevAccount) =>
      writePrivate(fs, devAccountFile, JSON.stringify(account)).pipe(Effect.as(Option.some(account)))
    const devAccount = readIfExists(fs, devAccountFile).pipe(
      Effect.flatMap(
        Option.match({
          onNone: () => Effect.succeed(Option.none<DevAccount>()),
          onSome: (text) => Schema.decode(DevAccount)(text).pipe(Effect.option)
        })
      )
    )
    return {
      s2sSecret: Redacted.make(s2sSecret),
      hydrogenKey: Redacted.make(hydrogenKey),
      aliya: Redacted.make(aliya),
      dataDir,
      devAccountFile,
      rememberDevAccount,
      devAccount
    } as const
  })
}) {
  /**
   * StackSecrets, plus a config fallback that gives the authenticator and relay the shared S2S
   * secret, Hydrogen its dev key and Aliya its secrets, unless env or the config file already set them.
   */
  static readonly WithConfigFallback = Layer.unwrapEffect(
    Effect.gen(function* () {
      const secrets = yield* StackSecrets
      const secret = Redacted.value(secrets.s2sSecret)
      const fallback = ConfigProvider.fromJson({
        authenticator: { s2sSecret: secret },
        relay: { s2sSecret: secret },
        hydrogen: { Key: Redacted.value(secrets.hydrogenKey) },
        aliya: Redacted.value(secrets.aliya)
      })
      return yield* Effect.configProviderWith((current) =>
        Effect.succeed(Layer.setConfigProvider(current.pipe(ConfigProvider.orElse(() => fallback))))
      )
    })
  ).pipe(Layer.provideMerge(StackSecrets.Default))
}
