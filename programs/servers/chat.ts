/**
 * tPacket chat server (seed 002): byte-compatible with the original's clients, port 25021.
 * Made of: the Bun transport, Rooms with nick Claims and id Counters from `cluster.*` (one process
 * by default, a node of a Redis or NATS cluster otherwise; docs/cluster.md), a StreamStore for
 * history (memory, or SQLite / MySQL when `chat.history.backend` says so; on a cluster it is the
 * broker's, Redis Streams or JetStream, unless MySQL is named) and the file system for the web page.
 */
import { BunFileSystem } from "@effect/platform-bun"
import { ConfigError, Effect, Layer } from "effect"
import { ClusterConfig } from "../../layers/Cluster/ClusterConfig.ts"
import { BunTransportFromConfig, ClusterRoomsFromConfig } from "../../layers/Cluster/ClusterFromConfig.ts"
import { ClusterStreamStore, StreamStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { ChatHistoryBackendConfig, chatHistoryStorage } from "../../src/chat/Config.ts"
import { ChatServerLive, chatServerLayer } from "../../src/chat/Server.ts"

/**
 * The server and its history store: on a cluster with the default (memory) backend, history lives in
 * the broker's StreamStore, shared by every node like Hydrogen's; MySQL is shared too; SQLite (per node) is
 * refused, since the history's seq orders every node's messages.
 */
const serverWithHistory = Layer.unwrapEffect(
  Effect.gen(function* () {
    const cluster = yield* ClusterConfig
    const backend = yield* ChatHistoryBackendConfig
    if (cluster.broker !== "memory" && backend === "memory")
      return chatServerLayer({ sharedHistory: true }).pipe(Layer.provide(ClusterStreamStore(cluster)))
    // Messages are numbered by the history and delivered in that order on every node: one sequence for the cluster.
    if (cluster.broker !== "memory" && backend === "sqlite")
      return yield* Effect.fail(
        ConfigError.InvalidData(
          ["chat", "history", "backend"],
          `with cluster.broker = ${cluster.broker} history must be shared: leave it unset (broker) or use mysql`
        )
      )
    return ChatServerLive.pipe(Layer.provide(StreamStoreFromConfig(chatHistoryStorage)))
  })
)

export const ChatLive = serverWithHistory.pipe(
  Layer.provide(Layer.mergeAll(BunTransportFromConfig, ClusterRoomsFromConfig, BunFileSystem.layer))
)
