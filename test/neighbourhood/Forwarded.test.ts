import { describe, expect, test } from "bun:test"
import { Either, FastCheck as fc } from "effect"
import { encodeSignedData, forwardedSignedData, parseFrame, type SignedData } from "../../src/neighbourhood/Wire.ts"

/**
 * A verified signed_data goes on as received when it already is our encoding's shape: whatever the
 * input, what is forwarded must be our encoding of the decoded values, up to how string literals
 * are escaped (so no second `data`, extra field or spacing can ride along).
 */

/** The text with every JSON string literal written as JSON.stringify writes it. */
const normalised = (text: string) =>
  text.replace(/"(?:[^"\\]|\\.)*"/g, (literal) => JSON.stringify(JSON.parse(literal)))

/** Same characters, another escaping: JSON allows \uXXXX for any of them, and \/ for "/". */
const reEscaped = (literal: string, picks: ReadonlyArray<boolean>) => {
  let i = 0
  return literal.replace(/\\.|[^"\\]/g, (c) => {
    const pick = picks[i++ % Math.max(1, picks.length)] ?? false
    if (!pick) return c
    if (c === "\\/") return "/"
    if (c === "/") return "\\/"
    if (c.length === 2) return c
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`
  })
}

const base64 = fc.base64String({ minLength: 4, maxLength: 48 })
const data = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.json({ maxDepth: 2 }),
  fc.constantFrom('{"type":"public_chat","sender":"a\\"b","message":"\\\\"}', '"', "\\", '\\"', "/")
)
const counter = fc.oneof(fc.nat(), fc.constantFrom(0, 1, 10, Number.MAX_SAFE_INTEGER))

/** A frame text near our encoding: sometimes exactly it, sometimes respelled, padded, or with a field smuggled in. */
const nearFrame = fc
  .record({
    data,
    counter,
    signature: base64,
    change: fc.constantFrom(
      "none",
      "escapes",
      "spaces",
      "extra",
      "second data",
      "order",
      "counter form",
      "object data"
    ),
    picks: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
    other: fc.string({ maxLength: 8 })
  })
  .map(({ data, counter, signature, change, picks, other }) => {
    const exact = encodeSignedData(data, counter, signature)
    const literal = JSON.stringify(data)
    const tail = `,"counter":${counter},"signature":"${signature}"}`
    switch (change) {
      case "none":
        return exact
      case "escapes":
        return `{"type":"signed_data","data":${reEscaped(literal, picks)}${tail}`
      case "spaces":
        return `{"type": "signed_data", "data": ${literal}, "counter": ${counter}, "signature": "${signature}"}`
      case "extra":
        return `{"type":"signed_data","data":${literal},"extra":${JSON.stringify(other)}${tail}`
      case "second data":
        return `{"type":"signed_data","data":${JSON.stringify(other)},"data":${literal}${tail}`
      case "order":
        return JSON.stringify({ type: "signed_data", counter, data, signature })
      case "counter form":
        return `{"type":"signed_data","data":${literal},"counter":${counter}.0,"signature":"${signature}"}`
      default:
        return `{"type":"signed_data","data":${JSON.stringify({ message: data })}${tail}`
    }
  })

const forwardOf = (text: string) => {
  const frame = Either.getOrThrow(parseFrame(text)) as SignedData
  const dataText = typeof frame.data === "string" ? frame.data : JSON.stringify(frame.data)
  return {
    out: forwardedSignedData(text, frame, dataText),
    canonical: encodeSignedData(dataText, frame.counter, frame.signature)
  }
}

describe("Neighbourhood forwarded signed_data", () => {
  test("is always our encoding of the decoded values, up to string escapes; the received text only when that holds", () => {
    let respelled = 0
    fc.assert(
      fc.property(nearFrame, (text) => {
        if (Either.isLeft(parseFrame(text))) return
        const { out, canonical } = forwardOf(text)
        expect(normalised(out)).toBe(canonical)
        expect(JSON.parse(out)).toEqual(JSON.parse(canonical))
        if (out !== canonical) {
          expect(out).toBe(text)
          respelled++
        }
      }),
      { numRuns: 3000 }
    )
    // The case that matters is exercised: texts escaped otherwise than ours, forwarded as they came.
    expect(respelled).toBeGreaterThan(0)
  })

  test("a frame in our own encoding goes on as the same string, no new one made", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), counter, base64, (data, counter, signature) => {
        const text = encodeSignedData(data, counter, signature)
        expect(forwardOf(text).out).toBe(text)
      })
    )
  })

  test("smuggled fields, spacing and other counter spellings are re-encoded", () => {
    const literal = JSON.stringify('{"type":"public_chat","sender":"s","message":"m"}')
    const tail = ',"counter":7,"signature":"AAAA"}'
    for (const text of [
      `{"type":"signed_data","data":"x","data":${literal}${tail}`,
      `{"type":"signed_data","data":${literal},"extra":1${tail}`,
      `{"type":"signed_data","data":${literal},"counter":7.0,"signature":"AAAA"}`,
      `{"type":"signed_data","data":${literal}, "counter":7,"signature":"AAAA"}`
    ]) {
      const { out, canonical } = forwardOf(text)
      expect(out).toBe(canonical)
      expect(out).not.toBe(text)
    }
  })
})
