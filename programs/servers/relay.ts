/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, Rooms (under DroneEngage's unit rooms), Tokens for the single-use
 * login keys and the Federation link to the authenticator over real WebSockets, all three from
 * `cluster.*` (one process by default; docs/cluster.md), Bun's file system (the S2S key file),
 * Bun UDP sockets (the 9008 proxy), the task store of relay.tasks.storage (9001-9004) and the
 * relay service (src/droneengage/Relay.ts).
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { BunTransportFromConfig, ClusterFromConfig } from "../../layers/Cluster/ClusterFromConfig.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { TaskStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { BunUdpLive } from "../../layers/Udp/BunUdp.ts"
import { RelayConfig, relayTaskStorage } from "../../src/droneengage/Config.ts"
import { RelayServer } from "../../src/droneengage/Relay.ts"
import { UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"

// Rooms, login-key Tokens and Federation from `cluster.*`: one process by default, a node of a Redis or NATS cluster otherwise.
const RelayServices = Layer.mergeAll(BunTransportFromConfig, UnitRoomsLive("relay"), BunFileSystem.layer).pipe(
  Layer.provideMerge(ClusterFromConfig)
)

/** The relay from an explicit config (the stack uses it to share one S2S secret with its authenticator). */
export const RelayFrom = (config: RelayConfig) =>
  RelayServer(config).pipe(
    Layer.provide(RelayServices),
    Layer.provide(
      Layer.merge(BunUdpLive, config.tasks.enabled ? TaskStoreFromConfig(relayTaskStorage) : MemoryTaskStore)
    )
  )

export const RelayLive = Layer.unwrapEffect(Effect.map(RelayConfig, RelayFrom))
