import { Effect } from "effect"
import type { Priority } from "./Envelope.ts"
import type { HydrogenError } from "./Errors.ts"
import { sequencedEvent } from "./Encode.ts"
import { type Filter, matches } from "./Filter.ts"
import { missedEntries, type RecoverFrom, type RecoveryOutcome, unrecoverable } from "./Recovery.ts"
import type { StreamEntry } from "../storage/Stream.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { RoomMember, RoomsService } from "../../layers/Rooms/Rooms.ts"
import type { AckTracker } from "./Acks.ts"
import type { ChannelState } from "./Delivery.ts"
import { storageFailed } from "./History.ts"
import type { Session, Subscription } from "./Session.ts"
import type { ClusterChannels } from "./Cluster.ts"

export interface SubscribeRequest {
  readonly channel: string
  readonly filter: Filter | undefined
  readonly priority: Priority
  readonly recover: RecoverFrom | undefined
}

export interface SubscribeResult {
  readonly channel: string
  readonly reliable: boolean
  readonly epoch?: string
  /** Newest seq of the channel when the subscription became live. */
  readonly seq?: number
  readonly recovery?: RecoveryOutcome
}

/** How a session appears among a room's members. */
const memberOf = (session: Session): RoomMember => ({ id: session.id, info: session.identity.name })

/**
 * Subscriptions of sessions to channels. Unfiltered normal subscribers are members of the
 * channel's room (one native publish per event); filtered or high-priority ones are served per
 * client. With `recover` on a reliable channel the missed events are replayed first: most of them
 * read outside the delivery lock, the rest under it, so a recovering client sees every event
 * exactly once, either in its replay or live.
 */
export const makeSubscriptions = (deps: {
  readonly store: typeof StreamStore.Service
  readonly acks: AckTracker
  readonly rooms: RoomsService
  readonly lock: Effect.Semaphore
  readonly channels: ReadonlyMap<string, ChannelState>
  readonly channelFor: (name: string) => ChannelState
  readonly pruneIfEmpty: (channel: ChannelState) => void
  readonly epochOf: (channel: ChannelState) => Effect.Effect<string, HydrogenError>
  readonly perClientSends: { readonly inc: (by?: number) => void }
  readonly recoveries: { readonly inc: (labels: { readonly outcome: string }) => void }
  readonly cluster: ClusterChannels | undefined
}) => {
  const { store, acks, rooms, lock, channels, channelFor, pruneIfEmpty, epochOf, perClientSends, recoveries, cluster } =
    deps

  /**
   * Makes the subscription the session's one on the channel; a native one joins the channel's
   * room with the session's connection. The channel is looked up again, as it may have been
   * dropped while history was read.
   */
  const attach = (session: Session, name: string, subscription: Subscription) =>
    Effect.suspend(() => {
      const channel = channelFor(name)
      const previous = channel.members.get(session)
      channel.perClient.delete(session)
      channel.native.delete(session)
      channel.members.set(session, subscription)
      session.subscriptions.set(channel.name, subscription)
      const connection = session.connection
      if (subscription.native) channel.native.add(session)
      else {
        channel.perClient.add(session)
        return previous?.native && connection ? rooms.leave(channel.room, connection) : Effect.void
      }
      return connection ? rooms.join(channel.room, connection, memberOf(session)) : Effect.void
    })

  /** Sends history entries (filtered like live events); returns how many were sent. */
  const replayTo = (
    session: Session,
    subscription: Subscription,
    entries: ReadonlyArray<StreamEntry>,
    epochJson: string
  ) => {
    let sent = 0
    for (const entry of entries) {
      if (subscription.filter && !matches(subscription.filter, (JSON.parse(entry.payload) as { data: unknown }).data))
        continue
      if (session.send(sequencedEvent(entry.payload, entry.seq, epochJson))) sent++
    }
    perClientSends.inc(sent)
    return sent
  }

  /**
   * Makes a subscription live. With `recover` on a reliable channel, first replays exactly the
   * events after recover.seq (most of them read outside the lock, the rest inside it).
   */
  const subscribe = (session: Session, request: SubscribeRequest): Effect.Effect<SubscribeResult, HydrogenError> =>
    cluster
      ? Effect.tap(subscribeHere(session, request), () => cluster.remember(session))
      : subscribeHere(session, request)

  const subscribeHere = (session: Session, request: SubscribeRequest): Effect.Effect<SubscribeResult, HydrogenError> =>
    Effect.gen(function* () {
      const channel = channelFor(request.channel)
      const subscription: Subscription = {
        channel: channel.name,
        filter: request.filter,
        priority: request.priority,
        native: request.filter === undefined && request.priority === "normal"
      }
      if (cluster) yield* cluster.watch(channel.name)
      if (!channel.reliable) {
        yield* attach(session, channel.name, subscription)
        return { channel: channel.name, reliable: false }
      }
      const recover = request.recover
      let early: ReadonlyArray<StreamEntry> = []
      if (recover) {
        const before = yield* store.position(channel.stream).pipe(storageFailed("reading a channel position"))
        if (unrecoverable(recover, before) === undefined) {
          early = yield* store.readAfter(channel.stream, recover.seq).pipe(storageFailed("reading history"))
        }
      }
      return yield* lock.withPermits(1)(
        Effect.gen(function* () {
          const stored = yield* store.position(channel.stream).pipe(storageFailed("reading a channel position"))
          // On a cluster node the subscription starts after what this node has delivered (it catches up first).
          const position = cluster ? { ...stored, last: yield* cluster.catchUp(channel, stored.last) } : stored
          const epochJson = yield* epochOf(channel)
          let recovery: RecoveryOutcome | undefined
          if (recover) {
            recovery = unrecoverable(recover, position)
            if (recovery === undefined) {
              const from = early.length > 0 ? early[early.length - 1]!.seq : recover.seq
              const late = yield* store.readAfter(channel.stream, from).pipe(storageFailed("reading history"))
              const entries = missedEntries(
                recover.seq,
                early.filter((entry) => entry.seq <= position.last),
                late.filter((entry) => entry.seq <= position.last)
              )
              recovery = entries
                ? { recovered: true, replayed: replayTo(session, subscription, entries, epochJson) }
                : { recovered: false, reason: "history_trimmed", first: position.first, last: position.last }
              if (cluster && entries)
                for (const event of yield* cluster.replayed(subscription, entries, epochJson))
                  acks.track(session, event, true)
            }
            recoveries.inc({ outcome: recovery.recovered ? "recovered" : recovery.reason })
          }
          yield* attach(session, channel.name, subscription)
          return {
            channel: channel.name,
            reliable: true,
            epoch: position.epoch,
            seq: position.last,
            ...(recovery ? { recovery } : {})
          }
        })
      )
    })

  /** `shared`: the session goes on, so a cluster node updates its shared record (not when it ends or moves). */
  const unsubscribe = (session: Session, name: string, shared = true): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      const channel = channels.get(name)
      const subscription = channel?.members.get(session)
      session.subscriptions.delete(name)
      if (!channel || !subscription) return Effect.succeed(false)
      channel.members.delete(session)
      channel.perClient.delete(session)
      channel.native.delete(session)
      pruneIfEmpty(channel)
      const connection = session.connection
      const left =
        subscription.native && connection
          ? Effect.as(rooms.leave(channel.room, connection), true)
          : Effect.succeed(true)
      if (!cluster) return left
      const unwatch = channels.has(name) ? Effect.void : cluster.unwatch(name)
      return Effect.zipLeft(left, Effect.zipRight(unwatch, shared ? cluster.remember(session) : Effect.void))
    })

  return { subscribe, unsubscribe }
}
