import { describe, expect, test } from "bun:test"
import { FastCheck } from "effect"
import { eventId, eventOrdinal } from "../../src/hydrogen/EventIds.ts"
import { PendingAcks } from "../../src/hydrogen/PendingAcks.ts"
import type { PendingAck } from "../../src/hydrogen/Session.ts"

const entry = (ordinal: number, attempts = 1, prefix = "abcd1234"): PendingAck => ({
  ordinal,
  id: eventId(prefix, ordinal),
  channel: "jobs",
  seq: ordinal + 1,
  text: `event-${ordinal}`,
  attempts,
  sentAt: 0
})

/** Mostly ascending ordinals acked mostly in order, as delivery and clients do, with strays of every kind. */
const steps = FastCheck.array(
  FastCheck.oneof(
    {
      weight: 4,
      arbitrary: FastCheck.record({ kind: FastCheck.constant("track" as const), ordinal: FastCheck.nat(40) })
    },
    {
      weight: 4,
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("ack" as const),
        ordinal: FastCheck.nat(45),
        forged: FastCheck.boolean()
      })
    },
    {
      weight: 1,
      arbitrary: FastCheck.record({ kind: FastCheck.constant("resend" as const), ordinal: FastCheck.nat(40) })
    }
  ),
  { maxLength: 300 }
)

describe("hydrogen pending acks (index by event ordinal)", () => {
  test("behaves like a Map from event id to entry, iterating in event order", () => {
    FastCheck.assert(
      FastCheck.property(steps, FastCheck.nat(30), (script, start) => {
        const pending = new PendingAcks()
        const model = new Map<number, PendingAck>()
        let next = start
        for (const step of script) {
          // Tracking: usually the next event, sometimes an earlier or repeated one.
          const ordinal = step.kind === "track" ? (step.ordinal < 30 ? next++ : step.ordinal) : step.ordinal
          if (step.kind === "track") {
            expect(pending.has(ordinal)).toBe(model.has(ordinal))
            if (!pending.has(ordinal)) {
              const added = entry(ordinal)
              pending.add(added)
              model.set(ordinal, added)
            }
          } else if (step.kind === "ack") {
            const id = step.forged ? eventId("ffff0000", ordinal) : eventId("abcd1234", ordinal)
            const taken = pending.take(ordinal, id)
            const expected = step.forged ? undefined : model.get(ordinal)
            expect(taken).toBe(expected)
            if (expected) model.delete(ordinal)
          } else {
            const current = model.get(ordinal)
            if (current) {
              const resent = { ...current, attempts: current.attempts + 1 }
              pending.replace(resent)
              model.set(ordinal, resent)
            } else pending.replace(entry(ordinal, 9))
          }
          expect(pending.size).toBe(model.size)
        }
        const ordered = [...model.values()].sort((a, b) => a.ordinal - b.ordinal)
        expect(pending.values()).toEqual(ordered)
        for (const value of ordered) expect(pending.get(value.id)).toBe(value)
      }),
      { numRuns: 500 }
    )
  })

  test("holes behind an unacked event are compacted away; an emptied index starts over", () => {
    const pending = new PendingAcks()
    for (let ordinal = 0; ordinal < 5000; ordinal++) pending.add(entry(ordinal))
    for (let ordinal = 1; ordinal < 5000; ordinal++)
      expect(pending.take(ordinal, eventId("abcd1234", ordinal))).toBeDefined()
    expect(pending.size).toBe(1)
    expect(pending.values().map((e) => e.ordinal)).toEqual([0])
    expect(pending.take(0, eventId("abcd1234", 0))).toBeDefined()
    expect(pending.size).toBe(0)
    expect(pending.values()).toEqual([])
    pending.add(entry(7))
    expect(pending.get(eventId("abcd1234", 7))?.ordinal).toBe(7)
  })
})

describe("hydrogen event ids", () => {
  test("an id's ordinal reads back; anything else is no ordinal or another one whose id differs", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.nat({ max: Number.MAX_SAFE_INTEGER }), (ordinal) => {
        const id = eventId("abcd1234", ordinal)
        if (ordinal < 36 ** 10) expect(eventOrdinal(id)).toBe(ordinal)
        else expect(eventOrdinal(id)).toBeUndefined()
      })
    )
    for (const id of ["", "abc", "abcd1234-", "abcd1234-A", "abcd1234-1.5", "abcd1234-\u0661", "x-00000000001z"])
      expect(eventOrdinal(id)).toBeUndefined()
    expect(eventOrdinal("x-01")).toBe(1)
  })
})
