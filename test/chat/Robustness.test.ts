import { describe, expect } from "bun:test"
import { Duration, Effect, FastCheck as fc, TestClock } from "effect"
import { Command, encodePacket, MAGIC, packet } from "../../src/chat/Packet.ts"
import { ErrorReason } from "../../src/chat/Rules.ts"
import { CloseCodes } from "../../src/shared/CloseCodes.ts"
import { it } from "../support/effect.ts"
import { type ChatClient, client, joined, next, show, startChat, takeUntil, type TestChat, text } from "./support.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const closed = (c: ChatClient) => c.closed

/** Two members of "lobby" that have seen each other join; proves the room still works afterwards. */
const witnesses = (chat: TestChat) =>
  Effect.gen(function* () {
    const a = yield* joined(chat, "witness-a", "lobby")
    const b = yield* joined(chat, "witness-b", "lobby")
    yield* takeUntil(a.client, (p) => text(p) === "witness-b")
    yield* takeUntil(b.client, (p) => text(p) === "witness-a")
    const stillWorks = (line: string) =>
      Effect.gen(function* () {
        a.client.sendMessage(line)
        expect(text(yield* next(b.client))).toBe(line)
        expect(text(yield* next(a.client))).toBe(line)
      })
    return { a: a.client, b: b.client, stillWorks }
  })

describe("chat: the original's crashes do not happen here", () => {
  it.effect("a client that closes before joining a room (with and without a nick) crashes nothing", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const w = yield* witnesses(chat)
      const withNick = yield* client(chat)
      expect((yield* withNick.setNick("leaver")).cmd).toBe(Command.RESP_OK)
      withNick.close()
      const bare = yield* client(chat, { magic: false })
      bare.close()
      yield* closed(withNick)
      yield* closed(bare)
      yield* w.a.silent
      yield* w.stillWorks("after the early leavers")
      // The nick is free again.
      const again = yield* client(chat)
      expect((yield* again.setNick("leaver")).cmd).toBe(Command.RESP_OK)
    })
  )

  it.effect("_NEW_MSG before _SET_ROOM is refused (not in a room), nobody hears it", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const w = yield* witnesses(chat)
      const c = yield* client(chat)
      yield* c.setNick("early")
      yield* next(c)
      c.sendMessage("too soon")
      expect(show(yield* next(c))).toEqual({
        cmd: Command.RESP_ERROR,
        uid: 3,
        p1: -1,
        p2: ErrorReason.notInRoom,
        data: ""
      })
      yield* w.b.silent
      yield* w.stillWorks("unaffected")
    })
  )

  it.effect("a long nick plus a long message: over the limits they are refused; with raised limits they work", () =>
    Effect.gen(function* () {
      const small = yield* startChat()
      const c = yield* client(small)
      const longNick = yield* c.setNick("n".repeat(33))
      expect(show(longNick)).toEqual({ cmd: Command.RESP_ERROR, uid: 2, p1: -1, p2: ErrorReason.tooLong, data: "" })
      yield* c.setNick("n".repeat(32))
      yield* c.setRoom("lobby")
      yield* takeUntil(c, (p) => p.cmd === Command.NEW_USER)
      c.sendMessage("m".repeat(221))
      expect(show(yield* next(c))).toMatchObject({ cmd: Command.RESP_ERROR, p1: -1, p2: ErrorReason.tooLong })

      // 600 + 2 + 600 bytes: the original's 256-byte buffer and its signed history lengths both overflow.
      const big = yield* startChat({ limits: { maxNickBytes: 600, maxMessageBytes: 600 } })
      const nick = "N".repeat(600)
      const message = "M".repeat(600)
      const a = yield* joined(big, nick, "lobby")
      yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_USER)
      a.client.sendMessage(message)
      expect(text(yield* next(a.client))).toBe(message)
      const b = yield* joined(big, "reader", "lobby")
      const logged = (yield* takeUntil(b.client, (p) => p.cmd === Command.LOGGED_MSG)).at(-1)!
      expect(text(logged)).toBe(`${nick}: ${message}`)
    })
  )
})

describe("chat: bad input gets an error or a documented close, and affects no one else", () => {
  it.effect("a wrong magic packet closes with 4400; so does a text frame before the magic", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const w = yield* witnesses(chat)
      const wrong = yield* client(chat, { magic: false })
      wrong.send(Command.NOP, "magic string :(")
      expect((yield* closed(wrong)).code).toBe(CloseCodes.badRequest)
      const wrongCmd = yield* client(chat, { magic: false })
      wrongCmd.send(Command.SET_USER_NICK, MAGIC)
      expect((yield* closed(wrongCmd)).code).toBe(CloseCodes.badRequest)
      const textFrame = yield* client(chat, { magic: false })
      textFrame.sendRaw("magic string :)")
      expect((yield* closed(textFrame)).code).toBe(CloseCodes.badRequest)
      yield* w.stillWorks("still fine")
    })
  )

  it.effect(
    "after the magic: text frames, short frames, bad signatures and size mismatches get _RESP_ERROR (malformed)",
    () =>
      Effect.gen(function* () {
        const chat = yield* startChat()
        const c = yield* client(chat)
        const good = encodePacket(packet(Command.SET_USER_NICK, { uid: 77, data: bytes("x") }))
        const badSize = new Uint8Array(good)
        new DataView(badSize.buffer).setInt32(8, 999, true)
        const badSignature = new Uint8Array(good)
        badSignature[0] = 0x46
        c.sendRaw("hello")
        c.sendRaw(Uint8Array.of(1, 2, 3))
        c.sendRaw(badSignature)
        c.sendRaw(badSize)
        c.sendRaw(good)
        const replies = [yield* next(c), yield* next(c), yield* next(c), yield* next(c), yield* next(c)].map(show)
        expect(replies.slice(0, 4)).toEqual([
          { cmd: Command.RESP_ERROR, uid: -1, p1: -1, p2: ErrorReason.malformed, data: "" },
          { cmd: Command.RESP_ERROR, uid: -1, p1: -1, p2: ErrorReason.malformed, data: "" },
          { cmd: Command.RESP_ERROR, uid: 77, p1: -1, p2: ErrorReason.malformed, data: "" },
          { cmd: Command.RESP_ERROR, uid: 77, p1: -1, p2: ErrorReason.malformed, data: "" }
        ])
        // The complete nick packet is accepted: the connection is still usable.
        expect(replies[4]).toEqual({ cmd: Command.RESP_OK, uid: 77, p1: 0, p2: 0, data: "" })
        c.sendRaw(good.subarray(0, 24)) // data cut off: size (25) no longer matches the frame
        expect(show(yield* next(c))).toMatchObject({ cmd: Command.RESP_ERROR, uid: 77, p2: ErrorReason.malformed })
      })
  )

  it.effect("unknown commands, server-only commands and commands before the nick are refused", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const c = yield* client(chat)
      c.send(Command.SET_ROOM, "lobby")
      expect(show(yield* next(c))).toMatchObject({ cmd: Command.RESP_ERROR, uid: 2, p2: ErrorReason.nickFirst })
      yield* c.setNick("alice")
      yield* next(c)
      c.send(Command.NOP) // ignored, no reply
      c.send(Command.LOGGED_MSG, "forged")
      c.send(42)
      c.send(-7)
      c.send(Command.SET_ROOM, "")
      const replies = [yield* next(c), yield* next(c), yield* next(c), yield* next(c)].map(show)
      expect(replies.map((r) => [r.uid, r.p2])).toEqual([
        [5, ErrorReason.unknownCommand],
        [6, ErrorReason.unknownCommand],
        [7, ErrorReason.unknownCommand],
        [8, ErrorReason.empty]
      ])
    })
  )

  it.effect("limits: rooms, members per room and connections are refused, never a crash", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ limits: { maxRooms: 1, maxMembersPerRoom: 2 }, socket: { maxConnections: 4 } })
      const a = yield* joined(chat, "a", "one")
      yield* joined(chat, "b", "one")
      const third = yield* joined(chat, "c", "one")
      expect(show(third.roomReply)).toMatchObject({ cmd: Command.RESP_ERROR, p1: -1, p2: ErrorReason.limitReached })
      const other = yield* third.client.setRoom("two")
      expect(show(other)).toMatchObject({ cmd: Command.RESP_ERROR, p2: ErrorReason.limitReached })
      yield* client(chat)
      const refused = yield* Effect.flip(client(chat))
      expect(refused).toMatchObject({ code: 503, reason: expect.stringContaining("connection limit") })
      a.client.sendMessage("room one still works")
      expect(text((yield* takeUntil(a.client, (p) => p.cmd === Command.NEW_MSG)).at(-1)!)).toBe("room one still works")
    })
  )

  it.effect("random bytes at any trust level never crash the server or disturb other clients", () =>
    Effect.gen(function* () {
      const chat = yield* startChat()
      const w = yield* witnesses(chat)
      const frame = fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.string({ maxLength: 20 }),
        // Near-valid packets: right signature, random header fields and data.
        fc
          .record({
            uid: fc.integer(),
            size: fc.integer(),
            cmd: fc.integer({ min: -2, max: 10 }),
            data: fc.uint8Array({ maxLength: 40 })
          })
          .map((f) => {
            const p = encodePacket(packet(f.cmd, { uid: f.uid, data: f.data }))
            if (f.size % 3 === 0) new DataView(p.buffer).setInt32(8, f.size, true)
            return p
          })
      )
      const scenario = fc.record({
        level: fc.constantFrom("open", "magic", "nick", "room"),
        frames: fc.array(frame, { maxLength: 8 })
      })
      const samples = fc.sample(scenario, { numRuns: 300, seed: 1234 })
      let run = 0
      for (const { level, frames } of samples) {
        run++
        const c = yield* client(chat, { magic: level !== "open" })
        if (level === "nick" || level === "room") yield* c.setNick(`fuzz-${run}`)
        if (level === "room") yield* c.setRoom(`fuzz-room-${run % 3}`)
        for (const f of frames) c.sendRaw(f)
        c.close()
        yield* closed(c)
      }
      yield* w.a.silent
      yield* w.stillWorks("survived the fuzz")
    })
  )
})

describe("chat: timeouts", () => {
  it.effect("a client that does not finish the handshake in time is closed with 4005", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({ limits: { handshakeTimeout: Duration.seconds(5) } })
      const slow = yield* client(chat) // magic sent, no nick
      const done = yield* joined(chat, "quick", "lobby")
      // Its answer proves the slow connection is open (its timer started) before time moves.
      yield* slow.silent
      yield* TestClock.adjust("6 seconds")
      expect((yield* closed(slow)).code).toBe(CloseCodes.handshakeTimeout)
      done.client.sendMessage("still connected")
      expect(text((yield* takeUntil(done.client, (p) => p.cmd === Command.NEW_MSG)).at(-1)!)).toBe("still connected")
    })
  )

  it.effect("keepalive: an idle client is closed with 4001, a client sending _NOP stays", () =>
    Effect.gen(function* () {
      const chat = yield* startChat({
        socket: { pingInterval: Duration.seconds(10), idleTimeout: Duration.seconds(30) }
      })
      const idle = yield* joined(chat, "idle", "lobby")
      const busy = yield* joined(chat, "busy", "lobby")
      yield* takeUntil(idle.client, (p) => text(p) === "busy")
      yield* takeUntil(busy.client, (p) => text(p) === "idle")
      for (let i = 0; i < 5; i++) {
        busy.client.send(Command.NOP)
        // The server has read the _NOP once it answers what was sent after it.
        yield* busy.client.silent
        yield* TestClock.adjust("10 seconds")
      }
      expect((yield* closed(idle.client)).code).toBe(CloseCodes.idleTimeout)
      // Still connected: it hears the idle one leave, and its requests are answered.
      expect(show(yield* next(busy.client))).toMatchObject({ cmd: Command.DEL_USER, data: "idle" })
      yield* busy.client.silent
    })
  )
})
