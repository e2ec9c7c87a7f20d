/**
 * tPacket chat server (seed 002): byte-compatible with the original's clients, port 25021.
 * Made of: the Bun transport, the chat rooms over a StreamStore (history in memory, or SQLite /
 * MySQL when `chat.history.backend` says so), and an HTTP side
 * with the browser page (GET /, GET /chat.js) and /metrics.
 */
import { HttpRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import { metricsResponse } from "../layers/Observability/MetricsRoute.ts"
import { runProgram } from "../layers/Program/runProgram.ts"
import { serveChat } from "../layers/Rooms/ChatRoomsServer.ts"
import { StreamStoreFromConfig } from "../layers/Storage/StorageFromConfig.ts"
import { BunTransportLive } from "../layers/Transport/BunTransport.ts"
import { ChatConfig, ChatHistoryBackendConfig, chatHistoryStorage, isPersistent } from "../src/tpacket/ChatConfig.ts"

const webFile = (name: string) => Effect.promise(() => Bun.file(new URL(`./chat-web/${name}`, import.meta.url)).text())

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

export const ChatLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* ChatConfig
    const history = yield* ChatHistoryBackendConfig
    const http = yield* chatHttpApp
    yield* serveChat({ config, persistentHistory: isPersistent(history), http })
  })
).pipe(Layer.provide(Layer.merge(BunTransportLive, StreamStoreFromConfig(chatHistoryStorage))))

if (import.meta.main) runProgram(ChatLive)
