import { describe, expect, test } from "bun:test"
import { ConfigProvider, Duration, Effect, Either } from "effect"
import { ChatConfig, ChatHistoryBackendConfig, isPersistent } from "../../src/chat/Config.ts"
import { providerFrom } from "../../layers/Config/ConfigFile.ts"

const read = <A>(config: Effect.Effect<A, unknown>, env: Record<string, string>, json: unknown = {}) =>
  Effect.runSync(
    Effect.either(
      Effect.withConfigProvider(
        config,
        providerFrom(json, ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
      )
    )
  )

describe("chat config", () => {
  test("defaults: port 25021, the original's 256 connections, 8 KiB history, memory history", () => {
    const config = Either.getOrThrow(read(ChatConfig, {}))
    expect(config.port).toBe(25021)
    expect(config.socket.maxConnections).toBe(256)
    expect(config.limits.historyMaxBytes).toBe(8192)
    expect(Duration.toMillis(config.limits.handshakeTimeout)).toBe(10_000)
    expect(Either.getOrThrow(read(ChatHistoryBackendConfig, {}))).toBe("memory")
  })

  test("env over file: CHAT_* keys, nested chat.history.backend", () => {
    const config = Either.getOrThrow(
      read(ChatConfig, { CHAT_MAX_NICK_BYTES: "5" }, { chat: { maxNickBytes: 9, port: 0, pingIntervalMs: 1000 } })
    )
    expect(config.limits.maxNickBytes).toBe(5)
    expect(config.port).toBe(0)
    expect(Duration.toMillis(config.socket.pingInterval)).toBe(1000)
    const backend = Either.getOrThrow(read(ChatHistoryBackendConfig, { CHAT_HISTORY_BACKEND: "sqlite" }))
    expect([backend, isPersistent(backend)]).toEqual(["sqlite", true])
  })

  test("rate limit and join timeout: defaults, and set from env or file", () => {
    const defaults = Either.getOrThrow(read(ChatConfig, {})).limits
    expect([defaults.messagesPerSecond, defaults.messageBurst, defaults.rateLimitStrikes]).toEqual([10, 20, 50])
    expect(Duration.toMillis(defaults.joinTimeout)).toBe(30_000)
    const set = Either.getOrThrow(
      read(
        ChatConfig,
        { CHAT_MESSAGES_PER_SECOND: "3", CHAT_JOIN_TIMEOUT_MS: "2000" },
        { chat: { messageBurst: 7, rateLimitStrikes: 4 } }
      )
    ).limits
    expect([set.messagesPerSecond, set.messageBurst, set.rateLimitStrikes, Duration.toMillis(set.joinTimeout)]).toEqual(
      [3, 7, 4, 2000]
    )
  })

  test("bad values name the key", () => {
    const problem = (result: Either.Either<unknown, unknown>) =>
      Either.isLeft(result) ? String(result.left) : "no error"
    expect(problem(read(ChatConfig, { CHAT_MAX_ROOMS: "0" }))).toContain("chat.maxRooms")
    expect(problem(read(ChatConfig, { CHAT_MESSAGES_PER_SECOND: "-1" }))).toContain("chat.messagesPerSecond")
    expect(problem(read(ChatHistoryBackendConfig, { CHAT_HISTORY_BACKEND: "json" }))).toContain("CHAT.HISTORY.BACKEND")
  })
})
