/**
 * DroneEngage relay (the original's communication server, seed 000): client WebSocket on 9966.
 * Made of: the Bun transport, in-process unit rooms on native topics and the relay service
 * (src/droneengage/Relay.ts: login keys, the client protocol and the link to the authenticator).
 */
import { Effect, Layer } from "effect"
import { runProgram } from "../layers/Program/runProgram.ts"
import { BunTransportLive } from "../layers/Transport/BunTransport.ts"
import { MemoryTaskStore } from "../layers/Storage/MemoryTaskStore.ts"
import { TaskStoreFromConfig } from "../layers/Storage/StorageFromConfig.ts"
import { BunUdpLive } from "../layers/Udp/BunUdp.ts"
import { RelayConfig, relayTaskStorage } from "../src/droneengage/Config.ts"
import { startRelay } from "../src/droneengage/Relay.ts"
import { InProcessUnitRooms } from "../src/droneengage/UnitRooms.ts"

/** The relay from an explicit config (the stack uses it to share one S2S secret with its authenticator). */
export const RelayFrom = (config: RelayConfig) =>
  Layer.scopedDiscard(startRelay(config)).pipe(
    Layer.provide(
      Layer.mergeAll(
        BunTransportLive,
        InProcessUnitRooms("relay"),
        BunUdpLive,
        config.tasks.enabled ? TaskStoreFromConfig(relayTaskStorage) : MemoryTaskStore
      )
    )
  )

export const RelayLive = Layer.unwrapEffect(Effect.map(RelayConfig, RelayFrom))

if (import.meta.main) runProgram(RelayLive)
