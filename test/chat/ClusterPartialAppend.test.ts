import { describe, expect } from "bun:test"
import { Deferred, Effect, TestClock } from "effect"
import { PartialAppend, type StreamEntry } from "../../src/storage/Stream.ts"
import { it } from "../support/effect.ts"
import { faultyFirstNodeHistory, type HistoryStores, heardOnly, heldBatchCluster } from "./clusterSupport.ts"

type Refusal = "refused" | "unsure, not stored" | "unsure, stored"

/**
 * The first node's view of the shared history (a NATS-like store: each entry stored under its batch id and index, so a
 * resend of the batch stores the rest once) stops a batch at a payload containing "refused": the ones before it are
 * stored, then PartialAppend, naming that one unsure (the first time only; stored or not) or refused (every time).
 */
const partialHistory = (open: Deferred.Deferred<void>, refusal: Refusal): HistoryStores =>
  faultyFirstNodeHistory(open, (shared) => {
    const byId = new Map<string, StreamEntry>()
    let refusals = 0
    return (stream, payloads, bounds, batch = crypto.randomUUID()) =>
      Effect.gen(function* () {
        const stored: Array<StreamEntry> = []
        for (const [i, payload] of payloads.entries()) {
          const id = `${batch}.${i}`
          const earlier = byId.get(id)
          if (earlier) {
            stored.push(earlier)
            continue
          }
          if (payload.includes("refused") && (refusal === "refused" || refusals++ === 0)) {
            if (refusal === "unsure, stored") byId.set(id, (yield* shared.appendMany(stream, [payload], bounds))[0]!)
            const unsure = refusal === "refused" ? 0 : 1
            return yield* new PartialAppend({ message: "refused mid-batch", stored, unsure })
          }
          const entry = (yield* shared.appendMany(stream, [payload], bounds))[0]!
          byId.set(id, entry)
          stored.push(entry)
        }
        return stored
      })
  })

const titles: Record<Refusal, string> = {
  refused:
    "what was stored goes with its seq, the rest without: every member gets each line once, in order, nothing twice later",
  "unsure, not stored":
    "the one whose outcome is unknown is appended again under its batch id (it was not stored: now it is): every line once, with its seq, in order",
  "unsure, stored":
    "the one whose outcome is unknown is appended again under its batch id (it was stored: the resend finds it): every line once, in order"
}

describe("chat across nodes: a history batch stored partway (memory, TestClock)", () => {
  for (const refusal of ["refused", "unsure, not stored", "unsure, stored"] as const)
    it.effect(titles[refusal], () =>
      Effect.gen(function* () {
        // The first line's append waits; the next three queue behind it and go as one batch.
        const said = ["a", "b", "c refused", "d"]
        const { a, alice, bob } = yield* heldBatchCluster((open) => partialHistory(open, refusal), "partial", said)
        // An unsure batch is appended again a second later.
        yield* TestClock.adjust("1 second")
        yield* heardOnly([alice, bob], said)
        // The next seq: node B must not read one sent with its seq from the history again.
        alice.sendMessage("after")
        yield* heardOnly([alice, bob], ["after"])
        // Refused: "c refused" and "d" were not stored. Unsure: every line once.
        const stored = refusal === "refused" ? [1, 2, 3] : [1, 2, 3, 4, 5]
        expect((yield* a.store.readAfter("chat/partial", 0)).map((entry) => entry.seq)).toEqual(stored)
      })
    )
})
