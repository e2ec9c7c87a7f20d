import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { startHydrogen } from "../../src/hydrogen/Server.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { ExtraHandlers } from "../../src/hydrogen/Handlers.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { type HydrogenSettings, hydrogenSettings } from "../../src/hydrogen/Config.ts"
import { connectWs, type WsClient } from "../support/WsClient.ts"

export const adminKey = "admin-key-0123456789abcdef0123456789abcdef"
export const readerKey = "reader-key-0123456789abcdef0123456789abcdef"
export const apiOnlyKey = "api-key-0123456789abcdef0123456789abcdef"

const key = (name: string, secret: string, permissions: ReadonlyArray<string>) => ({
  name, key: Option.some(Redacted.make(secret)), hash: Option.none(), permissions
})

/** Settings for tests: loopback, port 0, three keys, generous rate limits, no status broadcasts. */
export const testSettings = (overrides: Partial<HydrogenSettings> = {}): HydrogenSettings =>
  hydrogenSettings({
    port: 0,
    interface: "127.0.0.1",
    apiKeys: [
      key("admin", adminKey, ["*"]),
      key("reader", readerKey, ["subscribe"]),
      key("backend", apiOnlyKey, ["api", "tokens", "publish"])
    ],
    connectionRatePerSecond: 1000,
    connectionBurst: 1000,
    messageRatePerSecond: 10_000,
    messageBurst: 10_000,
    statusInterval: Duration.zero,
    reliableChannels: ["orders", "reliable.*"],
    ...overrides
  })

/** Starts Hydrogen on a free port with a fresh Metrics registry and memory history (or the given store). */
export const startTestHydrogen = (
  overrides: Partial<HydrogenSettings> = {},
  store: Layer.Layer<StreamStore> = MemoryStreamStore,
  handlers: ExtraHandlers = {}
) =>
  Effect.gen(function* () {
    // Built in the test's scope, so resources such as a database pool live as long as the server.
    const context = yield* Layer.build(Layer.mergeAll(BunTransportLive, store).pipe(Layer.provideMerge(Metrics.Default)))
    return yield* Effect.gen(function* () {
      const metrics = yield* Metrics
      const server = yield* startHydrogen(testSettings(overrides), { handlers })
      return { server, metrics, wsUrl: `ws://127.0.0.1:${server.port}/`, httpUrl: `http://127.0.0.1:${server.port}` }
    }).pipe(Effect.provide(context))
  })

export type TestHydrogen = Effect.Effect.Success<ReturnType<typeof startTestHydrogen>>

/** A hydrogen-protocol client with the given key in the Authorization header. */
export const connectHydrogen = (hydrogen: TestHydrogen, secret: string | null = adminKey, path = "") =>
  connectWs(`${hydrogen.wsUrl}${path}`, {
    protocols: "hydrogen-protocol",
    ...(secret ? { headers: { authorization: `Key ${secret}` } } : {})
  })

let ids = 0
/** Sends a command and returns the response with the same id (events met on the way are returned too). */
export const command = (client: WsClient, channel: string, action: string, data?: unknown) =>
  Effect.gen(function* () {
    const id = `c${++ids}`
    yield* client.send(JSON.stringify({ type: "command", id, timestamp: new Date().toISOString(), channel, action, data }))
    const events: Array<any> = []
    while (true) {
      const message = yield* client.nextJson()
      if (message.type === "response" && message.id === id) return { response: message, events }
      events.push(message)
    }
  })

/** Like `command`, but fails the test unless the response is a success; returns its data. */
export const ok = (client: WsClient, channel: string, action: string, data?: unknown) =>
  Effect.flatMap(command(client, channel, action, data), ({ response }) =>
    response.error ? Effect.dieMessage(`${channel}/${action} failed: ${JSON.stringify(response.error)}`) : Effect.succeed(response.data))

/** POSTs JSON to the HTTP API with a key. */
export const post = (hydrogen: TestHydrogen, path: string, body: unknown, secret: string | null = apiOnlyKey) =>
  Effect.promise(async () => {
    const response = await fetch(`${hydrogen.httpUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(secret ? { authorization: `Key ${secret}` } : {}) },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
    return { status: response.status, body: (await response.json()) as any }
  })

/** Raw upgrade attempt (fetch with upgrade headers) to read a refusal's status and reason. */
export const tryUpgrade = (hydrogen: TestHydrogen, headers: Record<string, string> = {}, path = "") =>
  Effect.promise(async () => {
    const response = await fetch(`${hydrogen.httpUrl}/${path}`, {
      headers: {
        upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13",
        "sec-websocket-protocol": "hydrogen-protocol", ...headers
      }
    })
    const text = await response.text()
    return { status: response.status, body: text.length > 0 ? (JSON.parse(text) as any) : undefined, headers: response.headers }
  })
