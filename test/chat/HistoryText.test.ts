import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { bytesToStored, historyLine, storedLine, storedLinePrefix, storedToBytes } from "../../src/chat/HistoryText.ts"
import { payloadBytes } from "../../src/storage/Stream.ts"

describe("history text: bytes ↔ stored strings", () => {
  /** Mostly UTF-8 (so the text path runs), sometimes any bytes, a NUL first or a broken sequence at an edge. */
  const nearText = fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 20 }).map((s) => new TextEncoder().encode(s)),
    fc.uint8Array({ maxLength: 20 }),
    fc.constantFrom(Uint8Array.of(0), Uint8Array.of(0, 0x41), Uint8Array.of(0x41, 0xc3), Uint8Array.of(0xa9, 0x41))
  )

  test("a history line stored from its parts is the line stored whole", () =>
    fc.assert(
      fc.property(nearText, nearText, (nick, text) =>
        expect(storedLine(storedLinePrefix(nick), nick, text)).toBe(bytesToStored(historyLine(nick, text)))
      ),
      { numRuns: 5000 }
    ))

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
