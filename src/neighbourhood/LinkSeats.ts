import { type Deferred, Effect, Schema, type Scope } from "effect"
import type { Claim } from "../../layers/Cluster/Claims.ts"
import type { Channel, NeighbourState } from "./Mesh.ts"

// The messages the nodes of one server name exchange about its neighbour links, and each link's state on a node.

/** What the node holding a link tells the other nodes about it (every 2 s, and when its list changes). */
const LinkState = Schema.parseJson(
  Schema.Struct({
    /** The announcing server instance (a node hears its own announcements on the bus too). */
    origin: Schema.String,
    neighbour: Schema.String,
    up: Schema.Boolean,
    /** The neighbour's client list, once it sent one. */
    clients: Schema.optional(Schema.Array(Schema.String)),
    /** The holder gave the link up (it stops): another node may take it at once. */
    released: Schema.optional(Schema.Boolean)
  })
)
export const decodeLinkState = Schema.decodeUnknownEither(LinkState)
export const encodeLinkState = Schema.encodeSync(LinkState)

/** A neighbour's dial landed on a node that does not hold the link: it asks the holder to give the link up. */
const HandoverRequest = Schema.parseJson(Schema.Struct({ origin: Schema.String, neighbour: Schema.String }))
export const decodeHandoverRequest = Schema.decodeUnknownEither(HandoverRequest)
export const encodeHandoverRequest = Schema.encodeSync(HandoverRequest)

/** One neighbour's link as this node sees it: held here (a claim), or held elsewhere (a view), or neither. */
export interface Seat {
  readonly neighbour: NeighbourState
  /** This node's claim of the link; it links only while the claim is confirmed (see `fence`). */
  claim: Claim | undefined
  /** The claim attempt under way, which a neighbour's server_hello arriving meanwhile waits for. */
  taking: Deferred.Deferred<boolean> | undefined
  /** The link's resources on this node while it holds it: the outbound link and the forwarding subscription. */
  held: Scope.CloseableScope | undefined
  /** Opening and closing the link's resources go one at a time. */
  readonly lock: Effect.Semaphore
  /** The holder's link, as it last announced it. */
  view: Channel | undefined
  viewClients: string
  /** When another node last announced this link (any state). */
  heardAt: number
  /** Completed when the holder gives the link up (a neighbour's dial here waits for it). */
  released: Deferred.Deferred<void> | undefined
}

export const newSeat = (neighbour: NeighbourState): Seat => ({
  neighbour,
  claim: undefined,
  taking: undefined,
  held: undefined,
  lock: Effect.unsafeMakeSemaphore(1),
  view: undefined,
  viewClients: "",
  heardAt: Number.NEGATIVE_INFINITY,
  released: undefined
})
