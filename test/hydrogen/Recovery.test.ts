import { describe, expect, test } from "bun:test"
import { FastCheck } from "effect"
import { missedEntries, unrecoverable } from "../../src/hydrogen/Recovery.ts"

const entries = (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => ({ seq: from + i, payload: "", at: 0 }))

describe("recovery rules", () => {
  test("a position is recoverable exactly when its epoch matches and the gap is still in history", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 0, max: 50 }),
        FastCheck.integer({ min: 0, max: 50 }),
        FastCheck.integer({ min: 0, max: 60 }),
        FastCheck.boolean(),
        (kept, trimmed, seq, sameEpoch) => {
          const last = kept + trimmed
          const position = { epoch: "e", first: kept === 0 ? 0 : trimmed + 1, last }
          const outcome = unrecoverable({ epoch: sameEpoch ? "e" : "f", seq }, position)
          const expected = !sameEpoch
            ? "epoch_changed"
            : seq > last
              ? "unknown_position"
              : seq === last || seq >= trimmed
                ? undefined
                : "history_trimmed"
          expect(outcome === undefined ? undefined : outcome.recovered === false ? outcome.reason : "?").toBe(expected)
        }
      ),
      { numRuns: 500 }
    )
  })

  test("early and late reads join into exactly the entries after seq, or nothing when history moved past it", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 0, max: 30 }),
        FastCheck.integer({ min: 0, max: 30 }),
        FastCheck.integer({ min: 0, max: 30 }),
        (seq, earlyCount, lateCount) => {
          const early = entries(seq + 1, seq + earlyCount)
          const late = entries(seq + earlyCount + 1, seq + earlyCount + lateCount)
          expect(missedEntries(seq, early, late)!.map((e) => e.seq)).toEqual(
            entries(seq + 1, seq + earlyCount + lateCount).map((e) => e.seq)
          )
          // the first missed entry was trimmed before it could be read: nothing exact can be replayed
          const trimmedEarly = early.slice(1)
          if (trimmedEarly.length + late.length > 0 && earlyCount > 0)
            expect(missedEntries(seq, trimmedEarly, late)).toBeUndefined()
        }
      ),
      { numRuns: 300 }
    )
    expect(missedEntries(3, [], [])).toEqual([])
    expect(missedEntries(3, entries(5, 6), [])).toBeUndefined()
    expect(missedEntries(3, entries(4, 5), entries(7, 8))).toBeUndefined()
  })
})
