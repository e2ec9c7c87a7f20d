import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { echoes, leaksInternals } from "../../fuzz/answers.ts"
import {
  applyMutation,
  deep,
  huge,
  isUtf8,
  jsonText,
  mutation,
  nestingDepth,
  textMutation
} from "../../fuzz/lib/mutate.ts"

/** The fuzz suite's own pieces: placeholders expand to what they stand for, the checks see what they must. */
describe("fuzz mutations", () => {
  test("placeholders expand to huge strings and deep nesting without recursion", () => {
    expect(jsonText({ a: huge(5, "x") })).toBe('{"a":"xxxxx"}')
    const text = jsonText({ a: deep(50_000) })
    expect(text.length).toBe(100_006)
    expect(nestingDepth(new TextEncoder().encode(text))).toBe(50_001)
    expect(nestingDepth(new TextEncoder().encode('{"a":"[[[["}'))).toBe(1)
  })

  test("text mutations stay UTF-8; invalidUtf8 never is", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })), textMutation, (message, change) => {
        expect(isUtf8(applyMutation(message as never, change).bytes)).toBe(true)
      })
    )
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.string()), mutation, (message, change) => {
        const { bytes, utf8 } = applyMutation(message, change)
        expect(isUtf8(bytes)).toBe(utf8)
      })
    )
  })

  test("echo and internals checks", () => {
    const input = "a".repeat(500)
    expect(echoes(`{"em":"actual ${input}"}`, [input])).toBe(true)
    expect(echoes(`{"em":"acc: at most 255 characters (got 500)"}`, [input])).toBe(false)
    expect(echoes(JSON.stringify({ em: `x${'"'.repeat(300)}` }), ['"'.repeat(300)])).toBe(true)
    expect(leaksInternals('Expected { readonly ty: "g" | "i" | "s" }')).toBe(true)
    expect(leaksInternals("ty: must be one of g, i, s")).toBe(false)
  })
})
