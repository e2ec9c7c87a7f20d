import { Context, type Effect } from "effect"
import type { StorageError } from "../../src/storage/Account.ts"
import type { PartialAppend, StreamBounds, StreamEntry, StreamPosition } from "../../src/storage/Stream.ts"

/**
 * Append-only, bounded, sequenced streams of text payloads, one per key: chat room history,
 * Hydrogen reliable-channel history. Backends: memory (default), SQLite, MySQL.
 */
export class StreamStore extends Context.Tag("switchboard/StreamStore")<
  StreamStore,
  {
    /** Stores `payload` as the next entry and trims the stream to `bounds`. */
    readonly append: (stream: string, payload: string, bounds: StreamBounds) => Effect.Effect<StreamEntry, StorageError>
    /**
     * Appends `payloads` in order as consecutive entries (one round trip where the backend allows) and trims to
     * `bounds` as if each had been appended on its own. The entries come back in the same order. `batch` names the
     * batch (made here when absent): the same batch appended again within half a minute returns the entries stored
     * the first time and stores nothing, so a try whose answer was lost is resent once under it. A StorageError:
     * none stored. A PartialAppend: `stored` went in, the next `unsure` may have (no answer to the resend either),
     * the rest did not; on an atomic backend (memory, Redis, SQL) `stored` is empty and `unsure` the whole batch,
     * on NATS (no atomic batches) a failure partway names the entries stored and at most one unsure.
     */
    readonly appendMany: (
      stream: string,
      payloads: ReadonlyArray<string>,
      bounds: StreamBounds,
      batch?: string
    ) => Effect.Effect<ReadonlyArray<StreamEntry>, StorageError | PartialAppend>
    /**
     * The same append done on the spot, stamped `at` (ms), for backends that need no I/O (memory): a hot path such
     * as chat history then runs no fiber per message. Absent on backends that must do I/O.
     */
    readonly appendNow?: (stream: string, payload: string, bounds: StreamBounds, at: number) => StreamEntry
    /** Entries with seq > `afterSeq`, oldest first, at most `limit`. */
    readonly readAfter: (
      stream: string,
      afterSeq: number,
      limit?: number
    ) => Effect.Effect<ReadonlyArray<StreamEntry>, StorageError>
    readonly position: (stream: string) => Effect.Effect<StreamPosition, StorageError>
    /** Deletes the stream; its next append starts a new epoch at seq 1. */
    readonly remove: (stream: string) => Effect.Effect<void, StorageError>
  }
>() {}
