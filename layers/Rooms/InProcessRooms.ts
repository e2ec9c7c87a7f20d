import { Effect, Layer, PubSub } from "effect"
import type { Connection, WireMessage } from "../Transport/Transport.ts"
import { type RoomChange, type RoomMember, Rooms, type RoomsService } from "./Rooms.ts"

/** A room of one member, the common case (the relay's room of each unit), without a Map's ~260 bytes. */
interface Solo {
  readonly connection: Connection<unknown>
  readonly member: RoomMember
}

/** A room's members by connection; Map keeps join order. */
type Room = Map<Connection<unknown>, RoomMember> | Solo

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

  /** Joins; the member when it was not in the room yet. */
  const add = (room: string, connection: Connection<unknown>, member: RoomMember): boolean => {
    const members = rooms.get(room)
    if (members === undefined) rooms.set(room, { connection, member })
    else if (members instanceof Map) {
      if (members.has(connection)) return false
      members.set(connection, member)
    } else {
      if (members.connection === connection) return false
      rooms.set(
        room,
        new Map([
          [members.connection, members.member],
          [connection, member]
        ])
      )
    }
    connection.subscribe(room)
    return true
  }
  /** Leaves; the member that left, if it was there. */
  const remove = (room: string, connection: Connection<unknown>): RoomMember | undefined => {
    const members = rooms.get(room)
    if (members === undefined) return undefined
    let member: RoomMember | undefined
    if (members instanceof Map) {
      member = members.get(connection)
      if (member === undefined) return undefined
      members.delete(connection)
      if (members.size === 1) {
        const [remaining] = members
        rooms.set(room, { connection: remaining![0], member: remaining![1] })
      }
    } else {
      if (members.connection !== connection) return undefined
      member = members.member
      rooms.delete(room)
    }
    if (connection.isOpen()) connection.unsubscribe(room)
    return member
  }
  const connectionsOf = (members: Room): Iterable<Connection<unknown>> =>
    members instanceof Map ? members.keys() : [members.connection]

  const service: RoomsService = {
    join: (room, connection, member) =>
      Effect.suspend(() =>
        add(room, connection, member) ? announce(() => ({ _tag: "Joined", room, member })) : Effect.void
      ),
    leave: (room, connection) =>
      Effect.suspend(() => {
        const member = remove(room, connection)
        return member ? announce(() => ({ _tag: "Left", room, member })) : Effect.void
      }),
    // A change to announce needs the PubSub (an Effect): only without listeners is the work synchronous.
    joinNow: (room, connection, member) => listeners === 0 && (add(room, connection, member), true),
    leaveNow: (room, connection) => listeners === 0 && (remove(room, connection), true),
    publish: (room: string, frame: WireMessage, except?: Connection<unknown>) => {
      if (except !== undefined) return except.publish(room, frame)
      const members = rooms.get(room)
      if (!members) return
      // Any member's server reaches them all: one native server-wide publish, no direct send per event.
      for (const connection of connectionsOf(members)) {
        if (!connection.isOpen()) continue
        return connection.publishToAll(room, frame)
      }
    },
    members: (room) =>
      Effect.sync(() => {
        const members = rooms.get(room)
        return members === undefined ? [] : members instanceof Map ? [...members.values()] : [members.member]
      }),
    localCount: (room) => {
      const members = rooms.get(room)
      return members === undefined ? 0 : members instanceof Map ? members.size : 1
    },
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
