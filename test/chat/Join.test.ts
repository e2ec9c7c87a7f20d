import { describe, expect } from "bun:test"
import { Effect } from "effect"
import { Command, encodePacket, packet, readPacket } from "../../src/chat/Packet.ts"
import { ErrorReason } from "../../src/chat/Rules.ts"
import { it } from "../support/effect.ts"
import {
  client,
  joined,
  leftRoom,
  next,
  realClient,
  show,
  startChat,
  startRealChat,
  takeUntil,
  text
} from "./support.ts"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

describe("chat: join sequence and broadcast", () => {
  it.effect("nick → _RESP_OK with the uid echoed, exact bytes", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const c = yield* client(chat)
      c.send(Command.SET_USER_NICK, "alice") // uid 2 (magic was uid 1)
      const reply = yield* next(c)
      // "Ej8@", uid 2, size 24, cmd 3, p1 0, p2 0
      expect(hex(encodePacket(reply))).toBe("456a3840" + "02000000" + "18000000" + "03000000" + "00000000" + "00000000")
    })
  )

  it.effect(
    "join order: OK, roster (joiner first, newest first), history oldest first, then _NEW_USER to the others",
    () =>
      Effect.gen(function* () {
        const chat = yield* startChat()
        const a = yield* joined(chat, "alice", "lobby")
        expect(a.roomReply.cmd).toBe(Command.RESP_OK)
        const aliceBurst = yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_USER)
        const aliceId = aliceBurst.at(-1)!.p1
        expect(aliceBurst.map(show)).toEqual([
          { cmd: Command.RESP_OK, uid: 2, p1: 0, p2: 0, data: "" },
          { cmd: Command.RESP_OK, uid: 3, p1: 0, p2: 0, data: "" },
          { cmd: Command.NEW_USER, uid: -1, p1: aliceId, p2: 0, data: "alice" }
        ])
        expect(aliceId).toBeGreaterThanOrEqual(0x1000)
        a.client.sendMessage("first")
        a.client.sendMessage("second")
        yield* takeUntil(a.client, (p) => text(p) === "second")

        const b = yield* joined(chat, "bob", "lobby")
        const bobBurst = yield* takeUntil(b.client, (p) => p.cmd === Command.LOGGED_MSG && text(p) === "alice: second")
        const bobId = bobBurst[2]!.p1
        expect(bobBurst.map(show)).toEqual([
          { cmd: Command.RESP_OK, uid: 2, p1: 0, p2: 0, data: "" },
          { cmd: Command.RESP_OK, uid: 3, p1: 0, p2: 0, data: "" },
          { cmd: Command.NEW_USER, uid: -1, p1: bobId, p2: 0, data: "bob" },
          { cmd: Command.NEW_USER, uid: -1, p1: aliceId, p2: 0, data: "alice" },
          { cmd: Command.LOGGED_MSG, uid: -1, p1: 0, p2: 0, data: "alice: first" },
          { cmd: Command.LOGGED_MSG, uid: -1, p1: 0, p2: 0, data: "alice: second" }
        ])
        expect(bobId).not.toBe(aliceId)
        expect(show(yield* next(a.client))).toEqual({ cmd: Command.NEW_USER, uid: -1, p1: bobId, p2: 0, data: "bob" })
        yield* b.client.silent
      })
  )

  it.effect(
    "_NEW_MSG reaches every member, the sender included, with uid -1 and p1 = sender id; other rooms hear nothing",
    () =>
      Effect.gen(function* () {
        const chat = yield* startChat()
        const a = yield* joined(chat, "alice", "lobby")
        const b = yield* joined(chat, "bob", "lobby")
        const c = yield* joined(chat, "carol", "elsewhere")
        const bobId = (yield* takeUntil(a.client, (p) => text(p) === "bob")).at(-1)!.p1
        yield* takeUntil(b.client, (p) => text(p) === "alice")
        yield* takeUntil(c.client, (p) => text(p) === "carol")
        b.client.sendMessage("hi all")
        const toAlice = yield* next(a.client)
        const toBob = yield* next(b.client)
        expect(hex(encodePacket(toAlice))).toBe(hex(encodePacket(toBob)))
        expect(toAlice.cmd).toBe(Command.NEW_MSG)
        expect(toAlice.uid).toBe(-1)
        expect(text(toAlice)).toBe("hi all")
        expect(toAlice.p1).toBe(bobId)
        yield* c.client.silent
      })
  )

  it.effect(
    "_DEL_USER {p1 uid, data nick} to the others when a member disconnects; the room dies with its history",
    () =>
      Effect.gen(function* () {
        const chat = yield* startChat()
        const a = yield* joined(chat, "alice", "lobby")
        const b = yield* joined(chat, "bob", "lobby")
        const bobNew = (yield* takeUntil(a.client, (p) => text(p) === "bob")).at(-1)!
        b.client.sendMessage("bye")
        yield* takeUntil(a.client, (p) => text(p) === "bye")
        b.client.close()
        const left = yield* next(a.client)
        expect(show(left)).toEqual({ cmd: Command.DEL_USER, uid: -1, p1: bobNew.p1, p2: 0, data: "bob" })
        a.client.close()
        yield* leftRoom(chat.changes, "alice")
        // A new room of the same name starts empty: no history.
        const c = yield* joined(chat, "carol", "lobby")
        const burst = yield* takeUntil(c.client, (p) => p.cmd === Command.NEW_USER)
        expect(burst.map((p) => p.cmd)).toEqual([Command.RESP_OK, Command.RESP_OK, Command.NEW_USER])
        yield* c.client.silent
      })
  )

  it.effect("duplicate nicks are refused server-wide with p1 = -1, and a retry with another nick works", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      yield* joined(chat, "alice", "lobby")
      const c = yield* client(chat)
      const refused = yield* c.setNick("alice")
      expect(show(refused)).toEqual({ cmd: Command.RESP_ERROR, uid: 2, p1: -1, p2: ErrorReason.refused, data: "" })
      const prefix = yield* c.setNick("alic") // the original's off-by-one accepted prefixes as duplicates
      expect(prefix.cmd).toBe(Command.RESP_OK)
    })
  )

  it.effect("nick and room changes are refused with _RESP_ERROR; the user stays where it was", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const a = yield* joined(chat, "alice", "lobby")
      const b = yield* joined(chat, "bob", "lobby")
      yield* takeUntil(a.client, (p) => text(p) === "bob")
      yield* takeUntil(b.client, (p) => text(p) === "alice")
      const nick = yield* a.client.setNick("alicia")
      const room = yield* a.client.setRoom("other")
      expect([nick, room].map(show)).toEqual([
        { cmd: Command.RESP_ERROR, uid: 4, p1: -1, p2: ErrorReason.refused, data: "" },
        { cmd: Command.RESP_ERROR, uid: 5, p1: -1, p2: ErrorReason.refused, data: "" }
      ])
      yield* next(a.client)
      yield* next(a.client)
      a.client.sendMessage("still here")
      expect(text(yield* next(b.client))).toBe("still here")
      yield* b.client.silent
    })
  )

  it.effect("room names match exactly (bytes), and arbitrary bytes in messages survive history", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const a = yield* joined(chat, "alice", "Lobby")
      const b = yield* joined(chat, "bob", "lobby")
      yield* takeUntil(b.client, (p) => text(p) === "bob")
      const bytes = Uint8Array.of(0x00, 0xff, 0xfe, 0x80, 0x41)
      a.client.sendMessage(bytes)
      yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_MSG)
      yield* b.client.silent
      const c = yield* joined(chat, "carol", "Lobby")
      const logged = (yield* takeUntil(c.client, (p) => p.cmd === Command.LOGGED_MSG)).at(-1)!
      expect([...logged.data]).toEqual([...new TextEncoder().encode("alice: "), ...bytes])
    })
  )

  it.effect("a packet the server sends always has size = frame length", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const a = yield* joined(chat, "alice", "lobby")
      yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_USER)
      a.client.sendRaw(
        encodePacket(packet(Command.NEW_MSG, { uid: 9, data: new TextEncoder().encode("x".repeat(200)) }))
      )
      // The memory client decodes every frame with readPacket and fails on a bad one.
      expect(text(yield* next(a.client))).toBe("x".repeat(200))
    })
  )
})

describe("chat: smoke test over a real Bun socket", () => {
  it.live("join and a message with TPacketClient; the frames are exact bytes", () =>
    Effect.gen(function* () {
      const { url } = yield* startRealChat()
      const a = yield* realClient(url)
      const b = yield* realClient(url)
      const replies = yield* Effect.promise(() =>
        Promise.all([a.setNick("alice"), a.setRoom("lobby"), b.setNick("bob"), b.setRoom("lobby")])
      )
      expect(replies.map((r) => r.cmd)).toEqual([Command.RESP_OK, Command.RESP_OK, Command.RESP_OK, Command.RESP_OK])
      const raw = yield* Effect.promise(async () => {
        // Skip the joins: wait for bob's arrival at alice, then bob speaks.
        while (text(await a.next()) !== "bob");
        while (text(await b.next()) !== "alice");
        const frame = new Promise<Uint8Array>((resolve) =>
          a.socket.addEventListener("message", (e) => resolve(new Uint8Array(e.data as ArrayBuffer)), { once: true })
        )
        b.sendMessage("hello over tcp")
        return frame
      })
      const decoded = readPacket(raw)
      expect(decoded._tag).toBe("Right")
      expect(show(yield* Effect.promise(() => a.next()))).toMatchObject({
        cmd: Command.NEW_MSG,
        uid: -1,
        data: "hello over tcp"
      })
      expect(hex(raw.subarray(8, 12))).toBe("26000000") // size = 24 + 14
    })
  )
})
