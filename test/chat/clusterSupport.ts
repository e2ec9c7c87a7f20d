import { afterAll, expect } from "bun:test"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Context, Deferred, Effect, Layer, Queue, Scope } from "effect"
import { ClusterBroker } from "../../layers/Cluster/Broker.ts"
import { BrokerClaimsLive, Claims, type ClaimsService } from "../../layers/Cluster/Claims.ts"
import { BrokerCountersLive } from "../../layers/Cluster/Counters.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { BrokerRoomsLive } from "../../layers/Rooms/BrokerRooms.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { MemoryStreamStore } from "../../layers/Storage/MemoryStreamStore.ts"
import { NatsStreamStore, natsHistoryStream } from "../../layers/Storage/NatsStreamStore.ts"
import { RedisStreamStore } from "../../layers/Storage/RedisStreamStore.ts"
import { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { MemoryNetwork, MemoryTransportLive } from "../../layers/Transport/MemoryTransport.ts"
import { type ChatLimits, defaultChatLimits } from "../../src/chat/Config.ts"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { serveChat } from "../../src/chat/Server.ts"
import { defaultSocketLimits } from "../../src/shared/SocketLimits.ts"
import {
  buildNode,
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsAvailable,
  natsPrefix,
  natsUrl,
  nodeTtlMillis,
  redisUrl,
  runPrefix
} from "../layers/Cluster/backends.ts"
import { type ChatClient, connectChat, text } from "./support.ts"

/** Each node's history store, one per cluster: what `programs/servers/chat.ts` picks for the broker. */
export type HistoryStores = Effect.Effect<() => Layer.Layer<StreamStore>, never, Scope.Scope>

/** Memory nodes share one in-memory store (as they would a broker's). */
export const sharedMemoryHistory: HistoryStores = Effect.map(
  Layer.build(MemoryStreamStore),
  (context) => () => Layer.succeed(StreamStore, Context.get(context, StreamStore))
)

/**
 * One shared memory history whose first node sees it through `faulty` (a store failing as Redis, SQL or NATS can),
 * with that node's first batch held until `open`; the other nodes see the store as it is.
 */
export const faultyFirstNodeHistory = (
  open: Deferred.Deferred<void>,
  faulty: (shared: StreamStore["Type"]) => StreamStore["Type"]["appendMany"]
): HistoryStores =>
  Effect.map(Layer.build(MemoryStreamStore), (context) => {
    const shared = Context.get(context, StreamStore)
    const appendMany = faulty(shared)
    let calls = 0
    const first: StreamStore["Type"] = {
      ...shared,
      appendNow: undefined,
      appendMany: (stream, payloads, bounds, batch) =>
        Effect.zipRight(calls++ === 0 ? Deferred.await(open) : Effect.void, appendMany(stream, payloads, bounds, batch))
    }
    let nodes = 0
    return () => Layer.succeed(StreamStore, nodes++ === 0 ? first : shared)
  })

/** The text of each _NEW_MSG among `packets`. */
export const messagesOf = (packets: ReadonlyArray<TPacket>) =>
  packets.filter((p) => p.cmd === Command.NEW_MSG).map(text)

/** Joins and leaves among `packets`, as "+nick" and "-nick". */
export const users = (packets: ReadonlyArray<TPacket>) =>
  packets
    .filter((p) => p.cmd === Command.NEW_USER || p.cmd === Command.DEL_USER)
    .map((p) => `${p.cmd === Command.NEW_USER ? "+" : "-"}${text(p)}`)

/** Packets until `client` got `wanted` joins and leaves (a negative check follows with pushedBeforeProbe). */
export const untilUsers = (client: ChatClient, wanted: number) =>
  Effect.gen(function* () {
    const got: Array<TPacket> = []
    while (users(got).length < wanted) got.push(yield* client.next)
    return got
  })

/** `count` more _NEW_MSG lines, past joins and leaves. */
export const lines = (client: ChatClient, count: number) =>
  Effect.gen(function* () {
    const seen: Array<string> = []
    while (seen.length < count) {
      const p = yield* client.next
      if (p.cmd === Command.NEW_MSG) seen.push(text(p))
    }
    return seen
  })

/** History in Redis Streams and JetStream for the test file `label`, every key and stream removed when it ends. */
export const brokerHistories = (label: string) => {
  const prefix = runPrefix(label)
  cleanRedisAfterAll(prefix)
  const jetStreamPrefix = natsPrefix(label)
  const jetStreamHistories: Array<string> = []
  afterAll(async () => {
    if (!natsAvailable || jetStreamHistories.length === 0) return
    const connection = await connect({ servers: natsUrl })
    const manager = await jetstreamManager(connection)
    for (const stream of jetStreamHistories) await manager.streams.delete(stream).catch(() => false)
    await connection.close()
  })
  /** Redis Streams: every node its own connection, one key prefix per cluster. */
  const redis: HistoryStores = Effect.sync(() => {
    const clusterPrefix = `${prefix}history:${crypto.randomUUID().slice(0, 6)}:`
    return () => RedisStreamStore({ url: redisUrl, prefix: clusterPrefix }).pipe(Layer.orDie)
  })
  /** JetStream: every node its own connection, one stream per cluster (deleted when the file ends). */
  const nats: HistoryStores = Effect.sync(() => {
    const clusterPrefix = `${jetStreamPrefix}.${crypto.randomUUID().slice(0, 6)}`
    jetStreamHistories.push(natsHistoryStream(clusterPrefix))
    return () => NatsStreamStore({ url: natsUrl, prefix: clusterPrefix }).pipe(Layer.orDie)
  })
  return { prefix, jetStreamPrefix, redis, nats }
}

const config = { port: 0, hostname: "memory", limits: defaultChatLimits, socket: defaultSocketLimits }

/**
 * Everything pushed to `client` before the answer to a probe it sends now (replies left in the stream are
 * dropped): the probe's refusal comes after all the server did for earlier packets.
 */
export const pushedBeforeProbe = (client: ChatClient) =>
  Effect.gen(function* () {
    const probe = client.send(99)
    const taken: Array<TPacket> = []
    while (true) {
      const p = yield* client.next
      if (p.cmd === Command.RESP_ERROR && p.uid === probe) return taken
      if (p.cmd !== Command.RESP_OK && p.cmd !== Command.RESP_ERROR) taken.push(p)
    }
  })

/** Chat nodes of one cluster on `backend`, with history in `historyStores` (and `limits` other than the defaults). */
export const chatCluster = (backend: ClusterBackend, historyStores: HistoryStores, limits: Partial<ChatLimits> = {}) =>
  Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const brokers = yield* backend.cluster()
    const history = yield* historyStores
    /** A node; `broker` replaces its broker layer (a cuttable one), `wrapStore` wraps its history store. */
    const node = (
      nodeId: string,
      broker: Layer.Layer<ClusterBroker> = brokers.broker(nodeId),
      wrapStore?: (store: StreamStore["Type"]) => StreamStore["Type"]
    ) =>
      Effect.gen(function* () {
        const store = wrapStore
          ? Layer.effect(StreamStore, Effect.map(StreamStore, wrapStore)).pipe(Layer.provide(history()))
          : history()
        // Each release of a nick, once done on the broker, is told on `released` (tests wait for it, not for time).
        const released = yield* Queue.unbounded<string>()
        const watchedClaims = Layer.effect(
          Claims,
          Effect.map(
            Claims,
            (claims): ClaimsService => ({
              ...claims,
              release: (claim) => Effect.zipRight(claims.release(claim), Queue.offer(released, claim.name))
            })
          )
        ).pipe(Layer.provide(BrokerClaimsLive({ nodeTtl: nodeTtlMillis })))
        const layer = Layer.mergeAll(
          MemoryTransportLive,
          BrokerRoomsLive({ nodeTtl: nodeTtlMillis }),
          watchedClaims,
          BrokerCountersLive
        ).pipe(
          Layer.provideMerge(Layer.mergeAll(broker, Metrics.Default, Layer.succeed(MemoryNetwork, network), store))
        )
        const built = yield* buildNode(layer)
        const server = yield* serveChat({
          config: { ...config, limits: { ...config.limits, ...limits } },
          persistentHistory: true,
          name: "chat"
        }).pipe(Effect.provide(built.context), Scope.extend(built.scope))
        return {
          port: server.port,
          scope: built.scope,
          broker: built.get(ClusterBroker),
          rooms: built.get(Rooms),
          store: built.get(StreamStore),
          metrics: built.get(Metrics),
          released
        }
      })
    const connect = (port: number) => connectChat(network, port)
    /** Connects, sets the nick and joins; returns the client once its join has completed on its node. */
    const join = (port: number, nick: string, room: string) =>
      Effect.gen(function* () {
        const client = yield* connect(port)
        expect((yield* client.setNick(nick)).cmd).toBe(Command.RESP_OK)
        expect((yield* client.setRoom(room)).cmd).toBe(Command.RESP_OK)
        // The roster, then the history, then silence: the join is complete (and subscribed on the broker).
        return { client, roster: yield* pushedBeforeProbe(client) }
      })
    return { node, connect, join, expire: brokers.expire, cuttable: brokers.cuttable, broker: brokers.broker }
  }).pipe(Effect.provide(MemoryNetwork.Default))

/**
 * Memory nodes A and B, alice on A and bob on B in `room`, with A's history from `history` (faultyFirstNodeHistory):
 * alice's lines `said` wait behind her first line's held append (so the rest go as one batch), then it is let go.
 */
export const heldBatchCluster = (
  history: (open: Deferred.Deferred<void>) => HistoryStores,
  room: string,
  said: ReadonlyArray<string>
) =>
  Effect.gen(function* () {
    const open = yield* Deferred.make<void>()
    const { node, join } = yield* chatCluster(memoryBackend, history(open))
    const a = yield* node(`${room}-a`)
    const b = yield* node(`${room}-b`)
    const alice = yield* join(a.port, "alice", room)
    const bob = yield* join(b.port, "bob", room)
    for (const line of said) alice.client.sendMessage(line)
    expect(messagesOf(yield* pushedBeforeProbe(alice.client))).toEqual([])
    yield* Deferred.succeed(open, undefined)
    return { a, alice: alice.client, bob: bob.client }
  })

/** Each of `clients` gets the lines `expected`, in order, and no other line before a probe. */
export const heardOnly = (clients: ReadonlyArray<ChatClient>, expected: ReadonlyArray<string>) =>
  Effect.forEach(
    clients,
    (client) =>
      Effect.gen(function* () {
        expect(yield* lines(client, expected.length)).toEqual([...expected])
        expect(messagesOf(yield* pushedBeforeProbe(client))).toEqual([])
      }),
    { discard: true }
  )
