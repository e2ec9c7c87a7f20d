import { Config, Duration } from "effect"
import { port, positiveInt, positiveMillis } from "../shared/ConfigValues.ts"
import type { StorageSettings } from "../storage/StorageConfig.ts"
import { SocketLimitsConfig, type SocketLimits } from "../shared/SocketLimits.ts"

/** What one client may send and how much the server holds. Byte counts are of the raw data. */
export interface ChatLimits {
  readonly maxNickBytes: number
  readonly maxRoomNameBytes: number
  readonly maxMessageBytes: number
  /** Rooms open at once (a room exists while it has members). */
  readonly maxRooms: number
  readonly maxMembersPerRoom: number
  /** History kept per room: the newest "nick: text" entries whose sizes add up to at most this. */
  readonly historyMaxBytes: number
  /** Time from WebSocket open to an accepted nick before the server closes with 4005. */
  readonly handshakeTimeout: Duration.Duration
  /** Time from an accepted nick to a joined room before the server closes with 4005 (a nick is not held for free). */
  readonly joinTimeout: Duration.Duration
  /** Packets one connection may send per second, on average (any command counts)... */
  readonly messagesPerSecond: number
  /** ...and at once after a quiet spell. Over the budget a packet is refused (_RESP_ERROR, reason 8). */
  readonly messageBurst: number
  /** Refusals in a row for rate that close the connection with 4006. */
  readonly rateLimitStrikes: number
}

/**
 * Defaults keep "nick: text" under 256 bytes, the fixed buffer size of the original client
 * (which would overflow on longer lines); raise them when only other clients are used.
 */
export const defaultChatLimits: ChatLimits = {
  maxNickBytes: 32,
  maxRoomNameBytes: 64,
  maxMessageBytes: 220,
  maxRooms: 1000,
  maxMembersPerRoom: 256,
  historyMaxBytes: 8192,
  handshakeTimeout: Duration.seconds(10),
  joinTimeout: Duration.seconds(30),
  messagesPerSecond: 10,
  messageBurst: 20,
  rateLimitStrikes: 50
}

/** Transport defaults for chat: 256 connections like the original, an hour of silence at most. */
export const chatSocketDefaults: Partial<SocketLimits> = {
  maxConnections: 256,
  maxPayloadBytes: 64 * 1024,
  idleTimeout: Duration.hours(1)
}

export interface ChatConfig {
  readonly port: number
  readonly hostname: string
  readonly limits: ChatLimits
  readonly socket: SocketLimits
}

export const ChatLimitsConfig: Config.Config<ChatLimits> = Config.all({
  maxNickBytes: positiveInt("maxNickBytes", defaultChatLimits.maxNickBytes),
  maxRoomNameBytes: positiveInt("maxRoomNameBytes", defaultChatLimits.maxRoomNameBytes),
  maxMessageBytes: positiveInt("maxMessageBytes", defaultChatLimits.maxMessageBytes),
  maxRooms: positiveInt("maxRooms", defaultChatLimits.maxRooms),
  maxMembersPerRoom: positiveInt("maxMembersPerRoom", defaultChatLimits.maxMembersPerRoom),
  historyMaxBytes: positiveInt("historyMaxBytes", defaultChatLimits.historyMaxBytes),
  handshakeTimeout: positiveMillis("handshakeTimeoutMs", defaultChatLimits.handshakeTimeout),
  joinTimeout: positiveMillis("joinTimeoutMs", defaultChatLimits.joinTimeout),
  messagesPerSecond: positiveInt("messagesPerSecond", defaultChatLimits.messagesPerSecond),
  messageBurst: positiveInt("messageBurst", defaultChatLimits.messageBurst),
  rateLimitStrikes: positiveInt("rateLimitStrikes", defaultChatLimits.rateLimitStrikes)
})

/** Everything under the `chat` prefix: CHAT_PORT, CHAT_MAX_NICK_BYTES, CHAT_PING_INTERVAL_MS, ... */
export const ChatConfig: Config.Config<ChatConfig> = Config.all({
  port: port("port", 25021),
  hostname: Config.string("hostname").pipe(Config.withDefault("::")),
  limits: ChatLimitsConfig,
  socket: SocketLimitsConfig(chatSocketDefaults)
}).pipe(Config.nested("chat"))

/**
 * Where room history lives: keys under `chat.history` (backend memory | sqlite | mysql, then
 * `sqlite.filename` or `mysql.*`), read by the Storage layer's StreamStoreFromConfig.
 */
export const chatHistoryStorage: StorageSettings = {
  name: "chat-history",
  path: ["chat", "history"],
  defaultBackend: "memory"
}

export const historyBackends = ["memory", "sqlite", "mysql"] as const
export type HistoryBackend = (typeof historyBackends)[number]

export const ChatHistoryBackendConfig: Config.Config<HistoryBackend> = Config.literal(...historyBackends)(
  "backend"
).pipe(Config.withDefault("memory" as const), Config.nested("history"), Config.nested("chat"))

/** SQL backends outlive the process, so rooms keep their history when they empty. */
export const isPersistent = (backend: HistoryBackend) => backend !== "memory"
