import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { overflowCount, payloadBytes, type StreamBounds } from "../../../src/storage/Stream.ts"

const bounds: fc.Arbitrary<StreamBounds> = fc.record(
  { maxEntries: fc.nat(10), maxBytes: fc.nat(100) },
  { requiredKeys: [] }
)
const fits = (sizes: ReadonlyArray<number>, b: StreamBounds) =>
  sizes.length <= (b.maxEntries ?? Infinity) && sizes.reduce((sum, s) => sum + s, 0) <= (b.maxBytes ?? Infinity)

describe("stream bounds", () => {
  test("overflowCount drops the fewest oldest entries that make the rest fit", () =>
    fc.assert(
      fc.property(fc.array(fc.nat(30), { maxLength: 20 }), bounds, (sizes, b) => {
        const drop = overflowCount(sizes, b)
        expect(fits(sizes.slice(drop), b)).toBe(true)
        if (drop > 0) expect(fits(sizes.slice(drop - 1), b)).toBe(false)
      })
    ))

  test("payload sizes are UTF-8 bytes", () => {
    expect(payloadBytes("abc")).toBe(3)
    expect(payloadBytes("é€😀")).toBe(2 + 3 + 4)
  })
})
