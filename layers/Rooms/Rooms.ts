import { Context, type Effect, type Queue, type Scope } from "effect"
import type { Connection, WireMessage } from "../Transport/Transport.ts"

/**
 * Someone in a room: an id unique within the room, and what the server wants others to know
 * about them (`info`: an opaque string the protocol encodes, so it can cross nodes unchanged).
 */
export interface RoomMember {
  readonly id: string
  readonly info: string
}

export type RoomChange =
  | { readonly _tag: "Joined"; readonly room: string; readonly member: RoomMember }
  | {
      readonly _tag: "Left"
      readonly room: string
      readonly member: RoomMember
      /** The member's node died (broker-backed rooms): its own node could not announce the leave. */
      readonly expired?: boolean
    }

/**
 * Named rooms of connections, the one fan-out seam every server uses (relay groups, chat rooms,
 * Hydrogen channels). A room's name is also its native topic, so local fan-out is one Bun
 * publish. The in-process implementation is the single-node default and the test double; a
 * broker-backed one (Redis, NATS) keeps this interface and adds the hop between nodes.
 * Protocol rules (who may hear whom, history, acks) stay with each server in src/<server>/.
 */
export interface RoomsService {
  /** Puts a connection in a room under `member`; joining again with the same connection is a no-op. */
  readonly join: (room: string, connection: Connection<unknown>, member: RoomMember) => Effect.Effect<void>
  /** Takes a connection out of a room (no-op when it is not there). */
  readonly leave: (room: string, connection: Connection<unknown>) => Effect.Effect<void>
  /** `join` done on the spot when nothing asynchronous is needed (true); false: nothing was done, use `join`. */
  readonly joinNow?: (room: string, connection: Connection<unknown>, member: RoomMember) => boolean
  /** `leave` done on the spot when nothing asynchronous is needed (true); false: nothing was done, use `leave`. */
  readonly leaveNow?: (room: string, connection: Connection<unknown>) => boolean
  /**
   * Hot path: one frame to every member of the room except `except` (the sender, who need not be
   * a member). Synchronous and allocation-free on a single node.
   */
  readonly publish: (room: string, frame: WireMessage, except?: Connection<unknown>) => void
  /** Members in join order. */
  readonly members: (room: string) => Effect.Effect<ReadonlyArray<RoomMember>>
  /**
   * Present on rooms that span nodes: `members`, but failing when presence cannot be read (where `members` lists
   * this node's members only), so a caller can tell a failed read from "everyone else left".
   */
  readonly membersExact?: (room: string) => Effect.Effect<ReadonlyArray<RoomMember>, PresenceUnavailable>
  /** How many connections of this node are in the room (0 for an unknown room). */
  readonly localCount: (room: string) => number
  /**
   * True when other nodes may hold members that `localCount` does not see (broker-backed rooms):
   * a protocol must then publish even with no local recipient, and cannot tell "nobody anywhere".
   */
  readonly spansNodes?: boolean
  /** Present on rooms that span nodes: the halves of `publish`, for a protocol that orders a room's frames itself. */
  readonly ordered?: OrderedDelivery
  /** Joins and leaves of every room, for as long as the caller's Scope lives. */
  readonly changes: Effect.Effect<Queue.Dequeue<RoomChange>, never, Scope.Scope>
}

/**
 * `publish` taken apart for a protocol that numbers a room's frames and must hand them to members in that
 * order on every node (chat's cluster-wide message seq): what crosses is its own bytes, which it unwraps.
 */
export interface OrderedDelivery {
  /** Frames other nodes send to `room` go to `receive` instead of to this node's members, until `stop()`. */
  readonly receive: (room: string, receive: (frame: WireMessage) => void) => () => void
  /** The local half of `publish`: this node's members only. */
  readonly here: (room: string, frame: WireMessage, except?: Connection<unknown>) => void
  /** The broker half of `publish`: the room's other nodes only (their `receive`, else their members). */
  readonly elsewhere: (room: string, frame: WireMessage) => void
  /**
   * Runs `callback` each time this node's broker connection is back after an outage (its room subscriptions
   * restored): frames other nodes sent meanwhile may be lost, and this node's own may not have left. Until `stop()`.
   */
  readonly resumed: (callback: () => void) => () => void
  /**
   * Completes once presence can be trusted: at once, unless this node found its own entries lost (the broker lost
   * its data, or this node was away past its TTL), until every live node has written its entries again.
   */
  readonly presenceSettled?: Effect.Effect<void>
}

/** The cluster's presence could not be read (the broker is away). */
export class PresenceUnavailable extends Error {
  readonly _tag = "PresenceUnavailable"
}

export class Rooms extends Context.Tag("switchboard/Rooms")<Rooms, RoomsService>() {}
