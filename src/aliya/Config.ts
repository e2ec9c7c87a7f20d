import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"
import { nonNegativeInt, port, positiveInt } from "../shared/ConfigValues.ts"
import { QueryTimeoutConfig, underPath } from "../storage/StorageConfig.ts"
import { aesGcmCipher, type BodyCipher, desCompatCipher } from "./Cipher.ts"
import type { ManagerName } from "./Functions.ts"
import type { SigningKey } from "./Jwt.ts"
import type { CallsMode } from "./ServiceCalls.ts"
import type { TcpLimits } from "../../layers/Transport/TcpTransport.ts"

/** Where each part listens by default (the original's ports; the AccountManager is new). */
export const DefaultPorts = {
  gateway: 8880,
  tokens: 8080,
  playerState: 8081,
  bag: 8082,
  weapon: 8083,
  skill: 8084,
  account: 8087
} as const

export type CipherSettings =
  | { readonly kind: "aes-256-gcm"; readonly key: Redacted.Redacted<Uint8Array> }
  | {
      readonly kind: "des-compat"
      readonly key: Redacted.Redacted<Uint8Array>
      readonly iv: Redacted.Redacted<Uint8Array>
    }

export const makeCipher = (settings: CipherSettings): BodyCipher =>
  settings.kind === "aes-256-gcm"
    ? aesGcmCipher(Redacted.value(settings.key))
    : desCompatCipher(Redacted.value(settings.key), Redacted.value(settings.iv))

export interface GatewaySettings {
  readonly port: number
  readonly host: string
  readonly cipher: CipherSettings
  readonly limits: TcpLimits
  readonly tokenServerUrl: string
  readonly managerUrls: Record<ManagerName, string>
  readonly serviceToken: Redacted.Redacted<string>
  /** The seed's DANGEROUS functions (free resources); off → they answer status 10. */
  readonly dangerousFunctions: boolean
  /** login / login_unique / bind_account per client address. */
  readonly loginRate: { readonly ratePerSecond: number; readonly burst: number }
  /** A token the token server accepted is trusted this long without asking again (0 = ask every time). */
  readonly tokenCacheMs: number
  /** "auto": parts running in this process are called in-process, the others over HTTP; "http": always HTTP. */
  readonly calls: CallsMode
}

export interface TokenServerSettings {
  readonly port: number
  readonly host: string
  readonly signing: SigningKey
  readonly lifetime: Duration.Duration
  readonly accountManagerUrl: string
  readonly serviceToken: Redacted.Redacted<string>
}

export interface ManagerSettings {
  readonly host: string
  readonly ports: Record<ManagerName, number>
  readonly serviceToken: Redacted.Redacted<string>
  readonly legacyLoginUnique: boolean
  readonly argon2MemoryKiB: number
  readonly argon2TimeCost: number
}

/** A 32-byte key given as 64 hex digits or base64. */
const parseKey = (text: string, bytes: number): Uint8Array | undefined => {
  const t = text.trim()
  const raw = /^[0-9a-fA-F]+$/.test(t) && t.length === bytes * 2 ? Buffer.from(t, "hex") : Buffer.from(t, "base64")
  return raw.byteLength === bytes ? new Uint8Array(raw) : undefined
}

const parseDes = (t: string) => (Buffer.byteLength(t) === 8 ? new Uint8Array(Buffer.from(t)) : undefined)

/** A required (for this choice) secret key, parsed; errors name the key. */
const needKey = (
  value: Option.Option<Redacted.Redacted<string>>,
  name: string,
  parse: (text: string) => Uint8Array | undefined,
  what: string
): Either.Either<Redacted.Redacted<Uint8Array>, ConfigError.ConfigError> => {
  if (Option.isNone(value)) return Either.left(ConfigError.MissingData([name], `${name} is required (${what})`))
  const bytes = parse(Redacted.value(value.value))
  return bytes
    ? Either.right(Redacted.make(bytes))
    : Either.left(ConfigError.InvalidData([name], `${name} must be ${what}`))
}

const CipherConfig: Config.Config<CipherSettings> = Config.all({
  kind: Config.literal("aes-256-gcm", "des-compat")("cipher").pipe(Config.withDefault("aes-256-gcm" as const)),
  key: Config.option(Config.redacted("key")),
  desKey: Config.option(Config.redacted("desKey")),
  desIv: Config.option(Config.redacted("desIv"))
}).pipe(
  Config.mapOrFail(
    ({ kind, key, desKey, desIv }): Either.Either<CipherSettings, ConfigError.ConfigError> =>
      kind === "aes-256-gcm"
        ? Either.map(
            needKey(key, "key", (t) => parseKey(t, 32), "32 bytes as 64 hex digits or base64"),
            (k) => ({ kind, key: k })
          )
        : Either.flatMap(needKey(desKey, "desKey", parseDes, "8 characters"), (k) =>
            Either.map(needKey(desIv, "desIv", parseDes, "8 characters"), (iv) => ({ kind, key: k, iv }))
          )
  )
)

const url = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.validate({
      message: "must be an http(s) URL",
      validation: (u) => /^https?:\/\/[^/]+$/.test(u.replace(/\/$/, ""))
    }),
    Config.map((u) => u.replace(/\/$/, "")),
    Config.withDefault(fallback)
  )
const local = (p: number) => `http://127.0.0.1:${p}`

export const ServiceTokenConfig = Config.redacted("serviceToken").pipe(
  Config.validate({ message: "must be at least 32 characters", validation: (t) => Redacted.value(t).length >= 32 })
)

/** aliya.gateway.* plus aliya.serviceToken. */
export const GatewayConfig: Config.Config<GatewaySettings> = Config.all({
  serviceToken: ServiceTokenConfig,
  gateway: Config.all({
    port: port("port", DefaultPorts.gateway),
    host: Config.string("host").pipe(Config.withDefault("::")),
    cipher: CipherConfig,
    limits: Config.all({
      maxConnections: nonNegativeInt("maxConnections", 10_000),
      idleTimeout: nonNegativeInt("idleTimeoutMs", 60_000).pipe(Config.map(Duration.millis)),
      maxBufferedBytes: positiveInt("maxBufferedBytes", 256 * 1024)
    }),
    tokenServerUrl: url("tokenServerUrl", local(DefaultPorts.tokens)),
    managerUrls: Config.all({
      account: url("account", local(DefaultPorts.account)),
      playerState: url("playerState", local(DefaultPorts.playerState)),
      bag: url("bag", local(DefaultPorts.bag)),
      skill: url("skill", local(DefaultPorts.skill)),
      weapon: url("weapon", local(DefaultPorts.weapon))
    }).pipe(Config.nested("managers")),
    dangerousFunctions: Config.boolean("dangerousFunctions").pipe(Config.withDefault(true)),
    loginRate: Config.all({
      ratePerSecond: positiveInt("loginRatePerSecond", 5),
      burst: positiveInt("loginBurst", 20)
    }),
    tokenCacheMs: nonNegativeInt("tokenCacheMs", 1000),
    calls: Config.literal("auto", "http")("calls").pipe(Config.withDefault("auto" as const))
  }).pipe(Config.nested("gateway"))
}).pipe(
  Config.map(({ serviceToken, gateway }) => ({ ...gateway, serviceToken })),
  Config.nested("aliya")
)

const SigningConfig: Config.Config<SigningKey> = Config.all({
  algorithm: Config.literal("HS256", "EdDSA")("algorithm").pipe(Config.withDefault("HS256" as const)),
  secret: Config.option(Config.redacted("secret")),
  privateKey: Config.option(Config.redacted("privateKey"))
}).pipe(
  Config.mapOrFail(({ algorithm, secret, privateKey }): Either.Either<SigningKey, ConfigError.ConfigError> => {
    if (algorithm === "HS256") {
      if (Option.isNone(secret)) return Either.left(ConfigError.MissingData(["secret"], "secret is required for HS256"))
      const s = Redacted.value(secret.value)
      return Buffer.byteLength(s) >= 32 && s !== "password"
        ? Either.right({ algorithm, secret: secret.value })
        : Either.left(ConfigError.InvalidData(["secret"], "secret must be at least 32 bytes"))
    }
    if (Option.isNone(privateKey))
      return Either.left(ConfigError.MissingData(["privateKey"], "privateKey is required for EdDSA"))
    return Redacted.value(privateKey.value).includes("PRIVATE KEY")
      ? Either.right({ algorithm, privateKeyPem: privateKey.value })
      : Either.left(ConfigError.InvalidData(["privateKey"], "privateKey must be a PKCS#8 PEM Ed25519 private key"))
  })
)

/** aliya.tokens.* plus aliya.serviceToken. */
export const TokenServerConfig: Config.Config<TokenServerSettings> = Config.all({
  serviceToken: ServiceTokenConfig,
  tokens: Config.all({
    port: port("port", DefaultPorts.tokens),
    host: Config.string("host").pipe(Config.withDefault("127.0.0.1")),
    signing: SigningConfig,
    lifetime: positiveInt("lifetimeSeconds", 360).pipe(Config.map(Duration.seconds)),
    accountManagerUrl: url("accountManagerUrl", local(DefaultPorts.account))
  }).pipe(Config.nested("tokens"))
}).pipe(
  Config.map(({ serviceToken, tokens }) => ({ ...tokens, serviceToken })),
  Config.nested("aliya")
)

/** aliya.managers.* plus aliya.serviceToken. */
export const ManagerConfig: Config.Config<ManagerSettings> = Config.all({
  serviceToken: ServiceTokenConfig,
  managers: Config.all({
    host: Config.string("host").pipe(Config.withDefault("127.0.0.1")),
    ports: Config.all({
      account: port("accountPort", DefaultPorts.account),
      playerState: port("playerStatePort", DefaultPorts.playerState),
      bag: port("bagPort", DefaultPorts.bag),
      skill: port("skillPort", DefaultPorts.skill),
      weapon: port("weaponPort", DefaultPorts.weapon)
    }),
    legacyLoginUnique: Config.boolean("legacyLoginUnique").pipe(Config.withDefault(false)),
    argon2MemoryKiB: positiveInt("argon2MemoryKiB", 19456),
    argon2TimeCost: positiveInt("argon2TimeCost", 2)
  }).pipe(Config.nested("managers"))
}).pipe(
  Config.map(({ serviceToken, managers }) => ({ ...managers, serviceToken })),
  Config.nested("aliya")
)

/** aliya.storage: where the tables live (SQLite file by default, or MySQL/MariaDB). */
export const AliyaStorage = { name: "aliya", path: ["aliya", "storage"], defaultBackend: "sqlite" } as const

/**
 * aliya.storage.queryTimeoutMs: how long one manager or token-server request may wait for the
 * database (default 5 s, below the gateway's 10 s internal timeout, so the part answers 13 first).
 */
export const AliyaQueryTimeoutConfig = underPath(AliyaStorage)(QueryTimeoutConfig)
