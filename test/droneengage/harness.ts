import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessUnitRooms } from "../../src/droneengage/UnitRooms.ts"
import { AccountStore } from "../../layers/Storage/AccountStore.ts"
import { HardwareStore, MemoryHardwareStore } from "../../layers/Storage/HardwareStore.ts"
import { MemoryAccountStoreTest } from "../../layers/Storage/MemoryAccountStore.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { BunUdpLive } from "../../layers/Udp/BunUdp.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import { type AuthenticatorConfig, defaultTasksConfig, defaultUdpProxyConfig, type RelayConfig } from "../../src/droneengage/Config.ts"
import { Permission } from "../../src/storage/Account.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"
import { eventually } from "../support/effect.ts"
import { connectWs, type WsClient } from "../support/WsClient.ts"

export const secret = Redacted.make("test shared secret 0123456789")

export const authenticatorConfig = (overrides: Partial<AuthenticatorConfig> = {}): AuthenticatorConfig => ({
  port: 0,
  hostname: "127.0.0.1",
  serverId: "auth-test",
  tls: undefined,
  s2sTls: undefined,
  s2sPort: 0,
  s2sHostname: "127.0.0.1",
  s2sSecret: Option.some(secret),
  s2sTrustedKeys: new Map(),
  allowUnauthenticatedServers: false,
  s2sHandshakeTimeout: Duration.seconds(8),
  loginReplyTimeout: Duration.seconds(15),
  sessionTtl: Duration.hours(1),
  sessionSliding: true,
  loginRateLimit: 1000,
  loginRateWindow: Duration.minutes(1),
  s2sLimits: defaultSocketLimits,
  ...overrides
})

export const relayConfig = (authenticatorS2sPort: number, overrides: Partial<RelayConfig> = {}): RelayConfig => ({
  port: 0,
  hostname: "127.0.0.1",
  serverId: "relay-test",
  publicHost: "127.0.0.1",
  publicPort: 0,
  tls: undefined,
  authenticatorUrl: `ws://127.0.0.1:${authenticatorS2sPort}`,
  s2sSecret: Option.some(secret),
  s2sPrivateKeyPath: Option.none(),
  loginKeyTtl: Duration.seconds(10),
  redialMax: Duration.seconds(2),
  infoInterval: Duration.millis(250),
  limits: defaultSocketLimits,
  udpProxy: defaultUdpProxyConfig,
  tasks: defaultTasksConfig,
  ...overrides
})

/** Services every DroneEngage integration test needs: real Bun sockets, memory stores, metrics. */
export const TestServices = Layer.mergeAll(BunTransportLive, MemoryAccountStoreTest, MemoryHardwareStore).pipe(Layer.provideMerge(Metrics.Default))

export const relayLayer = Layer.mergeAll(InProcessUnitRooms("relay"), BunUdpLive, MemoryTaskStore)

export interface Stack {
  readonly authUrl: string
  readonly authenticator: Effect.Effect.Success<ReturnType<typeof startAuthenticator>>
  readonly relay: Effect.Effect.Success<ReturnType<typeof startRelay>>
}

/** Authenticator and relay on port 0, linked over the real S2S socket, with accounts seeded. */
export const startStack = (options: { auth?: Partial<AuthenticatorConfig>; relay?: Partial<RelayConfig> } = {}) =>
  Effect.gen(function* () {
    const authenticator = yield* startAuthenticator(authenticatorConfig(options.auth))
    const relay = yield* startRelay(relayConfig(authenticator.s2s.port, options.relay)).pipe(Effect.provide(relayLayer))
    yield* eventually(() => authenticator.commServers.status().some((s) => s.online), "relay linked and INFO received")
    return { authUrl: authenticator.http.url, authenticator, relay } satisfies Stack
  })

export const seedAccounts = Effect.gen(function* () {
  const accounts = yield* AccountStore
  const make = (name: string, permission: number, extra: { isAdmin?: boolean; instanceLimit?: number } = {}) =>
    accounts.create({ name, permission, accessCode: `${name}-code`, ...extra })
  yield* make("alpha", Permission.all)
  yield* make("beta", Permission.all)
  yield* make("gcs-only", Permission.gcs)
  yield* make("agent-only", Permission.agent)
  yield* make("admin", Permission.all, { isAdmin: true })
  yield* make("limited", Permission.all, { instanceLimit: 2 })
  const hardware = yield* HardwareStore
  const alpha = yield* accounts.findByName("alpha")
  if (Option.isSome(alpha)) yield* hardware.register({ accountId: alpha.value.id, hardwareId: "hw-1", hardwareType: "px4" })
})

export const post = (url: string, body: unknown, contentType = "application/json") =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": contentType },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    return { status: response.status, body: (await response.json()) as any }
  })

export const login = (stack: Stack, account: string, actor: "g" | "d", group = "1") =>
  post(`${stack.authUrl}${actor === "g" ? "/w/wl" : "/agent/al"}`, { acc: account, pwd: `${account}-code`, gr: group, app: "test", ver: "1", ex: "x" })

export interface Unit extends WsClient {
  readonly name: string
  readonly sid: string
}

/** Logs in over HTTP, connects with the returned key and unit name, and reads the welcome. */
export const connectUnit = (stack: Stack, account: string, actor: "g" | "d", name: string, group = "1") =>
  Effect.gen(function* () {
    const { body } = yield* login(stack, account, actor, group)
    if (body.e !== 0) return yield* Effect.dieMessage(`login failed: ${JSON.stringify(body)}`)
    const client = yield* connectWs(`ws://${body.cs.g}:${body.cs.h}/?f=${body.cs.f}&s=${encodeURIComponent(name)}`)
    const welcome = yield* client.nextJson()
    if (welcome.mt !== 9007) return yield* Effect.dieMessage(`expected welcome, got ${JSON.stringify(welcome)}`)
    return { ...client, name, sid: body.sid as string } satisfies Unit
  })

/** Attempts a WebSocket upgrade with fetch, to read a refusal's HTTP status and reason. */
export const upgradeAttempt = (port: number, query: string) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/?${query}`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" }
    })
    return { status: response.status, body: response.status === 101 ? undefined : ((await response.json()) as { error: string }) }
  })

/** The URL query a login reply tells a client to connect with. */
export const connectQuery = (reply: { cs: { f: string } }, unitName: string) => `f=${reply.cs.f}&s=${encodeURIComponent(unitName)}`
