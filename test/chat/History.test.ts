import { describe, expect } from "bun:test"
import { Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { SqlStreamStore } from "../../layers/Storage/SqlStreamStore.ts"
import { type StreamStore, StreamStore as StreamStoreTag } from "../../layers/Storage/StreamStore.ts"
import type { StreamBounds } from "../../src/storage/Stream.ts"
import { Command } from "../../src/chat/Packet.ts"
import { it } from "../support/effect.ts"
import { mysqlAvailable, sqliteFile, tempDirectory, throwawayMysql } from "../layers/Storage/backends.ts"
import {
  type ChatClient,
  joined,
  leftRoom,
  next,
  startChat,
  takeUntil,
  type TestChat,
  type TestChatOptions,
  text
} from "./support.ts"

/** Everything the server sends until the answer to a probe (the probe proves nothing else is queued). */
const drain = (c: ChatClient) =>
  Effect.gen(function* () {
    const uid = c.send(99)
    return (yield* takeUntil(c, (p) => p.cmd === Command.RESP_ERROR && p.uid === uid)).slice(0, -1)
  })

/** Joins `room` as `nick` and returns the history lines it is sent. */
const historyOf = (chat: TestChat, nick: string, room: string) =>
  Effect.gen(function* () {
    const c = yield* joined(chat, nick, room)
    yield* takeUntil(c.client, (p) => p.cmd === Command.NEW_USER && text(p) === nick)
    const logged = (yield* drain(c.client)).filter((p) => p.cmd === Command.LOGGED_MSG)
    return { lines: logged.map(text), raw: logged.map((p) => [...p.data]), client: c.client }
  })

/** Sends messages and waits until the sender has seen the last one come back. */
const say = (chat: TestChat, nick: string, room: string, messages: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const c = yield* joined(chat, nick, room)
    yield* takeUntil(c.client, (p) => p.cmd === Command.NEW_USER && text(p) === nick)
    for (const m of messages) c.client.sendMessage(m)
    yield* takeUntil(c.client, (p) => p.cmd === Command.NEW_MSG && text(p) === messages.at(-1))
    return c.client
  })

/** Runs a chat server in its own scope, closed when `body` ends (a "restart" is two of these). */
const withServer = <A, E>(options: TestChatOptions, body: (chat: TestChat) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const exit = yield* Effect.exit(
      Effect.gen(function* () {
        const chat = yield* startChat(options)
        return yield* body(chat)
      }).pipe(Scope.extend(scope))
    )
    yield* Scope.close(scope, Exit.void)
    return yield* exit
  })

/** Not UTF-8: stored losslessly all the same. */
const rawBytes = Uint8Array.of(0x00, 0xff, 0xc3, 0x28, 0x80)

describe("chat history", () => {
  it.effect("the history ring keeps the newest lines within 8 KiB, oldest first", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ limits: { messageBurst: 100 } }) // 60 messages at once, with time standing still
      const sent = Array.from({ length: 60 }, (_, i) => `${String(i).padStart(3, "0")} ${"x".repeat(196)}`)
      yield* say(chat, "alice", "ring", sent)
      const { lines } = yield* historyOf(chat, "bob", "ring")
      const expected = sent.map((m) => `alice: ${m}`)
      expect(lines).toEqual(expected.slice(expected.length - lines.length))
      const size = (l: string) => Buffer.byteLength(l)
      const kept = lines.reduce((n, l) => n + size(l), 0)
      expect(kept).toBeLessThanOrEqual(8192)
      expect(kept + size(expected[expected.length - lines.length - 1]!)).toBeGreaterThan(8192)
      expect(lines.length).toBe(39)
    })
  )

  it.effect("empty messages are broadcast but not recorded, like the original", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const c = yield* say(chat, "alice", "quiet", ["one"])
      c.sendMessage("")
      expect((yield* next(c)).cmd).toBe(Command.NEW_MSG)
      const { lines } = yield* historyOf(chat, "bob", "quiet")
      expect(lines).toEqual(["alice: one"])
    })
  )

  it.effect("without persistence, a room's history goes when its last member leaves", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const c = yield* say(chat, "alice", "temp", ["gone soon"])
      c.close()
      yield* leftRoom(chat.changes, "alice")
      const { lines } = yield* historyOf(chat, "bob", "temp")
      expect(lines).toEqual([])
    })
  )

  it.effect("history is written off the broadcast, in order, and a joiner still gets every line sent before it", () =>
    Effect.gen(function* () {
      // Appends are held until released: broadcasts must not wait for them, a join must.
      const gate = yield* Deferred.make<void>()
      const appended: Array<string> = []
      const gatedStore = Layer.effect(
        StreamStoreTag,
        Effect.map(StreamStoreTag, (store) => ({
          ...store,
          // A store that does I/O: no on-the-spot append, every line goes through the room's writer.
          appendNow: undefined,
          append: (stream: string, payload: string, bounds: StreamBounds) =>
            Deferred.await(gate).pipe(
              Effect.zipRight(store.append(stream, payload, bounds)),
              Effect.tap(() => Effect.sync(() => appended.push(payload)))
            )
        }))
      ).pipe(Layer.provide(MemoryStreamStore))
      const chat = yield* startChat({ store: gatedStore })
      yield* say(chat, "alice", "gated", ["one", "two", "three"])
      expect(appended).toEqual([])
      const joining = yield* Effect.fork(historyOf(chat, "bob", "gated"))
      yield* Deferred.succeed(gate, undefined)
      const { lines } = yield* Fiber.join(joining)
      expect(lines).toEqual(["alice: one", "alice: two", "alice: three"])
      expect(appended).toEqual(["alice: one", "alice: two", "alice: three"])
    })
  )

  const persistence = (backend: string, skip: boolean, store: () => Layer.Layer<StreamStore, unknown>) =>
    it
      .skipIf(skip)
      .effect(`with a persistent store (${backend}), history survives an empty room and a server restart`, () =>
        Effect.gen(function* () {
          const options: TestChatOptions = { persistentHistory: true, store: store() }
          // A fresh room name per run: databases may be shared between runs.
          const room = `kept-${crypto.randomUUID()}`
          yield* withServer(options, (chat) =>
            Effect.gen(function* () {
              const c = yield* say(chat, "alice", room, ["before", "the restart", "ünïcödé ✓"])
              c.sendMessage(rawBytes)
              yield* next(c)
              c.close()
              yield* leftRoom(chat.changes, "alice")
              const empty = yield* historyOf(chat, "bob", room)
              expect(empty.lines.length).toBe(4)
            })
          )
          yield* withServer(options, (chat) =>
            Effect.gen(function* () {
              const after = yield* historyOf(chat, "carol", room)
              expect(after.lines.slice(0, 3)).toEqual(["alice: before", "alice: the restart", "alice: ünïcödé ✓"])
              expect(after.raw.at(-1)).toEqual([...new TextEncoder().encode("alice: "), ...rawBytes])
              yield* after.client.silent
            })
          )
        })
      )

  const dir = tempDirectory("chat-history")
  persistence("SQLite", false, () => SqlStreamStore.pipe(Layer.provide(sqliteFile(dir, "chat"))))
  const mysql = throwawayMysql("chat")
  persistence("MySQL", !mysqlAvailable, () => SqlStreamStore.pipe(Layer.provide(mysql.layer)))
})
