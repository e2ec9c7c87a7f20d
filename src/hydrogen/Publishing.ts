import { Cause, Clock, Deferred, Effect, Either, Exit, FiberId, Queue, Scheduler } from "effect"
import type { HydrogenSettings } from "./Config.ts"
import { applicationError, ErrorCodes, type HydrogenError } from "./Errors.ts"
import { eventBody, plainEvent, type Publication, sequencedEvent } from "./Encode.ts"
import type { Metrics } from "../../layers/Observability/Metrics.ts"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { ChannelState, Prepared } from "./Delivery.ts"
import { eventId } from "./EventIds.ts"
import { storageFailed } from "./History.ts"
import { AckedEvent } from "./Session.ts"

export interface Published {
  readonly id: string
  readonly channel: string
  readonly seq?: number
  readonly epoch?: string
}

/** What a publication ends in: where it went, or why it did not. */
export type PublishOutcome = Either.Either<Published, HydrogenError>

/** A publication waiting for the flush; `outcome` is set while the flush prepares it. */
class Queued {
  outcome: PublishOutcome | undefined = undefined
  constructor(
    readonly publication: Publication,
    readonly settle: (outcome: PublishOutcome) => void
  ) {}
}

const handlerFailed = applicationError(ErrorCodes.handlerFailed, "publishing failed")

/**
 * Publications queue up and one fiber flushes them: high priority first, reliable channels get
 * their seq (StreamStore append) in flush order, then the batch is delivered synchronously under
 * the delivery lock, and every publisher hears its outcome in the order it published. Enqueueing
 * is synchronous (`publishNow`), so a publish command needs no fiber of its own.
 */
export const makePublishing = (deps: {
  readonly settings: HydrogenSettings
  readonly store: typeof StreamStore.Service
  readonly metrics: typeof Metrics.Service
  readonly lock: Effect.Semaphore
  readonly idPrefix: string
  readonly channelFor: (name: string) => ChannelState
  readonly epochOf: (channel: ChannelState) => Effect.Effect<string, HydrogenError>
  /** Delivers a prepared batch: locally, or through the cluster (which also announces it). */
  readonly flushed: (batch: ReadonlyArray<Prepared>) => Effect.Effect<void> | void
}) =>
  Effect.gen(function* () {
    const { settings, store, lock, idPrefix, channelFor, epochOf } = deps
    const published = deps.metrics.counter("switchboard_hydrogen_events_published_total", "Events published", [
      "reliable"
    ])
    const publishedReliable = published.labels({ reliable: "true" })
    const publishedPlain = published.labels({ reliable: "false" })
    const bounds = { maxEntries: settings.historySize, maxBytes: settings.historyBytes }
    const queue = yield* Queue.unbounded<Queued>()
    // setImmediate: after the sockets' reads of this turn, without the 1 ms floor of a timer.
    const afterThisTurn = Effect.yieldNow().pipe(Effect.withScheduler(Scheduler.make((task) => setImmediate(task))))
    let nextId = 0

    const ackedEvent = (
      publication: Publication,
      ordinal: number,
      id: string,
      name: string,
      seq: number | undefined,
      text: string,
      at: number
    ) => (publication.ack ? new AckedEvent(ordinal, id, name, seq, text, at) : undefined)

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
        Effect.catchAllCause((cause) => {
          queued.outcome = Either.left(Cause.isFailType(cause) ? cause.error : handlerFailed)
          return Cause.isFailType(cause)
            ? Effect.succeed(undefined)
            : Effect.as(Effect.logError("publishing failed", Cause.pretty(cause)), undefined)
        })
      )

    const flush = Effect.gen(function* () {
      const first = yield* Queue.take(queue)
      // What every socket hands over in this event-loop turn joins one flush (one wake-up per message otherwise).
      yield* afterThisTurn
      const taken = [first, ...(yield* Queue.takeAll(queue))]
      const high: Array<Queued> = []
      const normal: Array<Queued> = []
      for (const queued of taken) (queued.publication.priority === "high" ? high : normal).push(queued)
      const nowMillis = yield* Clock.currentTimeMillis
      const now = new Date(nowMillis).toISOString()
      yield* lock.withPermits(1)(
        Effect.gen(function* () {
          const batch: Array<Prepared> = []
          for (const queued of [...high, ...normal]) {
            const item = yield* prepare(queued, now, nowMillis)
            if (!item) continue
            batch.push(item)
            queued.outcome = Either.right(item.result)
          }
          const delivering = deps.flushed(batch)
          if (delivering) yield* delivering
          // In arrival order: one connection's pipelined publishes are answered in the order it sent them.
          for (const queued of taken) queued.settle(queued.outcome ?? Either.left(handlerFailed))
        })
      )
    })
    yield* Effect.forkScoped(Effect.forever(flush))

    return {
      /** Enqueues one publication now; `settle` hears its outcome from the flush fiber. */
      publishNow: (publication: Publication, settle: (outcome: PublishOutcome) => void): void => {
        queue.unsafeOffer(new Queued(publication, settle))
      },
      /** Enqueues publications and waits until they are stored and delivered. */
      publish: (publications: ReadonlyArray<Publication>): Effect.Effect<Array<PublishOutcome>> =>
        Effect.suspend(() => {
          const waits = publications.map((publication) => {
            const done = Deferred.unsafeMake<Published, HydrogenError>(FiberId.none)
            queue.unsafeOffer(
              new Queued(publication, (outcome) =>
                Deferred.unsafeDone(
                  done,
                  Either.isRight(outcome) ? Exit.succeed(outcome.right) : Exit.fail(outcome.left)
                )
              )
            )
            return done
          })
          return Effect.forEach(waits, (done) => Effect.either(Deferred.await(done)))
        })
    }
  })
