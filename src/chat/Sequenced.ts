import { Effect, Schedule } from "effect"
import type { OrderedDelivery } from "../../layers/Rooms/Rooms.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { Connection, WireMessage } from "../../layers/Transport/Transport.ts"
import type { StreamBounds, StreamEntry } from "../storage/Stream.ts"
import { appendBatch, type BatchAppendOptions } from "./BatchAppend.ts"
import { readStoredMessage, storedLine, storedMessage, storedToBytes } from "./HistoryText.ts"
import { type Listed, ListedJoins, type RosterChange } from "./ListedJoins.ts"
import { Command, encodeNewMessage, encodePacket, messageSender, packet } from "./Packet.ts"
import { makeOutgoingQueue } from "./OutgoingQueue.ts"
import { RoomOrder, unwrap, wrapAfter, wrapNumbered, wrapReach } from "./RoomOrder.ts"

/** The sender of a message, as the rooms know it. */
export interface Sender {
  readonly id: number
  readonly nick: Uint8Array
  readonly linePrefix: string | undefined
}

/**
 * A chat room whose messages are numbered by the shared history (rooms that span nodes): each message is stored
 * first, its seq is the history's, and every node hands the room's frames to its members in seq order.
 */
export interface SequencedRoom {
  readonly order: RoomOrder
  /** Stores the line, then sends _NEW_MSG to every node (in this node's order of messages). */
  readonly message: (sender: Sender, text: Uint8Array) => void
  /** A frame without a seq (join, leave), after everything this node sent or handed out before it. */
  readonly announce: (frame: Uint8Array, except?: Connection<unknown>) => void
  /** Completes once everything queued has been stored and sent. */
  readonly settled: Effect.Effect<void>
  /** For the room's first member on this node, once subscribed: the history's last seq is where live starts. */
  readonly start: Effect.Effect<void>
  /** The history's lines up to the last seq this node handed out: what a joiner gets before it goes live. */
  readonly history: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** The members `joiner` was listed from presence; `first`: the room's first member here (ListedJoins). */
  readonly listed: (joiner: Connection<unknown>, members: Iterable<Listed>, first: boolean) => void
  /** What this node's members missed of the room's joins and leaves, given its members now (ListedJoins.catchUp). */
  readonly rosterCatchUp: (present: ReadonlyArray<Listed>, local: ReadonlySet<number>) => ReadonlyArray<RosterChange>
  /** A member of a dead node left: whether this node's members were told of it (ListedJoins.forget). */
  readonly forget: (id: number) => boolean
  /** Whether every member here was told of `id` (listed or announced), so its messages may go out. */
  readonly knows: (id: number) => boolean
  /** `id`'s held messages go out even though its join was not told here (checked: it is not in presence). */
  readonly admit: (id: number) => void
  /** Stops receiving other nodes' frames (the room is closed on this node). */
  readonly close: () => void
}

export interface SequencingOptions {
  readonly store: StreamStore["Type"]
  readonly ordered: OrderedDelivery
  readonly bounds: StreamBounds
  readonly runFork: (effect: Effect.Effect<void>) => unknown
  readonly failed: (what: string) => (error: unknown) => Effect.Effect<void>
}

/** A history entry as the live frame it was: _NEW_MSG from its sender, or (a line without one) _LOGGED_MSG. */
const liveFrame = (entry: StreamEntry): readonly [number, WireMessage] => {
  const { line, sender } = readStoredMessage(entry.payload)
  const bytes = storedToBytes(line)
  if (sender !== undefined && sender.nickBytes + 2 <= bytes.length)
    return [entry.seq, encodeNewMessage(sender.id, bytes.subarray(sender.nickBytes + 2))]
  return [entry.seq, encodePacket(packet(Command.LOGGED_MSG, { data: bytes }))]
}

/** What a room asks of the roster catch-up: its members must hear of joins they missed before what follows. */
export interface RosterHooks {
  /** A message from `id`, whose join this node's members were not told, waits: read presence, then `admit` it. */
  readonly unknownSender: (id: number) => void
  /** Another node is back after an outage (its catch-up marker): its joins and leaves meanwhile may be lost. */
  readonly peerResumed: () => void
}

export const openSequencedRoom = (
  options: SequencingOptions,
  name: string,
  stream: string,
  localMembers: () => Iterable<{ readonly id: number; readonly connection: Connection<unknown> }>,
  hooks: RosterHooks
): SequencedRoom => {
  const { store, ordered, bounds, runFork, failed } = options
  const listedJoins = new ListedJoins()
  const asked = new Set<number>()
  const admitted = new Set<number>()
  /** A client sees a member's join before its messages, as in one process: a sender nobody here was told of waits. */
  const admits = (frame: WireMessage) => {
    const sender = typeof frame === "string" ? undefined : messageSender(frame)
    if (sender === undefined || listedJoins.knows(sender) || admitted.has(sender)) return true
    for (const member of localMembers()) if (member.id === sender) return true
    if (!asked.has(sender)) {
      asked.add(sender)
      hooks.unknownSender(sender)
    }
    return false
  }
  const here = (frame: WireMessage, except: Connection<unknown> | undefined) => {
    const recipients = listedJoins.recipients(frame)
    if (recipients === "none") return
    if (recipients !== "all") {
      // A join some members here were already listed: one send per member (joins are rare).
      for (const { connection } of localMembers())
        if (connection !== except && !recipients.has(connection) && connection.isOpen()) connection.send(frame)
    } else if (except?.isOpen()) ordered.here(name, frame, except)
    else ordered.here(name, frame)
  }
  let filling = false
  let closed = false
  const fill = () => {
    const target = filling || closed ? undefined : order.fillTarget()
    if (target === undefined) return
    const from = order.delivered!
    filling = true
    runFork(
      store.readAfter(stream, from, target - from).pipe(
        Effect.map((entries) => order.filled(from, target, entries.map(liveFrame))),
        // A failed read is retried a second later (or at the next frame), never in a tight loop.
        Effect.catchAllCause((cause) => Effect.zipRight(failed("read")(cause), Effect.sleep("1 second"))),
        Effect.ensuring(
          Effect.sync(() => {
            filling = false
            fill()
          })
        )
      )
    )
  }
  const order = new RoomOrder(here, fill, admits)
  const stopReceiving = ordered.receive(name, (message) => {
    const unwrapped = unwrap(message)
    if (unwrapped === undefined) order.offerAfter(0, message)
    else if (unwrapped.reach) {
      hooks.peerResumed()
      order.reach(unwrapped.n)
    } else if (unwrapped.numbered) order.offer(unwrapped.n, unwrapped.frame)
    else order.offerAfter(unwrapped.n, unwrapped.frame)
  })

  /** The highest seq this node's own messages got: frames without a seq go after them. */
  let lastStored = 0

  // After an outage, what other nodes sent meanwhile may be lost: read how far the history got and fill up to there
  // (the fill goes through the order, so a frame arriving meanwhile is still handed out once); and tell the others
  // how far this node's own messages got, in case it was only this node's connection that was cut.
  const catchUp = store.position(stream).pipe(
    Effect.map((position) => order.reach(position.last)),
    Effect.tapError(failed("read")),
    // Each room tries for half a minute; after that, the room's next frame still fills the gap.
    Effect.retry({ schedule: Schedule.spaced("1 second"), times: 30, while: () => !closed }),
    Effect.ignore
  )
  const stopResuming = ordered.resumed(() => {
    if (closed) return
    const reached = Math.max(order.delivered ?? 0, lastStored)
    if (reached > 0) ordered.elsewhere(name, wrapReach(reached))
    runFork(catchUp)
  })
  const sendAfter = (frame: Uint8Array, except?: Connection<unknown>) => {
    const after = Math.max(order.delivered ?? 0, lastStored)
    ordered.elsewhere(name, wrapAfter(after, frame))
    order.offerAfter(after, frame, except)
  }
  /** This node's messages: each batch stored in one round trip, then sent with its seqs (or without, if not stored). */
  const batches: BatchAppendOptions = {
    store,
    stream,
    bounds,
    failed,
    sendNumbered: (frame, seq) => {
      lastStored = Math.max(lastStored, seq)
      ordered.elsewhere(name, wrapNumbered(seq, frame))
      order.offer(seq, frame)
    },
    sendUnnumbered: (frame) => sendAfter(frame),
    storedUpTo: () => lastStored
  }
  const outgoing = makeOutgoingQueue({ storeBatch: (items) => appendBatch(batches, items), sendAfter, runFork })

  return {
    order,
    message: (sender, text) => {
      const frame = encodeNewMessage(sender.id, text)
      // Empty messages are delivered, not recorded, like the original.
      if (text.length === 0) return outgoing.enqueue({ frame })
      const line = storedLine(sender.linePrefix, sender.nick, text)
      outgoing.enqueue({ frame, payload: storedMessage(sender.id, sender.nick.length, line) })
    },
    announce: (frame, except) => outgoing.enqueue({ frame, except }),
    settled: outgoing.settled,
    start: store.position(stream).pipe(
      Effect.map((position) => order.start(position.last)),
      Effect.catchAll((error) =>
        Effect.zipRight(
          failed("read")(error),
          Effect.sync(() => order.start(undefined))
        )
      )
    ),
    history: Effect.suspend(() => {
      const upTo = order.delivered ?? 0
      return store.readAfter(stream, 0).pipe(
        Effect.map((entries) =>
          entries
            .filter((entry) => entry.seq <= upTo)
            .map((entry) => storedToBytes(readStoredMessage(entry.payload).line))
        ),
        Effect.catchAll((error) => Effect.as(failed("read")(error), []))
      )
    }),
    listed: (joiner, members, first) => listedJoins.listed(joiner, members, first),
    rosterCatchUp: (present, local) => listedJoins.catchUp(present, local),
    forget: (id) => listedJoins.forget(id),
    knows: (id) => listedJoins.knows(id),
    admit: (id) => {
      admitted.add(id)
      order.release()
    },
    close: () => {
      closed = true
      stopReceiving()
      stopResuming()
    }
  }
}
