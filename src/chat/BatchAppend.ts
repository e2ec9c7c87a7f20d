import { Cause, Effect, Option } from "effect"
import type { StreamStore } from "../../layers/Storage/StreamStore.ts"
import type { StreamBounds, StreamEntry } from "../storage/Stream.ts"

/** A message to store in the history first: its live frame and its history payload. */
export interface StoredMessage {
  readonly frame: Uint8Array
  readonly payload: string
}

export interface BatchAppendOptions {
  readonly store: StreamStore["Type"]
  readonly stream: string
  readonly bounds: StreamBounds
  readonly failed: (what: string) => (error: unknown) => Effect.Effect<void>
  /** Sends a stored message with the seq the history gave it. */
  readonly sendNumbered: (frame: Uint8Array, seq: number) => void
  /** Sends a message the history did not store, without a seq (after what this node sent before). */
  readonly sendUnnumbered: (frame: Uint8Array) => void
  /** The highest seq this node's own messages got so far: a batch of it is stored after that. */
  readonly storedUpTo: () => number
}

/** A batch whose outcome is unknown is appended again under its id, a second apart: then this many times more. */
const unsureRetries = 20

/**
 * Stores a run of messages in one round trip, then sends each with its seq, in order. A batch whose outcome is
 * unknown (no answer to its resend either) is appended again under its id, a second apart, while the store still
 * remembers the id: stored once either way, it is then sent with its seqs (the caller's later messages wait).
 * Still unknown after that, what the history holds of it goes with its seqs and the rest without, as if refused.
 */
export const appendBatch = (options: BatchAppendOptions, items: ReadonlyArray<StoredMessage>): Effect.Effect<void> => {
  const { store, stream, bounds, failed } = options
  const payloads = items.map((item) => item.payload)
  const batch = crypto.randomUUID()
  let sent = 0
  const sendFrom = (entries: ReadonlyArray<StreamEntry>) => {
    if (entries.length <= sent) return
    for (const [i, { seq }] of entries.slice(sent).entries()) options.sendNumbered(items[sent + i]!.frame, seq)
    sent = entries.length
  }
  // Not stored (history unreachable): still delivered, without a seq, like a message in one process.
  const sendRestUnnumbered = Effect.sync(() => {
    for (const item of items.slice(sent)) options.sendUnnumbered(item.frame)
  })
  /**
   * Past the store's memory of the id, the history itself tells: what of the rest it holds after this node's last
   * stored message (in order) goes with its seq; what it does not, or all of it if the read fails, without.
   */
  const sendFoundIn = (entries: ReadonlyArray<StreamEntry>) => {
    let next = 0
    for (const item of items.slice(sent)) {
      while (next < entries.length && entries[next]!.payload !== item.payload) next++
      if (next === entries.length) break
      options.sendNumbered(item.frame, entries[next++]!.seq)
      sent++
    }
  }
  const sendAsTheHistoryHas = Effect.suspend(() => store.readAfter(stream, options.storedUpTo())).pipe(
    Effect.flatMap((entries) => Effect.sync(() => sendFoundIn(entries))),
    Effect.catchAll(failed("read")),
    Effect.zipRight(sendRestUnnumbered)
  )
  /** Sends what is known stored; fails with how many entries after them have an unknown outcome. */
  const attempt = (again: boolean) =>
    store.appendMany(stream, payloads, bounds, batch).pipe(
      Effect.tapErrorCause(failed("append")),
      Effect.matchCauseEffect({
        // (A store that answers with fewer entries than asked leaves the rest not stored.)
        onSuccess: (entries) =>
          Effect.zipRight(
            Effect.sync(() => sendFrom(entries)),
            sendRestUnnumbered
          ),
        onFailure: (cause): Effect.Effect<void, number> => {
          // A batch stopped partway (NATS): what was stored goes with its seq, like a success.
          const failure = Option.getOrUndefined(Cause.failureOption(cause))
          const partial = failure?._tag === "PartialAppend" ? failure : undefined
          if (partial) sendFrom(partial.stored)
          // Once unsure, any failure of a resend leaves it unsure: only an answer tells.
          const unsure = partial ? partial.unsure : again ? items.length - sent : 0
          return unsure > 0 ? Effect.fail(unsure) : sendRestUnnumbered
        }
      })
    )
  return attempt(false).pipe(
    Effect.catchAll(() => Effect.retry(Effect.delay(attempt(true), "1 second"), { times: unsureRetries })),
    // Still unknown past the store's memory of the id (each append was logged and counted): as the history has it.
    Effect.catchAll((unsure) =>
      Effect.zipRight(
        Effect.logError(
          `chat history: ${unsure} messages still unsure after ${unsureRetries + 2} appends, sent as the history has them`
        ),
        sendAsTheHistoryHas
      )
    )
  )
}
