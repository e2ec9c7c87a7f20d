import { Schema } from "effect"

/** One stored entry of a stream. `seq` starts at 1 and is never reused, even after trimming. */
export const StreamEntry = Schema.Struct({
  seq: Schema.Positive.pipe(Schema.int()),
  payload: Schema.String,
  /** Epoch milliseconds when stored. */
  at: Schema.Number
})
export type StreamEntry = typeof StreamEntry.Type

/** Bounds applied on every append; the oldest entries go first. */
export interface StreamBounds {
  readonly maxEntries?: number
  /** Sum of payload sizes (UTF-8 bytes) kept at most. */
  readonly maxBytes?: number
}

/**
 * Where a stream stands. `epoch` changes whenever the stream is recreated (removed, or lost by a
 * memory backend's restart), so a client's "last seen seq" from another epoch is meaningless.
 */
export interface StreamPosition {
  readonly epoch: string
  /** Seq of the oldest entry still kept (0 when empty). */
  readonly first: number
  /** Seq of the newest entry ever appended (0 when none). */
  readonly last: number
}

export const payloadBytes = (payload: string) => Buffer.byteLength(payload, "utf8")

/** Which of `entries` (oldest first) to drop so the rest fit `bounds`. Pure, shared by all backends. */
export const overflowCount = (sizes: ReadonlyArray<number>, bounds: StreamBounds): number => {
  let drop = 0
  if (bounds.maxEntries !== undefined && sizes.length > bounds.maxEntries) drop = sizes.length - bounds.maxEntries
  if (bounds.maxBytes !== undefined) {
    let total = 0
    for (let i = drop; i < sizes.length; i++) total += sizes[i]!
    while (drop < sizes.length && total > bounds.maxBytes) total -= sizes[drop++]!
  }
  return drop
}
