import { describe, expect, test } from "bun:test"
import { Effect, Either, FastCheck } from "effect"
import { decodeInbound } from "../../src/hydrogen/Envelope.ts"
import { maxJsonDepth, nestsDeeperThan, parseJson } from "../../src/hydrogen/Json.ts"
import { it } from "../support/effect.ts"
import { apiOnlyKey, command, connectHydrogen, ok, post, request, startTestHydrogen } from "./support.ts"

const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`
const huge = "x".repeat(40_000)

/** An error reply carries at most a short prefix of what the client sent. */
const expectShort = (reply: unknown) => {
  const text = JSON.stringify(reply)
  expect(text.length).toBeLessThan(1000)
  expect(text).not.toContain("x".repeat(40))
}

/** Issue 12 #3 and #4 for Hydrogen: bounded JSON depth on every entry point, error texts without the client's input. */
describe("hydrogen JSON entry points", () => {
  test("the depth scan skips strings and agrees with a parse", () => {
    expect(nestsDeeperThan(nested(maxJsonDepth), maxJsonDepth)).toBe(false)
    expect(nestsDeeperThan(nested(maxJsonDepth + 1), maxJsonDepth)).toBe(true)
    expect(nestsDeeperThan(JSON.stringify({ s: '[[[[[[\\"[[[[' }), 2)).toBe(false)
    FastCheck.assert(
      FastCheck.property(FastCheck.json({ depthSize: "medium" }), (text) => {
        const depth = (value: unknown): number =>
          value !== null && typeof value === "object" ? 1 + Math.max(0, ...Object.values(value).map(depth)) : 0
        expect(nestsDeeperThan(text, 3)).toBe(depth(JSON.parse(text)) > 3)
      }),
      { numRuns: 500 }
    )
    expect(Either.isLeft(parseJson(nested(100_000)))).toBe(true)
  })

  test("decode errors name the field and the rule, never the value", () => {
    const long = decodeInbound(
      JSON.stringify({ type: "command", id: "t", channel: "system", action: "ping", timestamp: huge })
    )
    expect(Either.isLeft(long) && long.left.error.issues).toEqual([
      { path: ["timestamp"], message: "expected a string at most 64 character(s) long" }
    ])
    const wrongType = decodeInbound(JSON.stringify({ type: huge }))
    expect(Either.isLeft(wrongType) && wrongType.left.error.issues![0]!.message.length).toBeLessThan(60)
    const notJson = decodeInbound(`{"type": ${huge}}`)
    expect(Either.isLeft(notJson) && notJson.left.error.message).toBe("not valid JSON")
    const struct = decodeInbound(
      JSON.stringify({ type: "command", id: "t", channel: "system", action: "ping", auth: [] })
    )
    expect(Either.isLeft(struct) && struct.left.error.issues).toEqual([
      { path: ["auth"], message: "does not have the expected shape" }
    ])
  })

  it.effect(
    "WebSocket: deep nesting gets invalid_json, oversized values are not echoed, and the connection carries on",
    () =>
      Effect.gen(function* () {
        const hydrogen = yield* startTestHydrogen()
        const client = yield* connectHydrogen(hydrogen)
        yield* client.send(`{"type":"command","id":"d","channel":"system","action":"ping","data":${nested(20_000)}}`)
        const deep = yield* client.nextJson()
        expect(deep.error).toEqual({
          category: "protocol",
          code: "invalid_json",
          message: `JSON is nested deeper than ${maxJsonDepth} levels`
        })
        yield* client.send(`{"type":"command","id":${nested(20_000)},"channel":"system","action":"ping"}`)
        expect((yield* client.nextJson()).error.code).toBe("invalid_json")
        yield* client.send(
          JSON.stringify({ type: "command", id: "p", channel: "system", action: "ping", timestamp: huge })
        )
        const echoed = yield* client.nextJson()
        expect(echoed).toMatchObject({ id: "p", error: { code: "invalid_envelope" } })
        expectShort(echoed)
        yield* client.send(JSON.stringify({ type: huge }))
        expectShort(yield* client.nextJson())
        const badData = (yield* command(client, "subscriptions", "subscribe", { channel: "c", priority: huge }))
          .response
        expect(badData.error.code).toBe("invalid_data")
        expectShort(badData)
        yield* ok(client, "system", "ping")
      })
  )

  it.effect("HTTP API: deep bodies get 400 invalid_json, errors never quote the body", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const deep = yield* post(hydrogen, "/api/publish", `{"channel":"orders","action":"x","data":${nested(20_000)}}`)
      expect(deep.status).toBe(400)
      expect(deep.body.error.code).toBe("invalid_json")
      const notJson = yield* post(hydrogen, "/api/publish", `{"channel": ${huge}}`)
      expect(notJson.body.error).toEqual({ category: "protocol", code: "invalid_json", message: "not valid JSON" })
      const wrong = yield* post(hydrogen, "/api/publish", {
        channel: "orders",
        action: "x",
        priority: huge,
        idempotencyKey: huge
      })
      expect(wrong.status).toBe(400)
      expectShort(wrong.body)
      expect((yield* post(hydrogen, "/api/publish", { channel: "orders", action: "x" })).status).toBe(200)
    })
  )

  it.effect("HTTP API: a body without a length is read only up to the limit, then 413", () =>
    Effect.gen(function* () {
      const hydrogen = yield* startTestHydrogen()
      const chunk = new TextEncoder().encode("x".repeat(64 * 1024))
      let pulled = 0
      const endless = new ReadableStream<Uint8Array>({
        pull: (controller) => {
          pulled++
          controller.enqueue(chunk)
        }
      })
      const answer = yield* request(hydrogen, "/api/publish", {
        method: "POST",
        headers: { authorization: `Key ${apiOnlyKey}`, "content-type": "application/json" },
        body: endless,
        duplex: "half"
      } as RequestInit)
      // The transport's body limit (maxPayloadBytes + 64 KiB) answers first, with a short reason.
      expect(answer.status).toBe(413)
      expect(JSON.stringify(answer.body).length).toBeLessThan(200)
      // 1 MiB limit in 64 KiB chunks: reading stopped just past it (a stream never ends otherwise)
      expect(pulled).toBeLessThan(40)
    })
  )
})
