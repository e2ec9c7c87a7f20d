import { FileSystem, type HttpApp, HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer, type Scope } from "effect"
import { fileURLToPath } from "node:url"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { metricsResponse } from "../../layers/Observability/MetricsRoute.ts"
import type { Rooms } from "../../layers/Rooms/Rooms.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { type ServeError, type ServerHandle, Transport } from "../../layers/Transport/Transport.ts"
import { ChatConfig, ChatHistoryBackendConfig, isPersistent } from "./Config.ts"
import { makeChatRooms } from "./Rooms.ts"
import { makeChatProtocol } from "./Socket.ts"

export interface ChatServerOptions {
  readonly config: ChatConfig
  /** True when the StreamStore outlives the process (rooms then keep history when empty). */
  readonly persistentHistory: boolean
  /** Plain HTTP on the same port (the web page, /metrics). */
  readonly http?: HttpApp.Default<never, Metrics | Scope.Scope>
  readonly name?: string
}

/** Serves the tPacket chat on one port for the lifetime of the Scope. */
export const serveChat = (
  options: ChatServerOptions
): Effect.Effect<ServerHandle, ServeError, Transport | Rooms | StreamStore | Metrics | Scope.Scope> =>
  Effect.gen(function* () {
    const name = options.name ?? "chat"
    const { config } = options
    const transport = yield* Transport
    const rooms = yield* makeChatRooms({ limits: config.limits, persistentHistory: options.persistentHistory, server: name })
    const websocket = yield* makeChatProtocol(rooms, config.limits, name)
    return yield* transport.serve({
      name,
      port: config.port,
      hostname: config.hostname,
      limits: config.socket,
      ...(options.http ? { http: options.http } : {}),
      websocket
    })
  })

const webFile = (name: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(fileURLToPath(new URL(`./web/${name}`, import.meta.url))))

/** GET / (the page), GET /chat.js (its module script), GET /metrics, GET /favicon.ico (none); 404 with a reason otherwise. */
export const chatHttpApp = Effect.gen(function* () {
  const page = yield* webFile("index.html")
  const script = yield* webFile("chat.js")
  return HttpRouter.empty.pipe(
    HttpRouter.get("/", HttpServerResponse.text(page, { contentType: "text/html; charset=utf-8" })),
    HttpRouter.get("/chat.js", HttpServerResponse.text(script, { contentType: "text/javascript; charset=utf-8" })),
    HttpRouter.get("/metrics", metricsResponse),
    // Browsers ask for it on every visit; "no icon" beats a 404 in their console.
    HttpRouter.get("/favicon.ico", HttpServerResponse.empty({ status: 204 })),
    Effect.catchTag("RouteNotFound", () => HttpServerResponse.unsafeJson({ error: "not found" }, { status: 404 }))
  )
})

/**
 * The chat server from configuration (`chat.*`): the protocol on the Transport, rooms on the
 * Rooms service, history in the StreamStore, the page and /metrics on the same port.
 */
export const ChatServerLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* ChatConfig
    const history = yield* ChatHistoryBackendConfig
    const http = yield* chatHttpApp
    yield* serveChat({ config, persistentHistory: isPersistent(history), http })
  })
)
