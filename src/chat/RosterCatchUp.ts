import { Effect, FiberSet, Schedule } from "effect"
import type { RoomsService } from "../../layers/Rooms/Rooms.ts"
import { storedToBytes } from "./HistoryText.ts"
import type { Listed } from "./ListedJoins.ts"
import { encodePacket, packet } from "./Packet.ts"
import type { Room } from "./RoomState.ts"

/** Two default cluster heartbeats: by then every live node has written its presence entries again after an outage. */
const presenceRewrittenAfter = "3 seconds"

export interface RosterCatchUpOptions {
  readonly fanout: RoomsService
  /** Runs `effect` under the room's lock: nothing of the room is handed out meanwhile. */
  readonly exclusive: <A, E>(room: Room, effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
  readonly openRooms: () => Iterable<Room>
}

/**
 * On a cluster, joins and leaves other nodes sent can miss this node (an outage, or sent before it listened to the
 * room): a presence read against what its members were told (ListedJoins) tells them what they missed, each once.
 */
export const makeRosterCatchUp = (options: RosterCatchUpOptions) =>
  Effect.gen(function* () {
    const { fanout, exclusive, openRooms } = options
    // Retries run in the background, ended with the server.
    const inScope = yield* FiberSet.makeRuntime<never>()

    /** Reads the room's members on every node and tells this node's members what they missed; false when unreadable. */
    const catchUp = (room: Room): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        const { sequenced } = room
        if (!fanout.membersExact || !sequenced || room.closed) return Effect.succeed(true)
        return fanout.membersExact(room.name).pipe(
          Effect.map((members) => {
            const present: Array<Listed> = members.map((entry) => ({
              id: Number(entry.id),
              nick: storedToBytes(entry.info)
            }))
            const local = new Set(room.members.map((member) => member.id))
            for (const change of sequenced.rosterCatchUp(present, local)) {
              const frame = encodePacket(packet(change.cmd, { p1: change.id, data: change.nick }))
              for (const { connection } of room.members)
                if (!change.skip?.has(connection) && connection.isOpen()) connection.send(frame)
            }
            return true
          }),
          Effect.catchAll((error) =>
            Effect.as(Effect.logWarning(`chat roster catch-up: presence unreadable (${error.message})`), false)
          )
        )
      })

    /** The catch-up under the room's lock, retried every second for half a minute. */
    const retried = (room: Room) =>
      exclusive(
        room,
        Effect.flatMap(catchUp(room), (done) => (done ? Effect.void : Effect.fail("unreadable")))
      ).pipe(
        Effect.retry({ schedule: Schedule.spaced("1 second"), times: 30, while: () => !room.closed }),
        Effect.ignore
      )

    // Registered before any room opens, so a room's roster catch-up takes its lock before its message catch-up reads.
    // Each room reads presence when the broker is back, and again once every node has rewritten its own entries (at
    // its first heartbeat back, should the broker have lost them).
    if (fanout.ordered) {
      const { ordered } = fanout
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          ordered.resumed(() => {
            for (const room of openRooms())
              if (room.sequenced)
                inScope(Effect.zipRight(retried(room), Effect.delay(retried(room), presenceRewrittenAfter)))
          })
        ),
        (stop) => Effect.sync(stop)
      )
    }

    return {
      /** Under the room's lock already (a join): the catch-up now, false when presence was unreadable. */
      now: catchUp,
      /** The catch-up a second from now, retried (after a failed `now`). */
      later: (room: Room) => void inScope(Effect.delay(retried(room), "1 second"))
    }
  })
