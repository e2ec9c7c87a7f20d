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

    const settled = fanout.ordered?.presenceSettled ?? Effect.void

    /**
     * Nothing of the room is handed out until presence can be trusted and has been read once (so a member's join
     * comes before its messages, and a broker that lost its data does not make live members leave and come back);
     * should that read fail, the retries go on in the background while the room goes on. `again`: read once more
     * when every node has surely written its presence again, for entries another node wrote late.
     */
    const resync = (room: Room, again: boolean) => {
      const order = room.sequenced?.order
      if (!order) return
      order.holds++
      let holding = true
      const unhold = Effect.sync(() => {
        if (!holding) return
        holding = false
        order.holds--
        order.release()
      })
      const first = exclusive(room, catchUp(room)).pipe(Effect.ensuring(unhold))
      inScope(
        Effect.gen(function* () {
          yield* settled
          if (!(yield* first)) yield* retried(room)
          if (again) yield* Effect.delay(retried(room), presenceRewrittenAfter)
        }).pipe(Effect.onInterrupt(() => unhold))
      )
    }

    /**
     * A message from a member this node's members were not told of (its join was lost in an outage, or is still on
     * its way from another node): presence is read, and again once every node surely rewrote its entries if it is not
     * there yet; then its messages go out, told or not (a member that joined and left meanwhile is in no roster).
     */
    const unknownSender = (room: Room, id: number) =>
      void inScope(
        Effect.gen(function* () {
          yield* settled
          yield* exclusive(room, catchUp(room))
          if (!room.sequenced?.knows(id)) yield* Effect.delay(exclusive(room, catchUp(room)), presenceRewrittenAfter)
        }).pipe(Effect.ensuring(Effect.sync(() => room.sequenced?.admit(id))))
      )

    // Registered before any room opens, so a room's roster catch-up holds it before its message catch-up reads.
    if (fanout.ordered) {
      const { ordered } = fanout
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          ordered.resumed(() => {
            for (const room of openRooms()) if (room.sequenced) resync(room, true)
          })
        ),
        (stop) => Effect.sync(stop)
      )
    }

    return {
      /** Under the room's lock already (a join): the catch-up now, false when presence was unreadable. */
      now: catchUp,
      /** The catch-up a second from now, retried (after a failed `now`). */
      later: (room: Room) => void inScope(Effect.delay(retried(room), "1 second")),
      unknownSender,
      /** Another node is back after an outage: what it told meanwhile may be lost, so the room reads presence. */
      peerResumed: (room: Room) => resync(room, false)
    }
  })
