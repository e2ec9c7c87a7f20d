/**
 * Hydrogen WebSocket server (seed 004): the seed document's server on one port (5001), with the
 * original's legacy status message, guaranteed delivery and session recovery (src/hydrogen/).
 * This program only composes, from `cluster.*` (docs/cluster.md, "Hydrogen across nodes"):
 * - one process (`cluster.broker = memory`, the default): Bun sockets, in-process rooms, memory
 *   tokens (resume tokens) and the history store named by hydrogen.storage;
 * - a node of a Redis or NATS cluster: the same sockets (with `cluster.reusePort`) and in-process
 *   rooms for local fan-out, resume tokens and history shared in the broker (or MySQL), and the
 *   cluster's bus, over which events and sessions cross between nodes.
 */
import { ConfigError, Effect, Layer } from "effect"
import { ClusterConfig, type ClusterSettings } from "../../layers/Cluster/ClusterConfig.ts"
import {
  BunTransportFromConfig,
  brokerSharedLimits,
  clusterBroker,
  sharedTokens
} from "../../layers/Cluster/ClusterFromConfig.ts"
import { BrokerFederationLive } from "../../layers/Federation/BrokerFederation.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { ClusterStreamStore, StreamStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { BackendConfig, type StorageSettings, underPath } from "../../src/storage/StorageConfig.ts"
import { HydrogenClusterOnFederation } from "../../src/hydrogen/Cluster.ts"
import { HydrogenServer } from "../../src/hydrogen/Server.ts"

const historySettings: StorageSettings = { name: "hydrogen", path: ["hydrogen", "storage"], defaultBackend: "memory" }

/** History of reliable channels: memory unless hydrogen.storage says sqlite or mysql. */
export const HydrogenHistory = StreamStoreFromConfig(historySettings)

/**
 * History every node shares: in the broker (Redis Streams or JetStream) unless hydrogen.storage
 * names MySQL; a per-node store (sqlite) would give each node its own sequence, so it is refused.
 */
const clusterHistory = (cluster: ClusterSettings) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const backend = yield* underPath(historySettings)(BackendConfig(historySettings))
      if (backend === "mysql") return HydrogenHistory
      if (backend === "memory") return ClusterStreamStore(cluster)
      return yield* Effect.fail(
        ConfigError.InvalidData(
          ["hydrogen", "storage", "backend"],
          `with cluster.broker = ${cluster.broker} history must be shared: leave it unset (broker) or use mysql`
        )
      )
    })
  )

const oneProcess = Layer.mergeAll(BunTransportFromConfig, InProcessRoomsLive, MemoryTokensLive, HydrogenHistory)

// Rooms stay per node: events cross through the Hydrogen bus, which orders reliable channels by seq on each node.
const clusterNode = (cluster: ClusterSettings) =>
  Layer.mergeAll(
    BunTransportFromConfig,
    InProcessRoomsLive,
    sharedTokens(cluster),
    clusterHistory(cluster),
    // Connection and failed-credential limits per address hold across nodes.
    brokerSharedLimits,
    HydrogenClusterOnFederation.pipe(Layer.provide(BrokerFederationLive))
  ).pipe(Layer.provide(clusterBroker(cluster)))

export const HydrogenLive = HydrogenServer.pipe(
  Layer.provide(
    Layer.unwrapEffect(
      Effect.map(ClusterConfig, (cluster) => (cluster.broker === "memory" ? oneProcess : clusterNode(cluster)))
    )
  )
)
