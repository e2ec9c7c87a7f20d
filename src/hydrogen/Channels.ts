import { Cause, Clock, Deferred, Effect, Queue } from "effect"
import { type HydrogenSettings, isReliable } from "./Config.ts"
import type { Priority } from "./Envelope.ts"
import { applicationError, ErrorCodes, type HydrogenError } from "./Errors.ts"
import { eventBody, plainEvent, type Publication, sequencedEvent } from "./Encode.ts"
import { type Filter, matches } from "./Filter.ts"
import { missedEntries, type RecoverFrom, type RecoveryOutcome, unrecoverable } from "./Recovery.ts"
import type { StorageError } from "../storage/Account.ts"
import type { StreamEntry } from "../storage/Stream.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { RoomMember, RoomsService } from "../../layers/Rooms/Rooms.ts"
import type { Connection } from "../../layers/Transport/Transport.ts"
import type { AckTracker } from "./Acks.ts"
import { type ChannelState, makeDelivery, type Prepared } from "./Delivery.ts"
import { eventId } from "./EventIds.ts"
import { AckedEvent, type Session, type Subscription } from "./Session.ts"
import { type HydrogenCluster, makeClusterChannels } from "./Cluster.ts"

export interface Published {
  readonly id: string
  readonly channel: string
  readonly seq?: number
  readonly epoch?: string
}

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

interface Queued {
  readonly publication: Publication
  readonly done: Deferred.Deferred<Published, HydrogenError>
}

/** The room of a channel: prefixed, as several servers may share one Rooms. */
const roomOf = (channel: string) => `hydrogen/${channel}`

/** How a session appears among a room's members. */
const memberOf = (session: Session): RoomMember => ({ id: session.id, info: session.identity.name })

/** A store failure becomes an application error for the client; its details go to the log only. */
const storageFailed =
  (what: string) =>
  <A, R>(self: Effect.Effect<A, StorageError, R>) =>
    self.pipe(
      Effect.tapError((error) => Effect.logWarning(`history storage failed while ${what}`, error.message)),
      Effect.mapError(() => applicationError(ErrorCodes.storageUnavailable, `history storage failed while ${what}`))
    )

/**
 * Channels, subscriptions and delivery. Publications queue up and one fiber flushes them: high
 * priority first, reliable channels get their seq (StreamStore append) in flush order, then the
 * batch is delivered synchronously. Unfiltered normal subscribers are members of the channel's
 * room ("hydrogen/<channel>" in the Rooms Tag: one native publish per event); filtered or
 * high-priority subscribers are served per client. A delivery lock makes "append + deliver" and "read history + replay + subscribe" mutually exclusive, so a
 * recovering client sees every event exactly once: either in its replay or live, never both.
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
    const published = metrics.counter("switchboard_hydrogen_events_published_total", "Events published", ["reliable"])
    const publishedReliable = published.labels({ reliable: "true" })
    const publishedPlain = published.labels({ reliable: "false" })
    const perClientSends = metrics.counter(
      "switchboard_hydrogen_per_client_sends_total",
      "Events sent to one client (filtered, high-priority, acked or replayed)"
    )
    const recoveries = metrics.counter("switchboard_hydrogen_recoveries_total", "Recovery attempts by outcome", [
      "outcome"
    ])
    const bounds = { maxEntries: settings.historySize, maxBytes: settings.historyBytes }

    const channels = new Map<string, ChannelState>()
    const lock = yield* Effect.makeSemaphore(1)
    const queue = yield* Queue.unbounded<Queued>()
    const idPrefix = crypto.randomUUID().slice(0, 8)
    let nextId = 0

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
    const epochOf = (channel: ChannelState) =>
      channel.epochJson !== undefined
        ? Effect.succeed(channel.epochJson)
        : store.position(channel.stream).pipe(
            Effect.map((position) => (channel.epochJson = JSON.stringify(position.epoch))),
            storageFailed("reading a channel position")
          )

    const ackedEvent = (
      publication: Publication,
      ordinal: number,
      id: string,
      name: string,
      seq: number | undefined,
      text: string,
      at: number
    ) => (publication.ack ? new AckedEvent(ordinal, id, name, seq, text, at) : undefined)
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

    /** Assigns id (and seq on reliable channels) and encodes once; a storage failure fails only this publication. */
    const prepare = (queued: Queued, now: string, nowMillis: number) =>
      Effect.gen(function* () {
        const publication = queued.publication
        const channel = channelFor(publication.channel)
        const ordinal = nextId++
        const id = eventId(idPrefix, ordinal)
        const body = eventBody(publication, id, now)
        if (!channel.reliable) {
          publishedPlain.inc()
          const text = plainEvent(body)
          return {
            channel: channel.name,
            room: channel.room,
            publication,
            id,
            seq: undefined,
            text,
            acked: ackedEvent(publication, ordinal, id, channel.name, undefined, text, nowMillis),
            result: { id, channel: channel.name }
          }
        }
        const epochJson = yield* epochOf(channel)
        const entry = yield* store.append(channel.stream, body, bounds).pipe(storageFailed("storing an event"))
        publishedReliable.inc()
        const result: Published = { id, channel: channel.name, seq: entry.seq, epoch: JSON.parse(epochJson) as string }
        const text = sequencedEvent(body, entry.seq, epochJson)
        return {
          channel: channel.name,
          room: channel.room,
          publication,
          id,
          seq: entry.seq,
          text,
          acked: ackedEvent(publication, ordinal, id, channel.name, entry.seq, text, nowMillis),
          result
        }
      }).pipe(
        Effect.catchAllCause((cause) =>
          Deferred.fail(
            queued.done,
            Cause.isFailType(cause) ? cause.error : applicationError(ErrorCodes.handlerFailed, "publishing failed")
          ).pipe(
            Effect.zipLeft(
              Cause.isFailType(cause) ? Effect.void : Effect.logError("publishing failed", Cause.pretty(cause))
            ),
            Effect.as(undefined)
          )
        )
      )

    const flush = Effect.gen(function* () {
      const first = yield* Queue.take(queue)
      const rest = yield* Queue.takeAll(queue)
      const high: Array<Queued> = []
      const normal: Array<Queued> = []
      for (const queued of [first, ...rest]) (queued.publication.priority === "high" ? high : normal).push(queued)
      const nowMillis = yield* Clock.currentTimeMillis
      const now = new Date(nowMillis).toISOString()
      yield* lock.withPermits(1)(
        Effect.gen(function* () {
          const batch: Array<Prepared & { readonly result: Published; readonly done: Queued["done"] }> = []
          for (const queued of [...high, ...normal]) {
            const item = yield* prepare(queued, now, nowMillis)
            if (item) batch.push({ ...item, done: queued.done })
          }
          if (cluster) yield* cluster.flushed(batch)
          else deliver(batch)
          for (const item of batch) Deferred.unsafeDone(item.done, Effect.succeed(item.result))
        })
      )
    })
    yield* Effect.forkScoped(Effect.forever(flush))

    // --- subscriptions ---

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

    const subscribeHere = (
      session: Session,
      request: SubscribeRequest
    ): Effect.Effect<SubscribeResult, HydrogenError> =>
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

    /** Enqueues publications and waits until they are stored and delivered. */
    const publish = (publications: ReadonlyArray<Publication>) =>
      Effect.gen(function* () {
        const queued: Array<Queued> = []
        for (const publication of publications)
          queued.push({ publication, done: yield* Deferred.make<Published, HydrogenError>() })
        yield* Queue.offerAll(queue, queued)
        return yield* Effect.forEach(queued, (q) => Effect.either(Deferred.await(q.done)))
      })

    return {
      subscribe,
      unsubscribe,
      publish,
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
