import { describe, expect } from "bun:test"
import { Deferred, Effect } from "effect"
import { PartialAppend } from "../../src/storage/Stream.ts"
import { memoryBackend } from "../layers/Cluster/backends.ts"
import { it } from "../support/effect.ts"
import {
  chatCluster,
  faultyFirstNodeHistory,
  type HistoryStores,
  lines,
  messagesOf,
  pushedBeforeProbe
} from "./clusterSupport.ts"

/**
 * The first node's view of the shared history (a NATS-like store) stops a batch at a payload containing
 * "refused": the ones before it are stored, then PartialAppend.
 */
const partialHistory = (open: Deferred.Deferred<void>, unsure: boolean): HistoryStores =>
  faultyFirstNodeHistory(
    open,
    (shared) => (stream, payloads, bounds) =>
      Effect.gen(function* () {
        const refused = payloads.findIndex((payload) => payload.includes("refused"))
        if (refused < 0) return yield* shared.appendMany(stream, payloads, bounds)
        const stored = yield* shared.appendMany(stream, payloads.slice(0, refused), bounds)
        return yield* new PartialAppend({ message: "refused mid-batch", stored, unsure: unsure ? 1 : 0 })
      })
  )

describe("chat across nodes: a history batch stored partway (memory, TestClock)", () => {
  for (const unsure of [false, true])
    it.effect(
      unsure
        ? "the one whose outcome is unknown is not sent (it was not stored); the others once, in order, nothing twice"
        : "what was stored goes with its seq, the rest without: every member gets each line once, in order, nothing twice later",
      () =>
        Effect.gen(function* () {
          const open = yield* Deferred.make<void>()
          const { node, join } = yield* chatCluster(memoryBackend, partialHistory(open, unsure))
          const a = yield* node("partial-a")
          const b = yield* node("partial-b")
          const alice = yield* join(a.port, "alice", "partial")
          const bob = yield* join(b.port, "bob", "partial")
          // The first line's append waits; the next three queue behind it and go as one batch.
          for (const line of ["a", "b", "c refused", "d"]) alice.client.sendMessage(line)
          expect(messagesOf(yield* pushedBeforeProbe(alice.client))).toEqual([])
          yield* Deferred.succeed(open, undefined)
          const expected = unsure ? ["a", "b", "d"] : ["a", "b", "c refused", "d"]
          for (const client of [alice.client, bob.client])
            expect(yield* lines(client, expected.length)).toEqual(expected)
          // Seq 3 next: node B must not read seq 2 ("b", sent with its seq) from the history again.
          alice.client.sendMessage("after")
          for (const client of [alice.client, bob.client]) {
            expect(yield* lines(client, 1)).toEqual(["after"])
            expect(messagesOf(yield* pushedBeforeProbe(client))).toEqual([])
          }
          expect((yield* a.store.readAfter("chat/partial", 0)).map((entry) => entry.seq)).toEqual([1, 2, 3])
        })
    )
})
