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
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("track" as const),
        ordinal: FastCheck.nat(40),
        node: FastCheck.nat(1)
      })
    },
    {
      weight: 4,
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("ack" as const),
        ordinal: FastCheck.nat(45),
        forged: FastCheck.boolean(),
        node: FastCheck.nat(1)
      })
    },
    {
      weight: 1,
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("resend" as const),
        ordinal: FastCheck.nat(40),
        node: FastCheck.nat(1)
      })
    }
  ),
  { maxLength: 300 }
)

describe("hydrogen pending acks (index by event ordinal)", () => {
  test("behaves like a Map from event id to entry, with ordinals repeated by another node's events", () => {
    // Two nodes' id prefixes: a cluster delivers events of both, whose ordinals may coincide.
    const prefixes = ["abcd1234", "ef015678"]
    const byOrder = (a: PendingAck, b: PendingAck) => a.ordinal - b.ordinal || a.id.localeCompare(b.id)
    FastCheck.assert(
      FastCheck.property(steps, FastCheck.nat(30), (script, start) => {
        const pending = new PendingAcks()
        const model = new Map<string, PendingAck>()
        let next = start
        for (const step of script) {
          const prefix = prefixes[step.node]!
          // Tracking: usually the next event, sometimes an earlier or repeated one.
          const ordinal = step.kind === "track" ? (step.ordinal < 30 ? next++ : step.ordinal) : step.ordinal
          const id = eventId(prefix, ordinal)
          if (step.kind === "track") {
            expect(pending.has(ordinal, id)).toBe(model.has(id))
            if (!pending.has(ordinal, id)) {
              const added = entry(ordinal, 1, prefix)
              pending.add(added)
              model.set(id, added)
            }
          } else if (step.kind === "ack") {
            const acked = step.forged ? eventId("ffff0000", ordinal) : id
            const taken = pending.take(ordinal, acked)
            const expected = model.get(acked)
            expect(taken).toBe(expected)
            if (expected) model.delete(acked)
          } else {
            const current = model.get(id)
            if (current) {
              const resent = { ...current, attempts: current.attempts + 1 }
              pending.replace(resent)
              model.set(id, resent)
            } else pending.replace(entry(ordinal, 9, prefix))
          }
          expect(pending.size).toBe(model.size)
        }
        expect(pending.values().sort(byOrder)).toEqual([...model.values()].sort(byOrder))
        for (const value of model.values()) expect(pending.get(value.id)).toBe(value)
      }),
      { numRuns: 500 }
    )
  })

  test("one node's events come back in event order", () => {
    const pending = new PendingAcks()
    for (const ordinal of [3, 1, 2, 5, 4]) pending.add(entry(ordinal))
    expect(pending.values().map((e) => e.ordinal)).toEqual([1, 2, 3, 4, 5])
  })

  test("a plain ack finds another node's event that shares an ordinal", () => {
    const pending = new PendingAcks()
    pending.add(entry(7))
    pending.add(entry(7, 1, "ef015678"))
    expect(pending.size).toBe(2)
    const text = `{"type":"ack","id":"${eventId("ef015678", 7)}"}`
    const start = text.indexOf(eventId("ef015678", 7))
    expect(pending.takeWritten(7, text, start)?.id).toBe(eventId("ef015678", 7))
    expect(pending.take(7, eventId("abcd1234", 7))?.id).toBe(eventId("abcd1234", 7))
    expect(pending.size).toBe(0)
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
