import type { Priority } from "./Envelope.ts"
import type { Publication } from "./Encode.ts"
import { matches } from "./Filter.ts"
import type { RoomsService } from "../../layers/Rooms/Rooms.ts"
import type { AckTracker } from "./Acks.ts"
import type { AckedEvent, Session, Subscription } from "./Session.ts"

/** A channel with subscribers. */
export interface ChannelState {
  readonly name: string
  /** The channel's room in the Rooms Tag ("hydrogen/<channel>"), also its native topic. */
  readonly room: string
  readonly stream: string
  readonly reliable: boolean
  /** JSON-encoded epoch of the reliable stream, fetched once. */
  epochJson: string | undefined
  readonly members: Map<Session, Subscription>
  /** Sessions served per client: filtered or high-priority subscriptions. */
  readonly perClient: Set<Session>
  /** Sessions served by the native topic (the others of `members`): tracked per event when acks are required. */
  readonly native: Set<Session>
}

/** A publication with its id, seq and wire text, ready to go out. */
export interface Prepared {
  readonly channel: string
  readonly room: string
  readonly publication: Publication
  readonly id: string
  readonly seq: number | undefined
  readonly text: string
  /** Set when the publication requires acks: one per event, shared by its subscribers' pending entries. */
  readonly acked: AckedEvent | undefined
}

/**
 * Synchronous delivery of a flushed batch. Unfiltered normal subscribers are members of the
 * channel's room and get one room publish per event (one native topic publish, no sender);
 * filtered and high-priority subscriptions are served per client. Events with
 * ack required are tracked per subscriber (a slot in its PendingAcks; the entry object is shared), still sent natively where possible.
 * Order within a batch: high events to everyone, normal events to high-priority subscriptions,
 * then normal events to everyone else.
 */
export const makeDelivery = (deps: {
  readonly channels: ReadonlyMap<string, ChannelState>
  readonly acks: AckTracker
  readonly rooms: RoomsService
  readonly perClientSends: { readonly inc: (by?: number) => void }
}) => {
  const { channels, acks, rooms, perClientSends } = deps
  const toOne = (session: Session, subscription: Subscription, item: Prepared) => {
    if (subscription.filter && !matches(subscription.filter, item.publication.data)) return
    if (item.acked) acks.track(session, item.acked, false)
    else if (session.send(item.text)) perClientSends.inc()
  }

  const toNative = (item: Prepared, channel: ChannelState | undefined) => {
    rooms.publish(item.room, item.text)
    const acked = item.acked
    if (acked && channel) for (const session of channel.native) acks.track(session, acked, true)
  }

  const toPerClient = (item: Prepared, channel: ChannelState | undefined, only: Priority | undefined) => {
    if (!channel) return
    for (const session of channel.perClient) {
      const subscription = channel.members.get(session)!
      if (only === undefined || subscription.priority === only) toOne(session, subscription, item)
    }
  }

  /** Channels are looked up at delivery time, so subscriptions made while the batch was stored are served. */
  return (batch: ReadonlyArray<Prepared>) => {
    for (const item of batch) {
      if (item.publication.priority === "high") {
        const channel = channels.get(item.channel)
        toNative(item, channel)
        toPerClient(item, channel, undefined)
      }
    }
    for (const item of batch)
      if (item.publication.priority === "normal") toPerClient(item, channels.get(item.channel), "high")
    for (const item of batch) {
      if (item.publication.priority === "normal") {
        const channel = channels.get(item.channel)
        toNative(item, channel)
        toPerClient(item, channel, "normal")
      }
    }
  }
}
