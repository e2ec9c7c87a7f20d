import { Data, Schema } from "effect"

/** One stored entry of a stream. `seq` starts at 1 and is never reused, even after trimming. */
export const StreamEntry = Schema.Struct({
  seq: Schema.Positive.pipe(Schema.int()),
  payload: Schema.String,
  /** Epoch milliseconds when stored. */
  at: Schema.Number
})
export type StreamEntry = typeof StreamEntry.Type

/**
 * A batch append that stopped partway or whose outcome is partly unknown. `stored` are the batch's first entries,
 * stored with these seqs; of the payloads after them, the next `unsure` may have been stored (the answer was lost and
 * asking again failed too: the one right after them on NATS, the whole batch on an atomic backend), the rest were not.
 */
export class PartialAppend extends Data.TaggedError("PartialAppend")<{
  readonly message: string
  readonly stored: ReadonlyArray<StreamEntry>
  readonly unsure: number
  readonly cause?: unknown
}> {}

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

/** Whether a stream holding `count` entries of `bytes` in total must drop its oldest entry to fit `bounds`. */
export const trimStep = (count: number, bytes: number, bounds: StreamBounds): boolean =>
  count > 0 && (count > (bounds.maxEntries ?? Infinity) || bytes > (bounds.maxBytes ?? Infinity))

/** How many of `sizes` (oldest first) to drop so the rest fit `bounds`. Pure, shared by all backends. */
export const overflowCount = (sizes: ReadonlyArray<number>, bounds: StreamBounds): number => {
  let count = sizes.length
  let bytes = sizes.reduce((sum, size) => sum + size, 0)
  let drop = 0
  while (trimStep(count, bytes, bounds)) {
    bytes -= sizes[drop++]!
    count--
  }
  return drop
}
