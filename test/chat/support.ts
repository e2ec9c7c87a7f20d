import { BunFileSystem } from "@effect/platform-bun"
import { Context, Effect, Either, Layer, Queue } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { type RoomChange, Rooms } from "../../layers/Rooms/Rooms.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { BunTransportLive } from "../../layers/Transport/BunTransport.ts"
import { type MemoryClosed, MemoryNetwork, MemoryTransportTest } from "../../layers/Transport/MemoryTransport.ts"
import type { WireMessage } from "../../layers/Transport/Transport.ts"
import { TPacketClient } from "../../src/chat/Client.ts"
import { type ChatLimits, defaultChatLimits } from "../../src/chat/Config.ts"
import { Command, encodePacket, MAGIC, packet, readPacket, type TPacket } from "../../src/chat/Packet.ts"
import { loadWebPage, serveChat } from "../../src/chat/Server.ts"
import { defaultSocketLimits, type SocketLimits } from "../../src/shared/SocketLimits.ts"

export interface TestChatOptions {
  readonly limits?: Partial<ChatLimits>
  readonly socket?: Partial<SocketLimits>
  readonly persistentHistory?: boolean
  /** A StreamStore layer to use instead of a fresh memory store (e.g. SQLite for restarts). */
  readonly store?: Layer.Layer<StreamStore, unknown>
  /** Serve the browser page (src/chat/web/) too. */
  readonly page?: boolean
}

const configOf = (options: TestChatOptions, hostname: string) => ({
  port: 0,
  hostname,
  limits: { ...defaultChatLimits, ...options.limits },
  socket: { ...defaultSocketLimits, ...options.socket }
})

const serverOptions = (options: TestChatOptions, hostname: string) =>
  Effect.gen(function* () {
    const config = configOf(options, hostname)
    const page = options.page
      ? yield* loadWebPage(config.limits).pipe(Effect.provide(BunFileSystem.layer), Effect.orDie)
      : undefined
    return {
      config,
      persistentHistory: options.persistentHistory ?? false,
      ...(page ? { page } : {})
    }
  })

const encoder = new TextEncoder()
const bytesOf = (value: string | Uint8Array) => (typeof value === "string" ? encoder.encode(value) : value)

/**
 * A tPacket client on the memory network, shaped like TPacketClient: sends are immediate and
 * return the uid; `next` takes server packets in order (replies included); `reply` finds the
 * reply to a uid without taking it out of the stream.
 */
export interface ChatClient {
  readonly send: (cmd: number, data?: string | Uint8Array, fields?: { p1?: number; p2?: number }) => number
  readonly sendMessage: (text: string | Uint8Array) => number
  readonly sendRaw: (message: WireMessage) => void
  readonly next: Effect.Effect<TPacket>
  readonly reply: (uid: number) => Effect.Effect<TPacket>
  readonly request: (cmd: number, data?: string | Uint8Array) => Effect.Effect<TPacket>
  readonly setNick: (nick: string | Uint8Array) => Effect.Effect<TPacket>
  readonly setRoom: (room: string | Uint8Array) => Effect.Effect<TPacket>
  /**
   * Proves nothing else is on its way: sends a command the server always refuses and expects that
   * refusal as the very next packet (anything sent to this client before it would come first).
   */
  readonly silent: Effect.Effect<void>
  readonly closed: Effect.Effect<MemoryClosed>
  readonly close: (code?: number) => void
}

/** The command number `silent` sends: never valid, so always answered with _RESP_ERROR. */
const PROBE_COMMAND = 99

export const connectChat = (network: MemoryNetwork, port: number, options: { readonly magic?: boolean } = {}) =>
  Effect.gen(function* () {
    const memory = yield* network.connect(port, "/")
    const inbox: Array<TPacket> = []
    let nextUid = 1
    const sendRaw = (message: WireMessage) => Effect.runSync(memory.send(message))
    const send = (
      cmd: number,
      data: string | Uint8Array = new Uint8Array(0),
      fields: { p1?: number; p2?: number } = {}
    ) => {
      const uid = nextUid++
      sendRaw(encodePacket(packet(cmd, { uid, data: bytesOf(data), ...fields })))
      return uid
    }
    const pull = Effect.flatMap(memory.next(), (frame) => {
      if (typeof frame === "string") return Effect.dieMessage(`server sent a text frame: ${frame}`)
      const decoded = readPacket(frame)
      return Either.isLeft(decoded)
        ? Effect.dieMessage(`server sent a bad packet (${decoded.left})`)
        : Effect.succeed(decoded.right)
    })
    const isReplyTo = (uid: number) => (p: TPacket) =>
      (p.cmd === Command.RESP_OK || p.cmd === Command.RESP_ERROR) && p.uid === uid
    const reply = (uid: number): Effect.Effect<TPacket> =>
      Effect.suspend(() => {
        const found = inbox.find(isReplyTo(uid))
        if (found) return Effect.succeed(found)
        return Effect.flatMap(pull, (p) => {
          inbox.push(p)
          return isReplyTo(uid)(p) ? Effect.succeed(p) : reply(uid)
        })
      })
    const next = Effect.suspend(() => (inbox.length > 0 ? Effect.succeed(inbox.shift()!) : pull))
    const request = (cmd: number, data?: string | Uint8Array) => Effect.suspend(() => reply(send(cmd, data)))
    const client: ChatClient = {
      send,
      sendMessage: (text) => send(Command.NEW_MSG, text),
      sendRaw,
      next,
      reply,
      request,
      setNick: (nick) => request(Command.SET_USER_NICK, nick),
      setRoom: (room) => request(Command.SET_ROOM, room),
      silent: Effect.gen(function* () {
        const uid = send(PROBE_COMMAND)
        const p = yield* next
        if (p.cmd !== Command.RESP_ERROR || p.uid !== uid) {
          return yield* Effect.dieMessage(`expected silence, got ${JSON.stringify(show(p))}`)
        }
      }),
      closed: memory.closed,
      close: (code) => Effect.runSync(memory.close(code))
    }
    if (options.magic !== false) send(Command.NOP, MAGIC)
    return client
  })

/** A chat server on the memory network with in-process rooms, its own metrics and (by default) memory history. */
export const startChat = (options: TestChatOptions = {}) =>
  Effect.gen(function* () {
    // Built in the caller's scope so a scoped store (SQLite) lives as long as the server.
    const context = yield* Layer.build(
      Layer.mergeAll(MemoryTransportTest, InProcessRoomsLive, options.store ?? MemoryStreamStore, BunFileSystem.layer)
    )
    const handle = yield* serveChat(yield* serverOptions(options, "memory")).pipe(Effect.provide(context))
    const network = Context.get(context, MemoryNetwork)
    const rooms = Context.get(context, Rooms)
    const metrics = Context.get(context, Metrics)
    const changes = yield* rooms.changes
    return {
      handle,
      port: handle.port,
      network,
      rooms,
      metrics,
      /** Joins and leaves of the server's rooms, from the moment the server started. */
      changes,
      fetch: (path: string, init?: RequestInit) =>
        network.fetch(handle.port, new Request(`http://memory:${handle.port}${path}`, init))
    }
  })

export type TestChat = Effect.Effect.Success<ReturnType<typeof startChat>>

/** A client of `chat`, closed when the test's scope ends. */
export const client = (chat: TestChat, options: { readonly magic?: boolean } = {}) =>
  connectChat(chat.network, chat.port, options)

/** Connects and pipelines magic + nick + room, like the original client; returns both replies (still in the stream). */
export const joined = (chat: TestChat, nick: string | Uint8Array, room: string | Uint8Array) =>
  Effect.gen(function* () {
    const c = yield* client(chat)
    const nickUid = c.send(Command.SET_USER_NICK, nick)
    const roomUid = c.send(Command.SET_ROOM, room)
    const nickReply = yield* c.reply(nickUid)
    const roomReply = yield* c.reply(roomUid)
    return { client: c, nickReply, roomReply }
  })

/** Waits until the Rooms service reports that `nick` left its room (the server has run its leave). */
export const leftRoom = (changes: Queue.Dequeue<RoomChange>, nick: string) =>
  Effect.gen(function* () {
    while (true) {
      const change = yield* Queue.take(changes)
      if (change._tag === "Left" && change.member.info === nick) return change
    }
  })

export const next = (c: ChatClient) => c.next

/** Takes packets (from the memory client or a real TPacketClient) until one matches, returning everything taken. */
export const takeUntil = (
  c: { readonly next: Effect.Effect<TPacket> } | TPacketClient,
  done: (p: TPacket) => boolean
) =>
  Effect.gen(function* () {
    const taken: Array<TPacket> = []
    while (true) {
      const p = yield* c instanceof TPacketClient ? Effect.promise(() => c.next()) : c.next
      taken.push(p)
      if (done(p)) return taken
    }
  })

export const text = (p: TPacket) => new TextDecoder().decode(p.data)

/** A readable summary of a packet for whole-sequence assertions. */
export const show = (p: TPacket) => ({ cmd: p.cmd, uid: p.uid, p1: p.p1, p2: p.p2, data: text(p) })

export const cmdName = Object.fromEntries(Object.entries(Command).map(([k, v]) => [v, k]))

/** A chat server on a real loopback Bun socket, for the few smoke tests that need real sockets or a browser. */
export const startRealChat = (options: TestChatOptions = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Layer.mergeAll(
        BunTransportLive,
        InProcessRoomsLive,
        options.store ?? MemoryStreamStore,
        BunFileSystem.layer
      ).pipe(Layer.provideMerge(Metrics.Default))
    )
    const handle = yield* serveChat(yield* serverOptions(options, "127.0.0.1")).pipe(Effect.provide(context))
    return { handle, url: `ws://127.0.0.1:${handle.port}/`, metrics: Context.get(context, Metrics) }
  })

/** A real-socket TPacketClient that is closed when the test's scope ends. */
export const realClient = (url: string, options: { readonly magic?: boolean } = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => TPacketClient.connect(url, options)),
    (c) => Effect.sync(() => c.close())
  )
