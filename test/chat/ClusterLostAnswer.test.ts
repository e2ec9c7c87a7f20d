import { describe, expect } from "bun:test"
import { Deferred, Effect, Layer, TestClock } from "effect"
import { StreamStore } from "../../layers/Storage/StreamStore.ts"
import { StorageError } from "../../src/storage/Account.ts"
import { PartialAppend } from "../../src/storage/Stream.ts"
import { it } from "../support/effect.ts"
import { faultyFirstNodeHistory, type HistoryStores, heardOnly, heldBatchCluster } from "./clusterSupport.ts"

/**
 * When the answer for a batch holding "lost" comes: to the store's own resend, to chat's a second later, or never
 * (the batch stored or not; or not stored, and the first node's next read of the history fails).
 */
type Answered = "resend" | "a second later" | "never, stored" | "never, not stored" | "never, history unreadable"

/**
 * The first node's view of the shared history (a Redis- or SQL-like store) loses the answer of a batch holding a
 * payload with "lost" after storing it. It then resends the batch under its id, as those stores do; an answer
 * to the resend, or to chat's own append of the batch again under its id (a second later), comes as `answered` says.
 */
const lostAnswerHistory = (open: Deferred.Deferred<void>, answered: Answered): HistoryStores => {
  /** How many of the first node's reads of the history fail from now on. */
  let failingReads = 0
  let lostSeen = false
  const stores = faultyFirstNodeHistory(open, (shared) => {
    let calls = 0
    return (stream, payloads, bounds, batch = crypto.randomUUID()) =>
      Effect.gen(function* () {
        const lost = payloads.some((payload) => payload.includes("lost"))
        if (lost && answered === "never, history unreadable" && !lostSeen) failingReads = 1
        lostSeen ||= lost
        if (lost && (answered === "never, not stored" || answered === "never, history unreadable"))
          return yield* new PartialAppend({ message: "no answer", stored: [], unsure: payloads.length })
        const stored = yield* shared.appendMany(stream, payloads, bounds, batch)
        if (!lost) return stored
        if (answered === "a second later" && calls++ > 0) return stored
        const resent = yield* shared.appendMany(stream, payloads, bounds, batch)
        if (answered === "resend") return resent
        return yield* new PartialAppend({ message: "no answer", stored: [], unsure: payloads.length })
      })
  })
  return readsFailing(stores, () => failingReads-- > 0)
}

/** `stores` with a read of the history by the first node failing when `failing()` says so. */
const readsFailing = (stores: HistoryStores, failing: () => boolean): HistoryStores =>
  Effect.map(stores, (layerOf) => {
    let nodes = 0
    return () => {
      const layer = layerOf()
      if (nodes++ > 0) return layer
      const unreachable = Effect.fail(new StorageError({ message: "history unreachable" }))
      const wrapped = Effect.map(StreamStore, (store) => ({
        ...store,
        readAfter: (stream: string, after: number, limit?: number) =>
          failing() ? unreachable : store.readAfter(stream, after, limit)
      }))
      return Layer.effect(StreamStore, wrapped).pipe(Layer.provide(layer))
    }
  })

const titles: Record<Answered, string> = {
  resend: "the resend under the batch id answers its seqs: every line once, in order, stored once",
  "a second later":
    "no answer to the resend either: appended again under its id a second later, the answer gives its seqs: every line once, in order",
  "never, stored":
    "no answer while the store remembers its id: then read from the history, where it is, and sent with its seqs: every line once, in order",
  "never, not stored":
    "no answer while the store remembers its id, and not in the history: sent without a seq, each append counted, not lost",
  "never, history unreadable":
    "no answer while the store remembers its id, and the history cannot be read: sent without a seq, the failed read counted too, not lost"
}

/** Appended, again a second later, then twenty times more (each failure counted): past that it goes without a seq. */
const unsure = (answered: Answered) => answered.startsWith("never")

describe("chat across nodes: a history batch whose answer was lost (memory, TestClock)", () => {
  for (const answered of [
    "resend",
    "a second later",
    "never, stored",
    "never, not stored",
    "never, history unreadable"
  ] as const)
    it.effect(titles[answered], () =>
      Effect.gen(function* () {
        // The first line's append waits; the next three queue behind it and go as one batch.
        const said = ["a", "b lost", "c", "d"]
        const { a, alice, bob } = yield* heldBatchCluster((open) => lostAnswerHistory(open, answered), "lost", said)
        // Chat appends an unsure batch again every second, twenty times (the store remembers its id half a minute).
        yield* TestClock.adjust(unsure(answered) ? "25 seconds" : "1 second")
        yield* heardOnly([alice, bob], said)
        const historyErrors = a.metrics.counter("switchboard_chat_history_errors_total", "", ["server"])
        expect(historyErrors.labels({ server: "chat" }).value).toBe(
          answered === "never, history unreadable" ? 23 : unsure(answered) ? 22 : answered === "resend" ? 0 : 1
        )
        // The next seq: a node missing seqs before it would fill them from the history; none comes twice.
        alice.sendMessage("after")
        yield* heardOnly([alice, bob], ["after"])
        const seqs =
          answered === "never, not stored" || answered === "never, history unreadable" ? [1, 2] : [1, 2, 3, 4, 5]
        expect((yield* a.store.readAfter("chat/lost", 0)).map((entry) => entry.seq)).toEqual(seqs)
      })
    )
})
