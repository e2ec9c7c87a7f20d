import { describe, expect } from "bun:test"
import { Deferred, Effect, TestClock } from "effect"
import { PartialAppend } from "../../src/storage/Stream.ts"
import { it } from "../support/effect.ts"
import { faultyFirstNodeHistory, type HistoryStores, heardOnly, heldBatchCluster } from "./clusterSupport.ts"

/**
 * When the answer for a batch holding "lost" comes: to the store's own resend, to chat's a second later, or never
 * (the batch stored or not).
 */
type Answered = "resend" | "a second later" | "never, stored" | "never, not stored"

/**
 * The first node's view of the shared history (a Redis- or SQL-like store) loses the answer of a batch holding a
 * payload with "lost" after storing it. It then resends the batch under its id, as those stores do; an answer
 * to the resend, or to chat's own append of the batch again under its id (a second later), comes as `answered` says.
 */
const lostAnswerHistory = (open: Deferred.Deferred<void>, answered: Answered): HistoryStores =>
  faultyFirstNodeHistory(open, (shared) => {
    let calls = 0
    return (stream, payloads, bounds, batch = crypto.randomUUID()) =>
      Effect.gen(function* () {
        const lost = payloads.some((payload) => payload.includes("lost"))
        if (lost && answered === "never, not stored")
          return yield* new PartialAppend({ message: "no answer", stored: [], unsure: payloads.length })
        const stored = yield* shared.appendMany(stream, payloads, bounds, batch)
        if (!lost) return stored
        if (answered === "a second later" && calls++ > 0) return stored
        const resent = yield* shared.appendMany(stream, payloads, bounds, batch)
        if (answered === "resend") return resent
        return yield* new PartialAppend({ message: "no answer", stored: [], unsure: payloads.length })
      })
  })

const titles: Record<Answered, string> = {
  resend: "the resend under the batch id answers its seqs: every line once, in order, stored once",
  "a second later":
    "no answer to the resend either: appended again under its id a second later, the answer gives its seqs: every line once, in order",
  "never, stored":
    "no answer while the store remembers its id: sent without a seq, each append counted; it was stored, so the gap fill before the next line hands it out again",
  "never, not stored":
    "no answer while the store remembers its id, and not stored: sent without a seq, each append counted, not lost"
}

/** Appended, again a second later, then twenty times more (each failure counted): past that it goes without a seq. */
const unsure = (answered: Answered) => answered.startsWith("never")

describe("chat across nodes: a history batch whose answer was lost (memory, TestClock)", () => {
  for (const answered of ["resend", "a second later", "never, stored", "never, not stored"] as const)
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
          unsure(answered) ? 22 : answered === "resend" ? 0 : 1
        )
        // The next seq: a node missing the ones before it fills them from the history first.
        alice.sendMessage("after")
        yield* heardOnly([alice, bob], answered === "never, stored" ? ["b lost", "c", "d", "after"] : ["after"])
        const seqs = answered === "never, not stored" ? [1, 2] : [1, 2, 3, 4, 5]
        expect((yield* a.store.readAfter("chat/lost", 0)).map((entry) => entry.seq)).toEqual(seqs)
      })
    )
})
