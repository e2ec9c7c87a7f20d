import { Deferred, Effect, FiberId } from "effect"
import type { Connection } from "../../layers/Transport/Transport.ts"
import type { StoredMessage } from "./BatchAppend.ts"

/** A frame on its way out: a message to store first, or a frame without a seq (join, leave, empty message). */
export type Outgoing =
  | StoredMessage
  | { readonly frame: Uint8Array; readonly payload?: undefined; readonly except?: Connection<unknown> | undefined }

/** At most this many messages, or about this many payload characters, are stored in one round trip. */
const batchLimits = { items: 256, chars: 256 * 1024 } as const

/** Takes the stored messages at the head of `queue`, up to the first frame without a seq or the batch limits. */
const takeBatch = (queue: Array<Outgoing>): ReadonlyArray<StoredMessage> => {
  let count = 0
  let chars = 0
  while (count < queue.length && count < batchLimits.items) {
    const item = queue[count]!
    if (item.payload === undefined || (count > 0 && chars + item.payload.length > batchLimits.chars)) break
    chars += item.payload.length
    count++
  }
  return queue.splice(0, count) as Array<StoredMessage>
}

/**
 * One sender per room and node, so this node's messages keep their order in the history; what queued up while
 * one batch was stored goes out as the next batch, so a burst costs a round trip per batch, not per message.
 */
export const makeOutgoingQueue = (deps: {
  /** Stores a batch and sends its messages (appendBatch). */
  readonly storeBatch: (items: ReadonlyArray<StoredMessage>) => Effect.Effect<void>
  /** Sends a frame without a seq, after everything this node sent before it. */
  readonly sendAfter: (frame: Uint8Array, except?: Connection<unknown>) => void
  readonly runFork: (effect: Effect.Effect<void>) => unknown
}) => {
  const { storeBatch, sendAfter, runFork } = deps
  const queue: Array<Outgoing> = []
  let running: Deferred.Deferred<void> | undefined
  const drain = (done: Deferred.Deferred<void>): Effect.Effect<void> =>
    Effect.suspend(() => {
      // Frames without a seq go out where they stand: after the stored messages queued before them.
      while (queue.length > 0 && queue[0]!.payload === undefined) {
        const item = queue.shift() as Exclude<Outgoing, StoredMessage>
        sendAfter(item.frame, item.except)
      }
      if (queue.length === 0) {
        running = undefined
        return Deferred.succeed(done, undefined)
      }
      return Effect.zipRight(storeBatch(takeBatch(queue)), drain(done))
    })
  return {
    enqueue: (item: Outgoing) => {
      // Nothing ahead and nothing to store: out at once, no fiber.
      if (running === undefined && item.payload === undefined) return sendAfter(item.frame, item.except)
      queue.push(item)
      if (running !== undefined) return
      const done = Deferred.unsafeMake<void>(FiberId.none)
      running = done
      runFork(drain(done))
    },
    /** Completes once everything queued has been stored and sent. */
    settled: Effect.suspend(() => (running === undefined ? Effect.void : Deferred.await(running)))
  }
}
