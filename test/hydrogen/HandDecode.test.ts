import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import { PublishData } from "../../src/hydrogen/Commands.ts"
import { Command } from "../../src/hydrogen/Envelope.ts"
import { handCommand, handPublishData } from "../../src/hydrogen/HandDecode.ts"

/** Field values that are sometimes right and often subtly wrong. */
const anyField = FastCheck.oneof(
  FastCheck.constantFrom(
    "command",
    "ack",
    "events",
    "publish",
    "normal",
    "high",
    "",
    "a b",
    "x".repeat(65),
    "y".repeat(129)
  ),
  FastCheck.string({ maxLength: 140 }),
  FastCheck.stringMatching(/^[A-Za-z0-9_.:-]{1,70}$/),
  FastCheck.boolean(),
  FastCheck.integer(),
  FastCheck.constant(null),
  FastCheck.jsonValue({ maxDepth: 2 })
)
const looseRecord = (keys: ReadonlyArray<string>) =>
  FastCheck.dictionary(FastCheck.constantFrom(...keys, "extra"), anyField, { maxKeys: keys.length + 1 })

/** As it arrives on the wire: through JSON. */
const wire = <A>(arbitrary: FastCheck.Arbitrary<A>) => arbitrary.map((value) => JSON.parse(JSON.stringify(value)))

/** Whatever the hand path accepts, the Schema accepts with the same result; what it declines the Schema still decides. */
const agrees =
  <A>(schema: Schema.Schema<A, any>, hand: (value: unknown) => A | undefined) =>
  (value: unknown) => {
    const fast = hand(value)
    if (fast === undefined) return
    const decoded = Schema.decodeUnknownEither(schema, { errors: "all" })(value)
    expect(Either.isRight(decoded)).toBe(true)
    expect(fast as unknown).toEqual(Either.getOrThrow(decoded))
  }

describe("hand decoders agree with the Schemas", () => {
  test("commands: same result on every value the hand path accepts; every valid command without auth is accepted", () => {
    const commands = wire(Arbitrary.make(Command))
    FastCheck.assert(
      FastCheck.property(
        FastCheck.oneof(
          commands,
          wire(looseRecord(["type", "id", "timestamp", "channel", "action", "data", "auth"])),
          wire(looseRecord(["id", "channel", "action"]).map((r) => ({ ...r, type: "command" }))),
          FastCheck.jsonValue()
        ),
        agrees(Command, handCommand)
      ),
      { numRuns: 3000 }
    )
    FastCheck.assert(
      FastCheck.property(commands, (command) => {
        if (command.auth === undefined) expect(handCommand(command)).toEqual(command)
        else expect(handCommand(command)).toBeUndefined()
      }),
      { numRuns: 500 }
    )
  })

  test("events/publish data: same result on every value the hand path accepts; every valid one is accepted", () => {
    const valid = wire(Arbitrary.make(PublishData))
    FastCheck.assert(
      FastCheck.property(
        FastCheck.oneof(
          valid,
          wire(looseRecord(["channel", "action", "data", "priority", "ack"])),
          wire(
            FastCheck.record(
              { channel: anyField, action: anyField, priority: anyField, ack: anyField },
              { requiredKeys: [] }
            )
          ),
          FastCheck.jsonValue()
        ),
        agrees(PublishData, handPublishData)
      ),
      { numRuns: 3000 }
    )
    FastCheck.assert(
      FastCheck.property(valid, (data) => void expect(handPublishData(data)).toEqual(data)),
      { numRuns: 500 }
    )
    expect(handPublishData({ channel: "news", action: "a", ack: "yes" })).toBeUndefined()
    expect(handCommand({ type: "command", id: "c", channel: "events", action: "publish", auth: {} })).toBeUndefined()
  })
})
