import { describe, expect, test } from "bun:test"
import { Either, FastCheck as fc, Schema } from "effect"
import { decodeFunctionData, decodeRequest, fastFunctionBody, fastRequest } from "../../src/aliya/FastDecode.ts"
import { decodeData } from "../../src/aliya/Functions.ts"
import { functionBodySchema } from "../../src/aliya/ServiceHttp.ts"
import { Request } from "../../src/aliya/Wire.ts"

const schemaRequest = Schema.decodeUnknownEither(Request)

/** Sometimes-right values for each field: the edges of every rule, and anything at all. */
const text = (max: number) =>
  fc.oneof(fc.string({ maxLength: 3 }), fc.string({ minLength: max - 1, maxLength: max + 1 }), fc.constant(""))
const count = fc.oneof(
  fc.integer({ min: -2, max: 1_000_000_002 }),
  fc.double(),
  fc.stringMatching(/^-?\d{0,10}$/),
  fc.constantFrom("007", " 1", "1e3", "0x10", "1.5", "1000000000", "1000000001"),
  fc.anything()
)
const data = fc.oneof(
  fc.record(
    { token: fc.string(), weapon: fc.oneof(text(64), fc.anything()), iron: count, other: fc.anything() },
    { requiredKeys: [] }
  ),
  fc.dictionary(fc.string(), fc.anything()),
  fc.anything()
)
const envelope = fc.oneof(
  fc.record(
    {
      function: fc.oneof(
        fc.constantFrom("get_all_weapon" as const, "level_up_weapon" as const),
        text(64),
        fc.anything()
      ),
      random: fc.oneof(text(64), fc.double(), fc.integer(), fc.anything()),
      data,
      extra: fc.anything()
    },
    { requiredKeys: [] }
  ),
  fc.anything()
)
/** As the wire gives them: through JSON (so "__proto__" keys and the like are as JSON.parse makes them). */
const viaJson = (value: unknown) => {
  const text = JSON.stringify(value)
  return text === undefined ? undefined : JSON.parse(text)
}

describe("aliya hand decoders of the hot requests", () => {
  test("the envelope: whenever the hand path answers, the Schema answers the same", () => {
    fc.assert(
      fc.property(envelope, fc.boolean(), (value, throughJson) => {
        const input = throughJson ? viaJson(value) : value
        const fast = fastRequest(input)
        const schema = schemaRequest(input)
        if (fast !== undefined) expect(schema).toStrictEqual(Either.right(fast))
        expect(decodeRequest(input)).toStrictEqual(schema)
      }),
      { numRuns: 3000 }
    )
  })

  test("get_all_weapon's and level_up_weapon's data: the hand path is the Schema's answer", () => {
    fc.assert(
      fc.property(
        data,
        fc.constantFrom("get_all_weapon" as const, "level_up_weapon" as const),
        fc.boolean(),
        (value, name, throughJson) => {
          const input = throughJson ? viaJson(value) : value
          if (typeof input !== "object" || input === null || Array.isArray(input)) return
          const schema: Either.Either<unknown, unknown> = decodeData[name](input)
          const both: Either.Either<unknown, unknown> = decodeFunctionData(name, input as Record<string, unknown>)
          expect(Either.isRight(both)).toBe(Either.isRight(schema))
          if (Either.isRight(schema)) expect(both).toStrictEqual(schema)
        }
      ),
      { numRuns: 3000 }
    )
  })

  test("the cases that matter, by hand", () => {
    expect(decodeFunctionData("level_up_weapon", { weapon: "weapon1", iron: "20", token: "t" })).toStrictEqual(
      Either.right({ weapon: "weapon1", iron: 20 })
    )
    expect(Either.isLeft(decodeFunctionData("level_up_weapon", { weapon: "", iron: "20" }))).toBe(true)
    expect(Either.isLeft(decodeFunctionData("level_up_weapon", { weapon: "w", iron: "1000000001" }))).toBe(true)
    expect(fastRequest({ function: "get_all_weapon", random: "1", data: { token: "t" } })).toStrictEqual({
      function: "get_all_weapon",
      random: "1",
      data: { token: "t" }
    })
  })

  test("the managers' bodies {unique_id, ...data}: whenever the hand path answers, the route's Schema answers the same", () => {
    const schemas = {
      get_all_weapon: functionBodySchema("get_all_weapon"),
      level_up_weapon: functionBodySchema("level_up_weapon")
    }
    const uniqueId = fc.oneof(text(128), fc.constant("p"), fc.anything())
    let answered = 0
    const body = fc.oneof(
      fc
        .tuple(data, uniqueId)
        .map(([d, id]) => (typeof d === "object" && d !== null && !Array.isArray(d) ? { ...d, unique_id: id } : d)),
      fc.anything()
    )
    fc.assert(
      fc.property(
        body,
        fc.constantFrom("get_all_weapon" as const, "level_up_weapon" as const),
        fc.boolean(),
        (value, name, throughJson) => {
          const input = throughJson ? viaJson(value) : value
          const fast = fastFunctionBody(name, input)
          if (fast === undefined) return
          answered++
          expect(schemas[name](input) as unknown).toStrictEqual(fast)
        }
      ),
      { numRuns: 3000 }
    )
    // Not vacuous: the hand path answered a good share of the bodies.
    expect(answered).toBeGreaterThan(300)
  })
})
