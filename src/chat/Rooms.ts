import { Deferred, Effect, FiberId, Runtime, Scheduler, type Scope } from "effect"
import { Metrics } from "../../layers/Observability/Metrics.ts"
import { Rooms } from "../../layers/Rooms/Rooms.ts"
import { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { bytesKey, bytesToStored, readStoredMessage, storedLine, storedToBytes } from "./HistoryText.ts"
import { Command, encodeNewMessage, encodePacket, packet } from "./Packet.ts"
import { ErrorReason, joinProblem, okReply } from "./Rules.ts"
import {
  type ChatRoomsApi,
  type ChatRoomsOptions,
  type Member,
  type Room,
  roomNameFor,
  tellExpiredLeaves
} from "./RoomState.ts"
import { makeRosterCatchUp } from "./RosterCatchUp.ts"
import { openSequencedRoom, type SequencedRoom } from "./Sequenced.ts"

export type { ChatRoomsApi, ChatRoomsOptions, Member } from "./RoomState.ts"
export { roomNameFor } from "./RoomState.ts"

/**
 * Rosters, nicks and history of one chat server. Membership and fan-out go through the Rooms
 * service (one native publish per broadcast); the roster order, history, per-room locks and nick
 * rules are the chat's own.
 */
export const makeChatRooms = (
  options: ChatRoomsOptions
): Effect.Effect<ChatRoomsApi, never, StreamStore | Metrics | Rooms | Scope.Scope> =>
  Effect.gen(function* () {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const store = yield* StreamStore
    const clock = yield* Effect.clock
    const metrics = yield* Metrics
    const fanout = yield* Rooms
    const label = { server: options.server }
    const roomsGauge = metrics
      .gauge("switchboard_chat_rooms", "Chat rooms with at least one member", ["server"])
      .labels(label)
    const membersGauge = metrics.gauge("switchboard_chat_members", "Users inside a chat room", ["server"]).labels(label)
    const messagesCounter = metrics
      .counter("switchboard_chat_messages_total", "Chat messages broadcast", ["server"])
      .labels(label)
    const joinsCounter = metrics.counter("switchboard_chat_joins_total", "Room joins", ["server"]).labels(label)
    const historyErrors = metrics
      .counter("switchboard_chat_history_errors_total", "History reads or writes that failed", ["server"])
      .labels(label)

    const { limits } = options
    const bounds = { maxBytes: limits.historyMaxBytes }
    const rooms = new Map<string, Room>()
    const afterThisTurn = Effect.yieldNow().pipe(Effect.withScheduler(Scheduler.timer(0)))
    const roomOfMember = new Map<number, Room>()

    const logHistoryFailure = (what: string) => (error: unknown) =>
      Effect.sync(() => historyErrors.inc()).pipe(
        Effect.zipRight(Effect.logError(`chat history ${what} failed`, error))
      )

    // Rooms that span nodes number messages by the shared history and deliver them in that order on every node.
    const sequencing = fanout.ordered && {
      store,
      ordered: fanout.ordered,
      bounds,
      runFork: (effect: Effect.Effect<void>) => runFork(effect),
      failed: logHistoryFailure
    }

    const openRoom = (name: Uint8Array): Room => {
      const key = bytesKey(name)
      const existing = rooms.get(key)
      if (existing) return existing
      const roomName = roomNameFor(name)
      const stream = `chat/${bytesToStored(name)}`
      const room: Room = {
        key,
        name: roomName,
        stream,
        members: [],
        lock: Effect.unsafeMakeSemaphore(1),
        closed: false,
        busy: 0,
        backlog: [],
        pending: [],
        writer: undefined,
        sequenced:
          sequencing &&
          openSequencedRoom(sequencing, roomName, stream, () => room.members, {
            unknownSender: (id) => rosterCatchUp.unknownSender(room, id),
            peerResumed: () => rosterCatchUp.peerResumed(room)
          })
      }
      rooms.set(key, room)
      return room
    }

    /** Appends the room's waiting history lines in order, then completes its writer. */
    const writeHistory = (room: Room, done: Deferred.Deferred<void>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const lines = room.pending
        if (lines.length === 0) {
          room.writer = undefined
          return Deferred.succeed(done, undefined)
        }
        room.pending = []
        return Effect.forEach(lines, (line) => store.append(room.stream, line, bounds), { discard: true }).pipe(
          // A failure (or defect) is logged and the writer goes on, so no join ever waits on a dead writer.
          Effect.catchAllCause(logHistoryFailure("append")),
          Effect.zipRight(writeHistory(room, done))
        )
      })

    const appendNow = store.appendNow
    const appendLineNow = (room: Room, line: string) => {
      try {
        appendNow!(room.stream, line, bounds, clock.unsafeCurrentTimeMillis())
      } catch (defect) {
        runFork(logHistoryFailure("append")(defect))
      }
    }

    /** Every history line of the room written (what a join reads, and before the history is removed). */
    const historyWritten = (room: Room) =>
      Effect.suspend(() =>
        room.sequenced ? room.sequenced.settled : room.writer === undefined ? Effect.void : Deferred.await(room.writer)
      )

    /** Broadcasts one message now and queues its history line (empty messages are broadcast, not recorded, like the original). */
    const broadcast = (room: Room, member: Member, text: Uint8Array) => {
      const frame = encodeNewMessage(member.id, text)
      const { connection } = member
      if (connection.isOpen()) {
        // Natively to the others through the sender's socket, and the echo inside its own message handler,
        // where the write is corked with the rest of that turn (a publish without a sender costs an uncorked write).
        fanout.publish(room.name, frame, connection)
        connection.send(frame)
      } else fanout.publish(room.name, frame)
      messagesCounter.inc()
      // History after the deliveries, so nothing it costs comes before them.
      if (text.length > 0) {
        const line = storedLine(member.linePrefix, member.nick, text)
        // A store that appends without I/O takes the line on the spot, unless earlier lines still wait for a writer.
        if (appendNow !== undefined && room.writer === undefined) return appendLineNow(room, line)
        room.pending.push(line)
        if (room.writer === undefined) {
          const done = Deferred.unsafeMake<void>(FiberId.none)
          room.writer = done
          // Yields to the next event-loop turn first (a microtask yield would end after this one message's callback),
          // so one fiber appends every message of the turn as one batch.
          runFork(Effect.zipRight(afterThisTurn, writeHistory(room, done)))
        }
      }
    }

    /** Runs a join or leave under the room's lock; messages that came while it waited go out before it, the rest right after. */
    const exclusive = <A, E = never>(room: Room, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.acquireUseRelease(
        Effect.sync(() => room.busy++),
        () =>
          room.lock.withPermits(1)(
            Effect.sync(() => {
              drainBacklog(room)
              if (room.sequenced) room.sequenced.order.paused = true
            }).pipe(
              Effect.zipRight(effect),
              Effect.ensuring(
                Effect.sync(() => {
                  drainBacklog(room)
                  if (!room.sequenced) return
                  room.sequenced.order.paused = false
                  room.sequenced.order.release()
                })
              )
            )
          ),
        () => Effect.sync(() => room.busy--)
      )

    const rosterCatchUp = yield* makeRosterCatchUp({ fanout, exclusive, openRooms: () => rooms.values() })

    const drainBacklog = (room: Room) => {
      const waiting = room.backlog.splice(0)
      for (const { member, text } of waiting) if (roomOfMember.get(member.id) === room) broadcast(room, member, text)
    }

    const userFrame = (cmd: number, member: Pick<Member, "id" | "nick">) =>
      encodePacket(packet(cmd, { p1: member.id, data: member.nick }))

    /** Members on other nodes too, newest first, when the room spans nodes (a presence read; none otherwise). */
    const clusterRoster = (room: Room) =>
      fanout.spansNodes
        ? Effect.map(fanout.members(room.name), (members) =>
            members.map((entry) => ({ id: Number(entry.id), nick: storedToBytes(entry.info) })).reverse()
          )
        : Effect.succeed(undefined)

    const joinLocked = (member: Member, room: Room, uid: number) =>
      Effect.gen(function* () {
        const isNew = room.members.length === 0
        const roster = yield* clusterRoster(room)
        const memberCount = roster?.length ?? room.members.length
        const problem = joinProblem(
          { roomExists: !isNew, roomCount: rooms.size - (isNew ? 1 : 0), memberCount },
          limits
        )
        if (problem !== undefined) return problem
        if (isNew) roomsGauge.inc()
        room.members.push(member)
        roomOfMember.set(member.id, room)
        membersGauge.inc()
        joinsCounter.inc()
        const { connection } = member
        connection.send(encodePacket(okReply(uid)))
        if (roster) for (const other of [member, ...roster]) connection.send(userFrame(Command.NEW_USER, other))
        else
          for (let i = room.members.length - 1; i >= 0; i--)
            connection.send(userFrame(Command.NEW_USER, room.members[i]!))
        if (room.sequenced) yield* enterSequenced(member, room, room.sequenced, roster ?? [], isNew)
        else yield* enter(member, room)
        return undefined
      })

    /** The history (every line written first), then into the room, then _NEW_USER to the others. */
    const enter = (member: Member, room: Room) =>
      Effect.gen(function* () {
        const { connection } = member
        yield* historyWritten(room)
        const history = yield* store
          .readAfter(room.stream, 0)
          .pipe(Effect.catchAll((error) => logHistoryFailure("read")(error).pipe(Effect.as([]))))
        for (const entry of history)
          connection.send(
            encodePacket(packet(Command.LOGGED_MSG, { data: storedToBytes(readStoredMessage(entry.payload).line) }))
          )
        yield* fanout.join(room.name, connection, { id: String(member.id), info: bytesToStored(member.nick) })
        const joined = userFrame(Command.NEW_USER, member)
        if (connection.isOpen()) fanout.publish(room.name, joined, connection)
        else fanout.publish(room.name, joined)
      })

    /**
     * Into the room first (on the broker too), then the history up to the last seq this node handed out: nothing is
     * handed out while the join holds the room, so the joiner goes live right after that seq, with nothing missed or twice.
     * The room's first member on this node is also told who joined or left elsewhere while its node started listening
     * to the room (their frames may have gone before); whoever it was listed is not announced to it again.
     */
    const enterSequenced = (
      member: Member,
      room: Room,
      sequenced: SequencedRoom,
      roster: ReadonlyArray<Pick<Member, "id" | "nick">>,
      first: boolean
    ) =>
      Effect.gen(function* () {
        const { connection } = member
        yield* fanout.join(room.name, connection, { id: String(member.id), info: bytesToStored(member.nick) })
        if (sequenced.order.delivered === undefined) yield* sequenced.start
        for (const line of yield* sequenced.history)
          connection.send(encodePacket(packet(Command.LOGGED_MSG, { data: line })))
        sequenced.listed(connection, roster, first)
        // Read again now that the room's frames reach this node: whoever came or went in between is told here
        // (their frames may have gone before it listened); if the read fails, it is retried a second later.
        if (first && !(yield* rosterCatchUp.now(room))) rosterCatchUp.later(room)
        sequenced.announce(userFrame(Command.NEW_USER, member), connection)
      })

    /** A room created for a join that was refused never had members: forget it quietly. */
    const discardIfUnused = (room: Room) =>
      Effect.sync(() => {
        if (room.members.length > 0) return
        room.closed = true
        room.sequenced?.close()
        rooms.delete(room.key)
      })

    const dropEmptyRoom = (room: Room) =>
      Effect.gen(function* () {
        room.closed = true
        roomsGauge.dec()
        yield* historyWritten(room)
        room.sequenced?.close()
        // A room spanning nodes may go on elsewhere: its history (and seqs) stay.
        if (!options.persistentHistory && !room.sequenced)
          yield* store.remove(room.stream).pipe(Effect.catchAll(logHistoryFailure("remove")))
        // Removed from the map only now: joiners that found it wait for the lock, see it closed, and retry.
        rooms.delete(room.key)
      })

    const api: ChatRoomsApi = {
      stats: () => ({ rooms: rooms.size }),
      join: (member, roomName, uid) =>
        Effect.suspend(() => {
          if (roomOfMember.has(member.id)) return Effect.succeed(ErrorReason.refused)
          const attempt: Effect.Effect<ErrorReason | undefined> = Effect.suspend(() => {
            const room = openRoom(roomName)
            return exclusive(
              room,
              Effect.suspend((): Effect.Effect<ErrorReason | undefined | "retry"> => {
                if (room.closed) return Effect.succeed("retry")
                return joinLocked(member, room, uid).pipe(Effect.tap(() => discardIfUnused(room)))
              })
            ).pipe(Effect.flatMap((result) => (result === "retry" ? attempt : Effect.succeed(result))))
          })
          return attempt
        }),
      message: (member, text) => {
        const room = roomOfMember.get(member.id)
        if (!room) return
        if (room.sequenced) {
          messagesCounter.inc()
          return room.sequenced.message(member, text)
        }
        if (room.busy > 0) room.backlog.push({ member, text })
        else broadcast(room, member, text)
      },
      flushHistory: Effect.suspend(() => Effect.forEach([...rooms.values()], historyWritten, { discard: true })),
      leave: (member) =>
        Effect.suspend(() => {
          const room = roomOfMember.get(member.id)
          if (!room) return Effect.void
          return exclusive(
            room,
            Effect.gen(function* () {
              roomOfMember.delete(member.id)
              const index = room.members.indexOf(member)
              if (index >= 0) room.members.splice(index, 1)
              membersGauge.dec()
              yield* fanout.leave(room.name, member.connection)
              // On a cluster the room may go on elsewhere after its last member here left: they hear it too.
              if (room.sequenced) room.sequenced.announce(userFrame(Command.DEL_USER, member))
              else if (room.members.length > 0 || fanout.spansNodes)
                fanout.publish(room.name, userFrame(Command.DEL_USER, member))
              if (room.members.length === 0) return yield* dropEmptyRoom(room)
            })
          )
        })
    }
    // History still waiting when the server stops is written before the store goes away.
    yield* Effect.addFinalizer(() => api.flushHistory)
    if (fanout.spansNodes) yield* tellExpiredLeaves(fanout, rooms.values.bind(rooms))
    return api
  })
