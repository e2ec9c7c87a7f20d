import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import { fastContent, fastSignedData } from "../../src/neighbourhood/FastDecode.ts"
import { ChatData, openSignedData, parseFrame, PublicChatData, SignedData } from "../../src/neighbourhood/Wire.ts"

/** The hand-written fast path against the Schema it stands in for: equal wherever it accepts. */

const schemaSignedData = Schema.decodeUnknownEither(SignedData)
const schemaContent = Schema.decodeUnknownEither(Schema.Union(PublicChatData, ChatData))

const base64ish = fc.oneof(
  fc.base64String({ maxLength: 40 }),
  fc.stringMatching(/^[A-Za-z0-9+/]{0,1100}={0,2}$/),
  fc.string({ maxLength: 20 }),
  fc.constantFrom("", "==", "a=b", "abc=", "AAAA====", "é", "a b")
)
const oddValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.string({ maxLength: 8 }),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 })
)
const counter = fc.oneof(
  fc.nat(),
  fc.constantFrom(0, -0, -1, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, Number.NaN, Infinity, "1"),
  oddValue
)
const extras = fc.dictionary(fc.constantFrom("extra", "hostname", "type2", "x"), oddValue, { maxKeys: 2 })

/** Objects near the signed_data shape: every field sometimes right, sometimes wrong or missing. */
const nearSignedData = fc
  .record(
    {
      type: fc.oneof(fc.constant("signed_data"), fc.constant("signed_data"), oddValue),
      data: fc.oneof(fc.string({ maxLength: 60 }), fc.json({ maxDepth: 2 }), oddValue),
      counter,
      signature: fc.oneof(base64ish, base64ish, oddValue)
    },
    { requiredKeys: [] }
  )
  .chain((frame) => extras.map((more) => ({ ...more, ...frame })))

const address = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom("", "x".repeat(256), "s1"))
const nearContent = fc
  .oneof(
    fc.record(
      {
        type: fc.oneof(fc.constant("public_chat"), oddValue),
        sender: fc.oneof(fc.string({ maxLength: 44 }), fc.constant("x".repeat(129)), oddValue),
        message: fc.oneof(fc.string({ maxLength: 40 }), oddValue)
      },
      { requiredKeys: [] }
    ),
    fc.record(
      {
        type: fc.oneof(fc.constant("chat"), fc.constant("hello"), oddValue),
        destination_servers: fc.oneof(fc.array(address, { maxLength: 3 }), oddValue),
        iv: fc.oneof(base64ish, fc.constant("A".repeat(65)), oddValue),
        symm_keys: fc.oneof(fc.array(base64ish, { maxLength: 3 }), oddValue),
        chat: fc.oneof(base64ish, oddValue)
      },
      { requiredKeys: [] }
    )
  )
  .chain((content) => extras.map((more) => ({ ...more, ...content })))

describe("Neighbourhood fast decode", () => {
  test("fastSignedData equals the Schema wherever it accepts, and accepts every string-data frame the Schema does", () => {
    fc.assert(
      fc.property(fc.oneof(nearSignedData, Arbitrary.make(SignedData), fc.anything()), (value) => {
        const fast = fastSignedData(value)
        const schema = schemaSignedData(value)
        if (fast) expect(Either.getOrThrow(schema)).toEqual(fast)
        if (Either.isRight(schema) && typeof schema.right.data === "string") expect(fast).toEqual(schema.right)
      }),
      { numRuns: 3000 }
    )
  })

  test("fastContent equals the Schema wherever it accepts, and accepts every public_chat and chat the Schema does", () => {
    fc.assert(
      fc.property(
        fc.oneof(nearContent, Arbitrary.make(PublicChatData), Arbitrary.make(ChatData), fc.anything()),
        (value) => {
          const fast = fastContent(value)
          const schema = schemaContent(value)
          if (fast) expect<unknown>(Either.getOrThrow(schema)).toEqual(fast)
          if (Either.isRight(schema)) expect(fast).toEqual(schema.right)
        }
      ),
      { numRuns: 3000 }
    )
  })

  test("parseFrame and openSignedData give the Schema's result for any text near a signed public_chat", () => {
    fc.assert(
      fc.property(nearSignedData, nearContent, fc.boolean(), (frame, content, embed) => {
        const value = embed ? { ...frame, data: JSON.stringify(content) } : frame
        const text = JSON.stringify(value)
        if (text === undefined) return
        const parsed = parseFrame(text)
        const json = JSON.parse(text)
        if (json.type === "signed_data" && json.signature === undefined) json.signature = ""
        const schema = schemaSignedData(json)
        if (Either.isRight(parsed) && parsed.right.type === "signed_data") {
          expect(Either.getOrThrow(schema)).toEqual(parsed.right)
          const opened = openSignedData(parsed.right)
          if (Either.isRight(opened) && typeof parsed.right.data === "string") {
            expect(opened.right.dataText).toBe(parsed.right.data)
            const { content } = opened.right
            if (content.type === "public_chat" || content.type === "chat")
              expect(Either.getOrThrow(schemaContent(JSON.parse(parsed.right.data)))).toEqual(content)
          }
        } else if (json?.type === "signed_data") expect(Either.isLeft(schema)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })
})
