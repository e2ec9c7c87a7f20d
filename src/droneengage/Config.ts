import { Config, Duration, HashMap, Option, Redacted } from "effect"
import { port, positiveInt, positiveMillis } from "../shared/ConfigValues.ts"
import { type SocketLimits, SocketLimitsConfig } from "../shared/SocketLimits.ts"

/** Typed configuration of the two DroneEngage programs; every key is documented in docs/droneengage.md. */

export interface Tls {
  readonly certPath: string
  readonly keyPath: string
}

/** TLS when both tlsCertPath and tlsKeyPath are set; plain otherwise (fine on loopback and for dev). */
const tls = Config.all({
  certPath: Config.option(Config.string("tlsCertPath")),
  keyPath: Config.option(Config.string("tlsKeyPath"))
}).pipe(
  Config.validate({
    message: "tlsCertPath and tlsKeyPath must be set together",
    validation: ({ certPath, keyPath }) => Option.isSome(certPath) === Option.isSome(keyPath)
  }),
  Config.map(({ certPath, keyPath }): Tls | undefined =>
    Option.isSome(certPath) && Option.isSome(keyPath) ? { certPath: certPath.value, keyPath: keyPath.value } : undefined
  )
)

const secret = Config.option(Config.redacted("s2sSecret")).pipe(
  Config.validate({
    message: "must be at least 16 characters",
    validation: (value) => Option.isNone(value) || Redacted.value(value.value).length >= 16
  })
)

export interface AuthenticatorConfig {
  readonly port: number
  readonly hostname: string
  readonly serverId: string
  readonly tls: Tls | undefined
  /** TLS of the S2S listener (keys s2s.tlsCertPath / s2s.tlsKeyPath); relays then dial wss://. */
  readonly s2sTls: Tls | undefined
  readonly s2sPort: number
  readonly s2sHostname: string
  readonly s2sSecret: Option.Option<Redacted.Redacted<string>>
  /** Relay server id → path of its Ed25519 public key (PEM), as in the newer originals. */
  readonly s2sTrustedKeys: ReadonlyMap<string, string>
  /** INSECURE compat switch: accept relays that do not answer the challenge. Off by default. */
  readonly allowUnauthenticatedServers: boolean
  readonly s2sHandshakeTimeout: Duration.Duration
  readonly loginReplyTimeout: Duration.Duration
  readonly sessionTtl: Duration.Duration
  readonly sessionSliding: boolean
  readonly loginRateLimit: number
  readonly loginRateWindow: Duration.Duration
  /** Failed credentials (wrong access code, bad management session) an address may have per window. */
  readonly loginFailureLimit: number
  readonly loginFailureWindow: Duration.Duration
  /** How long an address that failed more often is answered 429 (with Retry-After). */
  readonly loginFailureBlock: Duration.Duration
  readonly s2sLimits: SocketLimits
}

export const AuthenticatorConfig: Config.Config<AuthenticatorConfig> = Config.all({
  port: port("port", 19408),
  hostname: Config.string("hostname").pipe(Config.withDefault("0.0.0.0")),
  serverId: Config.string("serverId").pipe(Config.withDefault("auth-1")),
  tls,
  s2sTls: Config.nested(tls, "s2s"),
  s2sPort: port("s2sPort", 19001),
  s2sHostname: Config.string("s2sHostname").pipe(Config.withDefault("0.0.0.0")),
  s2sSecret: secret,
  s2sTrustedKeys: Config.hashMap(Config.string(), "s2sTrustedKeys").pipe(
    Config.withDefault(HashMap.empty<string, string>()),
    Config.map((keys) => new Map(HashMap.toEntries(keys)))
  ),
  allowUnauthenticatedServers: Config.boolean("allowUnauthenticatedServers").pipe(Config.withDefault(false)),
  s2sHandshakeTimeout: positiveMillis("s2sHandshakeTimeoutMs", 8_000),
  loginReplyTimeout: positiveMillis("loginReplyTimeoutMs", 15_000),
  sessionTtl: positiveMillis("sessionTtlMs", 3_600_000),
  sessionSliding: Config.boolean("sessionSliding").pipe(Config.withDefault(true)),
  loginRateLimit: positiveInt("loginRateLimit", 10),
  loginRateWindow: positiveMillis("loginRateWindowMs", 60_000),
  loginFailureLimit: positiveInt("loginFailureLimit", 10),
  loginFailureWindow: positiveMillis("loginFailureWindowMs", 600_000),
  loginFailureBlock: positiveMillis("loginFailureBlockMs", 300_000),
  s2sLimits: Config.nested(SocketLimitsConfig({ maxPayloadBytes: 4 * 1024 * 1024 }), "s2s")
}).pipe(
  Config.validate({
    message: "s2sSecret or s2sTrustedKeys is required unless allowUnauthenticatedServers is true (insecure)",
    validation: (config) =>
      Option.isSome(config.s2sSecret) || config.s2sTrustedKeys.size > 0 || config.allowUnauthenticatedServers
  }),
  Config.nested("authenticator")
)

export interface RelayConfig {
  readonly port: number
  readonly hostname: string
  readonly serverId: string
  /** Host clients are told to dial (cs.g); the bound port is used when publicPort is 0. */
  readonly publicHost: string
  readonly publicPort: number
  readonly tls: Tls | undefined
  readonly authenticatorUrl: string
  readonly s2sSecret: Option.Option<Redacted.Redacted<string>>
  /** Ed25519 private key (PEM) proving this relay's id; preferred over s2sSecret when set. */
  readonly s2sPrivateKeyPath: Option.Option<string>
  readonly loginKeyTtl: Duration.Duration
  readonly redialMax: Duration.Duration
  /** Shortest gap between two INFO frames to the authenticator (joins and leaves in between are coalesced). */
  readonly infoInterval: Duration.Duration
  readonly limits: SocketLimits
}

export const RelayConfig: Config.Config<RelayConfig> = Config.all({
  port: port("port", 9966),
  hostname: Config.string("hostname").pipe(Config.withDefault("0.0.0.0")),
  serverId: Config.string("serverId").pipe(Config.withDefault("relay-1")),
  publicHost: Config.string("publicHost").pipe(Config.withDefault("127.0.0.1")),
  publicPort: port("publicPort", 0),
  tls,
  authenticatorUrl: Config.string("authenticatorUrl").pipe(Config.withDefault("ws://127.0.0.1:19001")),
  s2sSecret: secret,
  s2sPrivateKeyPath: Config.option(Config.string("s2sPrivateKeyPath")),
  loginKeyTtl: positiveMillis("loginKeyTtlMs", 10_000),
  redialMax: positiveMillis("redialMaxMs", 2_000),
  infoInterval: positiveMillis("infoIntervalMs", 250),
  limits: SocketLimitsConfig()
}).pipe(Config.nested("relay"))
