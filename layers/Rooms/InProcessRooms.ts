import { Effect, Layer, PubSub } from "effect"
import type { Connection, WireMessage } from "../Transport/Transport.ts"
import { type RoomChange, type RoomMember, Rooms, type RoomsService } from "./Rooms.ts"

/** A room's members by connection; Map keeps join order. */
type Room = Map<Connection<unknown>, RoomMember>

/**
 * Rooms of one process on the transport's native topics: join subscribes the connection to the
 * topic named like the room, publish is one native publish. A publish without a sender is the
 * server-wide publish of any member's server, so no server handle is needed and the same code runs
 * on Bun and on the memory transport.
 */
export const makeInProcessRooms = Effect.gen(function* () {
  const rooms = new Map<string, Room>()
  const changes = yield* PubSub.unbounded<RoomChange>()
  // With nobody subscribed (the usual case: the relay reports its own unit changes) a join or leave builds no change.
  let listeners = 0
  const announce = (change: () => RoomChange) => (listeners === 0 ? Effect.void : PubSub.publish(changes, change()))

  const service: RoomsService = {
    join: (room, connection, member) =>
      Effect.suspend(() => {
        let members = rooms.get(room)
        if (!members) rooms.set(room, (members = new Map()))
        if (members.has(connection)) return Effect.void
        members.set(connection, member)
        connection.subscribe(room)
        return announce(() => ({ _tag: "Joined", room, member }))
      }),
    leave: (room, connection) =>
      Effect.suspend(() => {
        const members = rooms.get(room)
        const member = members?.get(connection)
        if (!members || !member) return Effect.void
        members.delete(connection)
        if (members.size === 0) rooms.delete(room)
        if (connection.isOpen()) connection.unsubscribe(room)
        return announce(() => ({ _tag: "Left", room, member }))
      }),
    publish: (room: string, frame: WireMessage, except?: Connection<unknown>) => {
      if (except !== undefined) return except.publish(room, frame)
      const members = rooms.get(room)
      if (!members) return
      // Any member's server reaches them all: one native server-wide publish, no direct send per event.
      for (const connection of members.keys()) {
        if (!connection.isOpen()) continue
        return connection.publishToAll(room, frame)
      }
    },
    members: (room) => Effect.sync(() => [...(rooms.get(room)?.values() ?? [])]),
    localCount: (room) => rooms.get(room)?.size ?? 0,
    changes: Effect.zipRight(
      Effect.acquireRelease(
        Effect.sync(() => listeners++),
        () => Effect.sync(() => listeners--)
      ),
      PubSub.subscribe(changes)
    )
  }
  return service
})

/** The single-node Rooms: the default of every program and the double the protocol tests use. */
export const InProcessRoomsLive = Layer.effect(Rooms, makeInProcessRooms)
