import { type Deferred, Effect, Queue } from "effect"
import type { RoomChange, RoomsService } from "../../layers/Rooms/Rooms.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import type { ChatLimits } from "./Config.ts"
import { storedToBytes } from "./HistoryText.ts"
import { Command, encodePacket, packet } from "./Packet.ts"
import type { ErrorReason } from "./Rules.ts"
import type { SequencedRoom } from "./Sequenced.ts"

/** A user with an accepted nick, as the rooms see it: its id, its nick and its connection. */
export interface Member {
  readonly id: number
  readonly nick: Uint8Array
  readonly connection: Connection<unknown>
  /** storedLinePrefix(nick), computed once: what its history lines start with. */
  readonly linePrefix: string | undefined
}

export interface Room {
  readonly key: string
  /** Its name in the Rooms service (and native topic): "chat/" + the room name's bytes in hex. */
  readonly name: string
  readonly stream: string
  /** Members in join order; the roster goes out newest first, like the original's linked list. */
  readonly members: Array<Member>
  /** Serializes joins and leaves of this room (and the messages that arrive meanwhile), so every member sees one order. */
  readonly lock: Effect.Semaphore
  closed: boolean
  /** Joins and leaves holding or waiting for the lock; while there are any, messages wait in `backlog`. */
  busy: number
  readonly backlog: Array<{ readonly member: Member; readonly text: Uint8Array }>
  /** History lines broadcast but not yet appended, oldest first; one writer per room appends them in order. */
  pending: Array<string>
  /** Completed once the running writer has appended everything (undefined while no writer runs). */
  writer: Deferred.Deferred<void> | undefined
  /** Rooms that span nodes: messages numbered by the shared history and delivered in that order (else undefined). */
  readonly sequenced: SequencedRoom | undefined
}

export interface ChatRoomsOptions {
  readonly limits: ChatLimits
  /** History outlives empty rooms (a persistent StreamStore); otherwise it goes with the room. */
  readonly persistentHistory: boolean
  /** `server` label of the metrics. */
  readonly server: string
}

export interface ChatRoomsApi {
  /**
   * Joins (creating the room on first use) and sends, in order: _RESP_OK, the roster, the
   * history, then _NEW_USER to the others. Returns the refusal reason instead when a limit is hit.
   */
  readonly join: (member: Member, roomName: Uint8Array, uid: number) => Effect.Effect<ErrorReason | undefined>
  /**
   * Sends _NEW_MSG to every member, the sender included, and records "nick: text" in the history
   * (appended in order off the hot path; a join reads it only after every earlier line is written).
   * Synchronous: while a join or leave holds the room, the message waits and goes out right after it.
   * In a room that spans nodes the line is stored first and every node delivers in the history's order.
   */
  readonly message: (member: Member, text: Uint8Array) => void
  /** Appends every history line still waiting (at shutdown and in tests). */
  readonly flushHistory: Effect.Effect<void>
  /** Leaves the member's room (if any): _DEL_USER to the others; the last one out closes the room. */
  readonly leave: (member: Member) => Effect.Effect<void>
  /** Rooms with members on this node right now (for /health). */
  readonly stats: () => { readonly rooms: number }
}

/**
 * On a cluster, a node that dies cannot announce its members' leaves: the Rooms service reports them
 * as expired, and each node tells its own members of the room (_DEL_USER), as the dead node would have.
 */
export const tellExpiredLeaves = (fanout: RoomsService, openRooms: () => Iterable<Room>) =>
  Effect.gen(function* () {
    const changes = yield* fanout.changes
    const tell = (change: RoomChange) => {
      if (change._tag !== "Left" || !change.expired) return
      for (const room of openRooms()) {
        if (room.name !== change.room) continue
        // Told once: a roster catch-up may have told it already, and who was never told of it need not be.
        if (room.sequenced && !room.sequenced.forget(Number(change.member.id))) continue
        const frame = encodePacket(
          packet(Command.DEL_USER, { p1: Number(change.member.id), data: storedToBytes(change.member.info) })
        )
        for (const member of room.members) member.connection.send(frame)
      }
    }
    yield* Effect.forkScoped(Effect.forever(Effect.map(Queue.take(changes), tell)))
  })

/** The Rooms-service name of a chat room: prefixed, and hex so any bytes make a safe topic. */
export const roomNameFor = (name: Uint8Array) =>
  `chat/${Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("hex")}`
