import { describe, expect } from "bun:test"
import { Effect, Either, Layer, Queue } from "effect"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { makeUnitRooms, type UnitMember } from "../../src/droneengage/UnitRooms.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import { Agents, Everyone, Gcs, topicFor, Unit } from "../../src/droneengage/Routing.ts"
import { it } from "../support/effect.ts"

/** A connection that records what the rooms do with it. */
const fakeConnection = () => {
  const topics = new Set<string>()
  const published: Array<[string, unknown]> = []
  const closed: Array<number> = []
  const connection: Connection<unknown> = {
    id: Math.random(),
    data: undefined,
    remoteAddress: "127.0.0.1",
    send: () => "sent",
    publish: (topic, message) => void published.push([topic, message]),
    publishToAll: () => {},
    subscribe: (topic) => void topics.add(topic),
    unsubscribe: (topic) => void topics.delete(topic),
    isSubscribed: (topic) => topics.has(topic),
    close: (code) => void closed.push(code),
    isOpen: () => closed.length === 0
  }
  return { connection, topics, published, closed }
}

const member = (accountId: string, unitName: string, actorType: "g" | "d", group = "1"): UnitMember => ({
  accountId,
  group,
  unitName,
  actorType,
  permission: 1,
  requestId: `${accountId}/${unitName}`
})

describe("UnitRooms (in process)", () => {
  it.effect("seating subscribes the unit's topics; delivery is one publish with the recipient count", () =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      const gcs = fakeConnection()
      const drone = fakeConnection()
      const g = yield* rooms.enter(member("a", "web", "g"), gcs.connection, 0)
      yield* rooms.enter(member("a", "d1", "d"), drone.connection, 0)
      const room = { accountId: "a", group: "1" }
      expect([...gcs.topics].sort()).toEqual(
        [topicFor(room, Everyone), topicFor(room, Gcs), topicFor(room, Unit("web"))].sort()
      )
      expect(drone.topics.has(topicFor(room, Agents))).toBe(true)
      expect(rooms.deliver(g, Everyone, "x")).toEqual({ _tag: "Delivered", recipients: 1 })
      expect(gcs.published).toEqual([[topicFor(room, Everyone), "x"]])
      expect(rooms.deliver(g, Gcs, "y")).toEqual({ _tag: "Delivered", recipients: 0 })
      expect(gcs.published).toHaveLength(1)
      expect(rooms.deliver(g, Unit("nobody"), "z")).toEqual({ _tag: "TargetNotFound", unitName: "nobody" })
      const text = yield* (yield* Metrics).render
      expect(text).toContain('switchboard_de_deliveries_total{server="test"} 1')
    }).pipe(Effect.provide(Layer.merge(Metrics.Default, InProcessRoomsLive)))
  )

  it.effect("presence, replacement, leave and exit, with a change event for each", () =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      const changes = yield* rooms.changes
      const first = fakeConnection()
      const second = fakeConnection()
      const old = yield* rooms.enter(member("a", "d1", "d"), first.connection, 0)
      const fresh = yield* rooms.enter(member("a", "d1", "d"), second.connection, 0)
      expect(first.closed).toEqual([4004])
      expect(first.topics.size).toBe(0)
      yield* rooms.exit(old) // the replaced socket's late finalizer changes nothing
      expect(yield* rooms.presence({ accountId: "a", group: "1" })).toEqual([{ unitName: "d1", actorType: "d" }])
      yield* rooms.leaveGroup(fresh)
      expect(yield* rooms.presence({ accountId: "a", group: "1" })).toEqual([])
      expect(rooms.deliver(fresh, Everyone, "x")).toEqual({ _tag: "NotInGroup" })
      expect((yield* rooms.snapshot).accounts).toEqual(["a"])
      yield* rooms.exit(fresh)
      expect(yield* rooms.snapshot).toEqual({ accounts: [], accountDetails: {} })
      const events = yield* Queue.takeAll(changes)
      expect([...events].map((e) => e._tag)).toEqual(["Entered", "Left", "Entered", "Left"])
    }).pipe(Effect.provide(Layer.merge(Metrics.Default, InProcessRoomsLive)))
  )

  it.effect("instance limits count the account's units across groups, not other accounts", () =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      yield* rooms.enter(member("a", "u1", "g", "1"), fakeConnection().connection, 2)
      yield* rooms.enter(member("a", "u2", "d", "2"), fakeConnection().connection, 2)
      yield* rooms.enter(member("b", "u3", "d"), fakeConnection().connection, 2)
      const refused = yield* Effect.either(rooms.enter(member("a", "u4", "d"), fakeConnection().connection, 2))
      expect(Either.isLeft(refused) && refused.left._tag).toBe("InstanceLimitReached")
      expect(rooms.admits(member("a", "u1", "g"), 2)).toBe(true)
      expect(rooms.admits(member("a", "u9", "g"), 0)).toBe(true)
    }).pipe(Effect.provide(Layer.merge(Metrics.Default, InProcessRoomsLive)))
  )
})
