import { FileSystem, HttpRouter, HttpServerResponse } from "@effect/platform"
import { Clock, Deferred, Effect, Layer, type Scope } from "effect"
import { fileURLToPath } from "node:url"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import type { Rooms } from "../../layers/Rooms/Rooms.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { type ServeError, type ServerHandle, Transport } from "../../layers/Transport/Transport.ts"
import { ChatConfig, ChatHistoryBackendConfig, type ChatLimits, isPersistent } from "./Config.ts"
import { type ChatIdentity, makeChatIdentity } from "./Identity.ts"
import { type ChatRoomsApi, makeChatRooms } from "./Rooms.ts"
import { makeChatProtocol } from "./Socket.ts"

/** The browser page: its HTML and its module script. */
export interface WebPage {
  readonly html: string
  readonly script: string
}

export interface ChatServerOptions {
  readonly config: ChatConfig
  /** True when the StreamStore outlives the process (rooms then keep history when empty). */
  readonly persistentHistory: boolean
  /** The page served at GET / and GET /chat.js (none when absent). */
  readonly page?: WebPage
  readonly name?: string
}

const webFile = (name: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    fs.readFileString(fileURLToPath(new URL(`./web/${name}`, import.meta.url)))
  )

/**
 * Reads src/chat/web/ once, at start. The page's byte limits ({{maxNickBytes}} ...) are filled in
 * from the server's own limits, so the page refuses what the server would, with a reason.
 */
export const loadWebPage = (limits: ChatLimits) =>
  Effect.all({ html: webFile("index.html"), script: webFile("chat.js") }).pipe(
    Effect.map(({ html, script }) => ({
      html: html
        .replaceAll("{{maxNickBytes}}", String(limits.maxNickBytes))
        .replaceAll("{{maxRoomNameBytes}}", String(limits.maxRoomNameBytes))
        .replaceAll("{{maxMessageBytes}}", String(limits.maxMessageBytes)),
      script
    }))
  )

/**
 * HTTP on the chat port: GET /health, GET /metrics, the page (GET /, GET /chat.js) when given,
 * GET /favicon.ico (none); 404 with a reason otherwise.
 */
const chatRoutes = (
  name: string,
  rooms: ChatRoomsApi,
  identity: ChatIdentity,
  listening: Deferred.Deferred<ServerHandle>,
  startedAt: number,
  page?: WebPage
) => {
  const health = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const handle = yield* Deferred.await(listening)
    return HttpServerResponse.unsafeJson({
      status: "OK",
      server: name,
      uptime: Math.floor((now - startedAt) / 1000),
      connections: handle.connectionCount(),
      ...rooms.stats(),
      users: identity.users()
    })
  })
  const base = HttpRouter.empty.pipe(
    HttpRouter.get("/health", health),
    HttpRouter.get("/metrics", metricsResponse),
    // Browsers ask for it on every visit; "no icon" beats a 404 in their console.
    HttpRouter.get("/favicon.ico", HttpServerResponse.empty({ status: 204 }))
  )
  const withPage = page
    ? base.pipe(
        HttpRouter.get("/", HttpServerResponse.text(page.html, { contentType: "text/html; charset=utf-8" })),
        HttpRouter.get(
          "/chat.js",
          HttpServerResponse.text(page.script, { contentType: "text/javascript; charset=utf-8" })
        )
      )
    : base
  return withPage.pipe(
    Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
  )
}

/** Serves the tPacket chat (WebSocket and HTTP) on one port for the lifetime of the Scope. */
export const serveChat = (
  options: ChatServerOptions
): Effect.Effect<ServerHandle, ServeError, Transport | Rooms | StreamStore | Metrics | Scope.Scope> =>
  Effect.gen(function* () {
    const name = options.name ?? "chat"
    const { config } = options
    const transport = yield* Transport
    const startedAt = yield* Clock.currentTimeMillis
    const rooms = yield* makeChatRooms({
      limits: config.limits,
      persistentHistory: options.persistentHistory,
      server: name
    })
    const identity = yield* makeChatIdentity(name)
    const websocket = yield* makeChatProtocol(rooms, identity, config.limits, name)
    // /health reports the open connections, which only the running server knows.
    const listening = yield* Deferred.make<ServerHandle>()
    const handle = yield* transport.serve({
      name,
      port: config.port,
      hostname: config.hostname,
      limits: config.socket,
      http: chatRoutes(name, rooms, identity, listening, startedAt, options.page),
      websocket
    })
    yield* Deferred.succeed(listening, handle)
    return handle
  })

/**
 * The chat server from configuration (`chat.*`): the protocol on the Transport, rooms on the
 * Rooms service, history in the StreamStore, the page, /health and /metrics on the same port.
 * `sharedHistory`: the StreamStore is a cluster's (in the broker), which outlives every node, so
 * a room emptied on one node keeps its history for the others.
 */
export const chatServerLayer = (options: { readonly sharedHistory: boolean }) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const config = yield* ChatConfig
      const history = yield* ChatHistoryBackendConfig
      const page = yield* loadWebPage(config.limits)
      yield* serveChat({ config, persistentHistory: options.sharedHistory || isPersistent(history), page })
    })
  )

export const ChatServerLive = chatServerLayer({ sharedHistory: false })
