/**
 * tPacket chat server (seed 002): byte-compatible with the original's clients, port 25021.
 * Made of: the Bun transport, in-process rooms, a StreamStore for history (memory, or SQLite /
 * MySQL when `chat.history.backend` says so) and the file system for the web page.
 */
import { BunFileSystem } from "@effect/platform-bun"
import { Layer } from "effect"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { StreamStoreFromConfig } from "../../layers/Storage/StorageFromConfig.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { chatHistoryStorage } from "../../src/chat/Config.ts"
import { ChatServerLive } from "../../src/chat/Server.ts"

export const ChatLive = ChatServerLive.pipe(
  Layer.provide(
    Layer.mergeAll(BunTransportLive, InProcessRoomsLive, StreamStoreFromConfig(chatHistoryStorage), BunFileSystem.layer)
  )
)
