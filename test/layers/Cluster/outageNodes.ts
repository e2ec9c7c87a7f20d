import { expect } from "bun:test"
import { Deferred, Effect, Layer, Scope } from "effect"
import { type Broker, ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BrokerRoomsLive } from "../../../layers/Rooms/BrokerRooms.ts"
import { Rooms } from "../../../layers/Rooms/Rooms.ts"
import { MemoryNetwork, MemoryTransportLive } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, Transport } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { pollUntil } from "../../support/redisCluster.ts"
import { buildNode } from "./backends.ts"

/** Clients join `room` and say "others:…" (to the rest of the room); each is told "joined" when its join is complete. */
const start = (room: string) =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const rooms = yield* Rooms
    return yield* transport.serve({
      name: "outage-test",
      port: 0,
      limits: defaultSocketLimits,
      websocket: {
        upgrade: (_request, info) => Effect.succeed(accept(info.url.searchParams.get("id")!)),
        open: (connection) =>
          Effect.gen(function* () {
            yield* rooms.join(room, connection, { id: connection.data, info: "" })
            yield* Effect.addFinalizer(() => rooms.leave(room, connection))
            connection.send("joined")
            return { onMessage: (message) => rooms.publish(room, message, connection) }
          })
      }
    })
  })

/** A node serving one room on `broker`, with its undelivered count; its clients join as they connect. */
export const roomNode = (network: MemoryNetwork, broker: Layer.Layer<ClusterBroker>, room = "r") =>
  Effect.gen(function* () {
    const layer = Layer.mergeAll(MemoryTransportLive, BrokerRoomsLive()).pipe(
      Layer.provideMerge(Layer.mergeAll(broker, Metrics.Default, Layer.succeed(MemoryNetwork, network)))
    )
    const built = yield* buildNode(layer)
    const server = yield* start(room).pipe(Effect.provide(built.context), Scope.extend(built.scope))
    const metrics = built.get(Metrics)
    const connect = (id: string) =>
      Effect.tap(network.connect(server.port, `/?id=${id}`), (client) =>
        Effect.flatMap(client.next(), (frame) => Effect.sync(() => expect(frame).toBe("joined")))
      )
    const undelivered = () => metrics.counter("switchboard_cluster_undelivered_total", "").labels({}).value
    return { broker: built.get(ClusterBroker), connect, undelivered }
  })

type RoomNode = Effect.Effect.Success<ReturnType<typeof roomNode>>

/** Clients a1, a2 on node a and b1 on node b, with a first message from a1 seen by both others. */
export const clientsCrossing = (a: RoomNode, b: RoomNode) =>
  Effect.gen(function* () {
    const a1 = yield* a.connect("a1")
    const a2 = yield* a.connect("a2")
    const b1 = yield* b.connect("b1")
    yield* a1.send("before")
    expect(yield* b1.next()).toBe("before")
    expect(yield* a2.next()).toBe("before")
    return { a1, a2, b1 }
  })

/** Resolves the next time `broker` is back after an outage (its subscriptions already restored). */
export const nextReconnect = (broker: Broker) =>
  Effect.gen(function* () {
    const back = yield* Deferred.make<void>()
    broker.onReconnect(() => Deferred.unsafeDone(back, Effect.void))
    return Deferred.await(back)
  })

/** Resolves the next time `broker` loses its connection. */
export const nextDisconnect = (broker: Broker) =>
  Effect.gen(function* () {
    const gone = yield* Deferred.make<void>()
    broker.onDisconnect(() => Deferred.unsafeDone(gone, Effect.void))
    return Deferred.await(gone)
  })

/** Polls what a real broker holds, bounded (live tests): state the nodes write at their next heartbeat. */
export const eventually = <A>(what: string, probe: Effect.Effect<A | undefined, unknown>) =>
  Effect.promise(() => pollUntil(what, () => Effect.runPromise(probe)))
