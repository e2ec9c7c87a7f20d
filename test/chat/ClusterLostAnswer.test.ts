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
 * The first node's view of the shared history (a Redis- or SQL-like store) loses the answer of a batch holding a
 * payload with "lost" after storing it. It then resends the batch under its id, as those stores do: with
 * `resendAnswered` the resend's answer comes back, else it is lost too.
 */
const lostAnswerHistory = (open: Deferred.Deferred<void>, resendAnswered: boolean): HistoryStores =>
  faultyFirstNodeHistory(
    open,
    (shared) =>
      (stream, payloads, bounds, batch = crypto.randomUUID()) =>
        Effect.gen(function* () {
          const stored = yield* shared.appendMany(stream, payloads, bounds, batch)
          if (!payloads.some((payload) => payload.includes("lost"))) return stored
          const resent = yield* shared.appendMany(stream, payloads, bounds, batch)
          if (resendAnswered) return resent
          return yield* new PartialAppend({ message: "no answer", stored: [], unsure: payloads.length })
        })
  )

describe("chat across nodes: a history batch whose answer was lost (memory, TestClock)", () => {
  for (const resendAnswered of [true, false])
    it.effect(
      resendAnswered
        ? "the resend under the batch id answers its seqs: every line once, in order, stored once"
        : "no answer to the resend either: the batch is not sent, every member reads it once from the history",
      () =>
        Effect.gen(function* () {
          const open = yield* Deferred.make<void>()
          const { node, join } = yield* chatCluster(memoryBackend, lostAnswerHistory(open, resendAnswered))
          const a = yield* node("lost-a")
          const b = yield* node("lost-b")
          const alice = yield* join(a.port, "alice", "lost")
          const bob = yield* join(b.port, "bob", "lost")
          // The first line's append waits; the next three queue behind it and go as one batch, whose answer is lost.
          for (const line of ["a", "b lost", "c", "d"]) alice.client.sendMessage(line)
          expect(messagesOf(yield* pushedBeforeProbe(alice.client))).toEqual([])
          yield* Deferred.succeed(open, undefined)
          const sent = resendAnswered ? ["a", "b lost", "c", "d"] : ["a"]
          for (const client of [alice.client, bob.client]) expect(yield* lines(client, sent.length)).toEqual(sent)
          // Seq 5 next: a node missing 2-4 fills them from the history first; none comes twice.
          alice.client.sendMessage("after")
          const rest = resendAnswered ? ["after"] : ["b lost", "c", "d", "after"]
          for (const client of [alice.client, bob.client]) {
            expect(yield* lines(client, rest.length)).toEqual(rest)
            expect(messagesOf(yield* pushedBeforeProbe(client))).toEqual([])
          }
          expect((yield* a.store.readAfter("chat/lost", 0)).map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5])
        })
    )
})
