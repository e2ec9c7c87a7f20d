import { describe, expect } from "bun:test"
import { Effect, Either, Exit, Layer, Queue, Scope } from "effect"
import fc from "fast-check"
import { InProcessRoomsLive } from "../../layers/Rooms/InProcessRooms.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { InstanceLimitReached, makeUnitRooms, type Seat, type UnitMember } from "../../src/droneengage/UnitRooms.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import { Agents, Everyone, Gcs, topicFor, Unit } from "../../src/droneengage/Routing.ts"
import { it } from "../support/effect.ts"

/** A connection that records what the rooms do with it. */
const fakeConnection = () => {
  const topics = new Set<string>()
  const published: Array<[string, unknown]> = []
  const sent: Array<unknown> = []
  const closed: Array<number> = []
  const connection: Connection<unknown> = {
    id: Math.random(),
    data: undefined,
    remoteAddress: "127.0.0.1",
    send: (message) => {
      sent.push(message)
      return "sent"
    },
    publish: (topic, message) => void published.push([topic, message]),
    publishToAll: () => {},
    subscribe: (topic) => void topics.add(topic),
    unsubscribe: (topic) => void topics.delete(topic),
    isSubscribed: (topic) => topics.has(topic),
    close: (code) => void closed.push(code),
    isOpen: () => closed.length === 0
  }
  return { connection, topics, published, sent, closed }
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
  it.effect("seating subscribes the group's topics; delivery is one publish, or one send to a unit by name", () =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      const gcs = fakeConnection()
      const drone = fakeConnection()
      const g = yield* rooms.enter(member("a", "web", "g"), gcs.connection, 0)
      const d1 = yield* rooms.enter(member("a", "d1", "d"), drone.connection, 0)
      const room = { accountId: "a", group: "1" }
      // On one node a unit has no topic of its own: a message to it by name is sent to its connection.
      expect([...gcs.topics].sort()).toEqual([topicFor(room, Everyone), topicFor(room, Gcs)].sort())
      expect([...drone.topics].sort()).toEqual([topicFor(room, Everyone), topicFor(room, Agents)].sort())
      expect(rooms.deliver(g, Everyone, "x")).toEqual({ _tag: "Delivered", recipients: 1 })
      expect(gcs.published).toEqual([[topicFor(room, Everyone), "x"]])
      expect(rooms.deliver(g, Gcs, "y")).toEqual({ _tag: "Delivered", recipients: 0 })
      expect(gcs.published).toHaveLength(1)
      expect(rooms.deliver(g, Unit("nobody"), "z")).toEqual({ _tag: "TargetNotFound", unitName: "nobody" })
      expect(rooms.deliver(g, Unit("d1"), "to d1")).toEqual({ _tag: "Delivered", recipients: 1 })
      expect(drone.sent).toEqual(["to d1"])
      expect(rooms.deliver(g, Unit("web"), "to itself")).toEqual({ _tag: "Delivered", recipients: 0 })
      expect(gcs.sent).toEqual([])
      expect(gcs.published).toHaveLength(1)
      // A unit of another group of the account is not found; one that left its group (9006) is not either.
      const other = fakeConnection()
      yield* rooms.enter(member("a", "d2", "d", "2"), other.connection, 0)
      expect(rooms.deliver(g, Unit("d2"), "z")).toEqual({ _tag: "TargetNotFound", unitName: "d2" })
      yield* rooms.leaveGroup(d1)
      expect(rooms.deliver(g, Unit("d1"), "z")).toEqual({ _tag: "TargetNotFound", unitName: "d1" })
      expect(drone.sent).toEqual(["to d1"])
      const text = yield* (yield* Metrics).render
      expect(text).toContain('switchboard_de_deliveries_total{server="test"} 2')
    }).pipe(Effect.provide(Layer.merge(Metrics.Default, InProcessRoomsLive)))
  )

  it.effect("onChange is told of every join and leave on the spot, on both paths, until its Scope closes", () =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      let calls = 0
      const scope = yield* Scope.make()
      yield* Scope.extend(
        rooms.onChange(() => void calls++),
        scope
      )
      const a = yield* rooms.enter(member("a", "d1", "d"), fakeConnection().connection, 0)
      expect(calls).toBe(1)
      const b = rooms.enterNow(member("a", "d2", "d"), fakeConnection().connection, 0)
      expect(calls).toBe(2)
      rooms.enterNow(member("a", "d1", "d"), fakeConnection().connection, 0) // replaces a: a leave and a join
      expect(calls).toBe(4)
      yield* rooms.exit(a) // already replaced: no change
      expect(calls).toBe(4)
      expect(rooms.exitNow(b as Seat)).toBe(true)
      expect(calls).toBe(5)
      yield* Scope.close(scope, Exit.void)
      yield* rooms.enter(member("a", "d3", "d"), fakeConnection().connection, 0)
      expect(calls).toBe(5)
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

  /** Enters and exits, on the spot or through the Effects, seen from outside: topics, closes, snapshot, changes. */
  const runScript = (script: ReadonlyArray<Step>, onTheSpot: boolean) =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      const scope = yield* Scope.make()
      const changes = yield* Scope.extend(rooms.changes, scope)
      const seats: Array<Seat> = []
      const sockets: Array<ReturnType<typeof fakeConnection>> = []
      const outcomes: Array<string> = []
      for (const step of script) {
        if (step._tag === "Exit") {
          const seat = seats[step.index % Math.max(1, seats.length)]
          if (!seat) continue
          if (onTheSpot) expect(rooms.exitNow(seat)).toBe(true)
          else yield* rooms.exit(seat)
          continue
        }
        const socket = fakeConnection()
        sockets.push(socket)
        const unit = member(step.account, step.unit, step.actorType, step.group)
        if (onTheSpot) {
          const entered = rooms.enterNow(unit, socket.connection, step.limit)
          if (entered === undefined) throw new Error("expected the synchronous path")
          if (entered instanceof InstanceLimitReached) outcomes.push("refused")
          else seats.push(entered), outcomes.push("seated")
        } else {
          const entered = yield* Effect.either(rooms.enter(unit, socket.connection, step.limit))
          if (Either.isLeft(entered)) outcomes.push("refused")
          else seats.push(entered.right), outcomes.push("seated")
        }
      }
      const events = [...(yield* Queue.takeAll(changes))].map((e) => `${e._tag} ${e.member.unitName}`)
      return {
        outcomes,
        events,
        snapshot: yield* rooms.snapshot,
        sockets: sockets.map((socket) => ({ topics: [...socket.topics].sort(), closed: socket.closed }))
      }
    }).pipe(Effect.provide(Layer.merge(Metrics.Default, InProcessRoomsLive)))

  it.effect("enterNow and exitNow do exactly what enter and exit do (generated scripts)", () =>
    Effect.sync(() =>
      fc.assert(
        fc.property(fc.array(step, { maxLength: 30 }), (script) => {
          const now = Effect.runSync(runScript(script, true))
          const later = Effect.runSync(runScript(script, false))
          expect(now).toEqual(later)
        }),
        { numRuns: 200 }
      )
    )
  )

  it.effect("enterNow leaves the work to enter while the generic rooms have a listener", () =>
    Effect.gen(function* () {
      const rooms = yield* makeUnitRooms("test")
      yield* (yield* Rooms).changes
      expect(rooms.enterNow(member("a", "d1", "d"), fakeConnection().connection, 0)).toBeUndefined()
      expect(yield* rooms.snapshot).toEqual({ accounts: [], accountDetails: {} })
      const seat = yield* rooms.enter(member("a", "d1", "d"), fakeConnection().connection, 0)
      expect(rooms.exitNow(seat)).toBe(false)
      expect((yield* rooms.snapshot).accounts).toEqual(["a"])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(Metrics.Default, InProcessRoomsLive)))
  )
})

type Step =
  | {
      readonly _tag: "Enter"
      readonly account: string
      readonly unit: string
      readonly actorType: "g" | "d"
      readonly group: string
      readonly limit: number
    }
  | { readonly _tag: "Exit"; readonly index: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    _tag: fc.constant("Enter" as const),
    account: fc.constantFrom("a", "b"),
    unit: fc.constantFrom("u1", "u2", "u3"),
    actorType: fc.constantFrom("g" as const, "d" as const),
    group: fc.constantFrom("1", "2"),
    limit: fc.constantFrom(0, 1, 2)
  }),
  fc.record({ _tag: fc.constant("Exit" as const), index: fc.nat(10) })
)
