import type { UdpProxyOptions } from "./UdpProxy.ts"
import { Config, ConfigProvider, Duration, Effect, HashMap, Option, Redacted } from "effect"
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
  /** Limits of the HTTP API listener; its bodies are small JSON or form logins (64 KiB by default). */
  readonly apiLimits: SocketLimits
}

export const AuthenticatorConfig: Config.Config<AuthenticatorConfig> = Config.all({
  port: port("port", 19408),
  hostname: Config.string("hostname").pipe(Config.withDefault("::")),
  serverId: Config.string("serverId").pipe(Config.withDefault("auth-1")),
  tls,
  s2sTls: Config.nested(tls, "s2s"),
  s2sPort: port("s2sPort", 19001),
  s2sHostname: Config.string("s2sHostname").pipe(Config.withDefault("::")),
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
  s2sLimits: Config.nested(SocketLimitsConfig({ maxPayloadBytes: 4 * 1024 * 1024 }), "s2s"),
  apiLimits: Config.nested(SocketLimitsConfig({ maxRequestBodyBytes: 64 * 1024 }), "api")
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
  readonly udpProxy: UdpProxyConfig
  readonly tasks: TasksConfig
}

/** The UDP proxy of system message 9008 (keys relay.udpProxy.*; docs/droneengage.md). */
export interface UdpProxyConfig extends Omit<UdpProxyOptions, "serverName" | "publicHost"> {
  readonly enabled: boolean
  /** Address units are told when the sockets bind every interface; unset: relay.publicHost. */
  readonly publicHost: Option.Option<string>
}

export const UdpProxyConfig: Config.Config<UdpProxyConfig> = Config.all({
  enabled: Config.boolean("enabled").pipe(Config.withDefault(true)),
  hostname: Config.string("hostname").pipe(Config.withDefault("0.0.0.0")),
  publicHost: Config.option(Config.string("publicHost")),
  portMin: port("portMin", 0),
  portMax: port("portMax", 0),
  allowFixedPorts: Config.boolean("allowFixedPorts").pipe(Config.withDefault(false)),
  idleTimeout: positiveMillis("idleTimeoutMs", 300_000),
  stickyGrace: positiveMillis("stickyGraceMs", 120_000),
  reapInterval: positiveMillis("reapIntervalMs", 10_000),
  maxPairs: positiveInt("maxPairs", 1000),
  maxPairsPerAccount: positiveInt("maxPairsPerAccount", 20),
  packetsPerSecond: positiveInt("packetsPerSecond", 5000),
  bytesPerSecond: positiveInt("bytesPerSecond", 8 * 1024 * 1024),
  peerLock: Config.boolean("peerLock").pipe(Config.withDefault(false))
}).pipe(
  Config.validate({
    message: "portMin and portMax must both be 0 (system-chosen ports) or a range 1..65535 with portMin <= portMax",
    validation: ({ portMin, portMax }) => (portMin === 0 && portMax === 0) || (portMin > 0 && portMin <= portMax)
  }),
  Config.map(
    ({ portMin, portMax, ...rest }): UdpProxyConfig => ({
      ...rest,
      ports: portMin === 0 ? undefined : { min: portMin, max: portMax }
    })
  ),
  Config.nested("udpProxy")
)

/** Stored tasks, system messages 9001-9004 (keys relay.tasks.*; the store: relay.tasks.storage.*). */
export interface TasksConfig {
  readonly enabled: boolean
  readonly maxBodyBytes: number
  readonly maxTasksPerAccount: number
  readonly maxLoadBytes: number
}

export const TasksConfig: Config.Config<TasksConfig> = Config.all({
  enabled: Config.boolean("enabled").pipe(Config.withDefault(true)),
  maxBodyBytes: positiveInt("maxBodyBytes", 64 * 1024),
  maxTasksPerAccount: positiveInt("maxPerAccount", 1000),
  maxLoadBytes: positiveInt("maxLoadBytes", 512 * 1024)
}).pipe(Config.nested("tasks"))

const atDefaults = <A>(config: Config.Config<A>): A =>
  Effect.runSync(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map())))

/** Every key at its default, for code that builds a RelayConfig by hand (tests, embedders). */
export const defaultUdpProxyConfig: UdpProxyConfig = atDefaults(UdpProxyConfig)
export const defaultTasksConfig: TasksConfig = atDefaults(TasksConfig)

/** Where the relay keeps tasks: relay.tasks.storage.backend memory | sqlite (default) | mysql. */
export const relayTaskStorage = {
  name: "relay-tasks",
  path: ["relay", "tasks", "storage"],
  defaultBackend: "sqlite"
} as const

export const RelayConfig: Config.Config<RelayConfig> = Config.all({
  port: port("port", 9966),
  hostname: Config.string("hostname").pipe(Config.withDefault("::")),
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
  limits: SocketLimitsConfig(),
  udpProxy: UdpProxyConfig,
  tasks: TasksConfig
}).pipe(Config.nested("relay"))
