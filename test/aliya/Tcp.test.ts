import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { encodeFrame, MAGIC } from "../../src/aliya/Frame.ts"
import { tcpPipe } from "../../src/aliya/Client.ts"
import { it } from "../support/effect.ts"
import { aliyaRealLayer, startStack } from "./support.ts"

describe("aliya over real sockets", () => {
  it.live(
    "login, a spend and pipelined requests over TCP and HTTP; a bad header closes without a reply",
    () =>
      Effect.gen(function* () {
        const stack = yield* startStack({ real: true })
        const client = yield* stack.connect
        const login = yield* client.call("login_unique", { unique_id: "tcp-player" })
        expect(login.status).toBe(1)
        const token = login.data.token as string
        // Three requests in one write: answered in order on the same connection.
        yield* client.send("increase_supplies", { token, supplies: ["iron"], amount: [40] })
        yield* client.send("random_gift_segment", { token })
        yield* client.send("get_all_supplies", { token })
        expect((yield* client.nextReply).random).toBe("2")
        expect((yield* client.nextReply).random).toBe("3")
        const supplies = yield* client.nextReply
        expect(supplies.data.item2).toEqual(["iron", 40])
        // A token that cannot be an HTTP header value is a bad token (11), not "service unavailable" (13): found by the fuzz suite.
        const odd = yield* client.call("get_all_weapon", { token: "\ua100\ud800é" })
        expect(odd).toMatchObject({ status: 11, message: "Authorization required" })

        const raw = yield* tcpPipe("127.0.0.1", stack.gatewayPort)
        yield* raw.write(new TextEncoder().encode(`${"0".repeat(32)}0004abcd`))
        const outcome = yield* raw.read.pipe(Effect.either)
        expect(outcome._tag).toBe("Left")
        expect(encodeFrame(new Uint8Array(0))!.byteLength).toBe(MAGIC.length + 4)
      }).pipe(Effect.provide(aliyaRealLayer())),
    20_000
  )
})
