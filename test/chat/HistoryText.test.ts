import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { bytesToStored, historyLine, storedToBytes } from "../../src/chat/HistoryText.ts"
import { payloadBytes } from "../../src/storage/Stream.ts"

describe("history text: bytes ↔ stored strings", () => {
  test("any bytes survive the round trip", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) =>
        expect([...storedToBytes(bytesToStored(bytes))]).toEqual([...bytes])
      ),
      {
        numRuns: 2000
      }
    ))

  test("valid UTF-8 is stored as readable text with its exact byte size", () =>
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 50 }), (s) => {
        fc.pre(!s.startsWith("\u0000"))
        const bytes = new TextEncoder().encode(s)
        expect(bytesToStored(bytes)).toBe(s)
        expect(payloadBytes(bytesToStored(bytes))).toBe(bytes.length)
      })
    ))

  test("the mapping is injective: different bytes never share a stored form", () =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }), (a, b) => {
        fc.pre(Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0)
        expect(bytesToStored(a)).not.toBe(bytesToStored(b))
      })
    ))

  test('history lines are "nick: text"', () => {
    const enc = new TextEncoder()
    expect(new TextDecoder().decode(historyLine(enc.encode("bob"), enc.encode("hi")))).toBe("bob: hi")
  })
})
