import {
  Clock,
  Context,
  Deferred,
  Effect,
  ExecutionStrategy,
  Exit,
  FiberId,
  Layer,
  Queue,
  Runtime,
  Scope
} from "effect"
import { matches } from "./Filter.ts"
import type { Publication } from "./Encode.ts"
import { sequencedEvent } from "./Encode.ts"
import type { HydrogenError } from "./Errors.ts"
import { StorageError } from "../storage/Account.ts"
import type { StreamEntry } from "../storage/Stream.ts"
import { ClusterBroker, type RecordStore } from "../../layers/Cluster/Broker.ts"
import { Federation, type FederationService } from "../../layers/Federation/Federation.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { ChannelState, Prepared } from "./Delivery.ts"
import { AckedEvent, type Subscription } from "./Session.ts"
import { makeSessionRecords } from "./SessionRecords.ts"
import { eventOrdinal } from "./EventIds.ts"

/**
 * The bus Hydrogen nodes share (the cluster's Federation bus). When it is provided, Hydrogen runs
 * as one node of a cluster: every event crosses to the nodes with subscribers of its channel, and
 * sessions (their subscriptions) can be resumed on any node. History must then be a shared StreamStore.
 * Session records need the broker's held records: without a holder check a node whose hand-over
 * message was lost would serve a stale copy, so there is no cluster without them.
 */
export class HydrogenCluster extends Context.Tag("switchboard/HydrogenCluster")<
  HydrogenCluster,
  Pick<FederationService, "publish" | "subscribe"> & {
    /** Runs `callback` each time the broker is back after an outage (announcements, even its data, may be lost). */
    readonly onReconnect: (callback: () => void) => void
    /** Expiring records on the broker, each held by one node, for session subscriptions. */
    readonly records: RecordStore
  }
>() {}

/** Hydrogen's cluster bus on the cluster's Federation bus (BrokerFederation), with the broker's records. */
export const HydrogenClusterOnFederation = Layer.effect(
  HydrogenCluster,
  Effect.gen(function* () {
    const federation = yield* Federation
    const broker = yield* ClusterBroker
    return {
      publish: federation.publish,
      subscribe: federation.subscribe,
      onReconnect: broker.onReconnect,
      records: broker.records
    }
  })
)

const channelSubject = (name: string) => `hydrogen/channel/${name}`
/** Where a reliable channel's local delivery stands on this node: every seq up to it has been delivered. */
interface Sequence {
  delivered: number
}

interface WireEvent {
  readonly id: string
  readonly seq?: number
  readonly channel: string
  readonly action: string
  readonly data: unknown
  readonly priority?: "high"
  readonly ack?: true
}

/**
 * Hydrogen across nodes. Each flushed event is delivered locally, then announced on its channel's
 * subject (`<origin>\n<wire text>`); a node listens to a channel's subject while it has subscribers
 * there and delivers what others announce with the same per-client rules (filters, priorities, acks).
 * Reliable channels are delivered in seq order on every node: an event whose seq is not the next
 * one this node delivered first gets the missing ones from the shared history (they are stored
 * before they are announced), and what was delivered already is dropped. All of it runs under the
 * Channels delivery lock, so replays on subscribe and resume stay exact.
 */
export const makeClusterChannels = (deps: {
  readonly bus: HydrogenCluster["Type"]
  readonly store: StreamStore["Type"]
  /** This node's id prefix of event ids: tells this node's own announcements apart. */
  readonly origin: string
  readonly lock: Effect.Semaphore
  readonly deliver: (batch: ReadonlyArray<Prepared>) => void
  readonly channels: ReadonlyMap<string, ChannelState>
  readonly epochOf: (channel: ChannelState) => Effect.Effect<string, HydrogenError>
  readonly storageFailed: (
    what: string
  ) => <A, R>(self: Effect.Effect<A, StorageError, R>) => Effect.Effect<A, HydrogenError, R>
}) =>
  Effect.gen(function* () {
    const { bus, store, origin, lock, deliver, channels } = deps
    const sequences = new WeakMap<ChannelState, Sequence>()
    /** Channels listened to: the subscription's scope, and when the broker confirmed it. */
    const watched = new Map<string, { readonly scope: Scope.CloseableScope; readonly ready: Deferred.Deferred<void> }>()
    const parentScope = yield* Effect.scope
    const sessionRecords = yield* makeSessionRecords({ bus, origin, storageFailed: deps.storageFailed })

    const prepared = (channel: ChannelState, event: WireEvent, text: string, now: number): Prepared => {
      const publication: Publication = {
        channel: channel.name,
        action: event.action,
        data: event.data,
        priority: event.priority ?? "normal",
        ack: event.ack === true
      }
      return {
        channel: channel.name,
        room: channel.room,
        publication,
        id: event.id,
        seq: event.seq,
        text,
        acked: event.ack
          ? new AckedEvent(eventOrdinal(event.id) ?? 0, event.id, channel.name, event.seq, text, now)
          : undefined
      }
    }
    const fromEntry = (channel: ChannelState, entry: StreamEntry, epochJson: string, now: number) => {
      const text = sequencedEvent(entry.payload, entry.seq, epochJson)
      return prepared(channel, { ...(JSON.parse(entry.payload) as WireEvent), seq: entry.seq }, text, now)
    }

    /** Appends `item` to `out` in seq order: first whatever this node has not delivered before it, read from history. */
    const admit = (channel: ChannelState, item: Prepared, out: Array<Prepared>, now: number) =>
      Effect.gen(function* () {
        const seq = item.seq!
        const sequence = sequences.get(channel)
        if (sequence === undefined || channel.members.size === 0) {
          sequences.set(channel, { delivered: seq })
          out.push(item)
          return
        }
        if (seq <= sequence.delivered) return
        if (seq > sequence.delivered + 1) {
          const missing = yield* store
            .readAfter(channel.stream, sequence.delivered, seq - sequence.delivered - 1)
            .pipe(deps.storageFailed("reading history"))
          const epochJson = yield* deps.epochOf(channel)
          for (const entry of missing) if (entry.seq < seq) out.push(fromEntry(channel, entry, epochJson, now))
        }
        sequence.delivered = seq
        out.push(item)
      })

    /** Orders and delivers a batch (under the lock); a failing history read costs only that channel's gap. */
    const deliverOrdered = (batch: ReadonlyArray<Prepared>, now: number) =>
      Effect.gen(function* () {
        const out: Array<Prepared> = []
        for (const item of batch) {
          const channel = channels.get(item.channel)
          if (item.seq === undefined || channel === undefined) out.push(item)
          else yield* admit(channel, item, out, now).pipe(Effect.catchAll(() => Effect.sync(() => out.push(item))))
        }
        deliver(out)
      })

    /** What other nodes announced on a channel: decoded, then ordered and delivered under the lock. */
    const received = (name: string, payloads: Iterable<string>) =>
      Effect.gen(function* () {
        const channel = channels.get(name)
        if (channel === undefined) return
        const now = yield* Clock.currentTimeMillis
        const batch: Array<Prepared> = []
        for (const payload of payloads) {
          const newline = payload.indexOf("\n")
          if (newline < 0 || payload.slice(0, newline) === origin) continue
          const text = payload.slice(newline + 1)
          batch.push(prepared(channel, JSON.parse(text) as WireEvent, text, now))
        }
        if (batch.length > 0) yield* lock.withPermits(1)(deliverOrdered(batch, now))
      }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("hydrogen: a cluster event was dropped", cause)))

    /**
     * Under the lock, before a subscriber joins a reliable channel: delivers to the others what
     * history has beyond this node's position, and returns the seq the new subscription starts after.
     */
    const catchUp = (channel: ChannelState, last: number) =>
      Effect.gen(function* () {
        const sequence = sequences.get(channel)
        if (sequence === undefined || channel.members.size === 0) {
          sequences.set(channel, { delivered: last })
          return last
        }
        if (sequence.delivered < last) {
          const entries = yield* store
            .readAfter(channel.stream, sequence.delivered)
            .pipe(deps.storageFailed("reading history"))
          const epochJson = yield* deps.epochOf(channel)
          const now = yield* Clock.currentTimeMillis
          deliver(entries.map((entry) => fromEntry(channel, entry, epochJson, now)))
          sequence.delivered = Math.max(last, entries.at(-1)?.seq ?? 0)
        }
        return sequence.delivered
      })

    // After a broker outage, announcements of other nodes may be lost: each reliable channel listened to
    // catches up from the shared history at once, instead of at its next event.
    const runtime = yield* Effect.runtime<never>()
    bus.onReconnect(() =>
      Runtime.runFork(runtime)(
        lock
          .withPermits(1)(
            Effect.forEach(
              [...watched.keys()],
              (name) => {
                const channel = channels.get(name)
                if (!channel?.reliable || channel.members.size === 0) return Effect.void
                return Effect.flatMap(store.position(channel.stream), (position) => catchUp(channel, position.last))
              },
              { discard: true }
            )
          )
          .pipe(
            Effect.catchAllCause((cause) => Effect.logWarning("hydrogen: catching up after an outage failed", cause))
          )
      )
    )

    return {
      /** Delivers a flushed batch here (in seq order), then announces it to the other nodes. Under the lock. */
      flushed: (batch: ReadonlyArray<Prepared>) =>
        Effect.gen(function* () {
          yield* deliverOrdered(batch, yield* Clock.currentTimeMillis)
          for (const item of batch) yield* bus.publish(channelSubject(item.channel), `${origin}\n${item.text}`)
        }),

      /** Listens to the channel's subject (before its history is read, so nothing falls in between). */
      watch: (name: string) =>
        Effect.suspend(() => {
          // Checked and claimed in one synchronous step: two subscribers at once make one subscription.
          const existing = watched.get(name)
          if (existing) return Deferred.await(existing.ready)
          const entry = {
            scope: Effect.runSync(Scope.fork(parentScope, ExecutionStrategy.sequential)),
            ready: Deferred.unsafeMake<void>(FiberId.none)
          }
          watched.set(name, entry)
          return Effect.gen(function* () {
            const queue = yield* Scope.extend(bus.subscribe(channelSubject(name)), entry.scope)
            yield* Effect.forkIn(
              Effect.forever(Effect.flatMap(Queue.takeBetween(queue, 1, 1024), (payloads) => received(name, payloads))),
              entry.scope
            )
            yield* Deferred.succeed(entry.ready, undefined)
          })
        }),
      /** The channel has no subscriber left here. */
      unwatch: (name: string) =>
        Effect.suspend(() => {
          const entry = watched.get(name)
          watched.delete(name)
          return entry ? Scope.close(entry.scope, Exit.void) : Effect.void
        }),

      catchUp,

      /** The acked events among replayed entries (the caller tracks them: another node may have sent them first). */
      replayed: (subscription: Subscription, entries: ReadonlyArray<StreamEntry>, epochJson: string) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const channel = channels.get(subscription.channel)
          if (!channel) return []
          return entries.flatMap((entry) => {
            if (!entry.payload.endsWith(',"ack":true}')) return []
            const item = fromEntry(channel, entry, epochJson, now)
            if (subscription.filter && !matches(subscription.filter, item.publication.data)) return []
            return item.acked ? [item.acked] : []
          })
        }),

      ...sessionRecords
    }
  })

export type ClusterChannels = Effect.Effect.Success<ReturnType<typeof makeClusterChannels>>
