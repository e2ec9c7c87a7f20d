import type { HttpApp } from "@effect/platform"
import { Deferred, Effect, type Scope } from "effect"
import type { ChatConfig } from "../../src/tpacket/ChatConfig.ts"
import type { Metrics } from "../Observability/Metrics.ts"
import type { StreamStore } from "../Storage/StreamStore.ts"
import { type ServeError, type ServerHandle, Transport } from "../Transport/Transport.ts"
import { makeChatRooms } from "./ChatRooms.ts"
import { makeChatProtocol } from "./ChatRoomsProtocol.ts"

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
): Effect.Effect<ServerHandle, ServeError, Transport | StreamStore | Metrics | Scope.Scope> =>
  Effect.gen(function* () {
    const name = options.name ?? "chat"
    const { config } = options
    const transport = yield* Transport
    const rooms = yield* makeChatRooms({ limits: config.limits, persistentHistory: options.persistentHistory, server: name })
    const listening = yield* Deferred.make<ServerHandle>()
    const websocket = yield* makeChatProtocol(rooms, config.limits, listening, name)
    const handle = yield* transport.serve({
      name,
      port: config.port,
      hostname: config.hostname,
      limits: config.socket,
      ...(options.http ? { http: options.http } : {}),
      websocket
    })
    yield* Deferred.succeed(listening, handle)
    return handle
  })
