import { Effect } from "effect"
import { type HydrogenSettings, isReliable } from "./Config.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { RoomsService } from "../../layers/Rooms/Rooms.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import type { AckTracker } from "./Acks.ts"
import { type ChannelState, makeDelivery } from "./Delivery.ts"
import { epochReader, storageFailed } from "./History.ts"
import { makePublishing } from "./Publishing.ts"
import { makeSubscriptions } from "./Subscriptions.ts"
import type { Session } from "./Session.ts"
import { type HydrogenCluster, makeClusterChannels } from "./Cluster.ts"

export type { Published, PublishOutcome } from "./Publishing.ts"
export type { SubscribeRequest, SubscribeResult } from "./Subscriptions.ts"

/** The room of a channel: prefixed, as several servers may share one Rooms. */
const roomOf = (channel: string) => `hydrogen/${channel}`

/**
 * Channels, subscriptions and delivery (src/hydrogen/Publishing.ts, Subscriptions.ts, Delivery.ts
 * over the channel table kept here). A delivery lock makes "append + deliver" and "read history +
 * replay + subscribe" mutually exclusive, so a recovering client sees every event exactly once:
 * either in its replay or live, never both.
 */
export const makeChannels = (deps: {
  readonly settings: HydrogenSettings
  readonly store: typeof StreamStore.Service
  readonly metrics: typeof Metrics.Service
  readonly acks: AckTracker
  readonly rooms: RoomsService
  /** Present when this server is one node of a cluster (src/hydrogen/Cluster.ts). */
  readonly cluster?: HydrogenCluster["Type"] | undefined
}) =>
  Effect.gen(function* () {
    const { settings, store, metrics, acks, rooms } = deps
    const perClientSends = metrics.counter(
      "switchboard_hydrogen_per_client_sends_total",
      "Events sent to one client (filtered, high-priority, acked or replayed)"
    )
    const recoveries = metrics.counter("switchboard_hydrogen_recoveries_total", "Recovery attempts by outcome", [
      "outcome"
    ])

    const channels = new Map<string, ChannelState>()
    const lock = yield* Effect.makeSemaphore(1)
    const idPrefix = crypto.randomUUID().slice(0, 8)

    const channelFor = (name: string): ChannelState => {
      let channel = channels.get(name)
      if (!channel) {
        channel = {
          name,
          room: roomOf(name),
          stream: `hydrogen:${name}`,
          reliable: isReliable(settings, name),
          epochJson: undefined,
          members: new Map(),
          perClient: new Set(),
          native: new Set()
        }
        channels.set(name, channel)
      }
      return channel
    }
    const pruneIfEmpty = (channel: ChannelState) => {
      if (channel.members.size === 0) channels.delete(channel.name)
    }
    const epochOf = epochReader(store)

    const deliver = makeDelivery({ channels, acks, rooms, perClientSends })
    const cluster = deps.cluster
      ? yield* makeClusterChannels({
          bus: deps.cluster,
          store,
          origin: idPrefix,
          lock,
          deliver,
          channels,
          epochOf,
          storageFailed
        })
      : undefined
    const { publish, publishNow } = yield* makePublishing({
      settings,
      store,
      metrics,
      lock,
      idPrefix,
      channelFor,
      epochOf,
      flushed: cluster ? cluster.flushed : deliver
    })
    const { subscribe, unsubscribe } = makeSubscriptions({
      store,
      acks,
      rooms,
      lock,
      channels,
      channelFor,
      pruneIfEmpty,
      epochOf,
      perClientSends,
      recoveries,
      cluster
    })

    return {
      subscribe,
      unsubscribe,
      publish,
      publishNow,
      /** Removes every subscription of a session that has ended. */
      forget: (session: Session) =>
        Effect.forEach([...session.subscriptions.keys()], (name) => unsubscribe(session, name, false), {
          discard: true
        }),
      /** A connection of the session went away: its rooms forget it (the session keeps its subscriptions for a resume). */
      disconnected: (session: Session, connection: Connection<unknown>) =>
        Effect.forEach(
          session.subscriptions.values(),
          (subscription) => (subscription.native ? rooms.leave(roomOf(subscription.channel), connection) : Effect.void),
          { discard: true }
        ),
      isReliable: (name: string) => isReliable(settings, name),
      /** Present on a cluster node: what Sessions needs to hand sessions between nodes. */
      cluster,
      subscriberCount: (name: string) => channels.get(name)?.members.size ?? 0
    }
  })

export type Channels = Effect.Effect.Success<ReturnType<typeof makeChannels>>
