/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, in-process Rooms (under DroneEngage's unit rooms), in-memory
 * Tokens for the single-use login keys, the Federation link to the authenticator over real
 * WebSockets, Bun's file system (the S2S key file), Bun UDP sockets (the 9008 proxy), the task
 * store of relay.tasks.storage (9001-9004) and the relay service (src/droneengage/Relay.ts).
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Effect, Layer } from "effect"
import { InProcessFederationLive } from "../../layers/Federation/InProcessFederation.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { MemoryTaskStore } from "../../layers/Storage/MemoryTaskStore.ts"
import { TaskStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { BunUdpLive } from "../../layers/Udp/BunUdp.ts"
import { RelayConfig, relayTaskStorage } from "../../src/droneengage/Config.ts"
import { RelayServer } from "../../src/droneengage/Relay.ts"
import { UnitRoomsLive } from "../../src/droneengage/UnitRooms.ts"

const RelayServices = Layer.mergeAll(
  BunTransportLive,
  UnitRoomsLive("relay").pipe(Layer.provide(InProcessRoomsLive)),
  MemoryTokensLive,
  InProcessFederationLive,
  BunFileSystem.layer
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

