import type { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { SqliteDatabase } from "../../layers/Storage/SqlDatabase.ts"
import { BunTcpTransportLive, MemoryTcpNetwork, MemoryTcpTest } from "../../layers/Transport/TcpTransport.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { MemoryTransportTest } from "../../layers/Transport/MemoryTransport.ts"
import type { StorageError } from "../../src/storage/Account.ts"
import { aesGcmCipher, type BodyCipher, desCompatCipher } from "../../src/aliya/Cipher.ts"
import { ClientError, makeClient, tcpPipe } from "../../src/aliya/Client.ts"
import type { CipherSettings, GatewaySettings } from "../../src/aliya/Config.ts"
import { InternalHttpLive, InternalHttpMemory } from "../../src/aliya/InternalHttp.ts"
import type { SigningKey } from "../../src/aliya/Jwt.ts"
import { ColocatedServices, type LocalService, type ServiceName } from "../../src/aliya/ServiceCalls.ts"
import { startGateway, startManagers, startTokenServer } from "../../src/aliya/Services.ts"

export const serviceToken = Redacted.make("test-service-token-0123456789abcdef0123")
export const jwtSecret = Redacted.make("test-jwt-secret-0123456789abcdef0123456789")
export const aesKey = new Uint8Array(32).map((_, i) => i + 1)
export const desKey = new TextEncoder().encode("67891234")
/** Cheap argon2 for tests (the default is 19 MiB / 2 passes). */
export const testPasswordCost = { memoryCost: 1024, timeCost: 1 }

export type CipherKind = "aes-256-gcm" | "des-compat"

export const cipherFor = (kind: CipherKind): BodyCipher =>
  kind === "aes-256-gcm" ? aesGcmCipher(aesKey) : desCompatCipher(desKey, desKey)
const cipherSettings = (kind: CipherKind): CipherSettings =>
  kind === "aes-256-gcm"
    ? { kind, key: Redacted.make(aesKey) }
    : { kind, key: Redacted.make(desKey), iv: Redacted.make(desKey) }

export interface StackOptions {
  readonly cipher?: CipherKind
  readonly signing?: SigningKey
  readonly lifetimeSeconds?: number
  readonly legacyLoginUnique?: boolean
  readonly dangerousFunctions?: boolean
  readonly gateway?: Partial<GatewaySettings>
  /** Real sockets (Bun transports, fetch) instead of the memory networks. */
  readonly real?: boolean
  /** How the gateway asks the other parts: over internal HTTP (default) or in-process (co-located). */
  readonly calls?: StackCalls
  /** Where the token server's HTTP calls to the AccountManager go (default: the AccountManager's port). */
  readonly accountManagerUrl?: string
}

export type StackCalls = "http" | "in-process"

/** The in-memory network layers plus a database (a private SQLite in memory unless given). */
export const aliyaTestLayer = (database: Layer.Layer<SqlClient.SqlClient, StorageError> = SqliteDatabase(":memory:")) =>
  Layer.mergeAll(MemoryTcpTest, InternalHttpMemory, database).pipe(Layer.provideMerge(MemoryTransportTest))

/** Starts managers, token server and gateway on the memory networks; returns a client factory and the ports. */
export const startStack = (options: StackOptions = {}) => {
  // In-process: every part registers in one registry, as the parts of one program do.
  const colocated = options.calls === "in-process" ? Option.some(new Map<ServiceName, LocalService>()) : Option.none()
  return Effect.gen(function* () {
    const cipher = options.cipher ?? "aes-256-gcm"
    const ports = yield* startManagers({
      host: "127.0.0.1",
      ports: { account: 0, playerState: 0, bag: 0, skill: 0, weapon: 0 },
      serviceToken,
      legacyLoginUnique: options.legacyLoginUnique ?? false,
      argon2MemoryKiB: testPasswordCost.memoryCost,
      argon2TimeCost: testPasswordCost.timeCost
    })
    const memory = (port: number) => (options.real ? `http://127.0.0.1:${port}` : `http://memory:${port}`)
    const tokensPort = yield* startTokenServer({
      port: 0,
      host: "127.0.0.1",
      signing: options.signing ?? { algorithm: "HS256", secret: jwtSecret },
      lifetime: Duration.seconds(options.lifetimeSeconds ?? 360),
      accountManagerUrl: options.accountManagerUrl ?? memory(ports.account),
      serviceToken
    })
    const gatewayPort = yield* startGateway({
      port: 0,
      host: "127.0.0.1",
      cipher: cipherSettings(cipher),
      limits: { maxConnections: 0, idleTimeout: Duration.seconds(60), maxBufferedBytes: 256 * 1024 },
      tokenServerUrl: memory(tokensPort),
      managerUrls: {
        account: memory(ports.account),
        playerState: memory(ports.playerState),
        bag: memory(ports.bag),
        skill: memory(ports.skill),
        weapon: memory(ports.weapon)
      },
      serviceToken,
      dangerousFunctions: options.dangerousFunctions ?? true,
      loginRate: { ratePerSecond: 5, burst: 20 },
      tokenCacheMs: 1000,
      calls: options.calls === "in-process" ? "auto" : "http",
      ...options.gateway
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)) // the des-compat warning is expected here
    if (options.real) {
      const connect = Effect.map(tcpPipe("127.0.0.1", gatewayPort), (pipe) => makeClient(pipe, cipherFor(cipher)))
      return { connect, gatewayPort, tokensPort, managerPorts: ports, cipher: cipherFor(cipher) }
    }
    const network = Option.getOrThrow(yield* Effect.serviceOption(MemoryTcpNetwork))
    const connect = network.connect(gatewayPort).pipe(
      Effect.mapError(() => new ClientError({ message: "connection refused" })),
      Effect.map((tcp) => makeClient({ write: tcp.write, read: tcp.read, close: tcp.close }, cipherFor(cipher)))
    )
    return { connect, gatewayPort, tokensPort, managerPorts: ports, cipher: cipherFor(cipher) }
  }).pipe(
    Option.match(colocated, {
      onNone: () => (effect) => effect,
      onSome: (registry) => Effect.provideService(ColocatedServices, registry)
    })
  )
}

/** login_unique for a fresh device, returning its token. */
export const newPlayer = (
  client: { call: (fn: string, data?: Record<string, unknown>) => Effect.Effect<any, any> },
  uniqueId: string
) =>
  Effect.map(client.call("login_unique", { unique_id: uniqueId }), (r) => {
    if (r.status !== 1) throw new Error(`login_unique: ${JSON.stringify(r)}`)
    return r.data.token as string
  })

/** Real sockets: Bun TCP and HTTP servers, fetch between the parts. */
export const aliyaRealLayer = (database: Layer.Layer<SqlClient.SqlClient, StorageError> = SqliteDatabase(":memory:")) =>
  Layer.mergeAll(BunTcpTransportLive, InternalHttpLive, BunTransportLive.pipe(Layer.provide(Metrics.Default)), database)
