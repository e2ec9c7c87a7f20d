import { Config, Duration, Option, Redacted } from "effect"
import { defaultSocketLimits, type SocketLimits, SocketLimitsConfig } from "../shared/SocketLimits.ts"

/** One configured API key: the key itself (hashed at startup) or its SHA-256 hash. */
export interface ApiKeySetting {
  readonly name: string
  readonly key: Option.Option<Redacted.Redacted<string>>
  readonly hash: Option.Option<string>
  readonly permissions: ReadonlyArray<string>
}

/** Every Hydrogen setting; the first block are the seed's keys, documented in docs/hydrogen.md. */
export interface HydrogenSettings {
  readonly enabled: boolean
  readonly port: number
  readonly interface: string
  readonly enableIPv6: boolean
  readonly secureMode: "none" | "tls"
  readonly certificatePath: string | undefined
  readonly keyPath: string | undefined
  readonly authRequired: boolean
  readonly idleTimeout: Duration.Duration
  readonly maxConnections: number
  /** Accepted for compatibility; Bun serves every socket on one event loop, so it changes nothing. */
  readonly threadPoolSize: number | undefined

  readonly protocol: string
  /** The original's single key (all permissions), kept for old clients; prefer ApiKeys. */
  readonly legacyKey: Option.Option<Redacted.Redacted<string>>
  readonly apiKeys: ReadonlyArray<ApiKeySetting>
  /** HMAC secret of signed session tokens; random per process when not set. */
  readonly tokenSecret: Option.Option<Redacted.Redacted<string>>
  readonly maxMessageSize: number
  readonly connectionRatePerSecond: number
  readonly connectionBurst: number
  readonly messageRatePerSecond: number
  readonly messageBurst: number
  /** Rate-limit violations in a row before the connection closes with 4006 and its IP is blocked. */
  readonly rateLimitStrikes: number
  readonly blockDuration: Duration.Duration
  /** Failed credentials (wrong key or token, on /api/* or at upgrade) an address may spend at once, and regain per minute. */
  readonly failedCredentialsBurst: number
  readonly failedCredentialsPerMinute: number
  /** Channel names (or prefixes ending in "*") whose events are sequenced and kept in history. */
  readonly reliableChannels: ReadonlyArray<string>
  readonly historySize: number
  readonly historyBytes: number
  readonly recoveryWindow: Duration.Duration
  readonly ackRetryInterval: Duration.Duration
  readonly ackMaxAttempts: number
  /** How often the "system" channel carries a status event; zero disables. */
  readonly statusInterval: Duration.Duration
  readonly idempotencyWindow: Duration.Duration
  readonly limits: SocketLimits
}

export const defaultHydrogenSettings: HydrogenSettings = {
  enabled: true,
  port: 5001,
  interface: "0.0.0.0",
  enableIPv6: true,
  secureMode: "none",
  certificatePath: undefined,
  keyPath: undefined,
  authRequired: true,
  idleTimeout: Duration.seconds(300),
  maxConnections: 100,
  threadPoolSize: undefined,
  protocol: "hydrogen-protocol",
  legacyKey: Option.none(),
  apiKeys: [],
  tokenSecret: Option.none(),
  maxMessageSize: 64 * 1024,
  connectionRatePerSecond: 10,
  connectionBurst: 20,
  messageRatePerSecond: 100,
  messageBurst: 200,
  rateLimitStrikes: 5,
  blockDuration: Duration.seconds(60),
  failedCredentialsBurst: 10,
  failedCredentialsPerMinute: 10,
  reliableChannels: [],
  historySize: 1000,
  historyBytes: 1024 * 1024,
  recoveryWindow: Duration.seconds(120),
  ackRetryInterval: Duration.seconds(5),
  ackMaxAttempts: 5,
  statusInterval: Duration.seconds(10),
  idempotencyWindow: Duration.seconds(300),
  limits: {
    ...defaultSocketLimits,
    maxPayloadBytes: 1024 * 1024,
    idleTimeout: Duration.seconds(300),
    maxConnections: 100
  }
}

/** Settings for tests and embedding: defaults with some keys replaced; limits follow IdleTimeout/MaxConnections. */
export const hydrogenSettings = (overrides: Partial<HydrogenSettings> = {}): HydrogenSettings => {
  const merged = { ...defaultHydrogenSettings, ...overrides }
  return {
    ...merged,
    limits: { ...merged.limits, idleTimeout: merged.idleTimeout, maxConnections: merged.maxConnections }
  }
}

const d = defaultHydrogenSettings
const positive = (name: string, fallback: number) =>
  Config.number(name).pipe(
    Config.validate({ message: "must be greater than zero", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )
const nonNegative = (name: string, fallback: number) =>
  Config.number(name).pipe(
    Config.validate({ message: "must be zero or more", validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )
const seconds = (name: string, fallback: Duration.Duration) =>
  nonNegative(name, Duration.toSeconds(fallback)).pipe(Config.map(Duration.seconds))
const millis = (name: string, fallback: Duration.Duration) =>
  positive(name, Duration.toMillis(fallback)).pipe(Config.map(Duration.millis))

const ApiKeyConfig = Config.all({
  name: Config.string("Name"),
  key: Config.option(Config.redacted("Key")),
  hash: Config.option(
    Config.string("Hash").pipe(
      Config.validate({
        message: "must be sha256:<64 hex digits>",
        validation: (h) => /^sha256:[0-9a-f]{64}$/i.test(h)
      })
    )
  ),
  permissions: Config.array(Config.string(), "Permissions").pipe(Config.withDefault<ReadonlyArray<string>>([]))
}).pipe(
  Config.validate({
    message: "each API key needs exactly one of Key or Hash",
    validation: (k) => Option.isSome(k.key) !== Option.isSome(k.hash)
  })
)

/** Reads Hydrogen's settings from the `hydrogen` section (env: HYDROGEN_PORT, HYDROGEN_AUTH_REQUIRED, ...). */
export const HydrogenConfig: Config.Config<HydrogenSettings> = Config.nested(
  Config.all({
    enabled: Config.boolean("Enabled").pipe(Config.withDefault(d.enabled)),
    // 0 picks a free port (the listening line in the log names it).
    port: Config.integer("Port").pipe(
      Config.validate({ message: "must be a port number 0..65535", validation: (n) => n >= 0 && n <= 65535 }),
      Config.withDefault(d.port)
    ),
    interface: Config.string("Interface").pipe(Config.withDefault(d.interface)),
    enableIPv6: Config.boolean("EnableIPv6").pipe(Config.withDefault(d.enableIPv6)),
    secureMode: Config.literal("none", "tls")("SecureMode").pipe(Config.withDefault(d.secureMode)),
    certificatePath: Config.string("CertificatePath").pipe(Config.option, Config.map(Option.getOrUndefined)),
    keyPath: Config.string("KeyPath").pipe(Config.option, Config.map(Option.getOrUndefined)),
    authRequired: Config.boolean("AuthRequired").pipe(Config.withDefault(d.authRequired)),
    idleTimeout: seconds("IdleTimeout", d.idleTimeout),
    maxConnections: nonNegative("MaxConnections", d.maxConnections),
    threadPoolSize: Config.integer("ThreadPoolSize").pipe(Config.option, Config.map(Option.getOrUndefined)),
    protocol: Config.string("Protocol").pipe(Config.withDefault(d.protocol)),
    legacyKey: Config.option(Config.redacted("Key")),
    apiKeys: Config.array(ApiKeyConfig, "ApiKeys").pipe(Config.withDefault<ReadonlyArray<ApiKeySetting>>([])),
    tokenSecret: Config.option(Config.redacted("TokenSecret")),
    maxMessageSize: positive("MaxMessageSize", d.maxMessageSize),
    connectionRatePerSecond: positive("ConnectionRatePerSecond", d.connectionRatePerSecond),
    connectionBurst: positive("ConnectionBurst", d.connectionBurst),
    messageRatePerSecond: positive("MessageRatePerSecond", d.messageRatePerSecond),
    messageBurst: positive("MessageBurst", d.messageBurst),
    rateLimitStrikes: positive("RateLimitStrikes", d.rateLimitStrikes),
    blockDuration: seconds("BlockSeconds", d.blockDuration),
    failedCredentialsBurst: positive("FailedCredentialsBurst", d.failedCredentialsBurst),
    failedCredentialsPerMinute: positive("FailedCredentialsPerMinute", d.failedCredentialsPerMinute),
    reliableChannels: Config.array(Config.string(), "ReliableChannels").pipe(
      Config.withDefault<ReadonlyArray<string>>([])
    ),
    historySize: positive("HistorySize", d.historySize),
    historyBytes: positive("HistoryBytes", d.historyBytes),
    recoveryWindow: seconds("RecoveryWindow", d.recoveryWindow),
    ackRetryInterval: millis("AckRetryMs", d.ackRetryInterval),
    ackMaxAttempts: positive("AckMaxAttempts", d.ackMaxAttempts),
    statusInterval: seconds("StatusInterval", d.statusInterval),
    idempotencyWindow: seconds("IdempotencyWindow", d.idempotencyWindow),
    limits: SocketLimitsConfig({ maxPayloadBytes: d.limits.maxPayloadBytes })
  }).pipe(
    Config.validate({
      message: 'SecureMode "tls" needs CertificatePath and KeyPath',
      validation: (s) => s.secureMode === "none" || (s.certificatePath !== undefined && s.keyPath !== undefined)
    }),
    Config.validate({
      message: "maxPayloadBytes must be at least MaxMessageSize",
      validation: (s) => s.limits.maxPayloadBytes >= s.maxMessageSize
    }),
    Config.map((s) => hydrogenSettings(s))
  ),
  "hydrogen"
)

/** Whether a channel is configured as reliable (exact name, or a prefix ending in "*"). */
export const isReliable = (settings: HydrogenSettings, channel: string): boolean =>
  settings.reliableChannels.some((pattern) =>
    pattern.endsWith("*") ? channel.startsWith(pattern.slice(0, -1)) : pattern === channel
  )

/** The address to bind: "::" (dual stack) when EnableIPv6 and Interface is the IPv4 wildcard. */
export const bindAddress = (settings: HydrogenSettings): string =>
  settings.enableIPv6 && (settings.interface === "0.0.0.0" || settings.interface === "") ? "::" : settings.interface
