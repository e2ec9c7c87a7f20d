import { describe, expect, test } from "bun:test"
import { FastCheck as fc } from "effect"
import { defaultChatLimits } from "../../src/chat/Config.ts"
import { Command, encodePacket, MAGIC, newMessageText, packet } from "../../src/chat/Packet.ts"
import { ErrorReason, interpret, joinProblem, type Level } from "../../src/chat/Rules.ts"

const enc = new TextEncoder()
const frame = (cmd: number, data: string | Uint8Array = "", uid = 9) =>
  encodePacket(packet(cmd, { uid, data: typeof data === "string" ? enc.encode(data) : data }))
const limits = defaultChatLimits

describe("handshake state machine", () => {
  test("awaitMagic: only cmd 0 with exactly the magic string advances; anything else closes", () => {
    const s = { level: "awaitMagic" as const, inRoom: false }
    expect(interpret(s, frame(Command.NOP, MAGIC), limits)._tag).toBe("MagicAccepted")
    expect(interpret(s, frame(Command.NOP, "magic string :) "), limits)._tag).toBe("Close")
    expect(interpret(s, frame(Command.SET_USER_NICK, MAGIC), limits)._tag).toBe("Close")
    expect(interpret(s, "magic string :)", limits)._tag).toBe("Close")
    expect(interpret(s, new Uint8Array(3), limits)._tag).toBe("Close")
  })

  test("awaitNick: a nick of 1..maxNickBytes is proposed; others are refused with p1 -1 and may be retried", () => {
    const s = { level: "awaitNick" as const, inRoom: false }
    expect(interpret(s, frame(Command.SET_USER_NICK, "alice"), limits)).toMatchObject({ _tag: "SetNick", uid: 9 })
    expect(interpret(s, frame(Command.SET_USER_NICK, ""), limits)).toMatchObject({
      _tag: "Refuse",
      reason: ErrorReason.empty,
      reply: { p1: -1, uid: 9 }
    })
    expect(interpret(s, frame(Command.SET_USER_NICK, "x".repeat(33)), limits)).toMatchObject({
      reason: ErrorReason.tooLong
    })
    expect(interpret(s, frame(Command.SET_ROOM, "lobby"), limits)).toMatchObject({ reason: ErrorReason.nickFirst })
    expect(interpret(s, frame(Command.NOP, MAGIC), limits)._tag).toBe("Ignore")
  })

  test("ready: room once, messages only inside a room and within the limit, no nick change", () => {
    const out = { level: "ready" as const, inRoom: false }
    const inside = { level: "ready" as const, inRoom: true }
    expect(interpret(out, frame(Command.SET_ROOM, "lobby"), limits)._tag).toBe("SetRoom")
    expect(interpret(inside, frame(Command.SET_ROOM, "lobby"), limits)).toMatchObject({ reason: ErrorReason.refused })
    expect(interpret(out, frame(Command.NEW_MSG, "hi"), limits)).toMatchObject({ reason: ErrorReason.notInRoom })
    expect(interpret(inside, frame(Command.NEW_MSG, "hi"), limits)._tag).toBe("Message")
    expect(interpret(inside, frame(Command.NEW_MSG, "m".repeat(221)), limits)).toMatchObject({
      reason: ErrorReason.tooLong
    })
    expect(interpret(inside, frame(Command.SET_USER_NICK, "bob"), limits)).toMatchObject({
      reason: ErrorReason.refused,
      reply: { p2: 0 }
    })
    for (const cmd of [
      Command.RESP_OK,
      Command.RESP_ERROR,
      Command.NEW_USER,
      Command.DEL_USER,
      Command.LOGGED_MSG,
      9,
      -1
    ]) {
      expect(interpret(inside, frame(cmd), limits)).toMatchObject({ reason: ErrorReason.unknownCommand })
    }
  })

  test("interpret is total: any message at any level yields a step, never a throw", () =>
    fc.assert(
      fc.property(
        fc.constantFrom<Level>("awaitMagic", "awaitNick", "ready"),
        fc.boolean(),
        fc.oneof(
          fc.string(),
          fc.uint8Array({ maxLength: 80 }),
          fc
            .record({ cmd: fc.integer({ min: -1, max: 9 }), data: fc.uint8Array({ maxLength: 300 }) })
            .map((r) => frame(r.cmd, r.data))
        ),
        (level, inRoom, message) => {
          const step = interpret({ level, inRoom }, message, limits)
          expect(["Close", "MagicAccepted", "Ignore", "Refuse", "SetNick", "SetRoom", "Message"]).toContain(step._tag)
          if (step._tag === "Close") expect(level).toBe("awaitMagic")
        }
      ),
      { numRuns: 2000 }
    ))
})

describe("the message hot path (newMessageText)", () => {
  /** Frames near the boundary: packets of any command and size, then one byte of them changed (signature, size, cmd, …). */
  const framesNearMessages = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc
      .record({
        cmd: fc.integer({ min: -1, max: 9 }),
        data: fc.uint8Array({ maxLength: 40 }),
        uid: fc.integer(),
        mutate: fc.option(fc.record({ at: fc.nat(63), value: fc.integer({ min: 0, max: 255 }) }))
      })
      .map(({ cmd, data, uid, mutate }) => {
        const bytes = frame(cmd, data, uid)
        if (mutate) bytes[mutate.at % bytes.length] = mutate.value
        return bytes
      })
  )

  test("agrees with interpret for a member in a room: the same text for every message, undefined for anything else", () =>
    fc.assert(
      fc.property(framesNearMessages, fc.integer({ min: 0, max: 48 }), (bytes, maxMessageBytes) => {
        const step = interpret({ level: "ready", inRoom: true }, bytes, { ...limits, maxMessageBytes })
        const text = newMessageText(bytes, maxMessageBytes)
        if (step._tag === "Message") expect(text && [...text]).toEqual([...step.text])
        else expect(text).toBeUndefined()
      }),
      { numRuns: 5000 }
    ))
})

describe("room rules", () => {
  test("a new room needs a free room slot; any room needs a free member slot", () => {
    const l = { ...limits, maxRooms: 2, maxMembersPerRoom: 3 }
    expect(joinProblem({ roomExists: false, roomCount: 1, memberCount: 0 }, l)).toBeUndefined()
    expect(joinProblem({ roomExists: false, roomCount: 2, memberCount: 0 }, l)).toBe(ErrorReason.limitReached)
    expect(joinProblem({ roomExists: true, roomCount: 2, memberCount: 2 }, l)).toBeUndefined()
    expect(joinProblem({ roomExists: true, roomCount: 2, memberCount: 3 }, l)).toBe(ErrorReason.limitReached)
  })
})
