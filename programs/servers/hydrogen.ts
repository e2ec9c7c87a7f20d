/**
 * Hydrogen WebSocket server (seed 004): the seed document's server on one port (5001), with the
 * original's legacy status message, guaranteed delivery and session recovery (src/hydrogen/).
 * This program only composes: the Hydrogen layer over Bun sockets, in-process rooms, memory
 * tokens (resume tokens) and the history store named by hydrogen.storage.
 */
import { Layer } from "effect"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { StreamStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { MemoryTokensLive } from "../../layers/Tokens/MemoryTokens.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { HydrogenServer } from "../../src/hydrogen/Server.ts"

/** History of reliable channels: memory unless hydrogen.storage says sqlite or mysql. */
export const HydrogenHistory = StreamStoreFromConfig({
  name: "hydrogen",
  path: ["hydrogen", "storage"],
  defaultBackend: "memory"
})

export const HydrogenLive = HydrogenServer.pipe(
  Layer.provide(Layer.mergeAll(BunTransportLive, InProcessRoomsLive, MemoryTokensLive, HydrogenHistory))
)
