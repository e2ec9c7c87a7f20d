/**
 * tPacket chat server (seed 002): byte-compatible with the original's clients, port 25021.
 * Made of: the Bun transport, Rooms with nick Claims and id Counters from `cluster.*` (one process
 * by default, a node of a Redis or NATS cluster otherwise; docs/cluster.md), a StreamStore for
 * history (memory, or SQLite / MySQL when `chat.history.backend` says so; a cluster shares MySQL)
 * and the file system for the web page.
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { ClusterConfig } from "../../layers/Cluster/ClusterConfig.ts"
import { BunTransportFromConfig, ClusterRoomsFromConfig } from "../../layers/Cluster/ClusterFromConfig.ts"
import { StreamStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { ChatHistoryBackendConfig, chatHistoryStorage } from "../../src/chat/Config.ts"
import { ChatServerLive } from "../../src/chat/Server.ts"

/** A cluster whose nodes keep history each in their own store shows each joiner only its node's lines: say so. */
const SharedHistoryCheck = Layer.effectDiscard(
  Effect.gen(function* () {
    const cluster = yield* ClusterConfig
    const history = yield* ChatHistoryBackendConfig
    if (cluster.broker !== "memory" && history !== "mysql")
      yield* Effect.logWarning(
        `chat.history.backend is ${history} on a ${cluster.broker} cluster: each node keeps its own history; ` +
          "use mysql so every node shows the same"
      )
  })
)

export const ChatLive = Layer.merge(ChatServerLive, SharedHistoryCheck).pipe(
  Layer.provide(
    Layer.mergeAll(
      BunTransportFromConfig,
      ClusterRoomsFromConfig,
      StreamStoreFromConfig(chatHistoryStorage),
      BunFileSystem.layer
    )
  )
)
