import { describe, expect, test } from "bun:test"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import {
  Command,
  decodeInbound,
  Event,
  Inbound,
  Outbound,
  peekId,
  plainAckId,
  plainAckOrdinal,
  plainBatchAckIds
} from "../../src/hydrogen/Envelope.ts"
import { eventId, eventOrdinal } from "../../src/hydrogen/EventIds.ts"
import { eventBody, plainEvent, sequencedEvent, errorText, successText } from "../../src/hydrogen/Encode.ts"
import { ErrorCodes, protocolError } from "../../src/hydrogen/Errors.ts"
import { Filter, matches } from "../../src/hydrogen/Filter.ts"
import { allows, anonymous, grantable, mayConnect } from "../../src/hydrogen/Permissions.ts"
import { fullBucket, takeToken } from "../../src/shared/TokenBucket.ts"
import { canMove, quietState } from "../../src/hydrogen/ConnectionState.ts"

const decodeOutbound = Schema.decodeUnknownSync(Schema.parseJson(Outbound))

describe("envelope codec", () => {
  test("every inbound message survives encode → decode unchanged", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(Inbound), (message) => {
        const decoded = decodeInbound(JSON.stringify(message))
        expect(Either.isRight(decoded)).toBe(true)
        expect(Either.getOrThrow(decoded)).toEqual(JSON.parse(JSON.stringify(message)))
      }),
      { numRuns: 300 }
    )
  })

  test("random text never throws and always yields a structured protocol error or a valid message", () => {
    const garbage = FastCheck.oneof(
      FastCheck.string(),
      FastCheck.json(),
      FastCheck.jsonValue().map((v) => JSON.stringify(v)),
      FastCheck.record(
        { type: FastCheck.constantFrom("command", "ack", "status", "event", "nope", 7), id: FastCheck.anything() },
        { requiredKeys: [] }
      ).map((v) => JSON.stringify(v))
    )
    FastCheck.assert(
      FastCheck.property(garbage, (text) => {
        const decoded = decodeInbound(text)
        if (Either.isLeft(decoded)) {
          expect(decoded.left.error.category).toBe("protocol")
          expect<ReadonlyArray<string>>([
            ErrorCodes.invalidJson,
            ErrorCodes.invalidEnvelope,
            ErrorCodes.unknownType
          ]).toContain(decoded.left.error.code)
          expect(decoded.left.error.message.length).toBeGreaterThan(0)
          // the reply built from it is itself a valid response
          const reply = decodeOutbound(errorText({ id: decoded.left.id }, "t", decoded.left.error))
          expect(reply.type).toBe("response")
        } else {
          expect(Schema.is(Inbound)(decoded.right)).toBe(true)
        }
      }),
      { numRuns: 1000 }
    )
  })

  test("a bad command names the failing fields and keeps its id", () => {
    const decoded = decodeInbound(JSON.stringify({ type: "command", id: "x1", channel: "bad channel!", action: "" }))
    expect(Either.isLeft(decoded)).toBe(true)
    const failure = Either.getLeft(decoded).pipe((o) => (o._tag === "Some" ? o.value : undefined))!
    expect(failure.id).toBe("x1")
    expect(failure.error.code).toBe(ErrorCodes.invalidEnvelope)
    expect(failure.error.issues!.map((i) => i.path[0])).toEqual(expect.arrayContaining(["channel", "action"]))
  })

  test("unknown types are refused with the allowed ones named (the original closed the connection)", () => {
    const decoded = decodeInbound(JSON.stringify({ type: "event", id: "e" }))
    expect(Either.isLeft(decoded) && decoded.left.error.code).toBe(ErrorCodes.unknownType)
  })

  test("server events and responses decode with the published schemas", () => {
    FastCheck.assert(
      FastCheck.property(
        Arbitrary.make(Command),
        FastCheck.integer({ min: 1, max: 1e9 }),
        FastCheck.constantFrom("normal", "high"),
        FastCheck.boolean(),
        (c, seq, priority, ack) => {
          const body = eventBody(
            {
              channel: c.channel,
              action: c.action,
              data: c.data ?? null,
              priority: priority as "normal" | "high",
              ack
            },
            c.id,
            "2026-01-01T00:00:00.000Z"
          )
          const plain = Schema.decodeUnknownSync(Schema.parseJson(Event))(plainEvent(body))
          expect(plain.channel).toBe(c.channel)
          expect(plain.ack).toBe(ack ? true : undefined)
          const sequenced = Schema.decodeUnknownSync(Schema.parseJson(Event))(
            sequencedEvent(body, seq, JSON.stringify("ep"))
          )
          expect(sequenced.seq).toBe(seq)
          expect(sequenced.epoch).toBe("ep")
          const response = decodeOutbound(successText({ id: c.id, channel: c.channel, action: c.action }, "t", c.data))
          expect(response.id).toBe(c.id)
        }
      ),
      { numRuns: 200 }
    )
    const reply = decodeOutbound(
      errorText({ id: "1" }, "t", protocolError(ErrorCodes.invalidData, "m", [{ path: ["a", 0], message: "x" }]))
    )
    expect(reply.type === "response" && reply.error?.issues?.length).toBe(1)
  })

  test("the plain-ack fast path agrees with the full decoder", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.oneof(
          FastCheck.string(),
          FastCheck.string().map((id) => JSON.stringify({ type: "ack", id })),
          FastCheck.string().map((id) => `{"type":"ack","id":"${id}"}`)
        ),
        (text) => {
          const id = plainAckId(text)
          if (id === undefined) return
          const decoded = decodeInbound(text)
          expect(Either.isRight(decoded) && decoded.right).toEqual({ type: "ack", id })
        }
      ),
      { numRuns: 1000 }
    )
    expect(plainAckId('{"type":"ack","id":"ev-1"}')).toBe("ev-1")
    expect(plainAckId('{"type":"ack","id":"a\\"b"}')).toBeUndefined()
    expect(plainAckId('{"type":"ack","id":"x","channel":"c"}')).toBeUndefined()
  })

  test("the plain-ack ordinal agrees with the plain ack's id read as an event id", () => {
    const ids = FastCheck.oneof(
      FastCheck.string(),
      FastCheck.tuple(FastCheck.hexaString({ maxLength: 9 }), FastCheck.nat({ max: Number.MAX_SAFE_INTEGER })).map(
        ([prefix, ordinal]) => eventId(prefix, ordinal)
      ),
      FastCheck.tuple(FastCheck.string({ maxLength: 4 }), FastCheck.stringMatching(/^[0-9a-z]{0,12}$/)).map(
        ([prefix, digits]) => `${prefix}-${digits}`
      )
    )
    const texts = FastCheck.oneof(
      ids.map((id) => `{"type":"ack","id":"${id}"}`),
      ids.map((id) => JSON.stringify({ type: "ack", id, x: 1 })),
      FastCheck.string()
    )
    FastCheck.assert(
      FastCheck.property(texts, (text) => {
        const id = plainAckId(text)
        const ordinal = plainAckOrdinal(text)
        if (id !== undefined) expect(ordinal).toBe(eventOrdinal(id) ?? -1)
        // Without a plain id it may still read digits; the pending entry's id is then never written there.
        if (ordinal >= 0) expect(text.startsWith('{"type":"ack","id":"') && text.endsWith('"}')).toBe(true)
      }),
      { numRuns: 2000 }
    )
    expect(plainAckOrdinal('{"type":"ack","id":"abcd1234-1z"}')).toBe(71)
    expect(plainAckOrdinal('{"type":"ack","id":"abcd1234-"}')).toBe(-1)
    expect(plainAckOrdinal('{"type":"ack","id":"-"}')).toBe(-1)
  })

  test("the batch-ack fast path agrees with the Schema path on every text it accepts, and accepts plain batch acks", () => {
    const id = FastCheck.oneof(
      FastCheck.string({ minLength: 0, maxLength: 130 }),
      FastCheck.tuple(FastCheck.hexaString({ maxLength: 9 }), FastCheck.nat()).map(([p, n]) => eventId(p, n))
    )
    const ids = FastCheck.array(id, { minLength: 0, maxLength: 260 })
    const texts = FastCheck.oneof(
      ids.map((list) => `{"type":"ack","ids":["${list.join('","')}"]}`),
      ids.map((list) => JSON.stringify({ type: "ack", ids: list })),
      FastCheck.tuple(ids, FastCheck.string({ maxLength: 4 })).map(
        ([list, noise]) => `{"type":"ack","ids":["${list.join(`"${noise}"`)}"]}`
      ),
      FastCheck.string().map((tail) => `{"type":"ack","ids":["${tail}`)
    )
    FastCheck.assert(
      FastCheck.property(texts, (text) => {
        const fast = plainBatchAckIds(text)
        const decoded = decodeInbound(text)
        if (fast !== undefined) expect(Either.isRight(decoded) && decoded.right).toEqual({ type: "ack", ids: fast })
        // Every valid batch ack in its plain form (exactly {"type":"ack","ids":[…]}, no escapes) takes the fast path.
        const ack = Either.isRight(decoded) && decoded.right.type === "ack" ? decoded.right : undefined
        if (ack?.ids && !text.includes("\\") && text === JSON.stringify({ type: "ack", ids: ack.ids }))
          expect(fast).toEqual([...ack.ids])
      }),
      { numRuns: 2000 }
    )
    expect(plainBatchAckIds('{"type":"ack","ids":["a-1","a-2"]}')).toEqual(["a-1", "a-2"])
    expect(plainBatchAckIds('{"type":"ack","ids":[""]}')).toBeUndefined()
    expect(plainBatchAckIds('{"type":"ack","ids":["a","]}')).toBeUndefined()
    expect(plainBatchAckIds('{"type":"ack","ids":["a\\"b"]}')).toBeUndefined()
    expect(plainBatchAckIds('{"type":"ack","ids":["a", "b"]}')).toBeUndefined()
    expect(plainBatchAckIds(`{"type":"ack","ids":["${Array(257).fill("x").join('","')}"]}`)).toBeUndefined()
  })

  test("peekId reads the id of an oversized message from its head only", () => {
    expect(peekId(`{"type":"command","id":"big-1","data":"${"x".repeat(100_000)}"}`)).toEqual({
      looksLikeObject: true,
      id: "big-1"
    })
    expect(peekId(`{"data":"${"x".repeat(1000)}","id":"late"}`)).toEqual({ looksLikeObject: true, id: undefined })
    expect(peekId("x".repeat(1000)).looksLikeObject).toBe(false)
    FastCheck.assert(FastCheck.property(FastCheck.string(), (s) => void peekId(s)))
  })
})

describe("filters", () => {
  test("conditions on data fields", () => {
    const filter = Schema.decodeUnknownSync(Filter)({
      level: { in: ["warn", "error"] },
      "order.total": { gte: 100 },
      region: "eu"
    })
    expect(matches(filter, { level: "warn", order: { total: 150 }, region: "eu" })).toBe(true)
    expect(matches(filter, { level: "info", order: { total: 150 }, region: "eu" })).toBe(false)
    expect(matches(filter, { level: "warn", order: { total: 50 }, region: "eu" })).toBe(false)
    expect(matches(filter, { level: "warn", region: "eu" })).toBe(false)
    expect(matches(filter, "not an object")).toBe(false)
    expect(matches({ gone: { exists: false }, n: { ne: 3, lt: 10, gt: 1 } }, { n: 4 })).toBe(true)
  })

  test("matching never throws on arbitrary data, and the empty filter matches everything", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(Filter), FastCheck.jsonValue(), (filter, data) => {
        matches(filter, data)
        expect(matches({}, data)).toBe(true)
      }),
      { numRuns: 300 }
    )
  })
})

describe("permissions, token bucket, state machine", () => {
  test("verbs, verb:channel and *", () => {
    const id = { name: "n", kind: "api-key" as const, permissions: ["subscribe", "publish:orders"] }
    expect(allows(id, "subscribe", "any")).toBe(true)
    expect(allows(id, "publish", "orders")).toBe(true)
    expect(allows(id, "publish", "other")).toBe(false)
    expect(allows({ ...id, permissions: ["*"] }, "host")).toBe(true)
    expect(mayConnect(anonymous)).toBe(true)
    expect(mayConnect({ ...id, permissions: ["api"] })).toBe(false)
    expect(grantable(id, ["subscribe", "publish:orders", "publish", "*", "host"])).toEqual([
      "subscribe",
      "publish:orders"
    ])
  })

  test("token bucket admits a burst then the rate", () => {
    const bucket = fullBucket(3, 0)
    expect([1, 2, 3, 4].map(() => takeToken(bucket, 0, 2, 3))).toEqual([true, true, true, false])
    expect(takeToken(bucket, 499, 2, 3)).toBe(false)
    expect(takeToken(bucket, 500, 2, 3)).toBe(true)
    expect(takeToken(bucket, 10_000, 2, 3)).toBe(true)
    expect(bucket.tokens).toBe(2)
  })

  test("state machine transitions follow the seed", () => {
    expect(canMove("Connecting", "Verifying")).toBe(true)
    expect(canMove("Connected", "Heartbeat")).toBe(true)
    expect(canMove("Heartbeat", "Connected")).toBe(true)
    expect(canMove("Inactive", "Closing")).toBe(true)
    expect(canMove("Closed", "Connected")).toBe(false)
    expect(quietState(0, 25_000, 300_000)).toBe("Connected")
    expect(quietState(25_000, 25_000, 300_000)).toBe("Heartbeat")
    expect(quietState(150_000, 25_000, 300_000)).toBe("Inactive")
    expect(quietState(1e9, 25_000, 0)).toBe("Heartbeat")
  })
})
