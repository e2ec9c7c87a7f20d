import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { InProcessFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"
import { MemoryHardwareStore } from "../../layers/Storage/HardwareStore.ts"
import { MemoryAccountStoreTest } from "../../layers/Storage/MemoryAccountStore.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { BunUdpLive } from "../../layers/Udp/BunUdp.ts"
import { startAuthenticator } from "../../src/droneengage/Authenticator.ts"
import { startRelay } from "../../src/droneengage/Relay.ts"
import type { AuthenticatorConfig, RelayConfig } from "../../src/droneengage/Config.ts"
import { connectWs, type WsClient } from "../support/WsClient.ts"
import * as Memory from "./harness.ts"

/**
 * The real-socket variant of harness.ts, for the few smoke tests that must cross the kernel
 * (TLS, the original's `ws` client): Bun sockets, real WebSocket S2S link, the real file system.
 */

export const authenticatorConfig = Memory.authenticatorConfig

export const relayConfig = (authenticatorS2sPort: number, overrides: Partial<RelayConfig> = {}): RelayConfig =>
  Memory.relayConfig(authenticatorS2sPort, { authenticatorUrl: `ws://127.0.0.1:${authenticatorS2sPort}`, ...overrides })

/** Real Bun sockets and S2S link, memory stores and tokens, metrics. */
export const TestServices = Layer.mergeAll(
  BunTransportLive,
  MemoryAccountStoreTest,
  MemoryHardwareStore,
  MemoryTokensLive,
  InProcessFederationLive,
  BunFileSystem.layer
).pipe(Layer.provideMerge(Metrics.Default))

export const relayLayer = Layer.mergeAll(
  UnitRoomsLive("relay").pipe(Layer.provide(InProcessRoomsLive)),
  BunUdpLive,
  MemoryTaskStore
)

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
    yield* authenticator.commServers.awaitStatus((status) => status.some((s) => s.online))
    return { authUrl: authenticator.http.url, authenticator, relay } satisfies Stack
  })

export const seedAccounts = Memory.seedAccounts

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
  post(`${stack.authUrl}${actor === "g" ? "/w/wl" : "/agent/al"}`, {
    acc: account,
    pwd: `${account}-code`,
    gr: group,
    app: "test",
    ver: "1",
    ex: "x"
  })

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
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13"
      }
    })
    return {
      status: response.status,
      body: response.status === 101 ? undefined : ((await response.json()) as { error: string })
    }
  })

/** The URL query a login reply tells a client to connect with. */
export const connectQuery = (reply: { cs: { f: string } }, unitName: string) =>
  `f=${reply.cs.f}&s=${encodeURIComponent(unitName)}`
