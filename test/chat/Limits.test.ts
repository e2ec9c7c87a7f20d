import { describe, expect } from "bun:test"
import { Duration, Effect, TestClock } from "effect"
import { Command } from "../../src/chat/Packet.ts"
import { ErrorReason } from "../../src/chat/Rules.ts"
import { chatCloseReason } from "../../src/chat/Socket.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import { client, joined, next, show, startChat, takeUntil, text } from "./support.ts"

describe("chat: per-connection packet rate limit", () => {
  it.effect("over the budget a packet is refused (reason 8) and goes nowhere; the budget refills with time", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ limits: { messagesPerSecond: 5, messageBurst: 10, rateLimitStrikes: 5 } })
      const flooder = yield* joined(chat, "flooder", "lobby") // magic, nick, room: 3 of the 10
      const reader = yield* joined(chat, "reader", "lobby")
      yield* takeUntil(flooder.client, (p) => text(p) === "reader")
      yield* takeUntil(reader.client, (p) => text(p) === "flooder")
      for (let i = 0; i < 7; i++) flooder.client.sendMessage(`m${i}`)
      const refusedUid = flooder.client.sendMessage("one too many")
      for (let i = 0; i < 7; i++) expect(text(yield* next(reader.client))).toBe(`m${i}`)
      yield* takeUntil(flooder.client, (p) => text(p) === "m6")
      expect(show(yield* next(flooder.client))).toEqual({
        cmd: Command.RESP_ERROR,
        uid: refusedUid,
        p1: -1,
        p2: ErrorReason.rateLimited,
        data: ""
      })
      yield* reader.client.silent

      yield* TestClock.adjust("1 second") // 5 more
      flooder.client.sendMessage("after a pause")
      expect(text(yield* next(reader.client))).toBe("after a pause")
      expect(text(yield* next(flooder.client))).toBe("after a pause")
    })
  )

  it.effect("a client that keeps flooding is closed with 4006; the others keep chatting", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ limits: { messagesPerSecond: 5, messageBurst: 10, rateLimitStrikes: 5 } })
      const flooder = yield* joined(chat, "flooder", "lobby")
      const a = yield* joined(chat, "a", "lobby")
      const b = yield* joined(chat, "b", "lobby")
      yield* takeUntil(a.client, (p) => text(p) === "b")
      for (let i = 0; i < 1000; i++) flooder.client.sendMessage(`flood ${i}`)
      const closed = yield* flooder.client.closed
      expect(closed).toEqual({ code: CloseCodes.rateLimited, reason: chatCloseReason.flooding })
      // 7 got through, then 4 refusals; the 5th refusal in a row closed it.
      const seen = yield* takeUntil(a.client, (p) => p.cmd === Command.DEL_USER)
      expect(seen.map((p) => text(p))).toEqual([...Array.from({ length: 7 }, (_, i) => `flood ${i}`), "flooder"])
      a.client.sendMessage("still here")
      expect(
        text(
          yield* takeUntil(b.client, (p) => p.cmd === Command.NEW_MSG && text(p) === "still here").pipe(
            Effect.map((t) => t.at(-1)!)
          )
        )
      ).toBe("still here")
      const metrics = yield* chat.metrics.render
      expect(metrics).toContain('switchboard_chat_errors_total{server="chat",reason="rateLimited"} 4')
      expect(metrics).toContain('switchboard_chat_errors_total{server="chat",reason="rate_limit_close"} 1')
    })
  )
})

describe("chat: a nick without a room is not held for long", () => {
  it.effect(
    "a client with a nick that joins no room within joinTimeout is closed with 4005, and its nick is free again",
    () =>
      Effect.gen(function* () {
        const chat = yield* startChat({
          limits: { handshakeTimeout: Duration.seconds(10), joinTimeout: Duration.seconds(5) }
        })
        const squatter = yield* client(chat)
        expect((yield* squatter.setNick("squatter")).cmd).toBe(Command.RESP_OK)
        yield* next(squatter)
        const member = yield* joined(chat, "member", "lobby")
        yield* takeUntil(member.client, (p) => p.cmd === Command.NEW_USER)

        yield* TestClock.adjust("4 seconds")
        yield* squatter.silent // still connected just before the deadline
        yield* TestClock.adjust("2 seconds")
        expect(yield* squatter.closed).toEqual({ code: CloseCodes.handshakeTimeout, reason: chatCloseReason.noRoom })

        const again = yield* client(chat)
        expect((yield* again.setNick("squatter")).cmd).toBe(Command.RESP_OK)
        // Someone who joined in time has no deadline left; the second squatter meets the same end.
        yield* TestClock.adjust("1 minute")
        yield* member.client.silent
        expect((yield* again.closed).code).toBe(CloseCodes.handshakeTimeout)
        expect(yield* chat.metrics.render).toContain(
          'switchboard_chat_errors_total{server="chat",reason="join_timeout"} 2'
        )
      })
  )

  it.effect("no nick within handshakeTimeout is still 4005, with its own reason", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ limits: { handshakeTimeout: Duration.seconds(3) } })
      const silentOne = yield* client(chat)
      yield* silentOne.silent
      yield* TestClock.adjust("3 seconds")
      expect(yield* silentOne.closed).toEqual({ code: CloseCodes.handshakeTimeout, reason: chatCloseReason.noNick })
    })
  )
})
