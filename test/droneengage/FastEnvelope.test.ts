import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck as fc } from "effect"
import { lastOrdinary, stampOrdinary } from "../../src/droneengage/FastEnvelope.ts"
import { Envelope, parseFrame } from "../../src/droneengage/Wire.ts"

/** The full path as the relay runs it: depth guard, JSON.parse, Schema decode, spread + JSON.stringify. */
const fullPath = (text: string, unitName: string, permission: number) => {
  const parsed = parseFrame(text)
  if (Either.isLeft(parsed)) return { _tag: "Refused" as const }
  const { envelope } = parsed.right
  if (envelope.ty === "s") return { _tag: "System" as const }
  return {
    _tag: "Stamped" as const,
    text: JSON.stringify({ ...envelope, sd: unitName, p: permission }),
    ty: envelope.ty,
    tg: envelope.tg,
    mt: envelope.mt
  }
}

const oddNumbers = ["1.0", "1e3", "1E2", "-0", "-0.0", "0.0000001", "0.000001", "1e21", "100000000000000000000000"]
  .concat(["0.1", "123456789012345678", "-0.5", "5e-324", "1.7976931348623157e308", "1e400", "01", "1.", ".5"])
  .concat(["0.30000000000000004", "12345678901234.5", "-12345678901234567", "1.50", "9007199254740993"])
const oddStrings = [
  '"\\u0041"',
  '"\\/"',
  '"\\u001f"',
  '"\\u001F"',
  '"\\ud800"',
  '"\ud800"',
  '"\udc00x"',
  '"\ud83d\ude00"'
].concat(['"\\n\\t\\"\\\\"', '"\\u000a"', '"\u2028"', '"a\u0001"', '"\\x41"', '"\\u00e9"', '"é"', '"\\u0000"'])
const oddKeys = ["__proto__", "0", "1", "42", "-1", "ty", "sd", "tg", "mt", "ms", "p", "a", "\\u0074y", "t\\u0079", ""]

const json = (value: unknown) => JSON.stringify(value) ?? "null"
const jsonText = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(json) },
  { weight: 1, arbitrary: fc.constantFrom(...oddNumbers, ...oddStrings) },
  { weight: 1, arbitrary: fc.integer({ min: 60, max: 68 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)) }
)
const keyText = fc.oneof(
  fc.constantFrom(...oddKeys).map((key) => `"${key}"`),
  fc.string({ maxLength: 4 }).map(json)
)
const fieldValue = (key: string) => {
  if (key === "ty") return fc.oneof(fc.constantFrom('"g"', '"i"', '"s"', '"x"', '"\\u0067"', "1"), jsonText)
  if (key === "tg") return fc.oneof(fc.constantFrom('"_GCS_"', '"_GD_"', '"_AGN_"', '""', '"u\\"1"', '"u1"'), jsonText)
  if (key === "mt") return fc.oneof(fc.integer().map(json), fc.constantFrom(...oddNumbers, '"x"', '"a\\nb"'), jsonText)
  return jsonText
}
const member = fc
  .oneof(fc.constantFrom("ty", "sd", "tg", "mt", "ms", "p"), keyText)
  .chain((key) => fieldValue(key).map((value) => `${key.startsWith('"') ? key : `"${key}"`}:${value}`))

/** Envelope-shaped text in any key order, with duplicates, odd keys, odd numbers and strings. */
const envelopeText = fc
  .tuple(
    fc.constantFrom('"ty":"g"', '"ty":"i"', '"ty":"s"'),
    fc.integer({ min: -5, max: 70000 }).map((mt) => `"mt":${mt}`),
    fc.array(member, { maxLength: 7 })
  )
  .chain(([ty, mt, members]) => fc.shuffledSubarray([ty, mt, ...members], { minLength: members.length }))
  .map((members) => `{${members.join(",")}}`)

const interesting = [" ", "\n", "\\", '"', "{", "}", "[", "]", ",", ":", "0", "-", "e", ".", "u", "\u2028", "\ud800"]
/** An insertion, a deletion, a replacement or a duplicated piece at a random place. */
const mutated = (base: fc.Arbitrary<string>) =>
  fc
    .tuple(
      base,
      fc.nat(),
      fc.nat(),
      fc.constantFrom("insert", "delete", "replace", "duplicate"),
      fc.constantFrom(...interesting)
    )
    .map(([text, a, b, kind, piece]) => {
      const at = a % (text.length + 1)
      const to = Math.min(text.length, at + (b % 12))
      if (kind === "insert") return text.slice(0, at) + piece + text.slice(at)
      if (kind === "delete") return text.slice(0, at) + text.slice(at + 1)
      if (kind === "replace") return text.slice(0, at) + piece + text.slice(at + 1)
      return text.slice(0, to) + text.slice(at, to) + text.slice(to)
    })

const generatedEnvelopes = Arbitrary.make(Envelope).map(json)
const anyText = fc.oneof(
  envelopeText,
  mutated(envelopeText),
  generatedEnvelopes,
  mutated(generatedEnvelopes),
  fc.string()
)
const unitNames = fc.oneof(fc.constantFrom("GCS1", "dr\\one", 'q"uote', "\u2028"), fc.string({ maxLength: 8 }))

describe("DroneEngage fast envelope path", () => {
  test("agrees with the full Schema path on every generated and mutated input", () => {
    fc.assert(
      fc.property(anyText, unitNames, fc.integer({ min: 0, max: 0xffff }), (text, unitName, permission) => {
        const fast = stampOrdinary(text, JSON.stringify(unitName), JSON.stringify(permission))
        const full = fullPath(text, unitName, permission)
        if (fast === undefined) return
        expect(full._tag).toBe("Stamped")
        if (full._tag !== "Stamped") return
        expect(fast).toBe(full.text)
        expect({ ty: lastOrdinary.ty, tg: lastOrdinary.tg, mt: lastOrdinary.mt }).toEqual({
          ty: full.ty as "g" | "i",
          tg: full.tg,
          mt: full.mt
        })
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 800) }
    )
  })

  test("ordinary envelopes as clients print them take the fast path", () => {
    const ordinary = fc.record(
      {
        ty: fc.constantFrom("g", "i"),
        sd: fc.string({ maxLength: 8 }),
        tg: fc.constantFrom("_GCS_", "_GD_", "_AGN_", "drone-1"),
        mt: fc.oneof(fc.integer({ min: 0, max: 20000 }), fc.constantFrom("x")),
        ms: fc.dictionary(
          fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/),
          fc.oneof(
            fc.string({ maxLength: 12 }),
            fc.integer(),
            fc.boolean(),
            fc.double({ noNaN: true }),
            fc.constant(null)
          )
        ),
        p: fc.integer({ min: 0, max: 255 })
      },
      { requiredKeys: ["ty", "mt"] }
    )
    fc.assert(
      fc.property(ordinary, (envelope) => {
        const text = JSON.stringify(envelope)
        const fast = stampOrdinary(text, '"unit"', "7")
        expect(fast).toBe(JSON.stringify({ ...JSON.parse(text), sd: "unit", p: 7 }))
      })
    )
    const bench = '{"ty":"g","sd":"u1","mt":1000,"ms":{"b":"3.7.129.1732924000123456","x":"aaaaaaaa"}}'
    expect(stampOrdinary(bench, '"u1"', "0")).toBe(
      '{"ty":"g","sd":"u1","mt":1000,"ms":{"b":"3.7.129.1732924000123456","x":"aaaaaaaa"},"p":0}'
    )
  })

  test("depth beyond the limit, system messages and non-JSON fall back to the full path", () => {
    const deep = `{"ty":"g","mt":1,"ms":${"[".repeat(64)}${"]".repeat(64)}}`
    expect(stampOrdinary(deep, '"u"', "0")).toBeUndefined()
    expect(fullPath(deep, "u", 0)._tag).toBe("Refused")
    const limit = `{"ty":"g","mt":1,"ms":${"[".repeat(63)}${"]".repeat(63)}}`
    expect(stampOrdinary(limit, '"u"', "0")).toBe(
      fullPath(limit, "u", 0)._tag === "Stamped" ? (fullPath(limit, "u", 0) as { text: string }).text : ""
    )
    expect(stampOrdinary('{"ty":"s","mt":9005}', '"u"', "0")).toBeUndefined()
    expect(stampOrdinary('{"ty":"g","mt":1} ', '"u"', "0")).toBeUndefined()
    expect(stampOrdinary("", '"u"', "0")).toBeUndefined()
  })
})
