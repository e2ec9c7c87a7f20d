import { Duration, Effect, Layer, Option, Queue, Redacted, type Scope } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { Tokens } from "../../layers/Tokens/Tokens.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { type MemoryClient, MemoryNetwork, MemoryTransportTest } from "../../layers/Transport/MemoryTransport.ts"
import { type HydrogenSettings, hydrogenSettings } from "../../src/hydrogen/Config.ts"
import type { ExtraHandlers } from "../../src/hydrogen/Handlers.ts"
import { startHydrogen } from "../../src/hydrogen/Server.ts"
import { connectWs, type WsClient } from "../support/WsClient.ts"

export const adminKey = "admin-key-0123456789abcdef0123456789abcdef"
export const readerKey = "reader-key-0123456789abcdef0123456789abcdef"
export const apiOnlyKey = "api-key-0123456789abcdef0123456789abcdef"

const key = (name: string, secret: string, permissions: ReadonlyArray<string>) => ({
  name,
  key: Option.some(Redacted.make(secret)),
  hash: Option.none(),
  permissions
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

/**
 * Hydrogen on the test doubles: MemoryTransportTest (a MemoryNetwork, no sockets, and Metrics), in-process
 * Rooms, memory Tokens (or the given), memory history (or the given store) and a fresh Metrics registry. Built in the test's
 * scope, so resources such as a database pool live as long as the server.
 */
export const startTestHydrogen = (
  overrides: Partial<HydrogenSettings> = {},
  store: Layer.Layer<StreamStore> = MemoryStreamStore,
  handlers: ExtraHandlers = {},
  tokens: Layer.Layer<Tokens> = MemoryTokensLive
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Layer.mergeAll(InProcessRoomsLive, tokens, store).pipe(Layer.provideMerge(MemoryTransportTest))
    )
    return yield* Effect.gen(function* () {
      const server = yield* startHydrogen(testSettings(overrides), { handlers })
      return {
        server,
        port: server.port,
        metrics: yield* Metrics,
        network: yield* MemoryNetwork,
        rooms: yield* Rooms,
        tokens: yield* Tokens
      }
    }).pipe(Effect.provide(context))
  })

export type TestHydrogen = Effect.Effect.Success<ReturnType<typeof startTestHydrogen>>

/** What the protocol helpers need of a client: the memory client and the real-socket one both fit. */
export type Client = Pick<MemoryClient, "send" | "nextJson">

/** A hydrogen-protocol client on the memory network, with the given key in the Authorization header. */
export const connectHydrogen = (hydrogen: TestHydrogen, secret: string | null = adminKey, path = "") =>
  hydrogen.network.connect(hydrogen.port, `/${path}`, {
    "sec-websocket-protocol": "hydrogen-protocol",
    ...(secret ? { authorization: `Key ${secret}` } : {})
  })

/**
 * Closes a client and waits until the server has let its connection go: the channel rooms report
 * that `session` left (so the client must hold an unfiltered subscription).
 */
export const disconnect = (hydrogen: TestHydrogen, client: MemoryClient, session: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const changes = yield* hydrogen.rooms.changes
      yield* client.close()
      while (true) {
        const change = yield* Queue.take(changes)
        if (change._tag === "Left" && change.member.id === session) return
      }
    })
  )

let ids = 0
/** Sends a command and returns the response with the same id (events met on the way are returned too). */
export const command = (client: Client, channel: string, action: string, data?: unknown) =>
  Effect.gen(function* () {
    const id = `c${++ids}`
    yield* client.send(JSON.stringify({ type: "command", id, channel, action, data }))
    const events: Array<any> = []
    while (true) {
      const message = yield* client.nextJson()
      if (message.type === "response" && message.id === id) return { response: message, events }
      events.push(message)
    }
  })

/** Like `command`, but fails the test unless the response is a success; returns its data. */
export const ok = (client: Client, channel: string, action: string, data?: unknown) =>
  Effect.flatMap(command(client, channel, action, data), ({ response }) =>
    response.error
      ? Effect.dieMessage(`${channel}/${action} failed: ${JSON.stringify(response.error)}`)
      : Effect.succeed(response.data)
  )

/** An HTTP request to the server on the memory network, from `remote`; the body read as JSON (or text). */
export const request = (hydrogen: TestHydrogen, path: string, init: RequestInit = {}, remote = "127.0.0.1") =>
  Effect.gen(function* () {
    const response = yield* hydrogen.network.fetch(
      hydrogen.port,
      new Request(`http://memory:${hydrogen.port}${path}`, init),
      remote
    )
    const text = yield* Effect.promise(() => response.text())
    let body: any = text
    try {
      body = JSON.parse(text)
    } catch {}
    return { status: response.status, body, headers: response.headers }
  })

/** POSTs JSON to the HTTP API with a key. */
export const post = (
  hydrogen: TestHydrogen,
  path: string,
  body: unknown,
  secret: string | null = apiOnlyKey,
  remote?: string
) =>
  request(
    hydrogen,
    path,
    {
      method: "POST",
      headers: { "content-type": "application/json", ...(secret ? { authorization: `Key ${secret}` } : {}) },
      body: typeof body === "string" ? body : JSON.stringify(body)
    },
    remote
  )

/** Raw upgrade attempt to read a refusal's status, reason and headers. */
export const tryUpgrade = (hydrogen: TestHydrogen, headers: Record<string, string> = {}, path = "", remote?: string) =>
  request(
    hydrogen,
    `/${path}`,
    { headers: { upgrade: "websocket", "sec-websocket-protocol": "hydrogen-protocol", ...headers } },
    remote
  )

/** A metric's value from the registry (0 when the series is absent). */
export const metric = (hydrogen: TestHydrogen, series: string) =>
  Effect.map(hydrogen.metrics.render, (text) =>
    Number(
      text
        .split("\n")
        .find((l) => l.startsWith(series + " "))
        ?.slice(series.length + 1) ?? 0
    )
  )

/** Hydrogen on real Bun sockets, for the few smoke tests that must cross the kernel. */
export const startSocketHydrogen = (overrides: Partial<HydrogenSettings> = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Layer.mergeAll(BunTransportLive, InProcessRoomsLive, MemoryTokensLive, MemoryStreamStore).pipe(
        Layer.provideMerge(Metrics.Default)
      )
    )
    return yield* Effect.gen(function* () {
      const server = yield* startHydrogen(testSettings(overrides))
      return {
        server,
        metrics: yield* Metrics,
        wsUrl: `ws://127.0.0.1:${server.port}/`,
        httpUrl: `http://127.0.0.1:${server.port}`
      }
    }).pipe(Effect.provide(context))
  })

/** A real WebSocket hydrogen-protocol client with the given key in the Authorization header. */
export const connectSocket = (
  url: string,
  secret: string | null = adminKey
): Effect.Effect<WsClient, unknown, Scope.Scope> =>
  connectWs(url, { protocols: "hydrogen-protocol", ...(secret ? { headers: { authorization: `Key ${secret}` } } : {}) })
