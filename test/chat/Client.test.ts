import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { TPacketClient } from "../../src/chat/Client.ts"
import { Command, type TPacket } from "../../src/chat/Packet.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import { startRealChat } from "./support.ts"

const text = (p: TPacket) => new TextDecoder().decode(p.data)

describe("TPacketClient", () => {
  it.live("join() pipelines magic, nick and room and resolves with both replies", () =>
    Effect.gen(function* () {
      const { url } = yield* startRealChat()
      const { client, nickReply, roomReply } = yield* Effect.promise(() => TPacketClient.join(url, "alice", "lobby"))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
      expect([nickReply.cmd, nickReply.uid, roomReply.cmd, roomReply.uid]).toEqual([
        Command.RESP_OK,
        2,
        Command.RESP_OK,
        3
      ])
      // Replies are also in the packet stream, in order, followed by the roster.
      const seen = yield* Effect.promise(async () => [await client.next(), await client.next(), await client.next()])
      expect(seen.map((p) => p.cmd)).toEqual([Command.RESP_OK, Command.RESP_OK, Command.NEW_USER])
    })
  )

  it.live("async iteration yields server packets until the socket closes", () =>
    Effect.gen(function* () {
      const { url } = yield* startRealChat()
      const { client } = yield* Effect.promise(() => TPacketClient.join(url, "alice", "lobby"))
      client.sendMessage("one")
      client.sendMessage("two")
      const messages = yield* Effect.promise(async () => {
        const out: Array<string> = []
        for await (const p of client) {
          if (p.cmd === Command.NEW_MSG) out.push(text(p))
          if (out.length === 2) client.close()
        }
        return out
      })
      expect(messages).toEqual(["one", "two"])
      expect((yield* Effect.promise(() => client.closed)).code).toBe(1000)
    })
  )

  it.live("request() resolves with the matching _RESP_ERROR; next() rejects after a timeout and after close", () =>
    Effect.gen(function* () {
      const { url } = yield* startRealChat()
      const client = yield* Effect.promise(() => TPacketClient.connect(url))
      const refused = yield* Effect.promise(() => client.setRoom("lobby"))
      expect([refused.cmd, refused.uid, refused.p1]).toEqual([Command.RESP_ERROR, 2, -1])
      yield* Effect.promise(() => client.next())
      const timedOut = yield* Effect.promise(() =>
        client.next(30).then(
          () => "packet",
          (e: Error) => e.message
        )
      )
      expect(timedOut).toContain("no packet within 30 ms")
      const bad = yield* Effect.promise(() => TPacketClient.connect(url, { magic: false }))
      bad.sendRaw("not a packet")
      expect((yield* Effect.promise(() => bad.closed)).code).toBe(CloseCodes.badRequest)
      const afterClose = yield* Effect.promise(() =>
        bad.next().then(
          () => "packet",
          (e: Error) => e.message
        )
      )
      expect(afterClose).toContain("connection closed (4400")
      const requestAfterClose = yield* Effect.promise(() =>
        bad.setNick("late").then(
          () => "reply",
          (e: Error) => e.message
        )
      )
      expect(requestAfterClose).toContain("connection closed")
      client.close()
    })
  )
})
