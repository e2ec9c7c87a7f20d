import { describe, expect } from "bun:test"
import { Effect, FastCheck as fc, Layer, Queue, Scope } from "effect"
import { InProcessRoomsLive, makeInProcessRooms } from "../../../layers/Rooms/InProcessRooms.ts"
import { Rooms } from "../../../layers/Rooms/Rooms.ts"
import { MemoryNetwork, MemoryTransportTest } from "../../../layers/Transport/MemoryTransport.ts"
import { accept, type Connection, Transport } from "../../../layers/Transport/Transport.ts"
import { defaultSocketLimits } from "../../../src/shared/SocketLimits.ts"
import { it } from "../../support/effect.ts"

/** A server whose clients join the room named in their URL and say "all:<text>" or "others:<text>". */
const start = Effect.gen(function* () {
  const transport = yield* Transport
  const rooms = yield* Rooms
  return yield* transport.serve({
    name: "rooms-test",
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
          return {
            onMessage: (message) => {
              const text = String(message)
              if (text.startsWith("others:")) rooms.publish(room, text, connection)
              else if (text.startsWith("all:")) rooms.publish(room, text)
              else if (text === "leave") return rooms.leave(room, connection)
            }
          }
        })
    }
  })
})

const TestLayers = Layer.merge(MemoryTransportTest, InProcessRoomsLive)

describe("InProcessRooms", () => {
  it.effect("publish with a sender reaches the others; without one it reaches every member once; rooms are apart", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const server = yield* start
      const a = yield* network.connect(server.port, "/?room=r1&id=a")
      const b = yield* network.connect(server.port, "/?room=r1&id=b")
      const c = yield* network.connect(server.port, "/?room=r2&id=c")
      yield* a.send("others:1")
      expect(yield* b.next()).toBe("others:1")
      yield* b.send("all:2")
      expect(yield* a.next()).toBe("all:2")
      expect(yield* b.next()).toBe("all:2")
      // c's room is another: a message to r2 from c is the next thing c sees.
      yield* c.send("all:3")
      expect(yield* c.next()).toBe("all:3")
      yield* a.expectSilence()
      yield* b.expectSilence()
    }).pipe(Effect.provide(TestLayers))
  )

  it.effect("members in join order, changes reported, a leaver gets nothing more and empty rooms are dropped", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const rooms = yield* Rooms
      const changes = yield* rooms.changes
      const server = yield* start
      const a = yield* network.connect(server.port, "/?room=r&id=a")
      const b = yield* network.connect(server.port, "/?room=r&id=b")
      expect((yield* rooms.members("r")).map((m) => m.id)).toEqual(["a", "b"])
      expect(rooms.localCount("r")).toBe(2)
      yield* b.send("leave")
      yield* a.send("all:after")
      expect(yield* a.next()).toBe("all:after")
      yield* b.expectSilence()
      yield* a.close()
      const seen = yield* Effect.all([
        Queue.take(changes),
        Queue.take(changes),
        Queue.take(changes),
        Queue.take(changes)
      ])
      expect(seen.map((change) => `${change._tag}:${change.member.id}`)).toEqual([
        "Joined:a",
        "Joined:b",
        "Left:b",
        "Left:a"
      ])
      expect(rooms.localCount("r")).toBe(0)
      expect(yield* rooms.members("r")).toEqual([])
    }).pipe(Effect.provide(TestLayers))
  )

  it.effect("a subscriber sees the changes made while it listens, none from before or after", () =>
    Effect.gen(function* () {
      const network = yield* MemoryNetwork
      const rooms = yield* Rooms
      const server = yield* start
      const outer = yield* Effect.scope
      yield* network.connect(server.port, "/?room=r&id=before")
      const seen = yield* Effect.scoped(
        Effect.gen(function* () {
          const changes = yield* rooms.changes
          // The client lives in the test's scope: only the subscription ends with this one.
          yield* Scope.extend(network.connect(server.port, "/?room=r&id=during"), outer)
          return yield* Queue.take(changes)
        })
      )
      expect(`${seen._tag}:${seen.member.id}`).toBe("Joined:during")
      yield* network.connect(server.port, "/?room=r&id=after")
      const later = yield* rooms.changes
      const last = yield* network.connect(server.port, "/?room=r&id=last")
      yield* last.close()
      const next = yield* Effect.all([Queue.take(later), Queue.take(later)])
      expect(next.map((change) => `${change._tag}:${change.member.id}`)).toEqual(["Joined:last", "Left:last"])
      expect(rooms.localCount("r")).toBe(3)
    }).pipe(Effect.provide(TestLayers))
  )
})

/** A connection double with only what the rooms touch: its topics. */
const fakeConnection = (name: string) => {
  const topics = new Set<string>()
  const connection = {
    name,
    topics,
    subscribe: (topic: string) => void topics.add(topic),
    unsubscribe: (topic: string) => void topics.delete(topic),
    isOpen: () => true
  }
  return connection as typeof connection & Connection<unknown>
}

describe("InProcessRooms membership", () => {
  it.effect("any sequence of joins and leaves keeps join order, counts and topics as a list model does", () =>
    Effect.gen(function* () {
      const joinsAndLeaves = fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 4 }), fc.boolean()), {
        maxLength: 60
      })
      const samples = fc.sample(joinsAndLeaves, { numRuns: 200, seed: 13 })
      for (const ops of samples) {
        const rooms = yield* makeInProcessRooms
        const connections = Array.from({ length: 5 }, (_, i) => fakeConnection(`c${i}`))
        const model: Array<number> = []
        for (const [join, index, now] of ops) {
          const connection = connections[index]!
          if (join) {
            if (now) rooms.joinNow!("r", connection, { id: connection.name, info: "" })
            else yield* rooms.join("r", connection, { id: connection.name, info: "" })
            if (!model.includes(index)) model.push(index)
          } else {
            if (now) rooms.leaveNow!("r", connection)
            else yield* rooms.leave("r", connection)
            if (model.includes(index)) model.splice(model.indexOf(index), 1)
          }
          expect((yield* rooms.members("r")).map((member) => member.id)).toEqual(model.map((i) => `c${i}`))
          expect(rooms.localCount("r")).toBe(model.length)
          for (const [i, c] of connections.entries()) expect(c.topics.has("r")).toBe(model.includes(i))
        }
      }
    })
  )
})
