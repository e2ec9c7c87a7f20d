import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { readStoredMessage, storedMessage } from "../../src/chat/HistoryText.ts"
import { RoomOrder, unwrap, wrapAfter, wrapNumbered, wrapReach } from "../../src/chat/RoomOrder.ts"

const frameOf = (label: string) => new TextEncoder().encode(label)
const labelOf = (frame: string | Uint8Array) => (typeof frame === "string" ? frame : new TextDecoder().decode(frame))

describe("chat room order (cluster delivery in seq order)", () => {
  test("wrapped frames unwrap to their kind, number and frame; anything else is not a chat node's", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.maxSafeNat(), fc.uint8Array({ maxLength: 40 }), (numbered, n, frame) => {
        const wrapped = numbered ? wrapNumbered(n, frame) : wrapAfter(n, frame)
        expect(unwrap(wrapped)).toEqual({ numbered, n, frame })
      })
    )
    expect(unwrap(wrapReach(2 ** 40 + 7))).toEqual({
      numbered: false,
      reach: true,
      n: 2 ** 40 + 7,
      frame: new Uint8Array(0)
    })
    expect(unwrap("text")).toBeUndefined()
    expect(unwrap(Uint8Array.of(0x45, 0x6a, 0x38, 0x40, 0, 0, 0, 0, 0, 0))).toBeUndefined()
  })

  test("a stored message names its sender; a plain line (or a bad mark) reads as a line", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat({ max: 255 }), fc.string(), (id, nickBytes, line) => {
        expect(readStoredMessage(storedMessage(id, nickBytes, line))).toEqual({ line, sender: { id, nickBytes } })
        if (!line.startsWith("\u0000\u0100")) expect(readStoredMessage(line)).toEqual({ line })
      })
    )
    expect(readStoredMessage("\u0000\u0100x")).toEqual({ line: "\u0000\u0100x" })
  })

  test("any arrival order, with losses, duplicates and frames without a seq: each seq once and in order", () => {
    const scenario = fc.record({
      count: fc.integer({ min: 1, max: 40 }),
      start: fc.nat({ max: 5 }),
      seed: fc.array(fc.nat(), { minLength: 80, maxLength: 80 }),
      lost: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
      twice: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
      trimmedBelow: fc.nat({ max: 10 }),
      pauseAt: fc.nat({ max: 60 }),
      // The broker came back somewhere along the way: the history, which has every seq, is read up to its last.
      reachAt: fc.option(fc.nat({ max: 90 }), { nil: undefined })
    })
    fc.assert(
      fc.property(scenario, ({ count, start, seed, lost, twice, trimmedBelow, pauseAt, reachAt }) => {
        const last = start + count
        // Every event: a numbered seq, or an "after" frame following seq n (as its node had it).
        const events: Array<{ numbered: boolean; n: number }> = []
        for (let seq = start + 1; seq <= last; seq++) {
          const i = seq - start - 1
          if (!lost[i]) events.push({ numbered: true, n: seq })
          if (twice[i]) events.push({ numbered: true, n: seq })
          if (seed[i]! % 4 === 0) events.push({ numbered: false, n: seq })
        }
        // Shuffled, but the "after" frames of one node keep their order among themselves (one broker connection).
        const order = events.map((event, i) => ({ event, key: seed[(i * 7) % seed.length]! }))
        order.sort((a, b) => a.key - b.key)
        const afters = events.filter((event) => !event.numbered)
        let nextAfter = 0
        const arrivals = order.map(({ event }) => (event.numbered ? event : afters[nextAfter++]!))

        const delivered: Array<string> = []
        let fills = 0
        const room: RoomOrder = new RoomOrder(
          (frame) => delivered.push(labelOf(frame)),
          () => {
            fills++
          }
        )
        room.start(start)
        // A fill answers at once from the history, which lost the seqs below `trimmedBelow` (trimmed).
        const answerFills = () => {
          while (fills > 0) {
            fills = 0
            const from = room.delivered!
            const upTo = room.fillTarget()
            if (upTo === undefined) return
            const kept = Math.max(from + 1, start + trimmedBelow)
            const entries: Array<readonly [number, string]> = []
            for (let seq = kept; seq <= upTo; seq++) entries.push([seq, `m${seq}`])
            room.filled(from, upTo, entries)
          }
        }
        arrivals.forEach((event, i) => {
          if (i === reachAt) room.reach(last)
          if (i === pauseAt) room.paused = true
          if (event.numbered) room.offer(event.n, frameOf(`m${event.n}`))
          else room.offerAfter(event.n, frameOf(`a${event.n}`))
          if (i === pauseAt + 3) {
            room.paused = false
            room.release()
          }
          answerFills()
        })
        room.paused = false
        room.release()
        if (reachAt !== undefined && reachAt >= arrivals.length) room.reach(last)
        answerFills()

        const messages = delivered.filter((label) => label.startsWith("m")).map((label) => Number(label.slice(1)))
        // In order, never twice, nothing the history still has missing.
        expect(messages).toEqual([...messages].sort((a, b) => a - b))
        expect(new Set(messages).size).toBe(messages.length)
        // A node learns of a seq from it or from any later frame: a lost one with nothing after it stays unknown.
        const known = reachAt !== undefined ? last : Math.max(start, ...arrivals.map((event) => event.n))
        for (let seq = Math.max(start + 1, start + trimmedBelow); seq <= known; seq++) expect(messages).toContain(seq)
        // An "after" frame comes after the seq it follows (or that seq was lost for good).
        for (const { n } of afters) {
          const at = delivered.indexOf(`a${n}`)
          expect(at).toBeGreaterThanOrEqual(0)
          const seqAt = delivered.indexOf(`m${n}`)
          if (seqAt >= 0) expect(seqAt).toBeLessThan(at)
        }
        expect(room.delivered).toBe(known)
      }),
      { numRuns: 300 }
    )
  })

  test("the history reaching a seq (after an outage) fills up to it with no later frame; one arriving meanwhile goes once", () => {
    const out: Array<string> = []
    let fills = 0
    const order = new RoomOrder(
      (frame) => out.push(labelOf(frame)),
      () => fills++
    )
    order.start(2)
    order.reach(2)
    expect(order.fillTarget()).toBeUndefined()
    order.reach(5)
    expect([fills, order.fillTarget()]).toEqual([1, 5])
    // Seq 4 comes live while the fill is read: held, and handed out once, in its place.
    order.offer(4, frameOf("4 live"))
    expect(out).toEqual([])
    order.filled(
      2,
      5,
      [3, 4, 5].map((seq) => [seq, frameOf(`${seq} read`)] as const)
    )
    expect(out).toEqual(["3 read", "4 live", "5 read"])
    order.offer(5, frameOf("5 live"))
    order.reach(4)
    expect([out.length, order.fillTarget()]).toEqual([3, undefined])
  })
})
