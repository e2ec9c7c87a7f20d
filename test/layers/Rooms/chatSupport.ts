import type { HttpApp } from "@effect/platform"
import { Effect, Layer, type Scope } from "effect"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { metricsResponse } from "../../../layers/Observability/MetricsRoute.ts"
import { serveChat } from "../../../layers/Rooms/ChatRoomsServer.ts"
import { MemoryStreamStore } from "../../../layers/Storage/MemoryStreamStore.ts"
import type { StreamStore } from "../../../layers/Storage/StreamStore.ts"
import { BunTransportLive } from "../../../layers/Transport/BunTransport.ts"
import { TPacketClient } from "../../../layers/Transport/TPacketClient.ts"
import { type ChatLimits, defaultChatLimits } from "../../../src/tpacket/ChatConfig.ts"
import { Command, type TPacket } from "../../../src/tpacket/Packet.ts"
import { defaultSocketLimits, type SocketLimits } from "../../../src/shared/SocketLimits.ts"

export interface TestChatOptions {
  readonly limits?: Partial<ChatLimits>
  readonly socket?: Partial<SocketLimits>
  readonly persistentHistory?: boolean
  /** A StreamStore layer to use instead of a fresh memory store (e.g. SQLite for restarts). */
  readonly store?: Layer.Layer<StreamStore, unknown>
  /** The HTTP side (defaults to /metrics only). */
  readonly http?: Effect.Effect<HttpApp.Default<never, Metrics | Scope.Scope>>
}

/** A chat server on a free loopback port, with its own metrics and (by default) memory history. */
export const startChat = (options: TestChatOptions = {}) =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    // Built in the caller's scope so a scoped store (SQLite) lives as long as the server.
    const store = yield* Layer.build(options.store ?? MemoryStreamStore)
    const handle = yield* serveChat({
      config: {
        port: 0,
        hostname: "127.0.0.1",
        limits: { ...defaultChatLimits, ...options.limits },
        socket: { ...defaultSocketLimits, ...options.socket }
      },
      persistentHistory: options.persistentHistory ?? false,
      http: options.http ? yield* options.http : metricsResponse
    }).pipe(Effect.provide(BunTransportLive), Effect.provide(store))
    return { handle, url: `ws://127.0.0.1:${handle.port}/`, metrics }
  }).pipe(Effect.provide(Metrics.Default))

/** A client that is closed when the test's scope ends. */
export const client = (url: string, options: { readonly magic?: boolean } = {}) =>
  Effect.acquireRelease(Effect.promise(() => TPacketClient.connect(url, options)), (c) => Effect.sync(() => c.close()))

/** Connects and pipelines magic + nick + room, like the original client; returns after both replies. */
export const joined = (url: string, nick: string | Uint8Array, room: string | Uint8Array) =>
  Effect.gen(function* () {
    const c = yield* client(url)
    const [nickReply, roomReply] = yield* Effect.promise(() => Promise.all([c.setNick(nick), c.setRoom(room)]))
    return { client: c, nickReply, roomReply }
  })

export const next = (c: TPacketClient, timeoutMs?: number) => Effect.promise(() => c.next(timeoutMs))

/** Takes packets until one matches, returning everything taken (for skipping a join burst). */
export const takeUntil = (c: TPacketClient, done: (p: TPacket) => boolean) =>
  Effect.gen(function* () {
    const taken: Array<TPacket> = []
    while (true) {
      const p = yield* next(c)
      taken.push(p)
      if (done(p)) return taken
    }
  })

export const text = (p: TPacket) => new TextDecoder().decode(p.data)

/** A readable summary of a packet for whole-sequence assertions. */
export const show = (p: TPacket) => ({ cmd: p.cmd, uid: p.uid, p1: p.p1, p2: p.p2, data: text(p) })

export const cmdName = Object.fromEntries(Object.entries(Command).map(([k, v]) => [v, k]))

/** Waits until no packet arrives for a short real-time window (proves nothing more is coming). */
export const silent = (c: TPacketClient, ms = 100) =>
  Effect.promise(() =>
    c.next(ms).then(
      (p) => Promise.reject(new Error(`expected silence, got ${JSON.stringify(show(p))}`)),
      () => undefined
    )
  )
