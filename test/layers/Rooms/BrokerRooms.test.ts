import { describe, expect } from "bun:test"
import { Effect, Exit, FastCheck, Layer, Queue, Runtime, Scope, TestClock } from "effect"
import { ClusterBroker } from "../../../layers/Cluster/Broker.ts"
import { Metrics } from "../../../layers/Observability/Metrics.ts"
import { BrokerRoomsLive } from "../../../layers/Rooms/BrokerRooms.ts"
import { Rooms } from "../../../layers/Rooms/Rooms.ts"
import { MemoryNetwork, MemoryTransportLive } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, Transport } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"
import {
  buildNode,
  type ClusterBackend,
  cleanRedisAfterAll,
  memoryBackend,
  natsBackend,
  natsPrefix,
  nodeTtlMillis,
  redisBackend,
  runPrefix
} from "../Cluster/backends.ts"

const prefix = runPrefix("rooms")
cleanRedisAfterAll(prefix)

/** Clients join the room named in their URL and say "all:…", "others:…" or "bin:…" (sent on as bytes to the others). */
const start = Effect.gen(function* () {
  const transport = yield* Transport
  const rooms = yield* Rooms
  return yield* transport.serve({
    name: "cluster-rooms-test",
    port: 0,
    limits: defaultSocketLimits,
    websocket: {
      upgrade: (_request, info) =>
        Effect.succeed(accept({ room: info.url.searchParams.get("room")!, id: info.url.searchParams.get("id")! })),
      open: (connection) =>
        Effect.gen(function* () {
          const { room, id } = connection.data
          yield* rooms.join(room, connection, { id, info: `member ${id}` })
          yield* Effect.addFinalizer(() => rooms.leave(room, connection))
          // Tells the client its join is complete (subscribed on the broker, presence written): tests wait for this event.
          connection.send("joined")
          return {
            onMessage: (message) => {
              const text = String(message)
              if (text.startsWith("others:")) rooms.publish(room, text, connection)
              else if (text.startsWith("all:")) rooms.publish(room, text)
              else if (text.startsWith("bin:")) rooms.publish(room, new TextEncoder().encode(text), connection)
            }
          }
        })
    }
  })
})

const scenarios = (backend: ClusterBackend) => {
  const test = backend.live ? it.skipIf(backend.skip).live : it.skipIf(backend.skip).effect
  /** A cluster of nodes on one MemoryNetwork; each node has its own transport, metrics, broker connection and rooms. */
  const cluster = Effect.gen(function* () {
    const network = yield* MemoryNetwork
    const brokers = yield* backend.cluster()
    const node = (nodeId: string) =>
      Effect.gen(function* () {
        const layer = Layer.mergeAll(MemoryTransportLive, BrokerRoomsLive({ nodeTtl: nodeTtlMillis })).pipe(
          Layer.provideMerge(
            Layer.mergeAll(brokers.broker(nodeId), Metrics.Default, Layer.succeed(MemoryNetwork, network))
          )
        )
        const built = yield* buildNode(layer)
        const server = yield* start.pipe(Effect.provide(built.context), Scope.extend(built.scope))
        const metrics = built.get(Metrics)
        const received = () =>
          metrics.counter("switchboard_cluster_broker_messages_total", "", ["direction"]).labels({ direction: "in" })
            .value
        const connect = (room: string, id: string) =>
          Effect.tap(network.connect(server.port, `/?room=${room}&id=${id}`), (client) =>
            Effect.flatMap(client.next(), (frame) =>
              frame === "joined" ? Effect.void : Effect.die(`expected "joined", got ${String(frame)}`)
            )
          )
        return {
          nodeId,
          rooms: built.get(Rooms),
          broker: built.get(ClusterBroker),
          received,
          connect,
          scope: built.scope
        }
      })
    return { node, expire: brokers.expire }
  }).pipe(Effect.provide(MemoryNetwork.Default))

  describe(`BrokerRooms on ${backend.name}`, () => {
    test("cross-node delivery of text and binary, the sender excluded, and no broker traffic to a node without members", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b, c] = yield* Effect.all([node("node-a"), node("node-b"), node("node-c")])
        const a1 = yield* a.connect("r", "a1")
        const a2 = yield* a.connect("r", "a2")
        const b1 = yield* b.connect("r", "b1")
        const c1 = yield* c.connect("q", "c1")
        yield* a1.send("others:1")
        expect(yield* a2.next()).toBe("others:1")
        expect(yield* b1.next()).toBe("others:1")
        yield* b1.send("all:2")
        // a1's first frame is b1's: its own message never came back to it, through the broker or locally.
        for (const client of [a1, a2, b1]) expect(yield* client.next()).toBe("all:2")
        yield* a2.send("bin:3")
        expect(yield* b1.next()).toEqual(new TextEncoder().encode("bin:3"))
        expect(yield* a1.next()).toEqual(new TextEncoder().encode("bin:3"))
        // A probe to C's room from node A: C hears it, and it is the only room message C ever received.
        a.rooms.publish("q", "all:probe")
        expect(yield* c1.next()).toBe("all:probe")
        expect(c.received()).toBe(1)
        expect(b.received()).toBe(2)
        expect(a.received()).toBe(1)
      }))

    test("exactly once and in order per sender across nodes", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        const a1 = yield* a.connect("r", "a1")
        const a2 = yield* a.connect("r", "a2")
        const b1 = yield* b.connect("r", "b1")
        const b2 = yield* b.connect("r", "b2")
        const count = 100
        for (let i = 0; i < count; i++) {
          yield* a1.send(`others:a1:${i}`)
          yield* b1.send(`others:b1:${i}`)
        }
        const expectations = [
          [a1, ["b1"]],
          [b1, ["a1"]],
          [a2, ["a1", "b1"]],
          [b2, ["a1", "b1"]]
        ] as const
        for (const [client, senders] of expectations) {
          const seen = new Map<string, Array<number>>(senders.map((sender) => [sender, []]))
          for (let i = 0; i < count * senders.length; i++) {
            const [, sender, n] = String(yield* client.next()).split(":")
            seen.get(sender!)!.push(Number(n))
          }
          for (const sequence of seen.values()) expect(sequence).toEqual(Array.from({ length: count }, (_, i) => i))
        }
        // Nothing extra: the next frame everyone gets is this one.
        yield* b2.send("all:end")
        for (const client of [a1, a2, b1, b2]) expect(yield* client.next()).toBe("all:end")
      }))

    test("any publishes of one turn, from any nodes to any rooms, arrive exactly once and in order per node (model, property)", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const nodes = yield* Effect.all([node("node-a"), node("node-b"), node("node-c")])
        const roomNames = ["r", "s"] as const
        // Every node hosts both rooms, except that C hosts only r: it must get nothing of s.
        const clients = yield* Effect.forEach(
          [
            [0, "r"],
            [0, "s"],
            [1, "r"],
            [1, "s"],
            [2, "r"]
          ] as const,
          ([n, room], i) => Effect.map(nodes[n]!.connect(room, `m${i}`), (client) => ({ client, room }))
        )
        const runtime = yield* Effect.runtime<never>()
        const decode = (frame: unknown) =>
          typeof frame === "string" ? frame : `bin ${new TextDecoder().decode(frame as Uint8Array)}`
        let round = 0
        const publish = FastCheck.record({
          from: FastCheck.integer({ min: 0, max: 2 }),
          room: FastCheck.constantFrom(...roomNames),
          binary: FastCheck.boolean(),
          size: FastCheck.constantFrom(1, 10, 30_000)
        })
        const check = (ops: ReadonlyArray<{ from: number; room: string; binary: boolean; size: number }>) =>
          Effect.gen(function* () {
            round++
            const sent = ops.map((op, i) => {
              const tag = `${round}:${op.from}:${i}:${"x".repeat(op.size)}`
              nodes[op.from]!.rooms.publish(op.room, op.binary ? new TextEncoder().encode(tag) : tag)
              return { ...op, frame: op.binary ? `bin ${tag}` : tag }
            })
            for (const { client, room } of clients) {
              const expected = sent.filter((op) => op.room === room)
              const got: Array<string> = []
              for (let i = 0; i < expected.length; i++) got.push(decode(yield* client.next()))
              // Exactly once, and each node's publishes in the order it made them.
              expect([...got].sort()).toEqual(expected.map((op) => op.frame).sort())
              for (const from of [0, 1, 2])
                expect(
                  got.filter(
                    (frame) => frame.startsWith(`${round}:${from}:`) || frame.startsWith(`bin ${round}:${from}:`)
                  )
                ).toEqual(expected.filter((op) => op.from === from).map((op) => op.frame))
            }
            // Nothing extra on any path: after the expected frames, each client's next frames are the end markers.
            for (const [n, hosted] of [
              [0, roomNames],
              [1, roomNames],
              [2, ["r"]]
            ] as const)
              for (const room of hosted) nodes[n]!.rooms.publish(room, `end:${round}:${n}`)
            for (const { client, room } of clients) {
              const ends = room === "r" ? 3 : 2
              const got: Array<string> = []
              for (let i = 0; i < ends; i++) got.push(decode(yield* client.next()))
              expect(got.every((frame) => frame.startsWith(`end:${round}:`))).toBe(true)
            }
          })
        yield* Effect.promise(() =>
          FastCheck.assert(
            FastCheck.asyncProperty(FastCheck.array(publish, { maxLength: 40 }), (ops) =>
              Runtime.runPromise(runtime)(check(ops))
            ),
            { numRuns: backend.live ? 15 : 40 }
          )
        )
      }))

    test("presence converges across nodes, changes report remote joins, and a crashed node's members expire", () =>
      Effect.gen(function* () {
        const { node, expire } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        const changes = yield* a.rooms.changes
        const a1 = yield* a.connect("r", "a1")
        if (!backend.live) yield* TestClock.adjust(1)
        const b1 = yield* b.connect("r", "b1")
        if (!backend.live) yield* TestClock.adjust(1)
        yield* b.connect("r", "b2")
        const ids = (members: ReadonlyArray<{ id: string }>) => members.map((member) => member.id)
        expect(ids(yield* a.rooms.members("r"))).toEqual(["a1", "b1", "b2"])
        expect(ids(yield* b.rooms.members("r"))).toEqual(["a1", "b1", "b2"])
        const joined = yield* Effect.all([Queue.take(changes), Queue.take(changes), Queue.take(changes)])
        expect(joined.map((change) => `${change._tag}:${change.member.id}:${change.member.info}`)).toEqual([
          "Joined:a1:member a1",
          "Joined:b1:member b1",
          "Joined:b2:member b2"
        ])
        yield* b1.close()
        expect(yield* Queue.take(changes)).toEqual({ _tag: "Left", room: "r", member: { id: "b1", info: "member b1" } })
        expect(ids(yield* a.rooms.members("r"))).toEqual(["a1", "b2"])
        // Node B crashes: no goodbye, its entries stay until its heartbeat runs out.
        yield* b.broker.sever
        yield* expire("node-b")
        expect(ids(yield* a.rooms.members("r"))).toEqual(["a1"])
        // Reported once, as expired: node A had listed b2, so its clients may have seen it.
        expect(yield* Queue.take(changes)).toEqual({
          _tag: "Left",
          room: "r",
          member: { id: "b2", info: "member b2" },
          expired: true
        })
        yield* a1.close()
        yield* Scope.close(b.scope, Exit.void)
      }))

    test("a room is subscribed on the broker only while the node has members in it", () =>
      Effect.gen(function* () {
        const { node } = yield* cluster
        const [a, b] = yield* Effect.all([node("node-a"), node("node-b")])
        const changes = yield* a.rooms.changes
        const a1 = yield* a.connect("r", "a1")
        const b1 = yield* b.connect("r", "b1")
        yield* b1.close()
        // B left the room (A hears of it, so B's unsubscribe was sent first): A's next message reaches nothing on B.
        while ((yield* Queue.take(changes))._tag !== "Left") {}
        const before = b.received()
        const b2 = yield* b.connect("s", "b2")
        yield* a1.send("others:lonely")
        a.rooms.publish("s", "all:probe")
        expect(yield* b2.next()).toBe("all:probe")
        expect(b.received() - before).toBe(1)
      }))
  })
}

scenarios(memoryBackend)
scenarios(redisBackend(prefix))
scenarios(redisBackend(prefix, "cluster"))
scenarios(natsBackend(natsPrefix("rooms")))
